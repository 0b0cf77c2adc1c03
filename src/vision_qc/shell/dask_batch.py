"""Batch inspection on a Dask cluster: ``vision-qc inspect ... --dask ADDRESS | local[:N]``.

The same batch as :func:`~vision_qc.shell.batch.run_batch`, with the cluster's workers in place
of the local process pool; the caller (``vision-qc inspect``) writes ``results.jsonl``, the CSV
tables and the report exactly as for a local run, and ``--resume`` works the same.

- **The recipe goes to each worker once**: a worker plugin, registered once per run, builds the
  :class:`~vision_qc.inspector.Inspector` on every worker (and on workers that join later, such
  as one a nanny restarts) and keeps it there; each task carries only a file name.
- **Shared storage (default)**: every worker reads the images and writes the per-file outputs
  (overlays, report thumbnails, width profiles) itself, at the same absolute paths as this
  computer. Checked before any work starts on every worker.
- **``send_bytes``** (``--dask-send-bytes``): for a folder only this computer sees. The client
  reads each file and sends its bytes with the task; the worker sends back the record and the
  per-file outputs, which the client writes.
- **Faults**: a task is pure and idempotent (its outputs are written whole, by rename), so the
  scheduler may run it again on another worker when one dies; the client writes each input's
  record once (deduplicated by input). A file whose workers keep dying on it
  (``distributed.scheduler.allowed-failures``) costs one ``ERROR`` record, as in the local pool.

Dask is an optional extra (``pip install 'vision-qc[dask]'``); nothing here imports it until a
cluster is used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError

from .. import __version__
from ..cli import UsageError
from ..results import error_record
from .imageio import MAX_FILE_BYTES, read_image  # first: it sets OpenCV's pixel limit
from .batch import DATA_DIR, OVERLAY_DIR, OVERLAY_MODES, BatchAbort, BatchStats, inspect_file
from .records import file_key, write_atomic

__all__ = ["add_arguments", "parse_target", "import_distributed", "connect", "open_runner",
           "run_dask_batch", "check_shared_storage", "DaskRunner", "INSTALL_HINT",
           "CONNECT_TIMEOUT_S", "WORKERS_TIMEOUT_S", "NO_WORKERS_TIMEOUT_S"]

INSTALL_HINT = "pip install 'vision-qc[dask]'"
CONNECT_TIMEOUT_S = 5.0       # reaching the scheduler
WORKERS_TIMEOUT_S = 10.0      # a reachable scheduler without workers, before any work starts
NO_WORKERS_TIMEOUT_S = 60.0   # every worker gone mid-batch: give up (the records so far stay)
POLL_S = 1.0                  # how often the client looks at the cluster while waiting


def add_arguments(parser) -> None:
    """The ``--dask`` options of ``vision-qc inspect``."""
    parser.add_argument("--dask", metavar="ADDRESS", default=None,
                        help="inspect on a Dask cluster: the scheduler's address "
                             "(tcp://host:8786), or local[:N] for a cluster of N worker "
                             "processes on this computer. Workers read the inputs and write "
                             "the outputs at the same paths as here (shared storage). Needs "
                             f"the dask extra: {INSTALL_HINT}")
    parser.add_argument("--dask-send-bytes", action="store_true",
                        help="with --dask: send each image's bytes from here and write every "
                             "output here, for a folder the workers cannot see")


def parse_target(text: str) -> tuple[str | None, int | None]:
    """``--dask``'s value as ``(address, None)`` or ``(None, n_workers)`` for ``local[:N]``.

    Raises
    ------
    UsageError
        An empty value, or ``local:N`` with N not a whole number ≥ 1.
    """
    value = text.strip()
    if not value:
        raise UsageError("--dask needs the scheduler's address (tcp://host:8786) or local[:N]")
    if value == "local" or value.startswith("local:"):
        n_text = value[len("local:"):] if ":" in value else ""
        if not n_text:
            return None, max(os.cpu_count() or 1, 1)
        try:
            n = int(n_text)
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"--dask local:N needs N, the number of worker processes, >= 1; "
                             f"got {text!r}")
        return None, n
    return value, None


def import_distributed():
    """The ``distributed`` package, or a :class:`UsageError` that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise UsageError(f"--dask needs Dask, which is not installed ({exc}); install it with: "
                         f"{INSTALL_HINT}   (or: pip install 'dask[distributed]')") from None
    return distributed


