"""Teaching: a recipe from images of good parts (pure core: arrays in, a Recipe out).

1. Find the bead: a Hessian line measure (γ = 3/4 scale-normalised, with the slope taken off
   so that the foot of a step is not a line) for bright and dark lines, at the few scales
   where each responds most; hysteresis threshold, connected components; the candidates
   are the components with a long skeleton (``skimage.morphology.skeletonize``).
2. Order each candidate's skeleton into a centre line: spurs shorter than three bead widths
   are pruned; what is left must be one loop (closed path) or one line with two ends (open
   path); a junction that survives means the path crosses itself (four arms) or branches.
   Loops run clockwise on screen from below their centroid (the generator's convention:
   normals inward, start at the bottom middle); open paths clockwise about their chord.
3. Choose: every candidate is refined (4.) and scored as a bead: contrast, found all
   along, standing out alike on both sides, rounded across (the flat strip of frit between
   a bright bead and the bright fixture is a dark "line" too), weighted by length (a piece
   of the bead found at a smaller scale is the same bead). Open pieces of one bead (its line
   broken where glare crosses it) are joined end to end. Two distinct candidates of
   similar score are an error unless ``start_xy`` picks one. This also decides polarity.
4. Refine: the width is first read off the median profile across the skeleton line; the
   line is then moved to the midpoint of the bead's sub-pixel edges
   (:func:`~vision_qc.engine.edges.find_edges` along its normals; runs much wider than the
   typical one are the bead merged with a neighbour and are dropped), robustly smoothed
   along the path, twice; the nominal width is the median measured width. A loop without
   the bead along a quarter of it is an open bead; an open line is cut to the stretch that
   has the bead (a dark bead's line runs on along the frit's edge) and where it runs back
   along itself, and closed across a break whose bridge has the bead; an open line is
   then ended at the centres of the bead's rounded end caps. More images of good parts:
   each is aligned to the first (:class:`~vision_qc.engine.align.Aligner`), measured along
   the same stations, and the offsets and widths are averaged. The width is measured last,
   along the stored path with the recipe's search band and offset limit, as the inspector
   will read it.
5. Reference for alignment (loops only): the strongest step (the glass or frit edge) that
   runs beside the bead at a steady distance along at least 80 % of it, stored as points,
   polarity and search half-width under ``reference.edge``.

Errors are :class:`TeachError` (a ``ValueError``) saying what was found and what to try.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from .engine.align import Aligner, AlignError
from .engine.blur import build_blur_probe, clean_step_blur
from .engine.edges import find_edges
from .engine.judge import find_runs, run_lengths
from .engine.sampling import build_maps, profiles_by_station, sample_profiles
from .geometry import Stations, build_stations
from .inspector import SMOOTH_STATIONS, STEP_PX, to_gray
from .recipe import Recipe, recipe_from_dict

__all__ = [
    "TaughtPath",
    "TeachError",
    "default_tolerances",
    "find_centre_line",
    "find_reference_edge",
    "order_skeleton",
    "points_from_csv_text",
    "refine_centre_line",
    "teach_recipe",
]

# Widths searched when none is given, mm: the ridge measure's scales cover this range.
WIDTH_RANGE_MM = (2.0, 30.0)
# A candidate bead's skeleton must be at least this long, in widths.
MIN_LENGTH_WIDTHS = 30.0
# Side branches shorter than this many widths are spurs (pruned); longer ones are an error.
SPUR_WIDTHS = 3.0
# Spacing of the taught path's points, px.
POINT_STEP_PX = 8.0
# A second candidate whose score reaches this fraction of the best one's is a rival: the
# choice is left to the user (--start, --polarity).
RIVAL_SCORE = 0.85
# Smoothing of the refined centre offsets along the path, mm (the bead's own slow wobble is
# kept; the noise of single profiles is not).
SMOOTH_MM = 6.0


class TeachError(ValueError):
    """Teaching failed; the message says what was found and what to try."""


@dataclass(frozen=True, eq=False)
class TaughtPath:
    """A bead's centre line found in an image.

    Attributes
    ----------
    points_xy : (N, 2) float64
        Centre line, px, in dispensing order (closed loops clockwise on screen).
    closed : bool
    polarity : {"bright", "dark"}
    width_px : float
        Median measured width.
    width_spread_px : float
        Robust spread (1.4826 × MAD) of the measured widths along the path.
    coverage : float
        Fraction of the stations where the edges were found.
    """

    points_xy: np.ndarray
    closed: bool
    polarity: str
    width_px: float
    width_spread_px: float
    coverage: float

    @property
    def length_px(self) -> float:
        seg = np.hypot(*np.diff(self.points_xy, axis=0).T).sum()
        if self.closed:
            seg += float(np.hypot(*(self.points_xy[-1] - self.points_xy[0])))
        return float(seg)


def default_tolerances(width_mm: float) -> dict:
    """Tolerances for a nominal width when the user gives none (the generator's choices:
    ±25 % width, 40 % of the width sideways, 3 mm shortest defect, and a search band that
    reaches well past the widest accepted bead at the largest accepted offset)."""
    tol = round(0.25 * width_mm, 3)
    off = round(0.4 * width_mm, 3)
    return {"width_tol_mm": tol, "max_offset_mm": off, "min_defect_mm": 3.0,
            "search_mm": round(width_mm / 2 + tol / 2 + 2.6 * off, 3)}


# ----------------------------------------------------------------------------------------
# 1. Candidates


def _ridge_maps(small: np.ndarray, sigmas: np.ndarray, polarities: tuple[bool, ...]):
    """Scale-normalised line strength at the scales where each polarity responds most.

    A line across which the image curves strongly one way and along which it hardly curves:
    ``σ^1.5 (|λ_across| - |λ_along|)``, kept for the right sign only (Hessian eigenvalues;
    γ = 3/4 normalisation, which for a bar of width w peaks near σ = w / 2√3; γ = 1 lets a
    narrow line inside a wider dark band grow with the band). The
    scales are chosen per polarity, for the whole image: the (at most three) local maxima over
    σ of the strength's 99.9th percentile. A bead has one width, and a single scale keeps
    wider structures (a frit band, the fixture beside it, glare) from merging with it.

    Returns
    -------
    list of (bright, strength (H, W) float32, sigma)
    """
    per = {b: [] for b in polarities}
    for s in sigmas:
        g = cv2.GaussianBlur(small, (0, 0), float(s))
        # 3×3 Sobel kernels give 4× the second and 8× the first derivatives
        hxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3, scale=0.25)
        hyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3, scale=0.25)
        hxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3, scale=0.25)
        grad = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125),
                             cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125))
        tr = 0.5 * (hxx + hyy)
        d = np.sqrt(0.25 * (hxx - hyy) ** 2 + hxy * hxy)
        lo, hi = tr - d, tr + d                      # lo <= hi
        # the foot of a step curves like a line's centre but sits on a slope; a line's
        # centre is flat: the gradient (per σ) is taken off, so steps do not pass as lines
        slope = grad * (1.0 / s)
        for bright in polarities:
            r = (-lo if bright else hi) - np.abs(hi if bright else lo) - slope
            r = s ** 1.5 * np.maximum(r, 0.0)
            per[bright].append((r, float(s), float(np.percentile(r[::2, ::2], 99.9))))
    out = []
    for bright, rows in per.items():
        q = np.array([x[2] for x in rows])
        peaks = [i for i in range(len(q))
                 if (i == 0 or q[i] >= q[i - 1]) and (i == len(q) - 1 or q[i] >= q[i + 1])]
        peaks.sort(key=lambda i: q[i], reverse=True)
        out.extend((bright, rows[i][0], rows[i][1]) for i in peaks[:3] if q[i] > 0)
    return out


# A bar of width w gives its largest γ = 3/4 normalised ridge response near σ = w / 2√3.
_WIDTH_PER_SIGMA = 3.46


@dataclass(frozen=True, eq=False)
class _Candidate:
    bright: bool
    skeleton_rc: np.ndarray      # (K, 2) int, full-resolution-ish (reduced) pixel coordinates
    factor: float                # reduced → full scale
    width_px: float              # width estimate from the ridge scale, full resolution
    length_px: float


def _candidates(gray: np.ndarray, *, mm_per_px: float, width_px: float | None,
                polarities: tuple[bool, ...]) -> list[_Candidate]:
    from skimage.filters import apply_hysteresis_threshold
    from skimage.measure import label
    from skimage.morphology import skeletonize

    lo_w, hi_w = ((0.6 * width_px, 1.6 * width_px) if width_px
                  else (WIDTH_RANGE_MM[0] / mm_per_px, WIDTH_RANGE_MM[1] / mm_per_px))
    # reduce so that the narrowest bead searched for is still ~4 px wide
    factor = max(1, int(lo_w // 4))
    small = gray.astype(np.float32)
    if factor > 1:
        small = cv2.resize(small, (gray.shape[1] // factor, gray.shape[0] // factor),
                           interpolation=cv2.INTER_AREA)
    sig = np.geomspace(max(lo_w / factor / _WIDTH_PER_SIGMA, 0.8),
                       max(hi_w / factor / _WIDTH_PER_SIGMA, 1.0), 8)
    out = []
    for bright, r, s in _ridge_maps(small, np.unique(np.round(sig, 2)), polarities):
        top = float(np.percentile(r, 99.9))
        if not top > 0:
            continue
        mask = apply_hysteresis_threshold(r, 0.2 * top, 0.5 * top)
        lab, n = label(mask, connectivity=2, return_num=True)
        if n == 0:
            continue
        skel = skeletonize(mask)
        counts = np.bincount(lab[skel], minlength=n + 1)
        w_est = width_px or s * factor * _WIDTH_PER_SIGMA
        for k in np.argsort(counts)[::-1][:3]:
            if k == 0 or counts[k] == 0:
                continue
            length = float(counts[k]) * factor
            if length < MIN_LENGTH_WIDTHS * max(w_est, 2.0):
                continue
            rc = np.argwhere(skel & (lab == k))
            out.append(_Candidate(bright=bright, skeleton_rc=rc, factor=float(factor),
                                  width_px=w_est, length_px=length))
    return out


# ----------------------------------------------------------------------------------------
# 2. Skeleton → ordered centre line


_NEIGH = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _graph(rc: np.ndarray) -> dict:
    """8-connected pixel graph of skeleton pixels, without the diagonal shortcuts that make
    triangles at corners (a diagonal step is dropped when a 4-connected detour exists)."""
    pix = {(int(r), int(c)) for r, c in rc}
    adj = {p: set() for p in pix}
    for r, c in pix:
        for dr, dc in _NEIGH:
            q = (r + dr, c + dc)
            if q not in pix:
                continue
            if dr and dc and ((r + dr, c) in pix or (r, c + dc) in pix):
                continue
            adj[(r, c)].add(q)
    return adj


def _walk(adj: dict, start, first=None):
    """Pixels from ``start`` along degree-2 pixels until an end or a junction (inclusive)."""
    path = [start]
    prev, cur = start, first
    if cur is None:
        nb = list(adj[start])
        if not nb:
            return path
        cur = nb[0]
    while True:
        path.append(cur)
        nxt = [q for q in adj[cur] if q != prev]
        if len(adj[cur]) != 2 or not nxt or nxt[0] == start:
            return path
        prev, cur = cur, nxt[0]


def _prune(adj: dict, spur_px: float) -> dict:
    """Remove side branches (end → junction) shorter than ``spur_px``; repeat until stable."""
    adj = {p: set(q) for p, q in adj.items()}
    changed = True
    while changed:
        changed = False
        ends = [p for p, q in adj.items() if len(q) == 1]
        for e in ends:
            if e not in adj or len(adj[e]) != 1:
                continue
            br = _walk(adj, e)
            tip = br[-1]
            if len(adj[tip]) >= 3 and len(br) - 1 < spur_px:
                for p in br[:-1]:
                    for q in adj.pop(p):
                        if q in adj:
                            adj[q].discard(p)
                changed = True
        # isolated pixels
        for p in [p for p, q in adj.items() if not q]:
            adj.pop(p)
    return adj


def _max_arms(adj: dict, junctions: list, near_px: float) -> int:
    """The most lines that leave one cluster of junction pixels (junctions closer than
    ``near_px`` form one: thick lines crossing at a slant skeletonise into two T-junctions
    joined by a short link): 3 at a branch, 4 where the path crosses itself."""
    js = np.array(junctions, dtype=np.float64)
    label = list(range(len(junctions)))
    for i in range(len(junctions)):
        for k in range(i):
            if np.hypot(*(js[i] - js[k])) <= near_px and label[i] != label[k]:
                old, new = label[i], label[k]
                label = [new if v == old else v for v in label]
    where = {p: label[i] for i, p in enumerate(junctions)}
    arms: dict = {}
    for p, lab in where.items():
        for q in adj[p]:
            end = _walk(adj, p, q)[-1]
            if where.get(end) == lab:
                continue            # a link inside the cluster
            arms[lab] = arms.get(lab, 0) + 1
    return max(arms.values(), default=0)


def order_skeleton(skeleton_rc: np.ndarray, *, spur_px: float) -> tuple[np.ndarray, bool]:
    """Order skeleton pixels into one centre line.

    Parameters
    ----------
    skeleton_rc : (K, 2) int
        Row, column of the skeleton pixels of one connected bead.
    spur_px : float, keyword-only
        Side branches shorter than this are pruned first.

    Returns
    -------
    points_xy : (N, 2) float64
        The ordered line, x then y (not yet oriented).
    closed : bool

    Raises
    ------
    TeachError
        The skeleton still branches or crosses itself after pruning.
    """
    adj = _prune(_graph(skeleton_rc), spur_px)
    if not adj:
        raise TeachError("no bead found: the candidate's centre line vanished when its short "
                         "branches were pruned; give --width-mm, or the path with --from-points")
    deg = {p: len(q) for p, q in adj.items()}
    junctions = [p for p, d in deg.items() if d >= 3]
    ends = [p for p, d in deg.items() if d == 1]
    if junctions:
        r, c = np.mean(np.array(junctions), axis=0)
        what = "crosses itself" if _max_arms(adj, junctions, spur_px) >= 4 else "branches"
        raise TeachError(
            f"the bead's path {what} near x={c:.0f}, y={r:.0f} px ({len(junctions)} junction "
            f"pixels after pruning branches shorter than {spur_px:.0f} px); teach from a part "
            f"whose bead does not touch or cross itself there, or give the path with "
            f"--from-points")
    if len(ends) == 0:
        start = min(adj)
        line = _walk(adj, start)
        if line[-1] == start:
            line = line[:-1]
        closed = True
        if len(line) < len(adj):
            raise TeachError(f"the bead's centre line falls into {len(adj) - len(line)} more "
                             f"pixels than one loop; teach from a cleaner image or use --from-points")
    elif len(ends) == 2:
        line = _walk(adj, min(ends))
        closed = False
    else:
        raise TeachError(f"the bead's centre line has {len(ends)} loose ends; expected a loop "
                         f"or one line; teach from a cleaner image or use --from-points")
    rc = np.array(line, dtype=np.float64)
    return rc[:, ::-1].copy(), closed


def _orient(points_xy: np.ndarray, closed: bool, start_xy=None) -> np.ndarray:
    """Clockwise on screen (positive shoelace area in image coordinates; normals then point
    into a loop), starting at ``start_xy`` or, for a loop, below its centroid (the
    generator's and a windshield's usual start: bottom middle)."""
    p = points_xy
    x, y = p[:, 0], p[:, 1]
    area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    if area < 0:
        p = p[::-1]
    if closed:
        if start_xy is not None:
            i = int(np.argmin(np.hypot(*(p - np.asarray(start_xy, float)).T)))
        else:
            cx = float(np.mean(p[:, 0]))
            below = p[:, 1] > np.mean(p[:, 1])
            cand = np.flatnonzero(below)
            i = int(cand[np.argmin(np.abs(p[cand, 0] - cx))]) if len(cand) else 0
        p = np.roll(p, -i, axis=0)
    elif start_xy is not None:
        s = np.asarray(start_xy, float)
        if np.hypot(*(p[-1] - s)) < np.hypot(*(p[0] - s)):
            p = p[::-1]
    return np.ascontiguousarray(p)


def _resample(points_xy: np.ndarray, closed: bool, step_px: float) -> np.ndarray:
    st = build_stations(points_xy, closed=closed, spacing_px=step_px, interpolation="linear")
    return st.xy


def _smooth_line(points_xy: np.ndarray, closed: bool, window_px: float) -> np.ndarray:
    """Moving average over ``window_px`` of arc length (stations 1 px apart)."""
    st = build_stations(points_xy, closed=closed, spacing_px=1.0, interpolation="linear")
    k = max(round(window_px) | 1, 3)
    mode = "wrap" if closed else "nearest"
    xy = ndimage.uniform_filter1d(st.xy, k, axis=0, mode=mode)
    if not closed:
        xy[0], xy[-1] = st.xy[0], st.xy[-1]
    return xy


# ----------------------------------------------------------------------------------------
# 3./4. Measuring along a path


@dataclass(frozen=True, eq=False)
class _Measure:
    offset_px: np.ndarray     # (N,) NaN where no bead
    width_px: np.ndarray
    contrast: np.ndarray
    symmetry: float           # median |left flank - right flank| / contrast
    roundness: float          # spread of the median profile across the bead's core / contrast
    stations: Stations


def _measure(gray: np.ndarray, stations: Stations, *, bright: bool, width_px: float,
             half_px: float | None = None, max_offset_px: float | None = None) -> _Measure:
    """The bead's edges along ``stations``; ``half_px`` and ``max_offset_px``: the recipe's
    search half-width and offset limit, px, where they are known (the profiles and the
    frame's blur are then read as the inspector will read them)."""
    half = half_px if half_px is not None else 1.2 * width_px + 6.0
    # sampled and smoothed as the inspector will, so that the taught width is what it measures
    maps = build_maps(stations, half_width_px=half, step_px=STEP_PX)
    prof_mn = sample_profiles(gray, maps)
    # the blur read on a clean step beside the bead, as the inspector reads it (before the
    # recipe's limit is known, a bead's offset up to half its width assumed)
    probe = build_blur_probe(stations, search_px=half, width_px=width_px,
                             max_offset_px=0.5 * width_px if max_offset_px is None
                             else max_offset_px, step_px=STEP_PX)
    e = find_edges(prof_mn, step_px=STEP_PX, bright=bright, width_px=width_px,
                   smooth_stations=SMOOTH_STATIONS, closed=stations.closed,
                   blur_px=clean_step_blur(gray, probe))
    prof = np.ascontiguousarray(prof_mn.T, dtype=np.float32)       # (N, M): a row per station
    typical = float(np.median(e.contrast[e.found])) if e.found.any() else 0.0
    ok = e.found & (e.contrast >= 0.4 * typical) & (typical > 0)
    w_all = (e.right_px - e.left_px).astype(np.float64)
    if ok.any():
        # a much wider run is the bead merged with a neighbour of its polarity (a dark band
        # beside a dark bead, glare beside a bright one): not the bead's centre
        w_med = float(np.median(w_all[ok]))
        ok &= np.abs(w_all - w_med) <= 0.3 * w_med
    off = np.where(ok, 0.5 * (e.left_px.astype(np.float64) + e.right_px), np.nan)
    wid = np.where(ok, (e.right_px - e.left_px).astype(np.float64), np.nan)
    # flank levels just outside each edge, to tell a bead from a strip between two unequal levels
    t = maps.t_px
    sym = np.inf
    if ok.any():
        rows = np.flatnonzero(ok)
        p = prof[rows] if bright else -prof[rows]
        gap = 0.25 * width_px + 2.0
        lpos = e.left_px[rows] - gap
        rpos = e.right_px[rows] + gap
        li = np.clip(np.searchsorted(t, lpos), 0, len(t) - 1)
        ri = np.clip(np.searchsorted(t, rpos), 0, len(t) - 1)
        lv = p[np.arange(len(rows)), li]
        rv = p[np.arange(len(rows)), ri]
        sym = float(np.median(np.abs(lv - rv) / np.maximum(e.contrast[rows], 1e-3)))
        # a bead is rounded: its shading and highlight vary across it; a strip of frit
        # between two brighter things is flat
        inner = np.abs(t) <= 0.3 * float(np.median(wid[rows]))
        core = np.median(p[:, inner], axis=0)
        round_ = float((core.max() - core.min()) / max(typical, 1e-3))
    else:
        round_ = 0.0
    return _Measure(offset_px=off, width_px=wid, contrast=e.contrast, symmetry=sym,
                    roundness=round_, stations=stations)


def _smooth_along(values: np.ndarray, closed: bool, window: int) -> np.ndarray:
    """Robust smoothing along the path: a running median over ``2 window`` stations (a short
    stretch of wrong measurements, glare or dust, does not drag the line), then a running
    mean over ``window``. NaN where too few stations have a value."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return np.full(len(v), np.nan)
    idx = np.arange(len(v))
    if closed:
        n = len(v)
        filled = np.interp(idx, np.concatenate([idx[ok] - n, idx[ok], idx[ok] + n]),
                           np.tile(v[ok], 3))
    else:
        filled = np.interp(idx, idx[ok], v[ok])
    mode = "wrap" if closed else "nearest"
    k = max(int(window) | 1, 1)
    med = ndimage.median_filter(filled, size=2 * k + 1, mode=mode)
    mean = ndimage.uniform_filter1d(med, k, mode=mode)
    cover = ndimage.uniform_filter1d(ok.astype(np.float64), 2 * k + 1, mode=mode)
    return np.where(cover > 0.2, mean, np.nan)


def _long_runs(missing: np.ndarray, closed: bool, min_len: int) -> list[tuple[int, int]]:
    """Runs ``(start, stop)`` (stop exclusive, may exceed ``len`` on a loop: wrapped) of
    ``missing`` stations at least ``min_len`` long, with a measured station on both sides."""
    n = len(missing)
    if missing.all():
        return []
    runs = find_runs(missing, closed=closed)
    out = []
    for (s0, s1), length in zip(runs, run_lengths(runs, n)):
        if length < min_len or (not closed and (s0 == 0 or s1 == n - 1)):
            continue
        out.append((int(s0), int(s0 + length)))
    return out


def _bridge(pts: np.ndarray, runs, closed: bool) -> np.ndarray:
    """Replace each run of points by a cubic Hermite curve from the point before it to the
    point after it, with the line's directions there (a bend of the path stays a bend)."""
    n = len(pts)
    out = pts.copy()
    for s0, s1 in runs:
        i0, i1 = (s0 - 1) % n, s1 % n
        p0, p1 = pts[i0], pts[i1]
        d0 = pts[i0] - pts[(i0 - 2) % n] if closed or i0 >= 2 else pts[1] - pts[0]
        d1 = pts[(i1 + 2) % n] - pts[i1] if closed or i1 + 2 < n else pts[-1] - pts[-2]
        span = float(s1 - s0 + 1)                       # stations 1 px apart
        t0 = d0 / max(np.hypot(*d0), 1e-9) * span
        t1 = d1 / max(np.hypot(*d1), 1e-9) * span
        u = (np.arange(s0, s1) - (s0 - 1))[:, None] / span
        h00, h10 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u
        h01, h11 = -2 * u**3 + 3 * u**2, u**3 - u**2
        out[np.arange(s0, s1) % n] = h00 * p0 + h10 * t0 + h01 * p1 + h11 * t1
    return out


def refine_centre_line(gray: np.ndarray, points_xy: np.ndarray, *, closed: bool, bright: bool,
                       width_px: float, mm_per_px: float, iterations: int = 2):
    """Move a rough centre line onto the bead's measured centre (midpoint of its edges).

    Parameters
    ----------
    gray : (H, W) uint8
    points_xy : (N, 2) float
        Rough centre line, px, ordered.
    closed, bright : bool, keyword-only
    width_px : float, keyword-only
        Width estimate (the edge finder searches 0.5–2× this).
    mm_per_px : float, keyword-only
        Scale (sets the smoothing along the path).
    iterations : int, keyword-only

    Returns
    -------
    points_xy : (M, 2) float64
        The refined line, resampled every 1 px.
    measure : _Measure
        The last measurement (widths, offsets) at the refined line's stations.
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    window = max(round(SMOOTH_MM / mm_per_px), 3)
    m = None
    for _ in range(iterations):
        st = build_stations(pts, closed=closed, spacing_px=1.0)
        m = _measure(gray, st, bright=bright, width_px=width_px)
        if not np.isfinite(m.offset_px).any():
            raise TeachError("no bead found along the candidate path: no edges could be "
                             "measured across it; check --polarity and --width-mm")
        # measurements off the long trend by more than a pixel (or a sixth of the width)
        # are the edge finder caught by a neighbour, not the bead moving: the bead's own
        # wobble is slow
        raw = m.offset_px.copy()
        trend = _smooth_along(raw, closed, 4 * window)
        raw[np.abs(raw - trend) > max(1.0, width_px / 6.0)] = np.nan
        off = _smooth_along(raw, closed, window)
        pts = st.xy + np.where(np.isfinite(off), off, 0.0)[:, None] * st.normal_xy
        # a long stretch without a measurement (the bead merged with a neighbour, split by
        # its highlight) does not keep the rough line there, which the same neighbour pulled:
        # it is bridged smoothly from the refined line on both sides
        pts = _bridge(pts, _long_runs(~np.isfinite(raw), closed, window), closed)
        good = np.isfinite(m.width_px)
        if good.any():
            width_px = float(np.median(m.width_px[good]))
    st = build_stations(pts, closed=closed, spacing_px=1.0)
    m = _measure(gray, st, bright=bright, width_px=width_px)
    return st.xy, m


def _line_samples(gray: np.ndarray, origin, along, across, s: np.ndarray, t: np.ndarray):
    """Grey levels (len(s), len(t)) float32 at ``origin + s·along + t·across`` (bilinear, on a
    float copy of the patch they fall in, so levels keep their fractions)."""
    xy = (np.asarray(origin, np.float64)[None, None, :] + s[:, None, None] * along[None, None, :]
          + t[None, :, None] * across[None, None, :])
    h, w = gray.shape
    lo = np.clip(np.floor(xy.reshape(-1, 2).min(axis=0)).astype(int) - 1, 0, [w - 1, h - 1])
    hi = np.clip(np.ceil(xy.reshape(-1, 2).max(axis=0)).astype(int) + 2, 1, [w, h])
    patch = gray[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float32)
    m = (xy - lo[None, None, :]).astype(np.float32)
    return cv2.remap(patch, m, None, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _crossing(v: np.ndarray, level: float, sign: float, run: int) -> float | None:
    """Index (fractional) where ``v`` leaves the bead for good: the first sample from which
    ``run`` samples in a row lie on the background's side of ``level`` (``sign``: +1 when the
    background is above it), interpolated with the sample before. None when ``v`` does not
    start on the bead's side or never leaves it."""
    out = sign * (v - level) > 0
    if out[0]:
        return None
    ok = np.convolve(out.astype(np.int32), np.ones(run, np.int32), "valid") == run
    j = int(np.argmax(ok)) if ok.any() else -1
    if j <= 0:
        return None
    a, b = float(v[j - 1]), float(v[j])
    return j - 1 + (level - a) / (b - a) if b != a else float(j)


