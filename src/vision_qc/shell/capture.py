"""Frame acquisition in its own thread, so that processing never stalls the camera.

A :class:`Grabber` reads a capture (``cv2.VideoCapture`` or anything with its ``read`` /
``release``) in a thread and hands frames over in one of two ways:

- ``live=True`` (camera, stream, a file played ``--realtime``): a one-slot buffer that always
  holds the newest frame; a frame replaced before it was taken is counted as dropped. A read
  that fails is reported, the capture is released and reopened with growing pauses, and
  reading resumes; frames are never made up meanwhile.
- ``live=False`` (a video file, a synthetic clip): a small bounded queue; the reader waits for
  room, so no frame is dropped, and the first failed read is the end.

Each frame is stamped when ``read()`` returned (``time.perf_counter()`` for latency,
``time.time()`` for the record) and carries the nozzle's arc length when the capture knows it
(its ``nozzle_mm`` attribute, read in the same thread right after ``read()``).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

__all__ = ["Frame", "Grabber", "LatestSlot", "SourceError", "open_camera", "open_stream",
           "open_video_file", "default_camera_backend", "BACKOFF_S"]

BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)   # pauses before reopening; the last one repeats
STREAM_TIMEOUT_MS = 5000                    # open and read timeouts for network streams


class SourceError(RuntimeError):
    """A camera, stream or file that cannot be opened; the message says what was tried and
    what to do."""


@dataclass(frozen=True)
class Frame:
    """One frame as read.

    index : int
        Frame number at the source, counting every frame read (dropped ones too), from 0.
    image : ndarray
        As the capture returned it.
    t_capture : float
        ``time.perf_counter()`` when ``read()`` returned.
    timestamp : float
        ``time.time()`` at the same moment (seconds since the epoch).
    nozzle_mm : float or None
        The nozzle's arc length, when ``nozzle_known``.
    nozzle_known : bool
        Whether the capture tells where the nozzle is (a dispensing clip does).
    """

    index: int
    image: np.ndarray
    t_capture: float
    timestamp: float
    nozzle_mm: float | None = None
    nozzle_known: bool = False


class LatestSlot:
    """A one-slot buffer: :meth:`put` replaces what is there, :meth:`get` takes the newest."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def get(self, timeout: float | None = None):
        """The newest item, waiting up to ``timeout`` s; None if none came."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


def _quiet_opencv():
    """Silence OpenCV's own warnings while a source is opened (we say what failed ourselves)."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        return lambda: None
    before = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)
    return lambda: log.setLogLevel(before)


def default_camera_backend() -> int:
    """The OpenCV capture API used for ``--camera`` on this platform."""
    if sys.platform.startswith("linux"):
        return cv2.CAP_V4L2
    if sys.platform == "win32":
        return cv2.CAP_MSMF
    if sys.platform == "darwin":
        return cv2.CAP_AVFOUNDATION
    return cv2.CAP_ANY


def _backend_name(api: int) -> str:
    try:
        return cv2.videoio_registry.getBackendName(api)
    except Exception:  # an unknown id: say the number
        return f"#{api}"


def _open_quietly(*args):
    """``cv2.VideoCapture(*args)`` with OpenCV's own warnings hushed (we say what failed in
    words); the opened capture, or None."""
    restore = _quiet_opencv()
    try:
        cap = cv2.VideoCapture(*args)
        opened = cap.isOpened()
    finally:
        restore()
    if opened:
        return cap
    cap.release()
    return None