# ----------------------------------------------------------------------------------------
# Connecting


def connect(address: str | None = None, *, n_local: int | None = None,
            timeout_s: float | None = None, workers_timeout_s: float | None = None):
    """A client of a running scheduler, or of a new local cluster.

    Parameters
    ----------
    address : str or None
        The scheduler (``tcp://host:8786``). None: start a ``LocalCluster``.
    n_local : int, keyword-only
        Worker processes of the local cluster (one thread each).
    timeout_s : float, keyword-only
        How long to try to reach the scheduler (default :data:`CONNECT_TIMEOUT_S`).
    workers_timeout_s : float, keyword-only
        How long to wait for the scheduler to have a worker (default
        :data:`WORKERS_TIMEOUT_S`).

    Returns
    -------
    (client, cluster)
        ``cluster`` is the ``LocalCluster`` to close after the client, or None.

    Raises
    ------
    UsageError
        Dask missing, the scheduler not reachable in ``timeout_s``, no workers, or a local
        cluster that cannot start; the message says what to do.
    """
    distributed = import_distributed()
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    workers_timeout_s = WORKERS_TIMEOUT_S if workers_timeout_s is None else workers_timeout_s
    cluster = None
    if address is None:
        try:
            # no dashboard; its HTTP server on a free loopback port (never "8787 in use")
            cluster = distributed.LocalCluster(
                n_workers=n_local or 1, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)
            client = distributed.Client(cluster, set_as_default=False)
        except Exception as exc:
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
            raise UsageError(f"cannot start a local Dask cluster of {n_local} worker(s): "
                             f"{type(exc).__name__}: {exc}") from None
        return client, cluster
    try:
        client = distributed.Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s ({detail}). "
            f"Check the address and port, and that a scheduler runs there and is reachable "
            f"from here (start one with: dask scheduler --port PORT; then workers with: "
            f"dask worker {address} --nthreads 1); or use --dask local:N for a cluster on "
            f"this computer") from None
    try:
        client.wait_for_workers(1, timeout=workers_timeout_s)
    except (TimeoutError, OSError) as exc:
        with contextlib.suppress(Exception):
            client.close()
        raise UsageError(f"the Dask scheduler at {address} has no workers (waited "
                         f"{workers_timeout_s:g} s: {exc}); start some with: dask worker "
                         f"{address} --nworkers N --nthreads 1") from None
    return client, None


class DaskRunner:
    """:func:`~vision_qc.shell.batch.run_batch`'s signature, run on a Dask cluster.

    Attributes: ``client``, ``address`` (the scheduler's, or ``local:N``), ``send_bytes``,
    ``workers`` (worker threads of the cluster when it was joined).
    """

    def __init__(self, client, *, address: str, send_bytes: bool = False):
        self.client = client
        self.address = address
        self.send_bytes = send_bytes
        nthreads = client.nthreads()
        self.n_workers = len(nthreads)
        self.workers = max(sum(nthreads.values()), 1)

    def __call__(self, files, recipe, *, out_dir, on_record, workers=None, overlays="ng",
                 inspector=None, max_inflight=None) -> BatchStats:
        # ``workers`` and ``inspector`` belong to the local runner: the cluster has its own
        return run_dask_batch(files, recipe, client=self.client, out_dir=out_dir,
                              on_record=on_record, overlays=overlays,
                              send_bytes=self.send_bytes, max_inflight=max_inflight)