def _end_cap_centre(gray: np.ndarray, pts: np.ndarray, *, bright: bool, width_px: float,
                    step: float = 0.25) -> float | None:
    """How far beyond the line's last point (px along its tangent; negative: before it) the
    bead's rounded end cap is centred — where a robot starts or stops laying it, and where
    the footprint ends half a width farther on.

    A cap is the bead's cross-section turned about the end, so every grey level runs round it
    on a circle whose radius is that level's half-width across the bead. Measured: the
    profile across the bead just before the end, averaged over a width of path (its level
    half-way between the bead and the background, and that level's half-width h); then
    along two lines parallel to the path at ±0.4 h (clear of a dark bead's bright crest) where
    that level is crossed beyond the end, x; the centre is x - √(h² - y²) back. Levels and
    crossings are read at the same grey level, so the shading that sets the edge finder's
    bias does not enter. None: no clear cap (the line runs on into something else)."""
    w = float(width_px)
    k = int(min(max(round(w), 3), len(pts) - 1))
    if k < 3:
        return None
    tangent = pts[-1] - pts[-1 - k]
    norm = float(np.hypot(*tangent))
    if norm < 1e-9:
        return None
    tangent = tangent / norm
    normal = np.array([-tangent[1], tangent[0]])
    # across, just before the end (the straight bead, not the cap)
    t = np.arange(-1.6 * w, 1.6 * w + step / 2, step)
    across = _line_samples(gray, pts[-1], tangent, normal, np.arange(-1.5 * w, -0.5 * w, 1.0), t)
    c = across.mean(axis=0)
    core = np.abs(t) <= 0.3 * w
    side = np.abs(t) >= 1.1 * w
    bead_level = float(np.median(c[core]))
    bg = float(np.median(c[side]))
    sign = -1.0 if bright else 1.0          # the background's side of the level
    if sign * (bg - bead_level) <= 0:
        return None
    level = 0.5 * (bead_level + bg)
    run = max(round(0.25 * w / step), 2)
    mid = len(t) // 2
    right = _crossing(c[mid:], level, sign, run)
    left = _crossing(c[mid::-1], level, sign, run)
    if right is None or left is None:
        return None
    h = 0.5 * (right + left) * step
    if not 0.2 * w <= h <= 0.8 * w:
        return None
    # along the path, on both sides of the axis, from a width before the end to 5 widths on
    y = 0.4 * h
    s = np.arange(-w, 5.0 * w + step / 2, step)
    along = _line_samples(gray, pts[-1], normal, tangent, np.array([-y, y]), s)
    xs = [_crossing(v, level, sign, run) for v in along]
    if any(x is None for x in xs):
        return None
    x = float(np.mean(xs)) * step - w
    centre = x - float(np.sqrt(h * h - y * y))
    return centre if -w <= centre <= 4.0 * w else None


