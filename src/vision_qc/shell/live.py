"""`vision-qc live`: live inspection of a camera, a stream, a video file or a synthetic
dispensing clip, with the verdict drawn on the picture.

Frames are read in their own thread (:mod:`vision_qc.shell.capture`); this module's loop takes
each frame, judges the part of the bead already laid (:class:`vision_qc.live.LiveInspector`),
writes the records and images asked for and shows the picture. Window keys: ``q`` (or Esc)
quit, space pause, ``s`` save a snapshot, ``t`` teach a recipe from the frame on screen (saved
beside the snapshots; the running recipe is kept).

Outputs with ``--out DIR``: ``frames.jsonl`` (one result record per processed frame, DESIGN §5
plus ``frame``, ``timestamp``, ``latency_ms``, ``dispensed_mm``, ``judged_mm``, ``nozzle``,
``part``), ``parts.jsonl`` (each part's verdict when its cycle ends), ``ng/frame_NNNNNN.png``
(the overlay of an NG frame whenever the verdict or the set of defects changes) and the
snapshots. ``--record`` writes the annotated video. Part verdicts go to stdout, faults to stderr.

Exit status: 0 when every part was OK (or none was seen), 1 when a part was NG, 2 for a usage
error, a bad recipe or a source that cannot be opened.
"""

from __future__ import annotations

import math
import os
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from ..cli import UsageError
from ..inspector import FrameError, Inspector
from ..live import LatencyStats, LiveInspector, RateMeter, defects_changed
from ..overlay import draw_overlay
from ..recipe import Recipe, RecipeError, load_recipe
from ..results import error_record
from .capture import (Grabber, SourceError, default_camera_backend, open_camera, open_stream,
                      open_video_file)
from .records import dumps_record

__all__ = ["add_arguments", "run", "run_loop", "LiveSource", "LiveOptions", "synthetic_clip",
           "status_line", "WINDOW_TITLE"]

WINDOW_TITLE = "vision-qc live"
FRAMES_JSONL = "frames.jsonl"
PARTS_JSONL = "parts.jsonl"
NG_DIR = "ng"
DEFAULT_SPEED_MM_S = 400.0
DEFAULT_FPS = 30.0
DISPLAY_MAX_WH = (1600, 1000)     # the window shows frames scaled down to fit this
MESSAGE_S = 4.0                   # how long a key's message stays on the status line


# ----------------------------------------------------------------------------------------
# Arguments


def add_arguments(parser) -> None:
    parser.epilog = ("Window keys: q quit, space pause, s snapshot (to --out or the current "
                     "folder), t teach a recipe from the frame (saved there too). Exit status: 0 all parts OK, 1 a part "
                     "NG, 2 usage error or a source that cannot be opened.")
    src = parser.add_argument_group("source (exactly one)")
    src.add_argument("--camera", type=int, metavar="INDEX",
                     help="camera index (0 is the first camera)")
    src.add_argument("--source", metavar="FILE_OR_URL",
                     help="a video file (read frame by frame, none dropped) or a stream URL "
                          "(rtsp://, http://; newest frame, reopened when it stops)")
    src.add_argument("--synthetic", action="store_true",
                     help="a synthetic dispensing clip: the same part as `vision-qc generate OUT "
                          "--seed S --size WxH --preset P --video CLIP.mp4` would write")
    syn = parser.add_argument_group("synthetic clip (with --synthetic)")
    syn.add_argument("--speed-mm-s", type=float, default=None, metavar="V",
                     help=f"dispensing speed, mm/s (default {DEFAULT_SPEED_MM_S:g})")
    syn.add_argument("--fps", type=float, default=None, metavar="F",
                     help=f"frame rate, frames/s (default {DEFAULT_FPS:g})")
    syn.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (default 0)")
    syn.add_argument("--preset", default=None, choices=("clean", "normal", "hard"),
                     help="difficulty (default normal)")
    syn.add_argument("--size", default=None, metavar="WxH", help="frame size (default 2048x1536)")
    parser.add_argument("--recipe", metavar="R",
                        help="recipe file (required, except with --synthetic: the clip's own)")
    parser.add_argument("--no-window", action="store_true",
                        help="run without a window (headless); Ctrl-C stops")
    parser.add_argument("--frames", type=int, metavar="N", help="stop after N processed frames")
    parser.add_argument("--record", metavar="OUT.mp4", help="write the annotated video (mp4v)")
    parser.add_argument("--out", metavar="DIR",
                        help="write frames.jsonl, parts.jsonl, NG frames (ng/) and snapshots here")
    parser.add_argument("--realtime", action="store_true",
                        help="play a video file or synthetic clip at its own frame rate, like a "
                             "camera: the newest frame is processed, the others dropped")
    parser.add_argument("--guard-mm", type=float, default=None, metavar="MM",
                        help="bead left unjudged behind the nozzle, mm (default 1.5 bead widths "
                             "when the source gives the nozzle, 3.5 behind an estimated bead end)")