@contextlib.contextmanager
def open_runner(args, *, say: Callable[[str], None] = lambda msg: None) -> Iterator[DaskRunner]:
    """For ``vision-qc inspect``: check the ``--dask`` options, join (or start) the cluster
    and yield a :class:`DaskRunner`; the client (and a local cluster) close on exit.

    Raises
    ------
    UsageError
        Options that do not go together, Dask missing, a scheduler that cannot be reached.
    """
    if args.dask is None:
        raise UsageError("--dask-send-bytes only applies with --dask ADDRESS or --dask local[:N]")
    if args.workers is not None:
        raise UsageError("--workers sets the local worker processes; with --dask the cluster's "
                         "workers do the work (for a local cluster: --dask local:N)")
    address, n_local = parse_target(args.dask)
    label = address if address is not None else f"local:{n_local}"
    client, cluster = connect(address, n_local=n_local)
    try:
        runner = DaskRunner(client, address=label, send_bytes=args.dask_send_bytes)
        mode = ("image bytes sent from here, outputs written here" if args.dask_send_bytes
                else "shared storage: workers read the inputs and write the outputs")
        say(f"Dask cluster {label}: {runner.n_workers} worker(s), {runner.workers} thread(s); "
            f"{mode}")
        yield runner
    finally:
        # after a lost scheduler, closing logs the cancelled reconnection as an error: noise
        logs = [logging.getLogger(n) for n in ("distributed", "distributed.client",
                                                "distributed.utils")]
        levels = [log.level for log in logs]
        if client.status != "running":
            for log in logs:
                log.setLevel(logging.CRITICAL)
        try:
            with contextlib.suppress(Exception):
                client.close()
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
        finally:
            for log, level in zip(logs, levels):
                log.setLevel(level)


# ----------------------------------------------------------------------------------------
# On the workers

_INSPECTORS: dict = {}      # plugin name -> Inspector, or a message saying why there is none


class _WorkerSetupError(RuntimeError):
    """A worker has no inspector for this run (it could not build one)."""


def _setup_inspector(name: str, recipe, version: str) -> None:
    import cv2

    cv2.setNumThreads(1)        # one core per worker thread, as in the local pool
    if version != __version__:
        _INSPECTORS[name] = (f"this worker has vision-qc {__version__}, the client {version}; "
                             f"install the same version everywhere")
        return
    try:
        from ..inspector import Inspector

        _INSPECTORS[name] = Inspector(recipe)
    except Exception as exc:    # reported to the client before any work, and by each task
        _INSPECTORS[name] = f"{type(exc).__name__}: {exc}"


@functools.cache
def _plugin_class():
    # Built on first use so that importing this module does not import Dask (the CLI imports
    # it for its options). Instances pickle through _make_plugin (a module-level function).
    from distributed.diagnostics.plugin import WorkerPlugin

    class InspectorPlugin(WorkerPlugin):
        """Builds this run's inspector on each worker once (and on workers joining later)."""

        idempotent = False

        def __init__(self, name: str, recipe, version: str):
            self.name, self.recipe, self.version = name, recipe, version

        def __reduce__(self):
            return _make_plugin, (self.name, self.recipe, self.version)

        def setup(self, worker) -> None:
            _setup_inspector(self.name, self.recipe, self.version)

        def teardown(self, worker) -> None:
            _INSPECTORS.pop(self.name, None)

    return InspectorPlugin


def _make_plugin(name: str, recipe, version: str):
    return _plugin_class()(name, recipe, version)


def _worker_problem(name: str) -> str | None:
    """Run on each worker before the batch: why it cannot inspect for this run, or None."""
    got = _INSPECTORS.get(name)
    if got is None:
        return "the recipe was not set up on this worker"
    return got if isinstance(got, str) else None


def _worker_inspector(name: str):
    got = _INSPECTORS.get(name)
    if got is None or isinstance(got, str):
        raise _WorkerSetupError(f"a Dask worker ({_worker_address()}) cannot inspect: "
                                f"{got or 'the recipe was not set up on it'}")
    return got


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:
        return "?"


def _inspect_shared(file: str, path: str, name: str, out_dir: str | None,
                    overlays: str) -> tuple[dict, dict]:
    """Task: read ``path`` (``file`` made absolute on the client), inspect, write this file's
    outputs under ``out_dir``. Returns ``(record, {})``."""
    inspector = _worker_inspector(name)

    def read(_file):
        frame, message = read_image(path)
        if frame is None and message == "no such file":
            message = (f"no such file on the Dask worker {_worker_address()} ({path}); every "
                       f"worker must see the inputs at the same path as the client, or use "
                       f"--dask-send-bytes")
        return frame, message

    return inspect_file(inspector, file, out_dir=out_dir, overlays=overlays, read=read), {}


