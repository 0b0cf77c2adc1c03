"""The benchmark cases, defined once: the pytest benchmarks in ``benchmarks/`` and
``vision-qc bench`` both build their inputs here.

Timing is done by the caller (pytest-benchmark, or :func:`time_calls` for the bench command's
percentiles). Everything here is deterministic: scenes come from fixed seeds.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .budget import FRAME_AIM_MS, FRAME_BUDGET_MS
from .inspector import Inspector, to_gray
from .synth import SceneRenderer, sample_scene

__all__ = ["FrameCase", "frame_case", "time_calls", "naive_profile_ms", "machine_info",
           "FRAME_SIZES_WH", "STATION_SPACINGS_PX", "FRAME_BUDGET_MS", "FRAME_AIM_MS"]

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