def _place_ends(gray: np.ndarray, pts: np.ndarray, *, bright: bool, width_px: float) -> np.ndarray:
    """An open line (1 px apart) ended at the centres of the bead's end caps
    (:func:`_end_cap_centre`). The skeleton's ends stop short of them (thinning eats into a
    rounded end, and the smoothing along the path pulls the ends in: by up to 10 px on a 12 px
    bead, which left the last centimetre of the bead uninspected), and the last width of the
    line, refined across the cap rather than the bead, may hook or fold back. So the last
    width is dropped and the line runs on along its own curve to the cap's centre. An
    end without a clear cap stays as it was."""
    out = np.asarray(pts, dtype=np.float64)
    k = int(max(round(width_px), 3))
    for _ in range(2):                      # the last end, then (reversed) the first
        if len(out) > 4 * k:
            cut = out[:-k]
            c = _end_cap_centre(gray, cut, bright=bright, width_px=width_px)
            if c is not None and c > 0:
                # on along the line's own curve (a quadratic in arc length over its last three
                # widths): a straight run-on from a corner's bend strays by κc²/2
                u = np.arange(3 * k, dtype=np.float64)
                fit = np.polyfit(u, cut[-3 * k:], 2)
                steps = 3 * k - 1 + np.append(np.arange(1.0, c, 1.0), c)
                ext = np.stack([np.polyval(fit[:, j], steps) for j in range(2)], axis=1)
                out = np.vstack([cut, ext])
        out = out[::-1]
    return out