# ----------------------------------------------------------------------------------------
# Sources


@dataclass
class LiveSource:
    """What to read: ``open()`` returns an opened capture (raises :class:`SourceError`).

    name : how records ("file") and messages name it.
    live : newest frame only, frames may be dropped (a camera, a stream, ``--realtime``).
    retry : reopen after a failed read instead of ending (cameras and streams).
    fps : nominal frame rate (for the recording and ``--realtime``); None: unknown.
    pace : read at ``fps`` at most (``--realtime`` playback).
    recipe : the source's own recipe (a synthetic clip's), if any.
    """

    name: str
    open: Callable[[], object]
    live: bool = False
    retry: bool = False
    fps: float | None = None
    pace: bool = False
    recipe: Recipe | None = None


def synthetic_clip(*, seed: int = 0, preset: str = "normal", size_wh=(2048, 1536),
                   speed_mm_s: float = DEFAULT_SPEED_MM_S, fps: float = DEFAULT_FPS):
    """The dispensing clip of ``vision-qc generate OUT --seed S --size WxH --preset P --video``
    (the part drawn from ``[seed, 2]``, its noise from ``[seed, 3]``): its recipe is the one
    ``generate`` writes for that seed and size."""
    from ..synth.clip import DispensingClip
    from ..synth.scene import DEFECT_KINDS, sample_scene, sample_shape

    part_rng = np.random.default_rng([seed, 0])
    shape = sample_shape(part_rng)
    polarity = str(part_rng.choice(["bright", "dark"]))
    spec = sample_scene(np.random.default_rng([seed, 2]), preset=preset, size_wh=size_wh,
                        ng_fraction=0.6, defect_kinds=DEFECT_KINDS, max_defects=2, pose=False,
                        polarity=polarity, color=False, open_path=False, shape=shape)
    return DispensingClip(spec, rng=np.random.default_rng([seed, 3]), speed_mm_s=speed_mm_s,
                          fps=fps)


def _parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--size must look like 1280x1024 (width x height in px); got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise UsageError(f"--size must be between 320x240 and 8192x8192; got {w}x{h}")
    return w, h


def _fps_of(cap) -> float | None:
    try:
        v = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:  # a capture without get(): unknown
        return None
    return v if math.isfinite(v) and 1.0 <= v <= 1000.0 else None