def _inspect_sent(file: str, data: bytes, name: str, outputs: bool,
                  overlays: str) -> tuple[dict, dict]:
    """Task: inspect the image in ``data`` (the bytes of ``file`` on the client). Returns
    ``(record, {path relative to the output folder: bytes})`` for the client to write."""
    inspector = _worker_inspector(name)
    made: dict[str, bytes] = {}
    # read_image takes a path: it checks the header and size before decoding, so the bytes go
    # through a temporary file rather than a second copy of those checks here
    with tempfile.NamedTemporaryFile(prefix="vision-qc-",
                                     suffix=os.path.splitext(file)[1][:10]) as tmp:
        tmp.write(data)
        tmp.flush()
        record = inspect_file(inspector, file, overlays=overlays,
                              read=lambda _file: read_image(tmp.name),
                              write=made.__setitem__ if outputs else None)
    return record, made


def _probe_paths(items: list[tuple[str, str, int | None]]) -> list[str]:
    """Run on each worker: for each ``(what, path, size)`` the problems seen there."""
    problems = []
    for what, path, size in items:
        try:
            st = os.stat(path)
        except OSError as exc:
            problems.append(f"{what} {path}: {exc.strerror or exc}")
            continue
        if size is not None and st.st_size != size:
            problems.append(f"{what} {path} is {st.st_size} bytes there but {size} bytes on the "
                            f"client (not the same file)")
        elif stat.S_ISDIR(st.st_mode) and not os.access(path, os.W_OK):
            problems.append(f"{what} {path} is not writable")
    return problems


# ----------------------------------------------------------------------------------------
# On the client


def check_shared_storage(client, files: list[str], out_dir: str | None) -> None:
    """Check, on every worker, that the first and last input and the output folder are there
    at the same absolute paths as here (a probe file written here must be seen there).

    Raises
    ------
    BatchAbort
        Some worker does not see them; the message names the worker and the paths.
    """
    items: list[tuple[str, str, int | None]] = []
    for f in dict.fromkeys([files[0], files[-1]]) if files else []:
        path = os.path.abspath(f)
        with contextlib.suppress(OSError):
            items.append(("input", path, os.stat(path).st_size))
    probe = None
    if out_dir is not None:
        out_abs = os.path.abspath(out_dir)
        token = uuid.uuid4().hex
        # ".tmp-" in the name: a resumed run removes it if this one is killed before cleaning up
        probe = os.path.join(out_abs, f".dask-probe-{token[:8]}.tmp-{os.getpid()}")
        write_atomic(probe, token.encode())
        items += [("output folder", os.path.join(out_abs, OVERLAY_DIR), None),
                  ("output folder", os.path.join(out_abs, DATA_DIR), None),
                  ("probe file", probe, len(token))]
    try:
        seen = client.run(_probe_paths, items) if items else {}
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.remove(probe)
    bad = {w: p for w, p in seen.items() if p}
    if bad:
        lines = "; ".join(f"worker {w}: {', '.join(p[:3])}" for w, p in sorted(bad.items()))
        raise BatchAbort(f"Dask workers do not see the inputs or the output folder at the same "
                         f"paths as this computer ({lines}). Put them on storage every worker "
                         f"mounts at the same path, or use --dask-send-bytes (the images are "
                         f"sent from here and the outputs written here)")


def _read_to_send(file: str) -> tuple[bytes | None, str | None]:
    """The file's bytes, or None and the message a local run would record for it."""
    try:
        st = os.stat(file)
        if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= MAX_FILE_BYTES:
            with open(file, "rb") as f:
                return f.read(), None
    except OSError:
        pass
    _, message = read_image(file)      # stats and refuses unread: the local run's message
    return None, message or "cannot read the file"


