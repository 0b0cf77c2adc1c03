"""The batch runner: expand inputs, inspect each file in a pool of worker processes, hand each
record back to the caller as it finishes.

Each worker builds the :class:`~vision_qc.inspector.Inspector` once (pool initializer) and
then, per file: read (:func:`~vision_qc.shell.imageio.read_image`), inspect, and write that
file's own outputs (overlay, report thumbnail, width profile of an NG part) under the output
folder, each through a temporary file and a rename. Only the parent writes ``results.jsonl``
(one writer, one record at a time); before it passes a record on, it fsyncs that file's
outputs, so the workers never wait for the disk and a record on disk never points at outputs
that a power cut could still lose. Those fsyncs run in a few threads of the parent, several
files' at once (the file system commits them together), so that the parent does not wait
for the disk either: one after the other they took 8-16 ms per NG part on the benchmark's VM,
longer than two workers take to make a 1280x1024 part.

A bad file costs one ``ERROR`` record: unreadable or unusable input, and a worker process
that dies on a file (a decoder crash, the out-of-memory killer) — the files that were in
flight are then retried one at a time so that only the one that kills a worker is blamed.
"""

from __future__ import annotations

import glob
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import (FIRST_COMPLETED, Future, ProcessPoolExecutor,
                                ThreadPoolExecutor, wait)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Iterable

import cv2
import numpy as np

from ..results import error_record
from .imageio import IMAGE_EXTENSIONS, read_image
from .records import artifact_stem, file_key, fsync_paths, write_atomic

__all__ = ["expand_inputs", "inspect_file", "run_batch", "decode_file", "BatchAbort", "Progress",
           "OVERLAY_DIR", "DATA_DIR", "OVERLAY_MODES", "THUMB_WIDTH", "PROFILE_BINS",
           "OVERLAY_MAX_WIDTH", "output_paths", "pool_context", "start_workers_early"]

OVERLAY_DIR = "overlays"
DATA_DIR = "report_data"          # per-file thumbnails and NG width profiles for the report
OVERLAY_MODES = ("ng", "all", "none")
THUMB_WIDTH = 200                 # px, report thumbnails
PROFILE_BINS = 1200               # width profile of an NG part, kept as a min/max envelope
# JPEG, not PNG: a 1280x1024 overlay encodes in ~3 ms as JPEG, ~30 ms as PNG. Quality 80 would
# save only ~0.4 ms (most of the encoding does not depend on it) and greys a 1 px coloured mark
# on a reduced overlay beyond recognition of its defect type's colour (test_batch).
OVERLAY_JPEG_QUALITY = 90
# Overlays wider than this are drawn on the frame reduced by a whole factor (2448 px -> 1224,
# 2048 -> 1024; 1600 px and narrower stay as they are): a 5 MP overlay costs ~35 ms to draw and
# encode at full size, ~6 ms at half. ``vision-qc inspect --full-size-overlays`` keeps them whole.
OVERLAY_MAX_WIDTH = 1600


class BatchAbort(RuntimeError):
    """The run cannot go on (outputs cannot be written, workers cannot start)."""