def open_camera(index: int, *, backend: int | None = None):
    """Open camera ``index``; raise :class:`SourceError` saying what was tried and what to do."""
    api = default_camera_backend() if backend is None else backend
    name = _backend_name(api)
    cap = _open_quietly(index, api)
    if cap is not None:
        return cap
    tried = f"camera index {index} with OpenCV's {name} backend"
    seen = ""
    if api == cv2.CAP_V4L2:
        dev = f"/dev/video{index}"
        found = (sorted("/dev/" + d for d in os.listdir("/dev") if d.startswith("video"))
                 if os.path.isdir("/dev") else [])
        state = "exists but could not be opened" if os.path.exists(dev) else "does not exist"
        seen = f" ({dev} {state}; video devices here: {', '.join(found) if found else 'none'})"
    raise SourceError(
        f"cannot open {tried}{seen}. Check that the camera is connected, switched on and not in "
        f"use by another program; list the cameras (on Linux: ls /dev/video*, v4l2-ctl "
        f"--list-devices) and pass the right --camera INDEX, or use --source FILE_OR_URL or "
        f"--synthetic instead")


def open_stream(url: str):
    """Open a network stream (rtsp://, http://, ...) with FFmpeg and timeouts."""
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
    cap = _open_quietly(url, cv2.CAP_FFMPEG, params)
    if cap is not None:
        return cap
    raise SourceError(f"cannot open the stream {url} with OpenCV's FFMPEG backend (waited up to "
                      f"{STREAM_TIMEOUT_MS / 1000:g} s). Check the address, the network and any "
                      f"user name and password in the URL, and that the camera serves this stream")


def open_video_file(path: str):
    """Open a video file (or an image sequence pattern such as ``img_%04d.png``)."""
    cap = _open_quietly(path)
    if cap is not None:
        return cap
    raise SourceError(f"cannot read {path} as a video: OpenCV could not open or decode it (is it a "
                      f"video file, and complete? mp4, avi, mkv and mov with common codecs work)")


def _log_stderr(message: str) -> None:
    print(f"vision-qc live: {message}", file=sys.stderr, flush=True)


