"""Result records on disk: the ``results.jsonl`` log, its repair on resume, and the CSV tables.

``results.jsonl`` is the batch's source of truth (DESIGN §5): one JSON object per line,
appended and flushed to the operating system one record at a time (one ``write`` each), so a
killed run loses at most the record being written; fsync'd in groups a few ms behind, so a
power cut loses at most the last few records, which ``--resume`` inspects again. :func:`load_records` with ``repair=True`` cuts a half-written last line off,
drops lines that are not records and repeats of a file already recorded, and rewrites the file
only when it had to. The CSV tables and the report are rebuilt from it at the end of a run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RESULTS_JSONL", "RESULTS_CSV", "DEFECTS_CSV", "RESULT_COLUMNS", "DEFECT_COLUMNS",
           "JsonlWriter", "LoadedRecords", "load_records", "dumps_record", "file_key",
           "artifact_stem", "order_records", "write_results_csv", "write_defects_csv",
           "write_atomic", "fsync_paths"]

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
DEFECTS_CSV = "defects.csv"

RESULT_COLUMNS = ("file", "verdict", "error", "n_defects", "defect_types", "width_mean_mm",
                  "width_min_mm", "width_max_mm", "offset_max_mm", "coverage", "total_ms")
DEFECT_COLUMNS = ("file", "type", "start_mm", "end_mm", "length_mm", "center_x_px",
                  "center_y_px", "worst_mm", "limit_mm")


def _finite(obj):
    """The record with NaN/inf floats replaced by None: JSON has no NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps_record(record: dict) -> str:
    """One record as one line of JSON (no newline), strict JSON (no NaN), ASCII-safe."""
    return json.dumps(_finite(record), allow_nan=False)


def write_atomic(path: str | os.PathLike, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half a file.

    ``sync=False`` skips the fsync before the rename: a killed process still never leaves half
    a file (the data is in the page cache), but after a power cut the file may be empty until
    someone fsyncs it (:func:`fsync_paths`, e.g. in another process)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_paths(paths) -> None:
    """fsync each of ``paths`` that exists (by reopening it: any process can make a file that
    another wrote durable); a missing one is skipped."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class JsonlWriter:
    """Append records to a JSON-lines file, each one written whole; fsync'd in groups.

    Each record goes out as a single ``write`` of one complete line, with SIGINT held off for
    that moment, so Ctrl-C never tears a line; a kill -9 can, and :func:`load_records`
    repairs that. A written line is in the operating system's hands at once (a killed process
    loses nothing written); a background thread fsyncs the file whenever lines were written
    since its last fsync, so one fsync (~2-4 ms of waiting for the disk on the benchmark's
    VM) covers every line written while the previous one ran and the writer never waits for
    the disk. :meth:`sync` waits for that; :meth:`close` does it. An fsync error is raised
    by the next :meth:`write`, :meth:`sync` or :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._cond = threading.Condition()
        self._written = 0           # lines written
        self._synced = 0            # lines known to be on disk
        self._closing = False
        self._error: OSError | None = None
        self._syncer = threading.Thread(target=self._sync_loop, name="jsonl-fsync", daemon=True)
        self._syncer.start()

    def _sync_loop(self) -> None:
        if hasattr(signal, "pthread_sigmask"):
            # signals go to the main thread, which handles them (Ctrl-C)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while True:
            with self._cond:
                while self._synced == self._written and not self._closing:
                    self._cond.wait()
                if self._synced == self._written:       # closing, nothing left
                    return
                target = self._written
            try:
                os.fsync(self._fd)
            except OSError as exc:
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._synced = target
                self._cond.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise OSError(self._error.errno, f"cannot fsync {self.path}: "
                                             f"{self._error.strerror or self._error}")

    def write(self, record: dict) -> None:
        """Append ``record`` as one line (one ``write``); its fsync follows in the background."""
        self._raise_error()
        line = (dumps_record(record) + "\n").encode("ascii")
        masked = hasattr(signal, "pthread_sigmask")
        if masked:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            view = memoryview(line)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            with self._cond:
                self._written += 1
                self._cond.notify_all()
        finally:
            if masked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def sync(self) -> None:
        """Wait until every line written so far is on disk (fsync'd)."""
        with self._cond:
            target = self._written
            while self._synced < target and self._error is None:
                self._cond.wait()
        self._raise_error()

    def close(self) -> None:
        """fsync what is left, stop the background thread and close the file."""
        if self._fd < 0:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._syncer.join()
        try:
            self._raise_error()
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_key(file: str) -> str:
    """The identity of an input for resume: its absolute, normalised path."""
    return os.path.normcase(os.path.abspath(file))


