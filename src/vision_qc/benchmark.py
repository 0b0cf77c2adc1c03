"""The benchmark cases, defined once: the pytest benchmarks in ``benchmarks/`` and
``vision-qc bench`` both build their inputs here.

Timing is done by the caller (pytest-benchmark, or :func:`time_calls` for the bench command's
percentiles). Everything here is deterministic: scenes come from fixed seeds. Nothing here
touches files: the batch image set comes back as encoded PNG bytes (the caller writes them),
the live loop's frames as an in-memory capture (:class:`ReplayCapture`).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .budget import FRAME_AIM_MS, FRAME_BUDGET_MS
from .inspector import Inspector, to_gray
from .synth import SceneRenderer, sample_scene

__all__ = [
    "FRAME_AIM_MS",
    "FRAME_BUDGET_MS",
    "FRAME_SIZES_WH",
    "STATION_SPACINGS_PX",
    "FrameCase",
    "ReplayCapture",
    "floor_ms",
    "frame_case",
    "image_set_pngs",
    "live_clip",
    "machine_info",
    "naive_profile_ms",
    "overlay_ms",
    "steady_state",
    "time_calls",
]

FRAME_SIZES_WH = ((1280, 1024), (2048, 1536), (2448, 2048))
# 0.83 px gives the ~7,500 stations of DESIGN §7 on the generated 2448×2048 part (6,233 px of path)
STATION_SPACINGS_PX = (1.0, 0.83, 0.5)


@dataclass(frozen=True, eq=False)
class FrameCase:
    """A generated frame, its truth and an inspector built for it."""

    size_wh: tuple[int, int]
    frame: np.ndarray
    truth: dict
    inspector: Inspector

    @property
    def stations(self) -> int:
        return len(self.inspector)


def frame_case(size_wh=(2448, 2048), *, spacing_px: float = 1.0, seed: int = 11,
               preset: str = "normal", align: bool = False) -> FrameCase:
    """A defective part at ``size_wh`` (so every stage, judging included, has work to do);
    with ``align`` the part sits shifted and turned on its fixture and the recipe aligns it."""
    spec = sample_scene(seed, preset=preset, size_wh=size_wh, ng_fraction=1.0, pose=align)
    scene = SceneRenderer(spec).render()
    recipe = scene.recipe.replace(align=True) if align else scene.recipe
    return FrameCase(size_wh=tuple(size_wh), frame=scene.image, truth=scene.truth,
                     inspector=Inspector(recipe, spacing_px=spacing_px))


def time_calls(fn, *, rounds: int, warmup: int = 2) -> np.ndarray:
    """Wall time of ``rounds`` calls of ``fn()``, ms (float64 array)."""
    for _ in range(warmup):
        fn()
    out = np.empty(rounds)
    for i in range(rounds):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def naive_profile_ms(case: FrameCase, *, sample_stations: int = 200) -> float:
    """Per-frame time of the loop a user would write by hand: one
    ``skimage.measure.profile_line`` per station, on the same frame and stations (measured on
    ``sample_stations`` stations spread along the path and scaled to all of them), ms."""
    from skimage.measure import profile_line

    insp = case.inspector
    gray = to_gray(case.frame)
    st = insp.stations
    idx = np.linspace(0, len(st) - 1, min(sample_stations, len(st))).astype(int)
    half = insp.search_px
    src = st.xy[idx] - half * st.normal_xy[idx]
    dst = st.xy[idx] + half * st.normal_xy[idx]
    t0 = time.perf_counter()
    for a, b in zip(src, dst):
        # scikit-image wants (row, col)
        profile_line(gray, (a[1], a[0]), (b[1], b[0]), order=1, mode="reflect")
    per_station = (time.perf_counter() - t0) / len(idx)
    return per_station * len(st) * 1e3


def floor_ms(case: FrameCase, *, rounds: int) -> float:
    """The floor, ms (median of ``rounds`` calls): touching the pixels the inspection needs and
    nothing more — a nearest-neighbour ``cv2.remap`` of the same N × M sample positions (N
    stations, M samples across the path at each), no interpolation, no arithmetic."""
    insp = case.inspector
    st = insp.stations
    t = insp.maps.t_px
    mapx = (st.xy[:, 0:1] + st.normal_xy[:, 0:1] * t).astype(np.float32)
    mapy = (st.xy[:, 1:2] + st.normal_xy[:, 1:2] * t).astype(np.float32)
    gray = to_gray(case.frame)
    return float(np.median(time_calls(lambda: cv2.remap(gray, mapx, mapy, cv2.INTER_NEAREST),
                                      rounds=rounds)))


def overlay_ms(case: FrameCase, *, rounds: int) -> float:
    """Drawing the result on the full-size frame (:func:`vision_qc.overlay.draw_overlay`, as
    ``live`` shows and records it), ms (median of ``rounds`` calls). Not part of the
    inspection's time: it is only done for the pictures."""
    from .overlay import draw_overlay

    res = case.inspector.inspect(case.frame)
    recipe = case.inspector.recipe
    img = draw_overlay(case.frame, res, recipe)             # checked outside the timed calls
    if img.shape != (*case.frame.shape[:2], 3):
        raise RuntimeError(f"draw_overlay gave a {img.shape} picture for a {case.frame.shape} frame")
    return float(np.median(time_calls(lambda: draw_overlay(case.frame, res, recipe),
                                      rounds=rounds)))