def _source_from_args(args) -> LiveSource:
    chosen = [n for n, v in (("--camera", args.camera is not None), ("--source", args.source),
                             ("--synthetic", args.synthetic)) if v]
    if len(chosen) != 1:
        raise UsageError("choose one source: --camera INDEX, --source FILE_OR_URL or --synthetic"
                         + (f" (got {' and '.join(chosen)})" if chosen else ""))
    syn_opts = [n for n, v in (("--speed-mm-s", args.speed_mm_s), ("--fps", args.fps),
                               ("--seed", args.seed), ("--preset", args.preset),
                               ("--size", args.size)) if v is not None]
    if syn_opts and not args.synthetic:
        raise UsageError(f"{', '.join(syn_opts)} only appl{'ies' if len(syn_opts) == 1 else 'y'} "
                         f"with --synthetic")
    if args.realtime and args.camera is not None:
        raise UsageError("--realtime applies to a video file or --synthetic (a camera is "
                         "real time)")
    if args.synthetic:
        speed = DEFAULT_SPEED_MM_S if args.speed_mm_s is None else args.speed_mm_s
        fps = DEFAULT_FPS if args.fps is None else args.fps
        seed = 0 if args.seed is None else args.seed
        for name, v in (("--speed-mm-s", speed), ("--fps", fps)):
            if not (math.isfinite(v) and v > 0):
                raise UsageError(f"{name} must be > 0; got {v:g}")
        if seed < 0:
            raise UsageError(f"--seed must be >= 0; got {seed}")
        size = _parse_size(args.size or "2048x1536")
        preset = args.preset or "normal"
        kw = dict(seed=seed, preset=preset, size_wh=size, speed_mm_s=speed, fps=fps)
        clip = synthetic_clip(**kw)
        made = [clip]

        def open_clip():
            return made.pop() if made else synthetic_clip(**kw)

        return LiveSource(name=f"synthetic:seed={seed},preset={preset},size={size[0]}x{size[1]}",
                          open=open_clip, live=args.realtime, retry=False, fps=fps,
                          pace=args.realtime, recipe=clip.renderer.recipe)
    if args.camera is not None:
        if args.camera < 0:
            raise UsageError(f"--camera must be an index >= 0; got {args.camera}")
        index = args.camera
        api = default_camera_backend()
        backend = cv2.videoio_registry.getBackendName(api)
        return LiveSource(name=f"camera {index} ({backend})", open=lambda: open_camera(index),
                          live=True, retry=True)
    src = args.source
    if "://" in src:
        return LiveSource(name=src, open=lambda: open_stream(src), live=True, retry=True)
    if not os.path.exists(src) and "%" not in src:
        raise UsageError(f"--source {src}: no such file (a stream needs a URL such as rtsp://...)")
    if os.path.isdir(src):
        raise UsageError(f"--source {src} is a folder; give a video file (for a folder of images "
                         f"use `vision-qc inspect`)")
    return LiveSource(name=src, open=lambda: open_video_file(src), live=args.realtime,
                      retry=False, pace=args.realtime)


# ----------------------------------------------------------------------------------------
# Outputs


class _Worker:
    """A thread that runs ``job(item)`` for items put on a bounded queue; ``put`` waits for
    room (nothing is dropped, nothing piles up). The first error is kept and re-raised by
    :meth:`check` / :meth:`close`."""

    def __init__(self, name: str, job: Callable, size: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=size)
        self._job = job
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, name=name, daemon=True)
        self._t.start()

    def _run(self):
        while True:
            item = self._q.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self._job(item)
                except BaseException as exc:  # kept and raised in the loop's thread
                    self.error = exc

    def put(self, item) -> None:
        self.check()
        self._q.put(item)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._q.put(None)
        self._t.join()


def _write_png(item) -> None:
    path, image = item
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if not cv2.imwrite(path, image):
        raise OSError(f"cannot write {path}")


class _Recorder:
    """The annotated video, written in its own thread (mp4v)."""

    def __init__(self, path: str, fps: float, size_wh: tuple[int, int]):
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise UsageError(f"--record {path}: the folder {d} does not exist")
        self.size_wh = size_wh
        self._w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size_wh, True)
        if not self._w.isOpened():
            raise UsageError(f"--record {path}: cannot write an mp4v video there")
        self._worker = _Worker("record", self._w.write, size=4)

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size_wh:
            image = cv2.resize(image, self.size_wh, interpolation=cv2.INTER_AREA)
        self._worker.put(image)

    def close(self) -> None:
        self._worker.close()
        self._w.release()


# ----------------------------------------------------------------------------------------
# The window


