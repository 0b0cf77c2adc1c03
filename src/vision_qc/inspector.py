"""The inspector: built once from a recipe, then called per frame.

``Inspector(recipe)`` builds the stations, their normals and the sampling maps. ``inspect``
runs the stages: convert → sample (one remap) → edges (vectorised, sub-pixel) → measure
(width, offset, presence, smoothed along the path) → judge (defect segments, verdict).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from .engine.align import AlignError, Aligner, move_maps
from .engine.edges import find_edges
from .engine.judge import judge, station_status
from .engine.sampling import ProfileMaps, build_maps, sample_profiles
from .geometry import Stations, build_stations
from .recipe import Recipe
from .results import InspectionResult

__all__ = ["Inspector", "FrameError", "PartNotFoundError", "to_gray"]

# Smoothing along the path, in stations: profiles are averaged over this many neighbours
# before edges are found; widths/offsets take the median over MEDIAN_STATIONS after.
SMOOTH_STATIONS = 3
MEDIAN_STATIONS = 5
# A station has a bead when its contrast reaches this fraction of the frame's typical bead
# contrast (the median over stations): lighting changes scale both alike.
PRESENCE_CONTRAST = 0.4
# ... and its run is at least this fraction of the nominal width wide.
PRESENCE_WIDTH = 0.15


class FrameError(ValueError):
    """A frame that cannot be inspected with this recipe (size, dtype, channels)."""


class PartNotFoundError(FrameError):
    """``align: true`` and the part could not be located in the frame (the message says why)."""


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 grey from uint8/uint16 grey, BGR or BGRA; raises :class:`FrameError` otherwise."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array; got {type(frame).__name__}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        if frame.dtype not in (np.uint8, np.uint16):
            raise FrameError(f"frame dtype must be uint8 or uint16; got {frame.dtype}")
        frame = cv2.cvtColor(frame, code)
    if frame.ndim != 2:
        raise FrameError(f"frame must be H×W grey or H×W×3 BGR or H×W×4 BGRA; got shape {frame.shape}")
    if frame.dtype == np.uint16:
        # full 16-bit range down to 8 bits; 12-bit sensors in 16-bit containers use the top bits
        top = int(frame.max()) if frame.size else 0
        shift = max(int(top).bit_length() - 8, 0)
        frame = (frame >> shift).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise FrameError(f"frame dtype must be uint8 or uint16; got {frame.dtype}")
    return frame


def _smooth_valid(values: np.ndarray, valid: np.ndarray, k: int, closed: bool) -> np.ndarray:
    """Median over ``k`` neighbouring stations of the valid values (NaN where invalid).

    A median, not a mean: a dust speck or a bubble on the bead, or a stray edge at one or
    two stations, does not move the neighbours, and the ends of a defect stay where they
    are (a median keeps steps).
    """
    v = np.where(valid, values, np.nan).astype(np.float64)
    if k <= 1 or len(v) == 0:
        return v
    h = k // 2
    if closed and len(v) > k:
        pad = np.concatenate([v[-h:], v, v[:h]])
    else:
        pad = np.concatenate([np.full(h, np.nan), v, np.full(h, np.nan)])
    # the k shifted copies (k, N), invalid as +inf, sorted column-wise by an odd-even
    # transposition network (k rounds of min/max on whole rows): a row sort per station
    # (np.sort on (N, k)) costs ten times more
    m = len(v)
    srt = np.stack([pad[i:i + m] for i in range(k)])
    cnt = np.count_nonzero(~np.isnan(srt), axis=0)
    np.nan_to_num(srt, copy=False, nan=np.inf)
    for rnd in range(k):
        for i in range(rnd % 2, k - 1, 2):
            a, b = srt[i].copy(), srt[i + 1]
            np.minimum(a, b, out=srt[i])
            np.maximum(a, b, out=srt[i + 1])
    cols = np.arange(m)
    lo = srt[np.maximum(cnt - 1, 0) // 2, cols]
    hi = srt[np.minimum(cnt // 2, k - 1), cols]
    return np.where(valid, 0.5 * (lo + hi), np.nan)


class Inspector:
    """Bead inspection for one recipe.

    Parameters
    ----------
    recipe : Recipe
    spacing_px : float, keyword-only
        Largest station spacing along the path (≤ 1 px).
    step_px : float, keyword-only
        Sample spacing across the path.
    """

    def __init__(self, recipe: Recipe, *, spacing_px: float = 1.0, step_px: float = 0.5):
        if not isinstance(recipe, Recipe):
            raise TypeError(f"recipe must be a Recipe; got {type(recipe).__name__}")
        self.recipe = recipe
        self.stations: Stations = build_stations(recipe.points_xy, closed=recipe.closed,
                                                 spacing_px=spacing_px,
                                                 interpolation=recipe.interpolation)
        k = 1.0 / recipe.mm_per_px
        self.search_px = recipe.search_mm * k
        self.maps: ProfileMaps = build_maps(self.stations, half_width_px=self.search_px, step_px=step_px)
        # align: true locates the part in every frame and moves the maps by its pose
        self.aligner = (Aligner(self.stations, size_wh=recipe.image_size_wh,
                                bright=recipe.polarity == "bright", width_px=recipe.width_mm * k,
                                reference=recipe.reference) if recipe.align else None)
        self.arc_mm = self.stations.arc_px * recipe.mm_per_px
        self.length_mm = self.stations.length_px * recipe.mm_per_px
        w, h = recipe.image_size_wh
        xy = self.stations.xy
        reach = self.search_px
        if (xy[:, 0].min() - reach < -0.5 or xy[:, 1].min() - reach < -0.5
                or xy[:, 0].max() + reach > w - 0.5 or xy[:, 1].max() + reach > h - 0.5):
            # not an error: the border is replicated, but the user should know
            self.warnings = ("the search band reaches outside the image near some stations",)
        else:
            self.warnings = ()

    def __len__(self) -> int:
        return len(self.stations)

    def check_frame(self, frame: np.ndarray) -> None:
        """Raise :class:`FrameError` when the frame's size differs from the recipe's."""
        w, h = self.recipe.image_size_wh
        if not isinstance(frame, np.ndarray) or frame.ndim < 2:
            raise FrameError(f"frame must be an image array; got {type(frame).__name__}")
        fh, fw = frame.shape[:2]
        if (fw, fh) != (w, h):
            raise FrameError(f"frame is {fw}×{fh} px but the recipe '{self.recipe.source}' was made "
                             f"for {w}×{h} px images (image_size); use images of that size or "
                             f"teach a recipe for this camera")

    def inspect(self, frame: np.ndarray, *, upto_mm: float | None = None) -> InspectionResult:
        """Inspect one frame.

        Parameters
        ----------
        frame : ndarray
            H×W uint8/uint16 grey, or H×W×3 BGR / H×W×4 BGRA, of the recipe's image size.
        upto_mm : float, optional
            Judge only the stations up to this arc length (a bead still being laid); the rest
            are neither defects nor counted in the stats.

        Raises
        ------
        FrameError
            Wrong size, dtype or channel count.
        PartNotFoundError
            ``align`` is on and the part could not be located (a ``FrameError``: batch and
            eval record it as an ``ERROR`` with the reason).
        """
        t0 = time.perf_counter()
        self.check_frame(frame)
        gray = to_gray(frame)
        r = self.recipe
        t1 = time.perf_counter()
        maps, stations, pose = self.maps, self.stations, None
        if self.aligner is not None:
            try:
                found = self.aligner.estimate(gray)
            except AlignError as exc:
                raise PartNotFoundError(str(exc)) from None
            maps = move_maps(self.maps, found.matrix)
            stations = self.stations.transformed(found.matrix)
            pose = found.to_dict()
        ta = time.perf_counter()
        prof = sample_profiles(gray, maps)
        t2 = time.perf_counter()
        edges = find_edges(prof, step_px=self.maps.step_px, bright=r.polarity == "bright",
                           width_px=r.width_mm / r.mm_per_px, smooth_stations=SMOOTH_STATIONS,
                           closed=r.closed)
        t3 = time.perf_counter()
        mm = r.mm_per_px
        n = len(self.stations)
        judged = np.ones(n, bool) if upto_mm is None else self.arc_mm <= upto_mm
        found = edges.found
        typical = float(np.median(edges.contrast[found & judged])) if (found & judged).any() else 0.0
        width_px = edges.right_px - edges.left_px
        present = (found & (edges.contrast >= PRESENCE_CONTRAST * typical) & (typical > 0)
                   & (np.nan_to_num(width_px) >= PRESENCE_WIDTH * r.width_mm / mm))
        width_mm = (_smooth_valid(width_px, present, MEDIAN_STATIONS, r.closed) * mm).astype(np.float32)
        offset_px = 0.5 * (edges.left_px + edges.right_px)
        offset_mm = (_smooth_valid(offset_px, present, MEDIAN_STATIONS, r.closed) * mm).astype(np.float32)
        t4 = time.perf_counter()
        status = station_status(present, width_mm, offset_mm, width_min_mm=r.width_min_mm,
                                width_max_mm=r.width_max_mm, max_offset_mm=r.max_offset_mm,
                                judged=judged)
        defects = judge(status, arc_mm=self.arc_mm, length_mm=self.length_mm, closed=r.closed,
                        width_mm=width_mm, offset_mm=offset_mm, present=present,
                        xy_px=stations.xy, width_min_mm=r.width_min_mm,
                        width_max_mm=r.width_max_mm, max_offset_mm=r.max_offset_mm,
                        min_defect_mm=r.min_defect_mm)
        if upto_mm is not None:
            defects = tuple(d for d in defects if d.start_mm <= upto_mm)
        sel = present & judged
        stats = {
            "width_mean_mm": float(np.mean(width_mm[sel])) if sel.any() else None,
            "width_min_mm": float(np.min(width_mm[sel])) if sel.any() else None,
            "width_max_mm": float(np.max(width_mm[sel])) if sel.any() else None,
            "offset_max_mm": float(np.max(np.abs(offset_mm[sel]))) if sel.any() else None,
            "coverage": float(sel.sum() / max(judged.sum(), 1)),
        }
        t5 = time.perf_counter()
        timing = {"total": (t5 - t0) * 1e3, "convert": (t1 - t0) * 1e3, "align": (ta - t1) * 1e3,
                  "sample": (t2 - ta) * 1e3,
                  "edges": (t3 - t2) * 1e3, "measure": (t4 - t3) * 1e3, "judge": (t5 - t4) * 1e3}
        return InspectionResult(
            arc_mm=self.arc_mm, xy_px=stations.xy, normal_xy=stations.normal_xy,
            left_px=edges.left_px, right_px=edges.right_px, width_mm=width_mm, offset_mm=offset_mm,
            present=present, contrast=edges.contrast, status=status, defects=defects,
            verdict="NG" if defects else "OK", stats=stats, timing_ms=timing, pose=pose,
            mm_per_px=mm)