class Grabber:
    """Reads frames in a thread (see the module's description).

    Parameters
    ----------
    capture : object
        An opened capture: ``read() -> (ok, image)`` and ``release()``; optionally
        ``nozzle_mm``.
    reopen : callable, keyword-only
        ``reopen() -> capture`` for a live source after a failure; raises
        :class:`SourceError` (or returns a capture that is not opened) while the source is
        still gone. None: a failed read ends the source even when live.
    live : bool, keyword-only
        Newest frame only, frames dropped, failures retried; else every frame, end at the
        first failed read.
    name : str, keyword-only
        How messages name the source ("camera 0 (V4L2)").
    pace_fps : float, keyword-only
        Read at most this many frames per second (a file played like a camera).
    queue_size : int, keyword-only
        Frames held for a source that is not live.
    backoff_s : sequence of float, keyword-only
        Pauses before the reopen attempts; the last one repeats.
    log : callable, keyword-only
        ``log(message)`` for faults and recoveries; default: stderr.
    """

    def __init__(self, capture, *, reopen: Callable[[], object] | None = None, live: bool = True,
                 name: str = "source", pace_fps: float | None = None, queue_size: int = 1,
                 backoff_s=BACKOFF_S, log: Callable[[str], None] | None = None):
        self._cap = capture
        self._reopen = reopen
        self.live = bool(live)
        self.name = name
        self.pace_fps = pace_fps if pace_fps and pace_fps > 0 else None
        self.backoff_s = tuple(float(b) for b in backoff_s) or (1.0,)
        self._log = log or _log_stderr
        self._slot = LatestSlot() if self.live else None
        self._queue: queue.Queue | None = (None if self.live
                                           else queue.Queue(maxsize=max(int(queue_size), 1)))
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"grab {name}", daemon=True)
        self.frames_read = 0          # frames delivered by the capture
        self.failures = 0             # outages (a run of failed reads)
        self.reopens = 0              # successful reopens
        self.state = "running"        # running | stalled | ended
        self.stalled_since: float | None = None
        self.attempt = 0
        self.message = ""             # what the screen should say about the source, if anything
        self.error: str | None = None

    # -- the consumer's side
    def start(self) -> "Grabber":
        self._thread.start()
        return self

    def get(self, timeout: float = 0.1) -> Frame | None:
        """The next frame (live: the newest), waiting up to ``timeout`` s; None if none."""
        if self.live:
            return self._slot.get(timeout)
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:               # the end marker
            self._ended.set()
            return None
        return item

    @property
    def dropped(self) -> int:
        """Frames read but replaced before they were taken (live sources)."""
        return self._slot.dropped if self.live else 0

    @property
    def ended(self) -> bool:
        """No more frames will come (end of file, or stopped)."""
        if self.live:
            return self._ended.is_set() and self._slot._item is None
        return self._ended.is_set() and self._queue.empty()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and release the capture (from the reading thread)."""
        self._stop.set()
        if self._slot is not None:
            self._slot.wake()
        if self._queue is not None:   # make room so a blocked put sees the stop
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive() and self._cap is not None:
            self._release()

    # -- the reading thread
    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            try:
                cap.release()
            except Exception:  # a broken device may fail to close; nothing more to do
                pass

    def _deliver(self, frame: Frame) -> bool:
        if self.live:
            self._slot.put(frame)
            return True
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _finish(self) -> None:
        self.state = "ended"
        if self.live:
            self._ended.set()
            self._slot.wake()
        else:
            while not self._stop.is_set():
                try:
                    self._queue.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue
            else:
                self._ended.set()

    def _run(self) -> None:
        index = 0
        t0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                if self.pace_fps:
                    wait = t0 + index / self.pace_fps - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        break
                ok, image, t = self._read()
                if not ok:
                    if not (self.live and self._reopen is not None):
                        break
                    ok, image, t = self._recover(index)
                    if not ok:
                        break
                frame = Frame(index=index, image=image, t_capture=t, timestamp=time.time(),
                              nozzle_mm=getattr(self._cap, "nozzle_mm", None),
                              nozzle_known=hasattr(self._cap, "nozzle_mm"))
                index += 1
                self.frames_read += 1
                if not self._deliver(frame):
                    break
        finally:
            self._release()
            self._finish()

    def _read(self):
        """``(ok, image, t)``: one read, stamped when it returned; a driver error is a failed
        read."""
        try:
            ok, image = self._cap.read()
        except Exception as exc:
            ok, image = False, None
            self.error = f"{type(exc).__name__}: {exc}"
        t = time.perf_counter()
        return bool(ok) and image is not None, image, t

    def _recover(self, index: int):
        """After a failed read: report, then release and reopen with growing pauses until a
        frame comes again. Returns ``(ok, image, t)`` of that frame; ok False when stopped."""
        self.failures += 1
        since = time.perf_counter()
        self.state, self.stalled_since = "stalled", since
        why = f" ({self.error})" if self.error else ""
        self._log(f"{self.name} stopped delivering frames after frame {index - 1}{why}; "
                  f"reopening it")
        attempt = 0
        while not self._stop.is_set():
            pause = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
            attempt += 1
            self.attempt = attempt
            self.message = (f"NO SIGNAL: {self.name} stopped delivering frames; "
                            f"reopening (attempt {attempt})")
            if self._stop.wait(pause):
                break
            self._release()
            try:
                cap = self._reopen()
                opened = cap is not None and (not hasattr(cap, "isOpened") or cap.isOpened())
            except SourceError as exc:
                cap, opened = None, False
                self.error = str(exc)
            if opened:
                self._cap = cap
                ok, image, t = self._read()
                if ok:
                    self.reopens += 1
                    self.error = None
                    self.state, self.stalled_since, self.attempt = "running", None, 0
                    self.message = ""
                    self._log(f"{self.name} resumed after {t - since:.1f} s ({attempt} reopen "
                              f"attempt{'s' if attempt > 1 else ''})")
                    return True, image, t
            elif cap is not None:
                cap.release()
            if attempt in (1, 3) or attempt % 10 == 0:
                nxt = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
                self._log(f"{self.name}: reopen attempt {attempt} failed"
                          f"{' (' + self.error + ')' if self.error else ''}; next in {nxt:g} s")
        return False, None, 0.0