def _output_path(out_dir: str, rel: str) -> str:
    # only "overlays/<name>" or "report_data/<name>" from a worker is written
    folder, _, name = rel.partition("/")
    if folder not in (OVERLAY_DIR, DATA_DIR) or not name or os.path.basename(name) != name \
            or name in (".", ".."):
        raise BatchAbort(f"a Dask worker returned an output named {rel!r}; refused")
    return os.path.join(out_dir, folder, name)


def run_dask_batch(files: list[str], recipe, *, client, out_dir: str | os.PathLike | None,
                   on_record: Callable[[dict], None], overlays: str = "ng",
                   send_bytes: bool = False, max_inflight: int | None = None) -> BatchStats:
    """Inspect ``files`` on the cluster of ``client``; pass each record to ``on_record`` as
    soon as it is back, once per file.

    Parameters
    ----------
    files : list of str
        Paths as recorded (relative ones are made absolute here for the workers).
    recipe : Recipe
    client : distributed.Client, keyword-only
    out_dir : path or None, keyword-only
        Output folder for per-file outputs (``overlays/``, ``report_data/``; created here).
        Without ``send_bytes`` every worker must see it at the same absolute path.
    on_record : callable, keyword-only
        Called in this thread, in completion order, once per file.
    overlays : {"ng", "all", "none"}, keyword-only
    send_bytes : bool, keyword-only
        Send each file's bytes with its task and write the outputs here.
    max_inflight : int, keyword-only
        Tasks on the cluster at a time (default twice its worker threads): bounds memory
        here and on the scheduler.

    Raises
    ------
    KeyboardInterrupt
        After cancelling the tasks; every record passed to ``on_record`` before stays.
    BatchAbort
        A worker cannot inspect (version, recipe), workers do not see the shared paths,
        outputs cannot be written, or the cluster is lost.
    """
    if overlays not in OVERLAY_MODES:
        raise ValueError(f"overlays must be one of {OVERLAY_MODES}; got {overlays!r}")
    distributed = import_distributed()
    out = None if out_dir is None else os.path.abspath(os.fspath(out_dir))
    if out is not None:
        os.makedirs(os.path.join(out, OVERLAY_DIR), exist_ok=True)
        os.makedirs(os.path.join(out, DATA_DIR), exist_ok=True)
    stats = BatchStats()
    t0 = time.perf_counter()
    if not files:
        return stats
    written: set[str] = set()

    def emit(rec: dict) -> None:
        key = file_key(rec["file"])
        if key in written:          # a task run twice (a retry) is recorded once
            return
        written.add(key)
        on_record(rec)
        stats.done += 1
        stats.counts[rec["verdict"]] = stats.counts.get(rec["verdict"], 0) + 1

    name = f"vision-qc-inspector-{uuid.uuid4().hex[:12]}"
    try:
        client.register_plugin(_make_plugin(name, recipe, __version__), name=name)
    except Exception as exc:
        raise BatchAbort(f"the Dask workers could not set up the recipe: "
                         f"{type(exc).__name__}: {exc}") from None
    inflight: dict = {}
    try:
        problems = {w: p for w, p in client.run(_worker_problem, name).items() if p}
        if problems:
            w, p = min(problems.items())
            raise BatchAbort(f"Dask worker {w} cannot inspect: {p}")
        if not send_bytes:
            check_shared_storage(client, files, out)
        limit = max_inflight or 2 * max(sum(client.nthreads().values()), 1)
        _loop(files, client=client, distributed=distributed, name=name, out=out,
              overlays=overlays, send_bytes=send_bytes, limit=limit, inflight=inflight,
              emit=emit, stats=stats)
    finally:
        stats.elapsed_s = time.perf_counter() - t0
        if client.status == "running":
            with contextlib.suppress(Exception):
                if inflight:
                    client.cancel(list(inflight))
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(name)
    return stats


def _lost_message(client, exc) -> str:
    groups = getattr(exc, "error_groups", None)
    if groups:
        reasons = {g.reason for g in groups}
    elif getattr(exc, "reason", None):
        reasons = {exc.reason}
    else:
        reasons = {type(exc).__name__ if exc is not None else f"client {client.status}"}
    where = ""
    with contextlib.suppress(Exception):
        where = f" at {client.scheduler.address}"
    return (f"lost the connection to the Dask scheduler{where} ({', '.join(sorted(reasons))}); "
            f"the records so far are kept: run the same command with --resume when the cluster "
            f"is back")