@dataclass
class LoadedRecords:
    """What :func:`load_records` found.

    records : the valid records, first occurrence of each file, in file order.
    torn_bytes : length of the half-written last line cut off (0: none).
    bad_lines : 1-based numbers of lines that were not valid records (dropped).
    duplicates : number of repeated records of a file already recorded (dropped).
    rewritten : the file was rewritten without the bad lines and repeats.
    """

    records: list[dict] = field(default_factory=list)
    torn_bytes: int = 0
    bad_lines: list[int] = field(default_factory=list)
    duplicates: int = 0
    rewritten: bool = False

    def notes(self, path: str) -> list[str]:
        """What was repaired, in words (empty when nothing was)."""
        out = []
        if self.torn_bytes:
            out.append(f"{path}: cut off a half-written last line ({self.torn_bytes} bytes) left "
                       f"by an interrupted run; that input is inspected again")
        if self.bad_lines:
            shown = ", ".join(map(str, self.bad_lines[:10]))
            out.append(f"{path}: dropped {len(self.bad_lines)} line(s) that are not valid records "
                       f"(line {shown})")
        if self.duplicates:
            out.append(f"{path}: dropped {self.duplicates} repeated record(s) of files already "
                       f"recorded")
        return out


def _valid_record(obj) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("file"), str)
            and obj.get("verdict") in ("OK", "NG", "ERROR"))


def load_records(path: str | os.PathLike, *, repair: bool = False) -> LoadedRecords:
    """Read a ``results.jsonl``; optionally repair it in place.

    Parameters
    ----------
    path : str or os.PathLike
        A missing file reads as no records.
    repair : bool, keyword-only
        Truncate a half-written last line; rewrite the file (atomically) without invalid lines
        and repeated files when there are any. Without it the file is left untouched and
        the same problems are only skipped.
    """
    path = os.fspath(path)
    out = LoadedRecords()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return out
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        out.torn_bytes = len(data) - cut
        data = data[:cut]
        if repair:
            with open(path, "r+b") as f:
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())
    seen: set[str] = set()
    keep_lines: list[bytes] = []
    for i, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            rec = None
        if not _valid_record(rec):
            out.bad_lines.append(i)
            continue
        key = file_key(rec["file"])
        if key in seen:
            out.duplicates += 1
            continue
        seen.add(key)
        out.records.append(rec)
        keep_lines.append(raw)
    if repair and (out.bad_lines or out.duplicates):
        write_atomic(path, b"".join(line + b"\n" for line in keep_lines))
        out.rewritten = True
    return out


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def artifact_stem(file: str) -> str:
    """A file-system-safe, collision-free name stem for the outputs of one input.

    The input's own stem (readable) plus 8 hex digits of a hash of its path as recorded
    (unique: ``a/1.png`` and ``b/1.png`` differ), e.g. ``ws_001_3fa2b1c9``.
    """
    stem = _UNSAFE.sub("_", Path(file).stem).strip("._")[:60] or "image"
    digest = hashlib.sha1(file.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{stem}_{digest}"


def order_records(records: list[dict], order: list[str] | None = None) -> list[dict]:
    """Records in a stable order: that of ``order`` (input paths), then the rest by file.

    ``order`` is the run's input list (sorted per folder or glob, in command-line order);
    records of files not in it (earlier runs into the same folder) follow, sorted by path.
    """
    rank = {file_key(f): i for i, f in enumerate(order or [])}
    big = len(rank)
    return sorted(records, key=lambda r: (rank.get(file_key(r["file"]), big), r["file"]))


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return str(v)


def _csv_bytes(header, rows) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8", "backslashreplace")


def write_results_csv(records: list[dict], path: str | os.PathLike) -> None:
    """One row per image (:data:`RESULT_COLUMNS`); ``defect_types`` lists the types found,
    ``;``-separated, each once, in order along the path."""
    rows = []
    for r in records:
        stats = r.get("stats") or {}
        defects = r.get("defects") or []
        types = list(dict.fromkeys(d.get("type", "") for d in defects))
        rows.append([_cell(r.get("file")), _cell(r.get("verdict")), _cell(r.get("error")),
                     str(len(defects)), ";".join(types),
                     *(_cell(stats.get(k)) for k in ("width_mean_mm", "width_min_mm",
                                                     "width_max_mm", "offset_max_mm", "coverage")),
                     _cell((r.get("timing_ms") or {}).get("total"))])
    write_atomic(path, _csv_bytes(RESULT_COLUMNS, rows))


def write_defects_csv(records: list[dict], path: str | os.PathLike) -> None:
    """One row per defect (:data:`DEFECT_COLUMNS`): the file, then the defect's fields
    (``center_px`` split into x and y)."""
    rows = []
    for r in records:
        for d in r.get("defects") or []:
            c = d.get("center_px") or [None, None]
            rows.append([_cell(r.get("file")), _cell(d.get("type")),
                         *(_cell(d.get(k)) for k in ("start_mm", "end_mm", "length_mm")),
                         _cell(c[0]), _cell(c[1]),
                         _cell(d.get("worst_mm")), _cell(d.get("limit_mm"))])
    write_atomic(path, _csv_bytes(DEFECT_COLUMNS, rows))