def _check_display() -> None:
    """Refuse early when there is no display: OpenCV's Qt window would abort the process."""
    if not sys.platform.startswith("linux"):
        return
    disp = os.environ.get("DISPLAY", "")
    if os.environ.get("WAYLAND_DISPLAY"):
        return
    if not disp:
        raise UsageError("no display to open the window on (DISPLAY is not set); use --no-window "
                         "to run headless, or run under a desktop session or Xvfb")
    m = re.fullmatch(r":(\d+)(\.\d+)?", disp)
    if m and not os.path.exists(f"/tmp/.X11-unix/X{m.group(1)}"):
        raise UsageError(f"no X server at DISPLAY={disp} (no /tmp/.X11-unix/X{m.group(1)}); "
                         f"start one, fix DISPLAY, or use --no-window")


class _Window:
    def __init__(self, title: str, size_wh: tuple[int, int]):
        _check_display()
        self.title = title
        w, h = size_wh
        s = min(1.0, DISPLAY_MAX_WH[0] / w, DISPLAY_MAX_WH[1] / h)
        self.show_wh = (max(int(round(w * s)), 1), max(int(round(h * s)), 1))
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        cv2.resizeWindow(title, *self.show_wh)
        self.last: np.ndarray | None = None

    def show(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.show_wh:
            image = cv2.resize(image, self.show_wh, interpolation=cv2.INTER_AREA)
        self.last = image
        cv2.imshow(self.title, image)

    def poll(self, wait_ms: int = 1) -> int:
        """A key pressed (lower-case code), -1 for none, or ``ord('q')`` when the window was
        closed."""
        key = cv2.waitKeyEx(wait_ms)
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return ord("q")
        except cv2.error:
            return ord("q")
        if key < 0:
            return -1
        key &= 0xFF
        return key + 32 if ord("A") <= key <= ord("Z") else key

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def _put_lines(image: np.ndarray, lines, *, color=(255, 255, 255), top: float = 0.0) -> None:
    """Text lines on a dark box, under the overlay's banner and status line (in place)."""
    h, w = image.shape[:2]
    scale = max(w / 1600.0, 0.6)
    fs, th = 0.6 * scale, max(int(round(2 * scale)), 1)
    y = int(top or (44 * scale + 26 * scale + 10 * scale))
    for text in lines:
        (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, th)
        y += tht + int(10 * scale)
        x = int(10 * scale)
        cv2.rectangle(image, (x - 4, y - tht - 6), (min(x + tw + 4, w - 1), y + base + 2),
                      (0, 0, 0), -1)
        cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, fs, color, th, cv2.LINE_AA)


def status_line(*, fps: float, latency_p50_ms: float, latency_p99_ms: float, frame: int,
                dropped: int, ng_frames: int, parts_ok: int, parts_ng: int,
                dispensed_mm: float | None, length_mm: float, nozzle: str) -> str:
    """The status line drawn under the verdict banner."""
    lat = ("latency -" if math.isnan(latency_p50_ms)
           else f"latency {latency_p50_ms:.0f} ms (p99 {latency_p99_ms:.0f})")
    laid = ("laid: all" if dispensed_mm is None
            else f"laid {max(dispensed_mm, 0):.0f}/{length_mm:.0f} mm ({nozzle})")
    return (f"{fps:.1f} fps | {lat} | frame {frame} | dropped {dropped} | NG frames {ng_frames} | "
            f"parts {parts_ok} OK {parts_ng} NG | {laid}")


# ----------------------------------------------------------------------------------------
# The loop


@dataclass
class LiveOptions:
    window: bool = True
    out_dir: str | None = None
    record: str | None = None
    max_frames: int | None = None
    guard_mm: float | None = None
    stdout: object = None
    stderr: object = None
    on_record: Callable[[dict], None] | None = None   # called with each frame's record


@dataclass
class _Part:
    number: int
    first_frame: int
    last: dict | None = None
    last_frame: int = -1
    logged: bool = False


@dataclass
class _Run:
    processed: int = 0
    ng_frames: int = 0
    parts_ok: int = 0
    parts_ng: int = 0
    any_ng: bool = False
    errors_seen: set = field(default_factory=set)