# ----------------------------------------------------------------------------------------
# Inputs


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _scan_folder(folder: str, recursive: bool, skip: set[str]) -> list[str]:
    found: list[str] = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and os.path.realpath(os.path.join(root, d)) not in skip]
            found.extend(os.path.join(root, f) for f in files
                         if not f.startswith(".")
                         and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    else:
        with os.scandir(folder) as it:
            found.extend(os.path.join(folder, e.name) for e in it
                         if not e.name.startswith(".") and e.is_file()
                         and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def expand_inputs(inputs: Iterable[str], *, recursive: bool = False,
                  exclude: str | os.PathLike | None = None
                  ) -> tuple[list[str], list[str], list[str]]:
    """Turn command-line inputs into the list of files to inspect.

    Parameters
    ----------
    inputs : iterable of str
        Files (taken whatever their suffix), folders (their image files, by suffix:
        :data:`~vision_qc.shell.imageio.IMAGE_EXTENSIONS`; hidden files skipped) and glob
        patterns (``**`` matches across folders; matched folders are scanned like folders).
    recursive : bool, keyword-only
        Scan folders' subfolders too.
    exclude : path, keyword-only
        A folder whose files are never inputs (the output folder).

    Returns
    -------
    files : list of str
        Paths as given or found (``folder/name.png``), each folder's and each pattern's in
        sorted order, inputs in command-line order, each file once.
    missing : list of str
        Messages for inputs that name nothing (no such file or folder, pattern matching nothing).
    notes : list of str
        Warnings (a folder with no image files).
    """
    skip = {os.path.realpath(exclude)} if exclude is not None else set()
    files: list[str] = []
    missing: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()

    def inside_skip(path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == s or real.startswith(s + os.sep) for s in skip)

    def add(path: str, *, check: bool = True) -> None:
        key = file_key(path)
        if key in seen or (check and inside_skip(path)):
            return
        seen.add(key)
        files.append(path)

    def add_folder(folder: str) -> None:
        if inside_skip(folder):
            return
        # files found in a folder outside the skipped one are outside it (the recursive
        # scan prunes the skipped folder itself)
        found = _scan_folder(folder, recursive, skip)
        if not found:
            where = "or its subfolders " if recursive else ""
            hint = "" if recursive else " (use --recursive to look in subfolders)"
            notes.append(f"no image files in folder {folder} {where}"
                         f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))}){hint}")
        for f in found:
            add(f, check=False)

    for item in inputs:
        if os.path.isdir(item):
            add_folder(item)
        elif os.path.lexists(item):
            add(item)
        elif _has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                missing.append(f"no files match {item}")
            for m in matches:
                if os.path.isdir(m):
                    add_folder(m)
                else:
                    add(m)
        else:
            missing.append(f"no such file or folder: {item}")
    return files, missing, notes


# ----------------------------------------------------------------------------------------
# One file