def image_set_pngs(size_wh, *, n_unique: int = 4) -> tuple[list[bytes], object]:
    """``n_unique`` PNG-encoded scenes of one recipe at ``size_wh`` (every other one NG) and
    that recipe: the batch throughput benchmarks copy them round to as many files as they
    need (decoding a copy costs the same)."""
    base = sample_scene(3, size_wh=size_wh, preset="normal", polarity="bright")
    pngs, recipe = [], None
    for i in range(n_unique):
        spec = sample_scene(20 + i, size_wh=size_wh, preset="normal", polarity="bright",
                            ng_fraction=float(i % 2))
        scene = SceneRenderer(dataclasses.replace(spec, shape=base.shape,
                                                  mm_per_px=base.mm_per_px)).render()
        ok, buf = cv2.imencode(".png", scene.image)
        if not ok:
            raise RuntimeError("cannot encode a PNG")
        pngs.append(buf.tobytes())
        recipe = scene.recipe
    return pngs, recipe


def steady_state(n_small: int, n_large: int, secs_small, secs_large) -> tuple[float, float]:
    """Split a run's time into a fixed part and a part per image, from runs of the same job
    on ``n_small`` and ``n_large`` images timed in the same rounds (``secs_small[i]`` and
    ``secs_large[i]`` ran one after the other): time = fixed + images × per image.

    Parameters
    ----------
    n_small, n_large : int
        Images per run, ``n_large > n_small``.
    secs_small, secs_large : sequence of float
        Wall time of each round's run, s; equal lengths.

    Returns
    -------
    per_image_s : float
        Median over rounds of ``(large - small) / (n_large - n_small)``: what one more image
        costs once the run is going (a long batch's throughput is its inverse). Each round's
        two runs ran close together, so a load that drifts over the rounds hits both alike.
    fixed_s : float
        ``median(secs_small) - n_small × per_image_s``: what a run costs whatever its length
        (starting the pool and each worker, the first image's warm-up, the last images'
        tail when one worker is done and the other is not).
    """
    small = np.asarray(secs_small, np.float64)
    large = np.asarray(secs_large, np.float64)
    if n_large <= n_small:
        raise ValueError(f"n_large must exceed n_small; got {n_large} and {n_small}")
    if small.shape != large.shape or small.ndim != 1 or small.size == 0:
        raise ValueError(f"secs_small and secs_large must be equal-length, non-empty sequences; "
                         f"got shapes {small.shape} and {large.shape}")
    per_image = float(np.median((large - small) / (n_large - n_small)))
    return per_image, float(np.median(small)) - n_small * per_image


class ReplayCapture:
    """Frames rendered beforehand, read like a ``cv2.VideoCapture`` (``read``, ``release``,
    ``isOpened``, ``get``) with the clip's ``nozzle_mm``: the live loop then spends no time
    making its frames, as with a camera. ``repeat`` plays the clip that many times (one part
    after another)."""

    def __init__(self, frames, nozzles_mm, *, fps: float = 30.0, repeat: int = 1):
        if len(frames) != len(nozzles_mm) or not frames:
            raise ValueError("one nozzle position per frame, at least one frame")
        self.frames, self.nozzles_mm = list(frames), list(nozzles_mm)
        self.fps = float(fps)
        self.total = len(self.frames) * max(int(repeat), 1)
        self._pos = 0
        self._last: int | None = None
        self._opened = True

    def read(self):
        if not self._opened or self._pos >= self.total:
            return False, None
        self._last = self._pos % len(self.frames)
        self._pos += 1
        return True, self.frames[self._last]

    def isOpened(self) -> bool:  # cv2.VideoCapture's name
        return self._opened

    def release(self) -> None:
        self._opened = False

    def get(self, prop_id: int) -> float:
        return self.fps if prop_id == cv2.CAP_PROP_FPS else 0.0

    @property
    def nozzle_mm(self) -> float | None:
        return None if self._last is None else self.nozzles_mm[self._last]


def live_clip(size_wh, *, frames: int = 30, finished_frames: int = 5, fps: float = 30.0,
              seed: int = 11):
    """A dispensing clip of a defective part at ``size_wh``, the bead laid in ``frames``
    frames then ``finished_frames`` of the finished part, rendered once. Returns the frames,
    the nozzle's arc length in each (None once finished) and the recipe."""
    from .synth import DispensingClip

    spec = sample_scene(seed, preset="normal", size_wh=size_wh, ng_fraction=1.0)
    probe = DispensingClip(spec, fps=fps, finished_frames=0)
    speed = probe.length_mm * fps / max(frames - 1, 1)
    clip = DispensingClip(spec, speed_mm_s=speed, fps=fps, rng=seed,
                          finished_frames=finished_frames)
    images = [clip.frame(i) for i in range(clip.frame_count)]
    nozzles = [clip.dispensed_mm(i) for i in range(clip.frame_count)]
    return images, nozzles, clip.renderer.recipe


def machine_info() -> dict:
    """CPU model, cores, library versions and OpenCV's thread count."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import skimage

    return {"cpu": model or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "opencv": cv2.__version__,
            "numpy": np.__version__, "scikit_image": skimage.__version__,
            "opencv_threads_default": cv2.getNumThreads(), "platform": platform.platform()}