def _part_record(part: _Part, source: str, *, complete: bool, length_mm: float) -> dict:
    last = part.last or {}
    return {"file": source, "part": part.number, "verdict": last.get("verdict"),
            "complete": complete, "first_frame": part.first_frame, "last_frame": part.last_frame,
            "dispensed_mm": length_mm if complete else last.get("dispensed_mm"),
            "error": last.get("error"), "defects": last.get("defects", []),
            "stats": last.get("stats", {})}


def _part_text(rec: dict) -> str:
    head = f"part {rec['part']}: {rec['verdict']}"
    if not rec["complete"]:
        laid = rec.get("dispensed_mm")
        head += " so far, incomplete"
        if isinstance(laid, (int, float)):
            head += f" (laid {laid:.0f} mm)"
    defects = rec.get("defects") or []
    if defects:
        head += " - " + ", ".join(f"{d['type']} {d['length_mm']:.1f} mm at {d['start_mm']:.0f}-"
                                  f"{d['end_mm']:.0f} mm" for d in defects[:6])
        if len(defects) > 6:
            head += f", and {len(defects) - 6} more"
    if rec.get("error"):
        head += f" - {rec['error']}"
    return head + f" (frames {rec['first_frame']}-{rec['last_frame']})"


def _teach_from_frame(frame, recipe: Recipe, folder: str, frame_index: int) -> str:
    """``t`` in the window: teach a recipe from the frame on screen (a good part, fully laid)
    with the running recipe's scale and tolerances, and save it beside the snapshots. The
    running recipe is not replaced: the operator checks the taught one and restarts with it."""
    from ..recipe import save_recipe
    from ..teach import TeachError, teach_recipe

    if frame is None:
        return "teach: no frame yet"
    try:
        taught, _ = teach_recipe([frame], mm_per_px=recipe.mm_per_px, width_mm=recipe.width_mm,
                                 width_tol_mm=recipe.width_tol_mm,
                                 max_offset_mm=recipe.max_offset_mm,
                                 min_defect_mm=recipe.min_defect_mm, search_mm=recipe.search_mm,
                                 polarity=recipe.polarity, align=recipe.align,
                                 name=f"taught-live-{frame_index}")
        path = os.path.join(folder, f"taught_{max(frame_index, 0):06d}.yaml")
        save_recipe(taught, path)
    except TeachError as exc:
        return f"teach failed: {exc}"
    except OSError as exc:
        return f"teach: cannot write the recipe: {exc}"
    return f"taught recipe saved: {path}"


def _load_kernels() -> None:
    """Load the compiled kernels of an inspection into this process now, before the source is
    opened: the first inspection loads them otherwise (~0.3 s of CPU), while a camera or a
    paced clip goes on delivering (a 30 fps clip played with ``--realtime`` lost its first 8
    frames). Importing :mod:`.batch_warmup` inspects a small drawn part, once per process; a
    failure there costs only that time again on the first frame. OpenCV's thread count, which
    the warm-up sets to one, is kept."""
    threads = cv2.getNumThreads()
    try:
        from . import batch_warmup  # noqa: F401  (importing it warms up)
    finally:
        cv2.setNumThreads(threads)