def _encode(ext: str, image: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {ext}")
    return buf.tobytes()


def _thumbnail(image: np.ndarray, to_gray=None) -> bytes:
    """The report's JPEG thumbnail of ``image``; with ``to_gray``, of ``to_gray(image)`` (a
    camera frame's grey, as the OK parts' thumbnails show it)."""
    if to_gray is not None and image.dtype != np.uint8:
        # uint16: its 8 bits are shifted by the whole frame's maximum, so convert it whole
        image, to_gray = to_gray(image), None
    h, w = image.shape[:2]
    tw = min(THUMB_WIDTH, w)
    th = max(int(round(h * tw / w)), 1)
    if w >= 4 * tw:
        # every ~(w / 2tw)-th pixel (nearest), then area averaging by 2: 4 pixels averaged per
        # thumbnail pixel, ~0.15 ms instead of ~1-4 ms for averaging all of them; at 200 px it
        # looks the same (the overlay's 2-3 px lines included)
        image = cv2.resize(image, (2 * tw, 2 * th), interpolation=cv2.INTER_NEAREST)
    if to_gray is not None:
        # a uint8 colour frame's grey is per pixel: that of the picked pixels is the same bytes
        # as picking from the whole frame's grey, without converting 5 MP (BGR 2448x2048: an OK
        # part's thumbnail 1.38 -> 0.27 ms of CPU)
        image = to_gray(image)
    small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    return _encode(".jpg", small, (cv2.IMWRITE_JPEG_QUALITY, 80))


def _profile(res) -> bytes:
    """The width along the path as a min/max envelope over :data:`PROFILE_BINS` bins, so a
    short thin spot still shows at report size; NaN where no bead."""
    import io

    n = len(res.width_mm)
    bins = min(PROFILE_BINS, n)
    starts = (np.arange(bins) * n) // bins
    width = np.asarray(res.width_mm, np.float64)
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduceat(width, starts)
        hi = np.fmax.reduceat(width, starts)
    bad = np.maximum.reduceat(np.asarray(res.status) != 0, starts)
    arc_all = np.asarray(res.arc_mm, np.float64)
    arc = arc_all[starts]
    # the path's length: the last station plus one station spacing
    length = float(arc_all[-1] + (arc_all[-1] - arc_all[-2])) if n > 1 else float(arc_all[-1])
    buf = io.BytesIO()
    # uncompressed: ~17 kB instead of ~14 kB, without ~0.3 ms of zlib per NG part
    np.savez(buf, arc_mm=arc.astype(np.float32), lo_mm=lo.astype(np.float32),
             hi_mm=hi.astype(np.float32), bad=bad.astype(bool), length_mm=np.float64(length))
    return buf.getvalue()


def inspect_file(inspector, file: str, *, out_dir: str | os.PathLike | None = None,
                 overlays: str = "ng", draw=None, read=None, write=None,
                 overlay_width: int | None = OVERLAY_MAX_WIDTH, sync_outputs: bool = True) -> dict:
    """Read, inspect and record one file; never raises for a bad file.

    Parameters
    ----------
    inspector : Inspector
    file : str
        The path, recorded as given.
    out_dir : path, keyword-only
        Where this file's overlay (``overlays/``), thumbnail and NG width profile
        (``report_data/``) go; None writes nothing.
    overlays : {"ng", "all", "none"}, keyword-only
        Which parts get an annotated image in ``overlays/``.
    draw : callable, keyword-only
        ``draw(frame, result, recipe) -> BGR``; default :func:`vision_qc.overlay.draw_overlay`
        with ``max_width=overlay_width``.
    read : callable, keyword-only
        ``read(file) -> (frame, message)`` in place of :func:`read_image` (a Dask worker reads
        the file at its absolute path, or from bytes the client sent).
    write : callable, keyword-only
        ``write(relpath, data)`` receives this file's outputs (``overlays/<stem>.jpg``, ...)
        instead of their being written under ``out_dir``; used even when ``out_dir`` is None.
    overlay_width : int or None, keyword-only
        Overlays of wider frames are drawn reduced by a whole factor to fit
        (:data:`OVERLAY_MAX_WIDTH`); None: at the frame's full size.
    sync_outputs : bool, keyword-only
        fsync each output file under ``out_dir`` before its rename; False leaves that to the
        caller (:func:`output_paths`, :func:`~vision_qc.shell.records.fsync_paths`).

    Returns
    -------
    dict
        The result record (DESIGN §5); ``timing_ms`` gains ``read`` (reading and decoding),
        and ``warnings`` lists outputs that could not be drawn (rare; the verdict stands).
        Unusable input gives an ``ERROR`` record that says why.
    """
    from ..inspector import FrameError, to_gray

    t0 = time.perf_counter()
    frame, message = (read or read_image)(file)
    read_ms = (time.perf_counter() - t0) * 1e3
    if frame is None:
        return error_record(file, message)
    try:
        res = inspector.inspect(frame)
    except FrameError as exc:
        return error_record(file, f"cannot inspect this image: {exc}")
    except MemoryError:
        return error_record(file, "not enough memory to inspect this image")
    except Exception as exc:  # a bug must not stop the batch; the record says what happened
        return error_record(file, f"inspection failed ({type(exc).__name__}: {exc})")
    record = res.to_record(file=file)
    record["timing_ms"]["read"] = round(read_ms, 3)

    if out_dir is not None or write is not None:
        try:
            _write_outputs(res, frame, file, inspector.recipe, out_dir=out_dir, overlays=overlays,
                           draw=draw, to_gray=to_gray, write=write, overlay_width=overlay_width,
                           sync=sync_outputs)
        except OSError:
            raise                       # the output folder is unusable: the run stops
        except Exception as exc:        # a drawing bug must not cost the verdict
            record["warnings"] = [f"overlay or thumbnail not written ({type(exc).__name__}: {exc})"]
    return record


def _write_outputs(res, frame, file, recipe, *, out_dir, overlays, draw, to_gray,
                   write=None, overlay_width=OVERLAY_MAX_WIDTH, sync=True) -> None:
    if write is None:
        def write(rel: str, data: bytes) -> None:
            write_atomic(os.path.join(out_dir, rel), data, sync=sync)
    stem = artifact_stem(file)
    ng = res.verdict != "OK"
    overlay = None
    if ng or overlays == "all":
        if draw is None:
            from ..overlay import draw_overlay

            overlay = draw_overlay(frame, res, recipe, max_width=overlay_width)
        else:
            overlay = draw(frame, res, recipe)
    if overlay is not None and (overlays == "all" or (ng and overlays == "ng")):
        write(f"{OVERLAY_DIR}/{stem}.jpg",
              _encode(".jpg", overlay, (cv2.IMWRITE_JPEG_QUALITY, OVERLAY_JPEG_QUALITY)))
    write(f"{DATA_DIR}/{stem}.jpg", _thumbnail(overlay) if overlay is not None
          else _thumbnail(frame, to_gray))
    if ng:
        write(f"{DATA_DIR}/{stem}.npz", _profile(res))


def output_paths(out_dir: str | os.PathLike, file: str) -> list[str]:
    """Where :func:`inspect_file` may have written ``file``'s outputs under ``out_dir``."""
    stem = artifact_stem(file)
    return [os.path.join(out_dir, OVERLAY_DIR, f"{stem}.jpg"),
            os.path.join(out_dir, DATA_DIR, f"{stem}.jpg"),
            os.path.join(out_dir, DATA_DIR, f"{stem}.npz")]


# ----------------------------------------------------------------------------------------
# Worker processes

_WORKER: dict = {}


def _watch_parent(alive) -> None:
    # A worker whose batch process was killed (kill -9) must not live on, holding a core and
    # its forkserver. Only the batch process holds the pipe's write end: EOF means it is gone.
    try:
        alive.recv()
    except (EOFError, OSError):
        pass
    os._exit(3)


# A worker's C heap (glibc malloc): blocks below _MMAP_MIN_BYTES come from the heap, and up to
# _HEAP_KEEP_BYTES of freed heap stay mapped. With glibc's defaults a worker gave the memory of
# each 5 MP frame's decoding and inspection back to the system and faulted it in again for the
# next one: ~2,500 page faults and ~5.5 ms of CPU per 2448x2048 image (read + inspect 39 -> 33.6
# ms per image in a pool of 2). Larger blocks (a 100 MP image) are still mapped and unmapped.
_MMAP_MIN_BYTES = 64 << 20
_HEAP_KEEP_BYTES = 128 << 20


def _keep_heap() -> bool:
    """Set the worker's malloc thresholds (above); False where the C library is not glibc's."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3         # glibc's <malloc.h>
    # musl has mallopt too, as a no-op that returns 0
    return bool(mallopt(m_mmap_threshold, _MMAP_MIN_BYTES)
                and mallopt(m_trim_threshold, _HEAP_KEEP_BYTES))


def _init_worker(recipe, out_dir, overlays, alive=None,
                 overlay_width: int | None = OVERLAY_MAX_WIDTH) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent handles Ctrl-C for everyone
    cv2.setNumThreads(1)                             # one core per worker; no oversubscription
    _keep_heap()
    if alive is not None:
        threading.Thread(target=_watch_parent, args=(alive,), daemon=True).start()
    try:
        from ..inspector import Inspector

        _WORKER.update(inspector=Inspector(recipe), out_dir=out_dir, overlays=overlays,
                       overlay_width=overlay_width, error=None)
    except Exception as exc:  # reported by the first task, in the parent
        _WORKER["error"] = f"{type(exc).__name__}: {exc}"


class _WorkerInitError(RuntimeError):
    pass


def _work(file: str) -> dict:
    if _WORKER.get("error") or "inspector" not in _WORKER:
        raise _WorkerInitError(f"a worker could not build the inspector: {_WORKER.get('error')}")
    # the parent fsyncs this file's outputs before it records it (run_batch)
    return inspect_file(_WORKER["inspector"], file, out_dir=_WORKER["out_dir"],
                        overlays=_WORKER["overlays"], overlay_width=_WORKER["overlay_width"],
                        sync_outputs=False)


def decode_file(file: str) -> dict:
    """Only read and decode ``file`` (``cv2.imread``, as stored): the floor that batch
    throughput is measured against. Returns a minimal record (verdict OK, or ERROR)."""
    t0 = time.perf_counter()
    frame = cv2.imread(file, cv2.IMREAD_UNCHANGED)
    if frame is None:
        return error_record(file, "cannot read or decode the file")
    return {"file": file, "verdict": "OK", "error": None, "defects": [], "stats": {},
            "timing_ms": {"read": round((time.perf_counter() - t0) * 1e3, 3)}}


def pool_context():
    """The multiprocessing context for workers: forkserver (workers forked from a clean
    process that has imported vision_qc once and inspected one small part, so that each worker
    starts with the compiled kernels loaded: :mod:`vision_qc.shell.batch_warmup`), or spawn
    where there is no forkserver. Never plain fork: the parent may run threads (the progress
    bar)."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["vision_qc.shell.batch", "vision_qc.inspector",
                                    "vision_qc.overlay", "vision_qc.shell.batch_warmup"])
        return ctx
    return mp.get_context("spawn")