def _task_key(name: str, file: str) -> str:
    return "vision-qc-inspect-" + hashlib.sha1(f"{name}\0{file}".encode(
        "utf-8", "surrogateescape")).hexdigest()


def _loop(files, *, client, distributed, name, out, overlays, send_bytes, limit, inflight,
          emit, stats) -> None:
    # several futures cancelled at once (scheduler lost); a CancelledError in older Dask
    cancelled = (getattr(distributed.client, "FuturesCancelledError", CancelledError),
                 CancelledError, distributed.comm.CommClosedError)
    pending = list(reversed(files))
    no_workers_since = None

    def submit(f: str) -> None:
        if send_bytes:
            data, message = _read_to_send(f)
            if data is None:
                emit(error_record(f, message))
                return
            fut = client.submit(_inspect_sent, f, data, name, out is not None, overlays,
                                key=_task_key(name, f), retries=0)
        else:
            fut = client.submit(_inspect_shared, f, os.path.abspath(f), name, out, overlays,
                                key=_task_key(name, f), retries=0)
        inflight[fut] = f

    while pending or inflight:
        while pending and len(inflight) < limit:
            submit(pending.pop())
        if not inflight:
            continue
        try:
            with client.as_current():           # distributed.wait uses the current client
                done = distributed.wait(list(inflight), timeout=POLL_S,
                                        return_when="FIRST_COMPLETED").done
        except TimeoutError:
            done = ()
        except cancelled as exc:
            raise BatchAbort(_lost_message(client, exc)) from None
        if not done:
            if client.status != "running":
                raise BatchAbort(_lost_message(client, None))
            if not client.nthreads():
                no_workers_since = no_workers_since or time.monotonic()
                if time.monotonic() - no_workers_since > NO_WORKERS_TIMEOUT_S:
                    raise BatchAbort(f"the Dask cluster has had no workers for "
                                     f"{NO_WORKERS_TIMEOUT_S:g} s; the records so far are "
                                     f"kept: start workers and run the same command with "
                                     f"--resume")
            else:
                no_workers_since = None
            continue
        abort = None
        for fut in done:
            f = inflight.pop(fut)
            try:
                _collect(fut, f, client=client, out=out, emit=emit, stats=stats,
                         distributed=distributed)
            except BatchAbort as exc:
                abort = abort or exc
            fut.release()
        if abort is not None:
            # after the other files finished at the same moment are recorded
            raise abort


def _collect(fut, f: str, *, client, out, emit, stats, distributed) -> None:
    try:
        record, made = fut.result()
    except distributed.KilledWorker as exc:
        stats.crashed.append(f)
        emit(error_record(f, f"the Dask workers running this file died {exc.allowed_failures + 1} "
                             f"times while reading or inspecting it (a decoder crash or out of "
                             f"memory); the file is probably corrupt or far too large"))
        return
    except _WorkerSetupError as exc:
        raise BatchAbort(str(exc)) from None
    except distributed.comm.CommClosedError as exc:     # an OSError: before the next one
        raise BatchAbort(_lost_message(client, exc)) from None
    except OSError as exc:          # shared storage: a worker cannot write the outputs
        raise BatchAbort(f"cannot write the outputs for {f}: {exc}") from None
    except CancelledError as exc:
        raise BatchAbort(_lost_message(client, exc)) from None
    except Exception as exc:        # a bug: this file is an ERROR, the batch goes on
        emit(error_record(f, f"internal error ({type(exc).__name__}: {exc})"))
        return
    if file_key(record["file"]) != file_key(f):
        emit(error_record(f, f"internal error (a Dask worker returned the record of "
                             f"{record['file']!r})"))
        return
    if out is not None and made:
        try:
            for rel, data in made.items():
                write_atomic(_output_path(out, rel), data)
        except OSError as exc:
            raise BatchAbort(f"cannot write the outputs for {f}: {exc}") from None
    emit(record)