def run_loop(source: LiveSource, recipe: Recipe, options: LiveOptions) -> int:
    """Run live inspection until the source ends, ``max_frames`` frames are processed, or the
    user quits. Returns the exit status (0 all parts OK, 1 a part NG).

    Raises
    ------
    UsageError
        The source cannot be opened, or an output cannot be written.
    """
    out = options.stdout or sys.stdout
    err = options.stderr or sys.stderr

    def log(message: str) -> None:
        print(f"vision-qc live: {message}", file=err, flush=True)

    try:
        inspector = Inspector(recipe)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the recipe cannot be used: {exc}") from None
    for warning in inspector.warnings:
        log(f"recipe: {warning}")
    live = LiveInspector(inspector, guard_mm=options.guard_mm, guard_est_mm=options.guard_mm)
    length_mm = inspector.length_mm
    closed_len = length_mm if recipe.closed else None
    _load_kernels()
    try:
        cap = source.open()
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    fps = source.fps or _fps_of(cap) or DEFAULT_FPS
    grabber = Grabber(cap, reopen=source.open if source.retry else None, live=source.live,
                      name=source.name, pace_fps=fps if source.pace else None, log=log)

    frames_log = parts_log = images = recorder = window = None
    snap_dir = options.out_dir or "."
    run = _Run()
    try:
        if options.out_dir:
            try:
                os.makedirs(os.path.join(options.out_dir, NG_DIR), exist_ok=True)
                frames_log = open(os.path.join(options.out_dir, FRAMES_JSONL), "w",
                                  encoding="utf-8")
                parts_log = open(os.path.join(options.out_dir, PARTS_JSONL), "w", encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"--out {options.out_dir}: cannot write there "
                                 f"({exc.strerror})") from None
        images = _Worker("images", _write_png, size=8)
        if options.record:
            recorder = _Recorder(options.record, fps, recipe.image_size_wh)
        if options.window:
            window = _Window(WINDOW_TITLE, recipe.image_size_wh)
        grabber.start()
        try:
            return _loop(source, recipe, live, grabber, run, options, length_mm=length_mm,
                         closed_len=closed_len, frames_log=frames_log, parts_log=parts_log,
                         images=images, recorder=recorder, window=window, snap_dir=snap_dir,
                         log=log, out=out)
        except OSError as exc:       # an output that cannot be written (disk full, removed)
            raise UsageError(f"cannot write the outputs: {exc}") from None
    finally:
        grabber.stop()
        for thing in (recorder, images):
            if thing is not None:
                thing.close()
        for f in (frames_log, parts_log):
            if f is not None:
                f.close()
        if window is not None:
            window.close()