def start_workers_early() -> bool:
    """Start the workers' forkserver now, in the background, so that it imports vision_qc and
    warms the kernels (~1 s of one core) while this process does the rest of its start-up
    (inputs, resume, run.json); :func:`run_batch` then finds it running. The forkserver
    prepares only itself: no image is read and no worker started.

    Returns
    -------
    bool
        True when a forkserver is starting or running; False where there is none (spawn) or
        it could not be started (:func:`run_batch` then tries again and reports a failure).
    """
    ctx = pool_context()
    if ctx.get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    try:
        forkserver.ensure_running()
    except (OSError, ValueError):
        return False
    return True


def _terminate(executor: ProcessPoolExecutor) -> None:
    terminate = getattr(executor, "terminate_workers", None)    # Python >= 3.14
    if terminate is not None:
        terminate()
    else:
        for p in list((getattr(executor, "_processes", None) or {}).values()):
            if p.is_alive():
                p.terminate()
    executor.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------------
# Progress


class Progress:
    """Progress on stderr: a tqdm bar on a terminal, a line every few seconds otherwise,
    nothing when quiet. Counts OK/NG/ERROR as records arrive.

    Parameters
    ----------
    total : int
        All inputs, including those recorded by an earlier run (``done``).
    counts : dict
        OK/NG/ERROR counts of the records already there.
    mode : {"auto", "bar", "lines", "none"}
        ``auto``: a bar when stderr is a terminal, lines when not.
    """

    def __init__(self, total: int, *, done: int = 0, counts: dict | None = None,
                 mode: str = "auto", stream=None, every_s: float = 5.0):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.total, self.n, self.start_n = total, done, done
        self.counts = {"OK": 0, "NG": 0, "ERROR": 0, **(counts or {})}
        self.every_s = every_s
        self.t0 = self.t_last = time.monotonic()
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, file=self.stream, unit="img",
                             dynamic_ncols=True, smoothing=0.1, desc="inspect")
            self._bar.set_postfix_str(self._counts_text(), refresh=True)

    def _counts_text(self) -> str:
        return "  ".join(f"{k} {v}" for k, v in self.counts.items())

    def line(self, text: str) -> None:
        """A message that does not break the bar."""
        if self.mode == "none":
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def update(self, verdict: str) -> None:
        self.n += 1
        self.counts[verdict] = self.counts.get(verdict, 0) + 1
        if self._bar is not None:
            self._bar.set_postfix_str(self._counts_text(), refresh=False)
            self._bar.update(1)
        elif self.mode == "lines":
            now = time.monotonic()
            if now - self.t_last >= self.every_s or self.n == self.total:
                self.t_last = now
                print(self.status_line(now), file=self.stream, flush=True)

    def status_line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        dt = max(now - self.t0, 1e-9)
        rate = (self.n - self.start_n) / dt
        left = self.total - self.n
        eta = time.strftime("%H:%M:%S", time.gmtime(left / rate)) if rate > 0 else "?"
        pct = 100.0 * self.n / self.total if self.total else 100.0
        return (f"inspect: {self.n}/{self.total} ({pct:.0f}%)  {rate:.1f} img/s  ETA {eta}  "
                f"{self._counts_text()}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ----------------------------------------------------------------------------------------
# The run


# fsyncs in flight at once: enough for the file system to commit several files' outputs
# together, few enough not to matter beside the workers
FSYNC_THREADS = 4


class _Durable:
    """Passes each record on once the outputs it stands for are on disk, without making the
    calling thread wait for the disk: the outputs' fsyncs run in :data:`FSYNC_THREADS` threads
    (fsync releases the GIL), and :meth:`collect` hands on the records whose fsyncs are done.
    ``ERROR`` records and runs without an output folder are passed on at once."""

    def __init__(self, out_dir, emit: Callable[[dict], None]):
        self.out_dir, self.emit = out_dir, emit
        self.pending: dict[Future, dict] = {}
        self._threads = (None if out_dir is None else
                         ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="vision-qc-fsync"))

    def add(self, rec: dict) -> None:
        if self._threads is None or rec.get("verdict") == "ERROR":
            self.emit(rec)
            return
        paths = output_paths(self.out_dir, rec["file"])
        self.pending[self._threads.submit(fsync_paths, paths)] = rec

    def collect(self, done: Iterable | None = None, *, keep_going: bool = False) -> None:
        """Pass on the records whose outputs' fsyncs have finished (of ``done``, or all that
        have); an fsync's OSError is raised here as a :class:`BatchAbort` that names the file,
        or with ``keep_going`` its record is dropped (the run is being stopped already;
        ``--resume`` inspects that file again)."""
        ready = [f for f in (self.pending if done is None else done)
                 if f in self.pending and f.done()]
        for fut in ready:
            rec = self.pending.pop(fut)
            exc = fut.exception()
            if exc is None:
                self.emit(rec)
            elif not keep_going:
                # the output folder went away or the disk failed after the worker wrote the
                # file: the run stops as when the worker's own write fails, and --resume
                # inspects that file again
                if isinstance(exc, OSError):
                    raise BatchAbort(f"cannot write the outputs for {rec['file']}: {exc}")
                raise exc

    def finish(self, *, keep_going: bool = False) -> None:
        """Wait for every fsync in flight and pass its record on (``keep_going``: see
        :meth:`collect`)."""
        while self.pending:
            done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
            self.collect(done, keep_going=keep_going)

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)


