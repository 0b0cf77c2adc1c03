"""Stage 2, edges: find the bead's two edges on every profile at once, to sub-pixel precision.

Per profile (all stations at once, no loop):

1. Smooth over a few neighbouring stations and a little along the profile; flip dark beads so
   that the bead is always brighter than its surroundings.
2. Locate the bead: a difference of boxes at a few widths (inner part of the bead minus the
   brighter of its two flanks) gives the centre and the bead's contrast. A step such as the
   glass edge or the frit's inner edge has one bright flank and scores nothing.
3. The bead is the run of samples round that centre above ``level + 0.35 × (peak − level)``
   (level: the brighter flank), after closing dips of up to 2 px (a specular ridge on a dark
   bead, a bubble). Each run end is refined to the gradient peak within 2 px.
4. Each peak is located to sub-pixel precision with a three-point Gaussian fit, which also
   gives the edge's blur σ.
5. The gradient peak of a blurred step is the step only if the profile is flat inside it. A
   rounded bead keeps rising inside its edge (shading), which pulls the gradient peak inwards
   by ``b σ² / H`` (step H, inner slope b, blur σ: the peak of ``H φ(z)/σ + b Φ(z)``). That
   shift is measured per edge from the profile itself and removed, so the edge lands where the
   profile leaves the background: the footprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Edges", "find_edges"]

_SCALES = (0.5, 1.0, 1.5, 2.0)  # bead widths (× nominal) the locator looks for
LEVEL_FRACTION = 0.35      # run threshold between the flanks' level and the peak
_CLOSE_PX = 2.0            # dips shorter than this inside the bead are bridged
_REFINE_PX = 2.0           # gradient peak searched this far around a run end
_WIDER_MARGIN = 0.5        # relative response a wider-than-nominal scale needs over the best so far


@dataclass(frozen=True, eq=False)
class Edges:
    """Edges per station, px along the normal (NaN where no run was found).

    left_px, right_px : (N,) float32; found : (N,) bool; contrast : (N,) float32 (peak minus
    background, grey levels, positive = bead stands out with the recipe's polarity);
    sigma_px : (N,) float32, blur of the edges.
    """

    left_px: np.ndarray
    right_px: np.ndarray
    found: np.ndarray
    contrast: np.ndarray
    sigma_px: np.ndarray


def _smooth(prof: np.ndarray, bright: bool, smooth_stations: int, closed: bool) -> np.ndarray:
    p = prof if bright else -prof
    if smooth_stations > 1:
        border = cv2.BORDER_WRAP if closed else cv2.BORDER_REFLECT
        # cv2's box filter has no wrap mode; pad by hand along the stations
        k = smooth_stations // 2
        if closed:
            p = np.concatenate([p[-k:], p, p[:k]], axis=0)
            p = cv2.blur(p, (1, smooth_stations), borderType=cv2.BORDER_REFLECT)[k:-k]
        else:
            p = cv2.blur(p, (1, smooth_stations), borderType=border)
    return cv2.GaussianBlur(p, (3, 1), 0.7, borderType=cv2.BORDER_REPLICATE)


def _interp_rows(p: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``p`` at fractional column ``pos`` (clamped)."""
    m = p.shape[1]
    pos = np.clip(pos, 0, m - 1.000001)
    i = pos.astype(np.int64)
    f = (pos - i).astype(np.float32)
    r = np.arange(p.shape[0])
    return p[r, i] * (1 - f) + p[r, i + 1] * f


def _refine(p, grad, idx, sign, step, reach):
    """Sub-pixel gradient peak near column ``idx``; ``sign`` +1 rising (left), -1 falling (right).

    Returns the corrected edge column (float), blur σ in px, and the step's contrast.
    """
    n, m = p.shape
    rows = np.arange(n)
    win = np.arange(-reach, reach + 1)
    if reach:
        cols = np.clip(idx[:, None] + win[None, :], 1, m - 2)
        g = sign * np.take_along_axis(grad, cols, axis=1)
        pk = cols[rows, np.argmax(g, axis=1)]
    else:
        pk = idx
    ga = np.maximum(sign * grad[rows, pk - 1], 1e-3)
    gb = np.maximum(sign * grad[rows, pk], 1e-3)
    gc = np.maximum(sign * grad[rows, pk + 1], 1e-3)
    la, lb, lc = np.log(ga), np.log(gb), np.log(gc)
    curv = la - 2 * lb + lc
    ok = curv < -1e-6
    delta = np.where(ok, 0.5 * (la - lc) / np.where(ok, curv, -1.0), 0.0)
    delta = np.clip(delta, -0.5, 0.5)
    sigma = np.where(ok, step / np.sqrt(np.where(ok, -curv, 1.0)), 1.5 * step)
    sigma = np.clip(sigma, 0.5 * step, 4.0)
    col = pk + delta
    # shading bias: inner slope b and step H, measured on the profile (in columns)
    s_col = sigma / step
    inner1 = _interp_rows(p, col + sign * 2.0 * s_col)
    inner2 = _interp_rows(p, col + sign * 3.5 * s_col)
    outer = _interp_rows(p, col - sign * 3.0 * s_col)
    slope = (inner2 - inner1) / (1.5 * sigma)                 # grey levels per px, inwards
    step_h = inner1 - slope * 2.0 * sigma - outer
    shift = np.where(step_h > 1e-3, slope * sigma**2 / np.maximum(step_h, 1e-3), 0.0)
    shift = np.clip(shift, -0.5 * sigma, 1.5 * sigma)
    col = col - sign * shift / step
    return col, sigma, step_h


def _box_means(cs: np.ndarray, a0: int, size: int, count: int) -> np.ndarray:
    """Means of each row over the ``count`` boxes [a0 + k, a0 + k + size), k = 0..count-1,
    from the row-wise cumulative sum ``cs`` (N, M+1); slices, not gathers (a gather of
    (N, count) columns costs several times more)."""
    return cv2.subtract(cs[:, a0 + size:a0 + size + count], cs[:, a0:a0 + count]) * (1.0 / size)


def _locate(p: np.ndarray, width_px: float, step_px: float):
    """Bead centre column, contrast and background level per row, by a multi-scale
    difference of boxes.

    At each scale the response is the mean of the bead's inner part minus the brighter of
    the two flanks just outside it: a bead must stand out on both sides, which a step (the
    glass edge, the frit's inner edge) does not.
    """
    n, m = p.shape
    # row-wise cumulative sums with a leading zero column: the difference of consecutive rows
    # of cv2.integral (a 2-D sum, float64) costs half of np.cumsum along rows
    ii = cv2.integral(p, sdepth=cv2.CV_64F)
    cs = cv2.subtract(ii[1:], ii[:-1]).astype(np.float32)
    best = np.full(n, -np.inf, np.float32)
    where = np.full(n, m // 2, np.int64)
    level = np.zeros(n, np.float32)
    bg_left = np.zeros(n, np.float32)
    bg_right = np.zeros(n, np.float32)
    width = np.zeros(n, np.float32)
    flank = max(int(round(2.0 / step_px)), 1)
    margin = max(int(round(1.5 / step_px)), 1)
    for scale in _SCALES:
        w = scale * width_px / step_px
        h = max(int(round(0.35 * w)), 1)
        o = int(round(0.5 * w)) + margin
        j = np.arange(o + flank, m - o - flank)
        if len(j) == 0:
            continue
        j0, cnt = int(j[0]), len(j)
        inner = _box_means(cs, j0 - h, 2 * h + 1, cnt)
        left = _box_means(cs, j0 - o - flank, flank, cnt)
        right = _box_means(cs, j0 + o + 1, flank, cnt)
        flanks = cv2.max(left, right)
        resp = cv2.subtract(inner, flanks)
        k = np.argmax(resp, axis=1)
        rows = np.arange(n)
        r = resp[rows, k]
        # far flanks of a large box often land on brighter structures (glass edge, glare,
        # halftone) and inflate the response; a scale wider than nominal must win clearly
        margin_f = _WIDER_MARGIN if scale > 1.0 else 0.0
        better = r > (best + margin_f * np.abs(best) if margin_f else best)
        best = np.where(better, r, best)
        where = np.where(better, j[k], where)
        level = np.where(better, flanks[rows, k], level)
        bg_left = np.where(better, left[rows, k], bg_left)
        bg_right = np.where(better, right[rows, k], bg_right)
        width = np.where(better, w, width)
    return where, best, level, bg_left, bg_right, width, cs


def _run_around(mask: np.ndarray, center: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last column of the run of True that contains ``center``, per row."""
    n, m = mask.shape
    cols = np.arange(m)[None, :]
    c = center[:, None]
    off = ~mask
    start = np.where(off & (cols < c), cols, -1).max(axis=1) + 1
    end = np.where(off & (cols > c), cols, m).min(axis=1) - 1
    found = mask[np.arange(n), center]
    return start, end, found


def find_edges(prof: np.ndarray, *, step_px: float, bright: bool, width_px: float,
               smooth_stations: int = 3, closed: bool = False) -> Edges:
    """Find the bead's edges on profiles (N, M) sampled every ``step_px`` along the normals.

    Parameters
    ----------
    prof : (N, M) float32
        Profiles, grey levels; column ``M // 2`` is the path.
    step_px : float
        Sample spacing along the normal, px.
    bright : bool
        True when the bead is brighter than its surroundings.
    width_px : float
        Nominal bead width, px (sets the scales searched and how far edges may lie).
    smooth_stations : int
        Odd number of neighbouring stations averaged before finding edges.
    closed : bool
        The stations form a loop (smoothing wraps round).
    """
    n, m = prof.shape
    if n == 0:
        empty = np.zeros(0, np.float32)
        return Edges(empty, empty, np.zeros(0, bool), empty, empty)
    p = _smooth(prof, bright, smooth_stations, closed)
    center, contrast, level, bg_l, bg_r, w_cols, cs = _locate(p, width_px, step_px)
    tol = 3.0 * np.sqrt(2.0) * _noise(prof, smooth_stations) + 0.1 * np.abs(contrast)
    lx, lok = _side_edge(p, center, w_cols, bg_l, -1, step_px, tol)
    rx, rok = _side_edge(p, center, w_cols, bg_r, +1, step_px, tol)
    grad = np.zeros_like(p)
    grad[:, 1:-1] = (p[:, 2:] - p[:, :-2]) * (0.5 / step_px)
    reach = max(int(round(_REFINE_PX / step_px)), 1)
    lcol, lsig, _ = _refine(p, grad, np.clip(np.round(lx).astype(np.int64), 1, m - 2), 1, step_px, reach)
    rcol, rsig, _ = _refine(p, grad, np.clip(np.round(rx).astype(np.int64), 1, m - 2), -1, step_px, reach)
    c0 = (m - 1) / 2.0
    left = ((lcol - c0) * step_px).astype(np.float32)
    right = ((rcol - c0) * step_px).astype(np.float32)
    found = lok & rok & (right > left) & (contrast > 0)
    left = np.where(found, left, np.nan).astype(np.float32)
    right = np.where(found, right, np.nan).astype(np.float32)
    return Edges(left_px=left, right_px=right, found=found, contrast=contrast.astype(np.float32),
                 sigma_px=(0.5 * (lsig + rsig)).astype(np.float32))



def _noise(prof: np.ndarray, smooth_stations: int) -> float:
    """Noise of the smoothed profiles, grey levels: from the median absolute difference of
    neighbouring stations (robust to the bead and edges, which change slowly along the
    path), reduced by the smoothing along stations and across (≈ 0.66 for the 3-tap
    Gaussian)."""
    n = prof.shape[0]
    if n < 2:
        return 0.0
    sub = prof[:: max(n // 512, 1)]
    diff = np.abs(sub[1:, ::3] - sub[:-1, ::3])
    sigma = float(np.median(diff)) / 0.954 if diff.size else 0.0
    return sigma * 0.66 / np.sqrt(max(smooth_stations, 1))


def _side_edge(p, center, w_cols, bg_flank, d, step_px, tol):
    """Where the profile leaves the local background on one side: ``d`` = -1 the left edge,
    +1 the right edge. Returns (column, ok), the column fractional.

    Walking outwards from a point a quarter width inside the bead:

    1. The local background is the first place where the profile is flat (changes by at
       most ``tol`` over 2 px) and has come down at least half way from the bead towards
       the locator's flank level. Whatever lies farther out (the glass edge, a glare
       streak, halftone dots) does not set this side's level.
    2. The edge sample is the first one whose departure from that level is at most 30 %
       of the bead's departure at the starting point; it is refined afterwards.
    """
    n, m = p.shape
    rows = np.arange(n)
    q = np.clip(center + d * np.round(0.25 * w_cols).astype(np.int64), 0, m - 1)
    f = max(int(round(2.0 / step_px)), 1)
    kmax = int(np.ceil(0.3 * w_cols.max() + 6.0 / step_px)) + f + 1
    k = np.arange(kmax)
    cols = np.clip(q[:, None] + d * k[None, :], 0, m - 1)
    v = np.take_along_axis(p, cols, axis=1)
    sgn0 = np.where(v[:, 0] >= bg_flank, 1.0, -1.0).astype(np.float32)
    rel = sgn0[:, None] * (v - bg_flank[:, None])           # towards the bead > 0
    top = np.maximum.accumulate(rel, axis=1)
    flat = np.abs(v[:, :-f] - v[:, f:]) <= np.reshape(tol, (-1, 1))
    low = rel[:, :-f] <= 0.5 * top[:, :-f]
    foot_ok = flat & low
    kf = np.argmax(foot_ok, axis=1)
    has_foot = foot_ok[rows, kf]
    bg_local = (v[rows, kf] + v[rows, kf + f // 2] + v[rows, kf + f]) * (1.0 / 3.0)
    bg = np.where(has_foot, bg_local, bg_flank)
    body = v[:, 0] - bg
    sgn = np.where(body >= 0, 1.0, -1.0).astype(np.float32)
    delta = 0.3 * np.abs(body)
    rel = sgn[:, None] * (v - bg[:, None])
    out = rel <= delta[:, None]
    ks = np.argmax(out, axis=1)
    ok = out[rows, ks] & (ks > 0)
    ks = np.maximum(ks, 1)
    v_out = rel[rows, ks]
    v_in = rel[rows, ks - 1]
    frac = np.clip((v_in - delta) / np.maximum(v_in - v_out, 1e-6), 0.0, 1.0)
    xc = q + d * (ks - 1 + frac)
    return xc, ok