def _loop(source, recipe, live, grabber, run, options, *, length_mm, closed_len, frames_log,
          parts_log, images, recorder, window, snap_dir, log, out) -> int:
    rate = RateMeter()
    lat = LatencyStats()
    part: _Part | None = None
    prev_verdict, prev_defects = "OK", ()
    paused = False
    message, message_until = "", 0.0
    shown = None                # the last annotated frame (full size)
    last_frame_t = time.perf_counter()
    stall_logged = False
    t_start = time.perf_counter()
    min_defect = recipe.min_defect_mm

    def close_part(complete: bool) -> None:
        nonlocal part
        if part is None or part.logged or part.last is None:
            return
        rec = _part_record(part, source.name, complete=complete, length_mm=length_mm)
        part.logged = True
        if rec["verdict"] == "NG":
            run.any_ng = True
        if complete and rec["verdict"] == "NG":
            run.parts_ng += 1
        elif complete and rec["verdict"] == "OK":
            run.parts_ok += 1
        print(_part_text(rec), file=out, flush=True)
        if parts_log is not None:
            parts_log.write(dumps_record(rec) + "\n")
            parts_log.flush()

    def handle_key(key: int, frame_index: int | None) -> str | None:
        nonlocal paused, message, message_until
        if key in (ord("q"), 27):
            return "quit"
        if key == ord(" "):
            paused = not paused
        elif key == ord("t"):
            message = _teach_from_frame(raw, recipe, snap_dir,
                                        -1 if frame_index is None else frame_index)
            message_until = time.perf_counter() + MESSAGE_S
            log(message)
        elif key == ord("s") and shown is not None:
            n = -1 if frame_index is None else frame_index
            path = os.path.join(snap_dir, f"snapshot_{n:06d}.png")
            images.put((path, shown.copy()))
            if raw is not None:
                images.put((os.path.join(snap_dir, f"snapshot_{n:06d}_raw.png"), raw.copy()))
            message, message_until = f"saved {path}", time.perf_counter() + MESSAGE_S
            log(f"snapshot saved: {path}")
        return None

    raw = None
    frame_index = None
    while True:
        if options.max_frames is not None and run.processed >= options.max_frames:
            break
        if paused:
            if window is not None and shown is not None:
                img = shown.copy()
                _put_lines(img, ["PAUSED - space to resume"], color=(0, 220, 255))
                window.show(img)
                if handle_key(window.poll(30), frame_index) == "quit":
                    break
                continue
            paused = False
        fr = grabber.get(timeout=0.02 if window is not None else 0.2)
        if fr is None:
            if grabber.ended:
                break
            idle = time.perf_counter() - last_frame_t
            if grabber.state == "stalled" or idle > max(2.0, 10.0 / (source.fps or DEFAULT_FPS)):
                text = grabber.message or f"NO SIGNAL: no frame from {source.name} for {idle:.1f} s"
                if grabber.state != "stalled" and not stall_logged:
                    log(f"no frame from {source.name} for {idle:.1f} s; waiting")
                    stall_logged = True
                if window is not None:
                    base = shown if shown is not None else np.zeros(
                        (recipe.image_size_wh[1], recipe.image_size_wh[0], 3), np.uint8)
                    img = (base * 0.4).astype(np.uint8)
                    _put_lines(img, [text, f"{idle:.1f} s since the last frame"],
                               color=(60, 60, 255))
                    window.show(img)
            if window is not None and handle_key(window.poll(1), frame_index) == "quit":
                break
            continue
        last_frame_t = time.perf_counter()
        stall_logged = False
        frame_index = fr.index
        raw = fr.image
        t0 = time.perf_counter()
        step = None
        try:
            step = live.step(fr.image, nozzle_mm=fr.nozzle_mm, nozzle_known=fr.nozzle_known)
            rec = step.result.to_record(file=source.name)
            rec["timing_ms"]["step"] = round((time.perf_counter() - t0) * 1e3, 3)
        except FrameError as exc:
            rec = error_record(source.name, f"cannot inspect this frame: {exc}")
        except Exception as exc:  # the live loop goes on; the record and the log say what happened
            rec = error_record(source.name, f"inspection failed ({type(exc).__name__}: {exc})")
        t_verdict = time.perf_counter()
        latency_ms = (t_verdict - fr.t_capture) * 1e3
        rate.tick(t_verdict)
        lat.add(latency_ms)
        run.processed += 1
        prog = step.progress if step is not None else None
        if rec["verdict"] == "ERROR" and rec["error"] not in run.errors_seen:
            if len(run.errors_seen) < 100:
                run.errors_seen.add(rec["error"])
            log(f"frame {fr.index}: {rec['error']}")
        rec.update(frame=fr.index, timestamp=round(fr.timestamp, 6),
                   latency_ms=round(latency_ms, 3),
                   dispensed_mm=(None if prog is None else
                                 (length_mm if prog.finished else round(prog.dispensed_mm, 3))),
                   judged_mm=(None if prog is None or prog.judged_mm is None
                              else round(prog.judged_mm, 3)),
                   nozzle=None if prog is None else prog.nozzle,
                   part=None if prog is None else prog.cycle)

        # parts: a new cycle closes the previous part (incomplete unless it was logged)
        if prog is not None:
            if prog.new_cycle:
                close_part(complete=False)
                part = _Part(number=prog.cycle, first_frame=fr.index)
                prev_verdict, prev_defects = "OK", ()
            if part is not None:
                part.last, part.last_frame = rec, fr.index

        ng = rec["verdict"] == "NG"
        run.ng_frames += ng
        changed = ng and step is not None and (
            prev_verdict != "NG" or defects_changed(prev_defects, step.result.defects,
                                                    tol_mm=min_defect, length_mm=closed_len))
        if step is not None:
            prev_verdict, prev_defects = rec["verdict"], step.result.defects

        now = time.perf_counter()
        status = status_line(fps=rate.rate(), latency_p50_ms=lat.recent(50),
                             latency_p99_ms=lat.recent(99), frame=fr.index, dropped=grabber.dropped,
                             ng_frames=run.ng_frames, parts_ok=run.parts_ok, parts_ng=run.parts_ng,
                             dispensed_mm=(None if prog is None or prog.finished
                                           else prog.dispensed_mm),
                             length_mm=length_mm, nozzle="" if prog is None else prog.nozzle)
        annotated = None
        if window is not None or recorder is not None or (changed and options.out_dir):
            if step is not None:
                annotated = draw_overlay(fr.image, step.result, recipe, judged=step.judged,
                                         status_text=status)
            else:
                annotated = _error_picture(fr.image, rec["error"], status)
            extra = []
            if message and now < message_until:
                extra.append(message)
            if extra:
                _put_lines(annotated, extra, color=(0, 220, 255))
            shown = annotated
        if frames_log is not None:
            frames_log.write(dumps_record(rec) + "\n")
            frames_log.flush()
        if options.on_record is not None:
            options.on_record(rec)
        if changed and options.out_dir:
            name = f"frame_{fr.index:06d}.png"
            images.put((os.path.join(options.out_dir, NG_DIR, name), annotated))
        if recorder is not None:
            recorder.write(annotated)
        if prog is not None and prog.cycle_ended:
            close_part(complete=True)
        if window is not None:
            window.show(annotated)
            if handle_key(window.poll(1), fr.index) == "quit":
                break
        else:
            images.check()

    close_part(complete=False)
    elapsed = time.perf_counter() - t_start
    rate_fps = run.processed / max(elapsed, 1e-9)
    log(f"{run.processed} frames in {elapsed:.1f} s ({rate_fps:.1f} fps); "
        f"latency p50 {lat.overall(50):.1f} ms, p99 {lat.overall(99):.1f} ms; "
        f"dropped {grabber.dropped}; NG frames {run.ng_frames}; "
        f"complete parts {run.parts_ok} OK, {run.parts_ng} NG"
        + (f"; source outages {grabber.failures}, reopened {grabber.reopens}"
           if grabber.failures else ""))
    return 1 if run.any_ng else 0