@dataclass
class BatchStats:
    """What one run did: records produced, seconds, interrupted or not."""

    done: int = 0
    elapsed_s: float = 0.0
    counts: dict = field(default_factory=lambda: {"OK": 0, "NG": 0, "ERROR": 0})
    crashed: list[str] = field(default_factory=list)


def run_batch(files: list[str], recipe, *, out_dir: str | os.PathLike | None,
              on_record: Callable[[dict], None], workers: int = 1, overlays: str = "ng",
              inspector=None, max_inflight: int | None = None,
              task: Callable[[str], dict] | None = None,
              overlay_width: int | None = OVERLAY_MAX_WIDTH) -> BatchStats:
    """Inspect ``files`` and pass each record to ``on_record`` as soon as it is ready.

    Parameters
    ----------
    files : list of str
    recipe : Recipe
    out_dir : path or None, keyword-only
        Output folder for per-file outputs (``overlays/``, ``report_data/``; created here).
    on_record : callable, keyword-only
        Called in this process, in completion order, once per file.
    workers : int, keyword-only
        1: in this process, no pool. More: a process pool, each worker building its own
        inspector once.
    overlays : {"ng", "all", "none"}, keyword-only
    inspector : Inspector, keyword-only
        Used (and not rebuilt) when ``workers == 1``.
    max_inflight : int, keyword-only
        Files handed to the pool at a time (default ``4 * workers``): bounds memory and lets
        a worker crash be pinned on few files, while keeping each worker a few files ahead
        of this process (which fsyncs the outputs and writes the records).
    task : callable, keyword-only
        ``task(file) -> record`` run per file instead of reading and inspecting it (in the
        workers, after their initializer); must be a module-level function so it pickles.
        :func:`decode_file` gives the decode-only floor of the batch benchmark.
    overlay_width : int or None, keyword-only
        Overlays of frames wider than this are drawn reduced by a whole factor
        (:data:`OVERLAY_MAX_WIDTH`); None: at full size.

    Raises
    ------
    KeyboardInterrupt
        After terminating the workers; every record passed to ``on_record`` before stays.
    BatchAbort
        Outputs cannot be written or workers cannot start.
    """
    if overlays not in OVERLAY_MODES:
        raise ValueError(f"overlays must be one of {OVERLAY_MODES}; got {overlays!r}")
    if out_dir is not None:
        os.makedirs(os.path.join(out_dir, OVERLAY_DIR), exist_ok=True)
        os.makedirs(os.path.join(out_dir, DATA_DIR), exist_ok=True)
    stats = BatchStats()
    t0 = time.perf_counter()

    def emit(rec: dict) -> None:
        on_record(rec)
        stats.done += 1
        stats.counts[rec["verdict"]] = stats.counts.get(rec["verdict"], 0) + 1

    # the workers wrote each file's outputs without waiting for the disk: they are made durable
    # before the record that stands for them is passed on
    durable = _Durable(out_dir, emit)
    try:
        if workers <= 1 or len(files) <= 1:
            if inspector is None and task is None:
                from ..inspector import Inspector

                inspector = Inspector(recipe)
            for f in files:
                try:
                    rec = (task(f) if task is not None else
                           inspect_file(inspector, f, out_dir=out_dir, overlays=overlays,
                                        overlay_width=overlay_width, sync_outputs=False))
                except OSError as exc:
                    raise BatchAbort(f"cannot write the outputs for {f}: {exc}") from None
                except Exception as exc:    # a bug: this file is an ERROR, the batch goes on
                    rec = error_record(f, f"internal error ({type(exc).__name__}: {exc})")
                durable.add(rec)
                durable.collect()
        else:
            _run_pool(files, recipe, out_dir=out_dir, overlays=overlays, workers=workers,
                      max_inflight=max_inflight or 4 * workers, durable=durable, stats=stats,
                      task=task or _work, overlay_width=overlay_width)
        durable.finish()
    except KeyboardInterrupt:
        durable.finish()        # files already inspected keep their records (Ctrl-C is clean)
        raise
    except BatchAbort:
        # the outputs of one file could not be written (disk full, the folder gone): the files
        # finished before it keep their records, those whose outputs are on disk
        durable.finish(keep_going=True)
        raise
    finally:
        durable.close()
        stats.elapsed_s = time.perf_counter() - t0
    return stats