# ----------------------------------------------------------------------------------------
# 5. Reference edge


def find_reference_edge(gray: np.ndarray, stations: Stations, *, width_px: float,
                        mm_per_px: float, reach_mm: float = 30.0) -> dict | None:
    """The strongest step that runs beside the bead at a constant distance, or None.

    Parameters
    ----------
    gray : (H, W) uint8
    stations : Stations
        The taught centre line's stations.
    width_px : float, keyword-only
        The bead's width, px (its own edges are not candidates).
    mm_per_px : float, keyword-only
    reach_mm : float, keyword-only
        How far beyond the bead's edges to look, mm.

    Returns
    -------
    dict or None
        ``{"points": [[x, y], ...], "closed": bool, "polarity": "rising"|"falling",
        "search_px": float}`` (the ``reference.edge`` of a recipe), or None when no step is
        strong and steady enough along at least 80 % of the path.
    """
    sub = stations
    half = 0.5 * width_px + reach_mm / mm_per_px
    maps = build_maps(sub, half_width_px=half, step_px=0.5)
    prof = profiles_by_station(gray, maps)
    prof = cv2.GaussianBlur(prof, (7, 1), 1.2)
    prof = ndimage.uniform_filter1d(prof, 5, axis=0, mode="wrap" if sub.closed else "nearest")
    g = np.zeros_like(prof)
    g[:, 1:-1] = (prof[:, 2:] - prof[:, :-2])           # per 1 px (two 0.5 px samples)
    t = maps.t_px
    # the bead and its blur are not the reference: keep clear of its own edges
    clear = 0.5 * width_px + 4.0
    outside = np.abs(t) > clear
    consensus = np.median(g, axis=0)
    score = np.where(outside, np.abs(consensus), 0.0)
    j = int(np.argmax(score))
    if score[j] <= 0:
        return None
    sign = 1.0 if consensus[j] > 0 else -1.0
    # noise of the gradient, from its spread far from any consistent step
    noise = 1.4826 * float(np.median(np.abs(g[:, outside] - consensus[outside])))
    if not abs(consensus[j]) > 4.0 * max(noise, 0.5) / np.sqrt(5):
        return None
    win = np.abs(t - t[j]) <= 3.0
    gs = sign * g[:, win]
    k = np.argmax(gs, axis=1)
    rows = np.arange(len(gs))
    col = np.flatnonzero(win)[0] + k
    ga, gb, gc = (np.maximum(sign * g[rows, np.clip(col + d, 0, len(t) - 1)], 1e-3) for d in (-1, 0, 1))
    la, lb, lc = np.log(ga), np.log(gb), np.log(gc)
    curv = la - 2 * lb + lc
    bend = curv < -1e-6
    delta = np.where(bend, 0.5 * (la - lc) / np.where(bend, curv, -1.0), 0.0)
    pos = t[col] + np.clip(delta, -0.5, 0.5) * 0.5
    strong = gb >= 0.5 * abs(consensus[j])
    steady = np.abs(pos - np.median(pos[strong])) <= 1.5 if strong.any() else strong
    ok = strong & steady
    if ok.mean() < 0.8:
        return None
    window = max(round(SMOOTH_MM / mm_per_px), 3)
    pos_s = _smooth_along(np.where(ok, pos, np.nan), sub.closed, window)
    pos_s = np.where(np.isfinite(pos_s), pos_s, float(np.median(pos[ok])))
    pts = sub.xy + pos_s[:, None] * sub.normal_xy
    step = max(round(POINT_STEP_PX / sub.spacing_px), 1)
    pts = pts[::step]
    # distance to the bead's nearer edge, less the blur of both: the fine search window
    gap = abs(float(np.median(pos[ok]))) - 0.5 * width_px
    search = float(np.clip(0.5 * gap - 1.0, 2.0, 8.0))
    return {"points": np.round(pts, 3).tolist(), "closed": bool(sub.closed),
            "polarity": "rising" if sign > 0 else "falling", "search_px": round(search, 2)}