def _error_picture(image: np.ndarray, error: str, status: str) -> np.ndarray:
    if image.ndim == 2:
        img = cv2.cvtColor(image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8),
                           cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        img = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    else:
        img = image.copy()
    h, w = img.shape[:2]
    scale = max(w / 1600.0, 0.6)
    cv2.rectangle(img, (0, 0), (w, int(44 * scale)), (0, 0, 160), -1)
    cv2.putText(img, "ERROR", (int(10 * scale), int(31 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.9 * scale, (255, 255, 255), 2, cv2.LINE_AA)
    _put_lines(img, [status, error], top=44 * scale)
    return img


# ----------------------------------------------------------------------------------------
# The command


def run(args) -> int:
    source = _source_from_args(args)
    if args.frames is not None and args.frames < 1:
        raise UsageError(f"--frames must be 1 or more; got {args.frames}")
    if args.guard_mm is not None and not (math.isfinite(args.guard_mm) and args.guard_mm >= 0):
        raise UsageError(f"--guard-mm must be >= 0; got {args.guard_mm:g}")
    if args.recipe:
        try:
            recipe = load_recipe(args.recipe)
        except RecipeError as exc:
            raise UsageError(str(exc)) from None
        own = source.recipe
        if own is not None and tuple(own.image_size_wh) != tuple(recipe.image_size_wh):
            w, h = source.recipe.image_size_wh
            rw, rh = recipe.image_size_wh
            raise UsageError(f"{args.recipe} is for {rw}x{rh} px frames but the synthetic clip is "
                             f"{w}x{h}; pass --size {rw}x{rh} or leave --recipe out")
    elif source.recipe is not None:
        recipe = source.recipe
    else:
        raise UsageError("--recipe R is required (only --synthetic brings its own recipe)")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file, not a folder")
    if not args.no_window:
        _check_display()
    options = LiveOptions(window=not args.no_window, out_dir=args.out, record=args.record,
                          max_frames=args.frames, guard_mm=args.guard_mm)
    return run_loop(source, recipe, options)