def _run_pool(files, recipe, *, out_dir, overlays, workers, max_inflight, durable, stats,
              task, overlay_width) -> None:
    ctx = pool_context()
    alive_r, alive_w = ctx.Pipe(duplex=False)
    try:
        _pool_loop(files, recipe, ctx=ctx, alive=alive_r, out_dir=out_dir, overlays=overlays,
                   workers=workers, max_inflight=max_inflight, durable=durable, stats=stats,
                   task=task,
                   overlay_width=overlay_width)
    finally:
        alive_w.close()
        alive_r.close()


def _pool_loop(files, recipe, *, ctx, alive, out_dir, overlays, workers, max_inflight, durable,
               stats, task, overlay_width) -> None:
    pending = deque(files)
    suspects: deque[str] = deque()     # in flight when a worker died: retried one at a time
    workers = min(workers, len(files))
    initargs = (recipe, None if out_dir is None else os.fspath(out_dir), overlays, alive,
                overlay_width)
    while pending or suspects:
        executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                       initargs=initargs)
        inflight: dict = {}
        broken: list[tuple[str, bool]] = []
        try:
            while pending or suspects or inflight:
                isolating = bool(suspects) or any(v[1] for v in inflight.values())
                limit = 1 if isolating else max_inflight
                while len(inflight) < limit and (suspects or (pending and not isolating)):
                    if suspects:
                        f, suspect = suspects.popleft(), True
                    else:
                        f, suspect = pending.popleft(), False
                    inflight[executor.submit(task, f)] = (f, suspect)
                    if suspect:
                        break
                # the outputs' fsyncs finish meanwhile: their records go on as they do
                done, _ = wait([*inflight, *durable.pending], return_when=FIRST_COMPLETED)
                durable.collect(done)
                abort = None
                for fut in done:
                    if fut not in inflight:
                        continue
                    f, suspect = inflight.pop(fut)
                    try:
                        rec = fut.result()
                    except BrokenProcessPool:
                        broken.append((f, suspect))
                        continue
                    except _WorkerInitError as exc:
                        abort = abort or BatchAbort(str(exc))
                        continue
                    except OSError as exc:
                        abort = abort or BatchAbort(f"cannot write the outputs for {f}: {exc}")
                        continue
                    except Exception as exc:    # a bug: this file is an ERROR, the batch goes on
                        rec = error_record(f, f"internal error ({type(exc).__name__}: {exc})")
                    durable.add(rec)
                if abort is not None:
                    # after the other files finished at the same moment are passed on
                    raise abort
                if broken:
                    # the pool is dead: every future still in flight fails the same way
                    for fut, (f, suspect) in list(inflight.items()):
                        broken.append((f, suspect))
                    inflight.clear()
                    break
        except BaseException:
            _terminate(executor)
            raise
        executor.shutdown(wait=True, cancel_futures=True)
        if broken:
            if len(broken) == 1 and broken[0][1]:
                f = broken[0][0]
                stats.crashed.append(f)
                durable.add(error_record(f, "the worker process died while reading or "
                                            "inspecting this file (a decoder crash or out of "
                                            "memory); the file is probably corrupt or far too "
                                            "large"))
            else:
                # not known which one did it: retry each alone, the suspect first
                for f, _ in sorted(broken, key=lambda b: not b[1]):
                    suspects.append(f)