# ----------------------------------------------------------------------------------------
# The whole teach


def find_centre_line(gray: np.ndarray, *, mm_per_px: float, width_px: float | None = None,
                     polarity: str = "auto", start_xy=None) -> TaughtPath:
    """The bead's centre line in one image of a good part.

    Parameters
    ----------
    gray : (H, W) uint8
    mm_per_px : float, keyword-only
    width_px : float or None, keyword-only
        Nominal width if known; None estimates it.
    polarity : {"auto", "bright", "dark"}, keyword-only
    start_xy : (x, y) or None, keyword-only
        Picks the bead nearest this point when there are several, and where the path
        starts (a loop) or which end comes first (an open path).

    Raises
    ------
    TeachError
        No bead, several candidate beads, a path that crosses itself or branches.
    """
    if polarity not in ("auto", "bright", "dark"):
        raise ValueError(f"polarity must be 'auto', 'bright' or 'dark'; got {polarity!r}")
    pols = (True, False) if polarity == "auto" else (polarity == "bright",)
    cands = _candidates(gray, mm_per_px=mm_per_px, width_px=width_px, polarities=pols)
    if not cands:
        what = "bright or dark" if polarity == "auto" else polarity
        raise TeachError(f"no bead found: no long, thin {what} line in the image; check the "
                         f"image, --polarity and --width-mm (and --mm-per-px: widths are "
                         f"searched in mm)")
    traced, errors = [], []
    for c in cands:
        try:
            traced.append(_trace(gray, c, mm_per_px=mm_per_px, start_xy=start_xy))
        except TeachError as exc:
            errors.append((c.length_px, exc))
    traced = [t for t in traced if t[0].coverage >= 0.5]
    if not traced:
        if errors:
            raise max(errors, key=lambda e: e[0])[1]
        raise TeachError("no bead found: the candidate lines have no measurable edges; give "
                         "--polarity and --width-mm, or the path with --from-points")
    # a bead is long: weigh the score by length, so a piece of it found at a smaller scale
    # does not beat the whole of it
    longest = max(float(t[0].length_px) for t in traced)
    traced = [(t[0], t[1] * t[0].length_px / longest) for t in traced]
    traced.sort(key=lambda t: t[1], reverse=True)
    # one line found at two scales, or a piece of it, is one candidate
    distinct = []
    for t in traced:
        if not any(_same_line(t[0], u[0]) for u in distinct):
            distinct.append(t)
    joined = _joined(gray, distinct, mm_per_px=mm_per_px, start_xy=start_xy)
    if joined is not None:
        # the pieces are one bead: its rivals are the candidates left
        distinct = [joined[0]] + [t for i, t in enumerate(distinct) if i not in joined[1]]
    best = distinct[0]
    if start_xy is not None:
        s = np.asarray(start_xy, float)
        near = [t for t in distinct if t[1] >= 0.3 * best[1]]
        return min(near, key=lambda t: float(np.min(np.hypot(*(t[0].points_xy - s).T))))[0]
    rivals = [t for t in distinct[1:] if t[1] >= RIVAL_SCORE * best[1]]
    if rivals:
        centres = ", ".join(f"{t[0].polarity} line through ({t[0].points_xy[0][0]:.0f}, "
                            f"{t[0].points_xy[0][1]:.0f})" for t in [best] + rivals)
        raise TeachError(f"several candidate beads of similar contrast: {centres} px; pick one "
                         f"with --start x,y (a point on or near it), or give --polarity")
    return best[0]


def _joined(gray, distinct: list, *, mm_per_px: float, start_xy):
    """The best candidate joined end to end with the other open pieces of the same bead, or
    None: ``((path, score), indices of the pieces used)``. A glare stripe across a bead
    breaks its line, and a loop crossed twice comes out as two open lines (normal dark seed
    66: two halves of 2.6 and 2.5 m, refused as "several candidate beads"). A piece joins
    where it passes within ``BRIDGE_WIDTHS`` widths of an end of the line so far (one of its
    ends, or its middle where the two overlap), with the same polarity and a width within a
    quarter of it, and the bead along the straight line between; the line goes on along the
    piece, the way that leaves it. The joined line is refined again (and closed where its
    own ends meet, :func:`_bridged_loop`)."""
    from scipy.spatial import cKDTree

    first = distinct[0][0]
    if first.closed:
        return None
    line = first.points_xy
    used = [0]
    bright = first.polarity == "bright"
    reach = BRIDGE_WIDTHS * first.width_px
    refused = set()
    while True:
        best = None
        for i, (t, _) in enumerate(distinct):
            if i in used or i in refused or t.closed or t.polarity != first.polarity or \
                    abs(t.width_px - first.width_px) > 0.25 * first.width_px:
                continue
            # the piece's point nearest to each end of the line: one of its own ends across
            # a gap, or a point of its middle where the two run side by side past the break
            # (a bead split by its highlight into two thin lines, broken at different places)
            tree = cKDTree(t.points_xy)
            for flip_line in (False, True):
                a = line[0] if flip_line else line[-1]
                d, j = tree.query(a)
                if d <= reach and (best is None or d < best[0]):
                    best = (float(d), i, flip_line, int(j), a)
        if best is None:
            break
        d, i, flip_line, j, a = best
        b = distinct[i][0].points_xy[j]
        if d > 2.0 * first.width_px and not _bead_between(gray, a, b, bright=bright,
                                                         width_px=first.width_px):
            # two beads laid end to end with bare surface between stay two candidates
            refused.add(i)
            continue
        line = line[::-1] if flip_line else line
        pts = distinct[i][0].points_xy
        # on along the piece from there, the way that leaves the line
        ahead, behind = pts[j:], pts[:j + 1][::-1]
        tree = cKDTree(line)
        piece = ahead if tree.query(ahead[-1])[0] >= tree.query(behind[-1])[0] else behind
        # where the two run side by side (each was run on past the break towards an end cap
        # that is not there), the piece's part within a width of the line is dropped
        far = np.flatnonzero(tree.query(piece)[0] > first.width_px)
        used.append(i)
        if len(far):
            piece = piece[far[0]:]
            line = np.vstack([_without_tail_near(line, piece, first.width_px, 1), piece])
    if len(used) == 1:
        return None
    # the last piece's far end may run on alongside the first's (both past a break): that
    # part is dropped, so the ends meet as a loop's do
    half = len(line) // 2
    line = _without_tail_near(line, line[:max(half, 2)], first.width_px, half)
    line = build_stations(line, closed=False, spacing_px=1.0, interpolation="linear").xy
    line = _orient(_smooth_line(line, False, max(2.0 * first.width_px, 5.0)), False, start_xy)
    try:
        return _refined(gray, line, False, bright=bright, w0=first.width_px,
                        mm_per_px=mm_per_px, start_xy=start_xy), used
    except TeachError:
        return None


def _without_tail_near(line: np.ndarray, other: np.ndarray, width_px: float,
                       keep_min: int) -> np.ndarray:
    """``line`` without the run of its last points that lie within ``width_px`` of ``other``
    (its first ``keep_min`` points kept whatever)."""
    from scipy.spatial import cKDTree

    away = np.flatnonzero(cKDTree(other).query(line[keep_min:])[0] > width_px)
    return line[:keep_min + (int(away[-1]) + 1 if len(away) else 0)]


def _bead_between(gray, a, b, *, bright: bool, width_px: float) -> bool:
    """Whether the bead runs along the straight line from ``a`` to ``b`` (px): its edges
    found across at least 80 % of it."""
    pts = np.array([a, b], dtype=np.float64)
    st = build_stations(pts, closed=False, spacing_px=1.0, interpolation="linear")
    if len(st) < 3:
        return True
    m = _measure(gray, st, bright=bright, width_px=width_px)
    return float(np.mean(np.isfinite(m.width_px))) >= 0.8


def _same_line(a: TaughtPath, b: TaughtPath) -> bool:
    """Whether two found lines are one bead: most of the shorter lies within half a width of
    the longer (the same line found at two scales, or a piece of it)."""
    from scipy.spatial import cKDTree

    short, long_ = (a, b) if a.length_px <= b.length_px else (b, a)
    pts = short.points_xy[:: max(len(short.points_xy) // 200, 1)]
    d, _ = cKDTree(long_.points_xy).query(pts)
    return float(np.median(d)) <= 0.5 * max(a.width_px, b.width_px)


def _score(contrast: float, coverage: float, m: _Measure) -> float:
    """How much a measured line looks like a bead: contrast, found all along, standing out
    alike on both sides, rounded across (a flat strip between two brighter things, such as
    the frit between a bright bead and the fixture, is not a bead)."""
    return contrast * coverage * (0.5 + min(m.roundness, 0.5)) / (1.0 + 2.0 * m.symmetry)


def _profile_width(gray: np.ndarray, st: Stations, *, bright: bool, width_px: float) -> float:
    """The bead's width from the median profile across a rough centre line: between the
    half-levels from its peak down to the nearest low on each side. The ridge scale alone
    misjudges a bead beside a band of its own polarity; this starts the edge finder right."""
    maps = build_maps(st, half_width_px=2.0 * width_px + 4.0, step_px=0.5)
    prof = profiles_by_station(gray, maps)
    p = np.median(prof if bright else -prof, axis=0)
    p = np.convolve(p, np.ones(3) / 3, mode="same")
    t = maps.t_px
    near = np.flatnonzero(np.abs(t) <= 0.5 * width_px + 1.0)
    k = int(near[np.argmax(p[near])])
    ends = []
    for d in (-1, 1):
        j = k
        while 0 < j + d < len(p) - 1 and p[j + d] <= p[j]:
            j += d
        if j == k:
            # no fall on this side (a higher sample beyond the peak): no half level
            return width_px
        half = 0.5 * (p[k] + p[j])
        i = k
        while i != j and p[i + d] > half:
            i += d
        # linear crossing between i - d (above) and i (at or below) — or, where the walk
        # stopped before j, extrapolated from those two
        a, b = p[i - d], p[i]
        f = (a - half) / (a - b) if a != b else 0.5
        if not -4.0 <= f <= 6.0:
            # more than 2 px beyond the pair: two samples of a flat top a rounding apart
            # (121.666...67 and 121.666...66) gave a width of 6e12 px, a 205 TiB allocation
            # and a MemoryError (generate --seed 48 --ng-fraction 0, image 0)
            return width_px
        ends.append(t[i - d] + d * f * 0.5)
    w = float(ends[1] - ends[0])
    return w if w > 1.0 else width_px


def _folded_half(xy: np.ndarray, width_px: float) -> np.ndarray | None:
    """Indices of one half of a loop that runs out along a line and back along the same line
    (most stations have a station far along the loop within half a width), or None."""
    from scipy.spatial import cKDTree

    n = len(xy)
    if n < 8:
        return None
    step = max(n // 400, 1)
    idx = np.arange(0, n, step)
    far = max(int(3 * width_px), 4)
    tree = cKDTree(xy)
    near = tree.query_ball_point(xy[idx], r=0.5 * width_px)
    partner = np.full(len(idx), -1)
    for k, (i, cand) in enumerate(zip(idx, near)):
        c = np.asarray(cand, dtype=np.int64)
        arc = np.minimum(np.abs(c - i), n - np.abs(c - i))
        c = c[arc > far]
        if len(c):
            partner[k] = c[np.argmin(np.hypot(*(xy[c] - xy[i]).T))]
    if np.mean(partner >= 0) < 0.6:
        return None
    # the fold ends are where a station and its partner meet along the loop
    has = partner >= 0
    gap = np.abs(idx[has] - partner[has])
    gap = np.minimum(gap, n - gap)
    first = int(idx[has][np.argmin(gap)])
    return (first + np.arange(n // 2)) % n


def _bead_stretch(found: np.ndarray, width_px: float) -> np.ndarray | None:
    """Indices of the stretch of a loop that has the bead, when the bead is missing along one
    stretch of at least a quarter of it (None otherwise: a loop, perhaps with short gaps).

    ``found`` per station (1 px apart); isolated finds inside the missing stretch (a few
    widths) do not split it.
    """
    n = len(found)
    k = max(int(4 * width_px) | 1, 3)
    missing = ndimage.uniform_filter1d((~found).astype(np.float64), k, mode="wrap") > 0.5
    if missing.all() or not missing.any():
        return None
    # the longest circular run of missing stations
    start = int(np.argmin(missing))                     # a station with the bead
    m = np.roll(missing, -start)
    d = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    j = int(np.argmax(b - a))
    if b[j] - a[j] < 0.25 * n:
        return None
    # the bead runs from the end of the missing stretch round to its start
    first = (start + b[j]) % n
    count = n - (b[j] - a[j])
    return (first + np.arange(count)) % n


def _bead_run(found: np.ndarray, width_px: float) -> np.ndarray | None:
    """Indices of the stretch of an open line that has the bead, when the line runs on
    beyond it without the bead (None otherwise: the bead all along, perhaps with short
    gaps).

    ``found`` per station (1 px apart); isolated finds in a stretch without the bead (a few
    widths) do not split it, as in :func:`_bead_stretch`. From the longest run with the bead,
    the stretch grows over each neighbouring run with the bead that is longer than the
    stretch without it between them (a short gap in the bead's line stays in); what lies
    beyond, if at least four widths long, is cut.
    """
    n = len(found)
    k = max(int(4 * width_px) | 1, 3)
    missing = ndimage.uniform_filter1d((~found).astype(np.float64), k, mode="nearest") > 0.5
    if missing.all() or not missing.any():
        return None
    d = np.diff(np.concatenate([[0], (~missing).astype(np.int8), [0]]))
    a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    lo = hi = int(np.argmax(b - a))
    while True:
        if lo > 0 and b[lo - 1] - a[lo - 1] > a[lo] - b[lo - 1]:
            lo -= 1
        elif hi < len(a) - 1 and b[hi + 1] - a[hi + 1] > a[hi + 1] - b[hi]:
            hi += 1
        else:
            break
    # the cut lies within the smoothing's reach of the bead's end; the caller drops the line's
    # last width and runs it on to the end cap's centre (_place_ends). Cut half a window (k)
    # farther in, the run-on was 42 px long and strayed 4 px off the bead (seed 45 dark)
    first = int(a[lo]) if a[lo] >= k else 0
    end = int(b[hi]) if n - b[hi] >= k else n
    if first == 0 and end == n or end - first < k:
        return None
    return np.arange(first, end)


def _unfold_ends(xy: np.ndarray, width_px: float) -> np.ndarray:
    """An open line (1 px apart) without the stretch at either end that runs back along the
    line itself: the skeleton ran on round the bead's end cap and back along its flank, and
    the refinement moved that onto the bead (normal dark seed 45: 18 px of the bead taught
    twice, the path 11 mm too long). The line is cut at the turn. A point lies on the line's
    own way back where it is within half a width of a point more than three widths before it
    along the line (no bead bends that tightly)."""
    from scipy.spatial import cKDTree

    out = np.asarray(xy, dtype=np.float64)
    far = max(int(3 * width_px), 4)
    for _ in range(2):                      # the last end, then (reversed) the first
        n = len(out)
        if n > 3 * far:
            tree = cKDTree(out)
            i = n - 1
            while i > far:
                near = tree.query_ball_point(out[i], r=0.5 * width_px)
                if not any(j < i - far for j in near):
                    break
                i -= 1
            if i < n - 1:
                # the turn: of the points before the way back (within the span that could
                # not be tested), the one farthest from the line's end
                lo = max(i - far, 0)
                turn = lo + int(np.argmax(np.hypot(*(out[lo:i + 1] - out[-1]).T)))
                out = out[:turn + 1]
        out = out[::-1]
    return out


# An open line whose ends lie at most this many widths apart, along at most this fraction
# of its length, is tried as a loop (_bridged_loop)
BRIDGE_WIDTHS = 20.0
BRIDGE_FRACTION = 0.05


def _bridged_loop(gray, pts: np.ndarray, m: _Measure, *, bright: bool, start_px: float,
                  mm_per_px: float):
    """A long open line (measured along it: ``m``) whose ends nearly meet, refined as a loop,
    when the bead is there along the bridge between its ends: ``(points, measure)`` as
    :func:`refine_centre_line` gives them, or None. ``start_px``: the width the refinement
    starts from (as the open line's). The skeleton of a closed bead breaks where something
    crosses it (a glare stripe over a dark bead: normal dark seed 68, a 90 px break at a
    corner, taught as an open bead 72 mm short whose recipe called its own part NG); a break
    within two widths is closed as it is (:func:`_trace` closes those when it orders the
    skeleton)."""
    from scipy.spatial import cKDTree

    good = np.isfinite(m.width_px)
    if np.mean(good) < 0.9:
        return None
    # the bead's measured width (the candidate's first guess may be its ridge's scale)
    width_px = float(np.median(m.width_px[good]))
    gap = float(np.hypot(*(pts[-1] - pts[0])))
    length = float(np.sum(np.hypot(*np.diff(pts, axis=0).T)))
    if not (gap <= BRIDGE_WIDTHS * width_px and gap <= BRIDGE_FRACTION * length):
        return None
    try:
        loop, lm = refine_centre_line(gray, pts, closed=True, bright=bright, width_px=start_px,
                                      mm_per_px=mm_per_px)
    except TeachError:
        return None
    # the bridge: the loop's stations away from the open line (more than a width off it)
    d, _ = cKDTree(pts).query(lm.stations.xy)
    bridge = d > width_px
    if gap > 2.0 * width_px and (bridge.sum() < 0.5 * gap
                                 or np.mean(np.isfinite(lm.width_px[bridge])) < 0.8):
        return None
    return loop, lm


def _trace(gray, cand: _Candidate, *, mm_per_px: float, start_xy) -> tuple[TaughtPath, float]:
    """Order, orient, refine one candidate; returns it and its score (contrast × symmetry ×
    coverage: how much it looks like a bead)."""
    spur = SPUR_WIDTHS * cand.width_px / cand.factor
    line, closed = order_skeleton(cand.skeleton_rc, spur_px=max(spur, 4.0))
    line = line * cand.factor + 0.5 * (cand.factor - 1)
    if not closed and np.hypot(*(line[-1] - line[0])) <= max(2.0 * cand.width_px, 4.0) \
            and len(line) * cand.factor > 20.0 * cand.width_px:
        # a long line whose ends nearly meet is a loop whose skeleton broke where it closes
        # (the start/stop overlap is wider, or the highlight splits it there)
        closed = True
    line = _smooth_line(line, closed, max(2.0 * cand.width_px, 5.0))
    line = _orient(line, closed, start_xy)
    w0 = _profile_width(gray, build_stations(line, closed=closed, spacing_px=2.0),
                        bright=cand.bright, width_px=cand.width_px)
    return _refined(gray, line, closed, bright=cand.bright, w0=w0, mm_per_px=mm_per_px,
                    start_xy=start_xy)


def _refined(gray, line: np.ndarray, closed: bool, *, bright: bool, w0: float,
             mm_per_px: float, start_xy) -> tuple[TaughtPath, float]:
    """A candidate's ordered line refined onto the bead (:func:`refine_centre_line`), cut to
    the bead, closed across a break or ended at its caps; and its score (:func:`_trace`)."""
    pts, m = refine_centre_line(gray, line, closed=closed, bright=bright,
                                width_px=w0, mm_per_px=mm_per_px)
    if closed:
        # A loop with no bead along a quarter of it or more is an open bead whose ends meet
        # through something else (a dark bead's line runs on into the frit's): keep the bead.
        # A loop whose two halves lie on one bead (a bead with a bright core found as two
        # thin dark lines, both refined onto its centre) is that bead, once.
        keep = _folded_half(m.stations.xy, w0)
        if keep is None:
            keep = _bead_stretch(np.isfinite(m.width_px), w0)
        if keep is not None:
            closed = False
            line = _orient(m.stations.xy[keep], False, start_xy)
            pts, m = refine_centre_line(gray, line, closed=False, bright=bright,
                                        width_px=w0, mm_per_px=mm_per_px)
    else:
        # An open line with no bead along a quarter of it or more, beyond the bead: a dark
        # bead's line that runs on from its ends along the frit's edge (normal dark seeds 41
        # and 45: 3.4 and 3.0 m taught for a 1.5 m bead, the taught recipe calling its own
        # part NG): keep the bead
        keep = _bead_run(np.isfinite(m.width_px), w0)
        if keep is not None:
            line = _orient(m.stations.xy[keep], False, start_xy)
            pts, m = refine_centre_line(gray, line, closed=False, bright=bright,
                                        width_px=w0, mm_per_px=mm_per_px)
        else:
            looped = _bridged_loop(gray, pts, m, bright=bright, start_px=w0,
                                   mm_per_px=mm_per_px)
            if looped is not None:
                closed = True
                pts, m = looped
    good = np.isfinite(m.width_px)
    coverage = float(good.mean())
    if not good.any():
        raise TeachError("no bead found: no edges along the candidate line")
    w = float(np.median(m.width_px[good]))
    if not closed:
        pts = _place_ends(gray, _unfold_ends(pts, w), bright=bright, width_px=w)
    spread = 1.4826 * float(np.median(np.abs(m.width_px[good] - w)))
    typical = float(np.median(m.contrast[good]))
    score = _score(typical, coverage, m)
    pts = _orient(pts, closed, start_xy)
    return TaughtPath(points_xy=pts, closed=closed, polarity="bright" if bright else "dark",
                      width_px=w, width_spread_px=spread, coverage=coverage), score


def points_from_csv_text(text: str, *, source: str = "<points>") -> np.ndarray:
    """Path points from CSV text: ``x,y`` per line (px), an optional header, ``#`` comments.

    Raises
    ------
    TeachError
        A line that is not two numbers (after an optional first header line), or fewer than
        two points.
    """
    pts = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.replace(";", ",").replace("\t", ",").split(",") if p.strip()]
        if len(parts) < 2 and " " in line:
            parts = line.split()
        try:
            x, y = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            if not pts and n == 1 or (not pts and all(not c.isdigit() for c in line)):
                continue        # a header
            raise TeachError(f"{source}: line {n}: expected 'x,y' in px; got {raw!r}") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise TeachError(f"{source}: line {n}: x and y must be finite; got {raw!r}")
        pts.append((x, y))
    if len(pts) < 2:
        raise TeachError(f"{source}: needs at least two points (x,y per line, px); got {len(pts)}")
    return np.array(pts, dtype=np.float64)


def teach_recipe(images, *, mm_per_px: float, width_mm: float | None = None,
                 width_tol_mm: float | None = None, max_offset_mm: float | None = None,
                 min_defect_mm: float | None = None, search_mm: float | None = None,
                 polarity: str = "auto", start_xy=None, align: bool = False,
                 points_xy=None, closed: bool | None = None, reference: bool = True,
                 name: str = "taught") -> tuple[Recipe, dict]:
    """A recipe from images of good parts.

    Parameters
    ----------
    images : sequence of ndarray
        Good parts (uint8/uint16 grey or BGR), all of one size; the recipe is in the first
        image's frame, the others are aligned to it and averaged in.
    mm_per_px : float, keyword-only
        Scale on the bead's plane.
    width_mm, width_tol_mm, max_offset_mm, min_defect_mm, search_mm : float, keyword-only
        As in the recipe; None: the width is measured, the rest follow
        :func:`default_tolerances`.
    polarity : {"auto", "bright", "dark"}, keyword-only
    start_xy : (x, y) or None, keyword-only
        Which bead, and where it starts (see :func:`find_centre_line`).
    align : bool, keyword-only
        The recipe's ``align``.
    points_xy : (N, 2) array_like or None, keyword-only
        The path from a robot program or CAD, px: used as given (not refined); the images
        still give the polarity, the width and the reference.
    closed : bool or None, keyword-only
        For ``points_xy``: None decides from the ends (closed when the last point lies
        within two point spacings of the first).
    reference : bool, keyword-only
        Look for a reference edge for alignment and store it (closed paths only).
    name : str, keyword-only

    Returns
    -------
    recipe : Recipe
    info : dict
        What was found: ``polarity``, ``closed``, ``width_mm``, ``width_spread_mm``,
        ``coverage``, ``length_mm``, ``images`` (per image: pose and coverage),
        ``reference`` (``"edge"`` or None).

    Raises
    ------
    TeachError
        No bead, several candidate beads, a path that crosses itself, a later image where
        the part is not found, or images of different sizes.
    """
    if not images:
        raise TeachError("no images to teach from; give at least one image of a good part")
    if not mm_per_px > 0:
        raise ValueError(f"mm_per_px must be > 0; got {mm_per_px!r}")
    grays = [to_gray(im) for im in images]
    size = grays[0].shape
    for i, g in enumerate(grays[1:], 2):
        if g.shape != size:
            raise TeachError(f"image {i} is {g.shape[1]}×{g.shape[0]} px but image 1 is "
                             f"{size[1]}×{size[0]} px; teach from images of one camera")
    gray = grays[0]
    width_px = width_mm / mm_per_px if width_mm else None

    if points_xy is not None:
        pts = np.asarray(points_xy, dtype=np.float64)
        if closed is None:
            d = np.hypot(*np.diff(pts, axis=0).T)
            closed = bool(len(pts) >= 3 and np.hypot(*(pts[-1] - pts[0])) <= 2.0 * max(np.median(d), 1.0))
        if closed and np.hypot(*(pts[-1] - pts[0])) < 1e-9:
            pts = pts[:-1]
        pols = (True, False) if polarity == "auto" else (polarity == "bright",)
        st = build_stations(pts, closed=closed, spacing_px=1.0)
        best = None
        for bright in pols:
            w0 = width_px or _width_guess(gray, st, bright, mm_per_px)
            m = _measure(gray, st, bright=bright, width_px=w0)
            good = np.isfinite(m.width_px)
            if not good.any():
                continue
            score = _score(float(np.median(m.contrast[good])), float(good.mean()), m)
            if best is None or score > best[0]:
                best = (score, bright, m)
        if best is None:
            raise TeachError("no bead found along the given points: no edges across the path; "
                             "check that the points are in px of this image, --polarity and --width-mm")
        _, bright, m = best
        good = np.isfinite(m.width_px)
        w = float(np.median(m.width_px[good]))
        taught = TaughtPath(points_xy=pts, closed=bool(closed), polarity="bright" if bright else "dark",
                            width_px=w, width_spread_px=1.4826 * float(np.median(np.abs(m.width_px[good] - w))),
                            coverage=float(good.mean()))
        refine = False
    else:
        taught = find_centre_line(gray, mm_per_px=mm_per_px, width_px=width_px, polarity=polarity,
                                  start_xy=start_xy)
        refine = True

    bright = taught.polarity == "bright"
    st = build_stations(taught.points_xy, closed=taught.closed, spacing_px=1.0)
    per_image = [{"image": 1, "pose": None, "coverage": round(taught.coverage, 4)}]
    offsets = [np.zeros(len(st))]
    poses = [None]              # each image's pose, where its widths are measured at the end
    # Only on a loop: there a glass cut larger or smaller than the taught one (its edge moved
    # the same way all round) is told apart from the pose; along an open stretch it is not.
    ref = find_reference_edge(gray, st, width_px=taught.width_px, mm_per_px=mm_per_px) \
        if reference and taught.closed else None
    if len(grays) > 1:
        # the later parts are located by the reference edge when there is one: the bead's own
        # wobble would otherwise move them by a tenth of a pixel
        aligner = Aligner(st, size_wh=(size[1], size[0]), bright=bright, width_px=taught.width_px,
                          reference={"edge": ref} if ref is not None else None)
        for i, g in enumerate(grays[1:], 2):
            try:
                pose = aligner.estimate(g)
            except AlignError as exc:
                raise TeachError(f"image {i}: {exc}") from None
            m = _measure(g, st.transformed(pose.matrix), bright=bright, width_px=taught.width_px)
            offsets.append(m.offset_px)
            poses.append(pose.matrix)
            per_image.append({"image": i, "pose": pose.to_dict(),
                              "coverage": round(float(np.isfinite(m.width_px).mean()), 4)})
        if refine:
            window = max(round(SMOOTH_MM / mm_per_px), 3)
            # offsets relative to image 1's centre line, averaged over the later images
            # (image 1 contributes zero: its line is already on its bead)
            mean_off = np.nanmean(np.vstack(offsets), axis=0)
            mean_off = _smooth_along(mean_off, taught.closed, window)
            mean_off = np.where(np.isfinite(mean_off), mean_off, 0.0)
            pts = st.xy + mean_off[:, None] * st.normal_xy
            st = build_stations(pts, closed=taught.closed, spacing_px=1.0)
    points = st.xy if points_xy is None else taught.points_xy
    if points_xy is None:
        points = _resample(points, taught.closed, POINT_STEP_PX)
    # the width is measured along the path the recipe stores, as the inspector will see it:
    # along the line refined 1 px at a time (whose spline wobbles by ~0.04 px across the
    # path) every cross-section read ~0.1 px wider (measured on an open dark bead: 10.225 mm
    # there, 10.106 along the stored path, 10.098 by the inspector with the generator's
    # recipe; truth 10.000)
    final = build_stations(points, closed=taught.closed, spacing_px=1.0)

    def tolerances(w_mm: float) -> dict:
        tol = default_tolerances(w_mm)
        if width_tol_mm is not None:
            tol["width_tol_mm"] = float(width_tol_mm)
        if max_offset_mm is not None:
            tol["max_offset_mm"] = float(max_offset_mm)
        if min_defect_mm is not None:
            tol["min_defect_mm"] = float(min_defect_mm)
        if search_mm is not None:
            tol["search_mm"] = float(search_mm)
        else:
            tol["search_mm"] = round(max(tol["search_mm"], (w_mm + tol["width_tol_mm"]) / 2
                                         + tol["max_offset_mm"]), 3)
        return tol

    # ... with the search band and offset limit the recipe will have (from the width found so
    # far), which set where the inspector reads the frame's blur: with the teach's own (half
    # a width of offset) the probe took another step on normal dark seed 43, blur 1.21 px
    # against the inspector's 0.92 (truth 0.89), and the taught width was 0.31 mm narrow
    w0_px = width_mm / mm_per_px if width_mm else taught.width_px
    tol0 = tolerances(w0_px * mm_per_px)
    widths = [_measure(g, final if mat is None else final.transformed(mat), bright=bright,
                       width_px=w0_px, half_px=tol0["search_mm"] / mm_per_px,
                       max_offset_px=tol0["max_offset_mm"] / mm_per_px).width_px
              for g, mat in zip(grays, poses)]
    all_w = np.concatenate([np.asarray(w, float) for w in widths])
    all_w = all_w[np.isfinite(all_w)]
    w_px = float(np.median(all_w)) if len(all_w) else taught.width_px
    spread_px = 1.4826 * float(np.median(np.abs(all_w - w_px))) if len(all_w) else 0.0

    w_mm = float(width_mm) if width_mm else round(w_px * mm_per_px, 3)
    tol = tolerances(w_mm)

    data = {
        "name": name,
        "image_size": [int(size[1]), int(size[0])],
        "mm_per_px": float(mm_per_px),
        "polarity": taught.polarity,
        "path": {"closed": bool(taught.closed), "points": np.round(points, 3).tolist()},
        "bead": {"width_mm": w_mm, **tol},
        "align": bool(align),
    }
    if ref is not None:
        data["reference"] = {"edge": ref}
    try:
        recipe = recipe_from_dict(data, source=f"<taught {name}>")
    except ValueError as exc:
        raise TeachError(f"the taught values make no valid recipe: {exc}") from None
    info = {"polarity": taught.polarity, "closed": bool(taught.closed), "width_mm": round(w_px * mm_per_px, 4),
            "width_spread_mm": round(spread_px * mm_per_px, 4), "coverage": round(taught.coverage, 4),
            "length_mm": round(float(st.length_px * mm_per_px), 2), "points": len(points),
            "images": per_image, "reference": "edge" if ref is not None else None}
    return recipe, info


def _width_guess(gray: np.ndarray, st: Stations, bright: bool, mm_per_px: float) -> float:
    """A width to start the edge finder with along a given path: the ridge scale that
    responds most, from a few candidate widths."""
    best, best_w = -np.inf, 10.0 / mm_per_px
    for w_mm in (3.0, 5.0, 8.0, 12.0, 18.0, 25.0):
        w = w_mm / mm_per_px
        m = _measure(gray, st, bright=bright, width_px=w)
        good = np.isfinite(m.width_px)
        if not good.any():
            continue
        score = float(np.median(m.contrast[good])) * good.mean()
        if score > best:
            best, best_w = score, float(np.median(m.width_px[good]))
    return best_w
