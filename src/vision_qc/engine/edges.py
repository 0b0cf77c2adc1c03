"""Stage 2, edges: find the bead's two edges on every profile at once, to sub-pixel precision.

Per profile (all stations at once, no loop):

1. Smooth over a few neighbouring stations and a little along the profile; flip dark beads so
   that the bead is always brighter than its surroundings.
2. Local background: the brighter of the two profile ends (the darker one when the brighter
   is on the bead itself); bead level: the profile's peak.
   Contrast is their difference.
3. The bead is the longest run of samples above ``background + 0.35 × contrast``, after
   closing dips of up to 2 px (a specular ridge on a dark bead, a bubble). The longest run
   ignores dust specks and halftone dots, which are short.
4. Each run end is refined to the gradient peak nearby, located to sub-pixel precision with a
   three-point Gaussian fit, which also gives the edge's blur σ.
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

__all__ = ["Edges", "find_edges", "LEVEL_FRACTION"]

LEVEL_FRACTION = 0.35      # run threshold between background and peak
_CLOSE_PX = 2.0            # dips shorter than this inside the bead are bridged
_END_PX = 2.0              # profile ends used as background, each side
_REFINE_PX = 2.0           # gradient peak searched this far around a run end


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


def _longest_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end (inclusive) column of each row's longest run of True; found flag."""
    n, m = mask.shape
    pad = np.zeros((n, m + 2), np.int8)
    pad[:, 1:-1] = mask
    d = np.diff(pad, axis=1)
    rs, cs = np.nonzero(d == 1)
    _, ce = np.nonzero(d == -1)
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    found = np.zeros(n, bool)
    if len(rs) == 0:
        return start, end, found
    length = ce - cs
    order = np.lexsort((-length, rs))
    first = np.ones(len(order), bool)
    first[1:] = rs[order][1:] != rs[order][:-1]
    best = order[first]
    rows = rs[best]
    start[rows] = cs[best]
    end[rows] = ce[best] - 1
    found[rows] = True
    return start, end, found


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
    cols = np.clip(idx[:, None] + win[None, :], 1, m - 2)
    g = sign * np.take_along_axis(grad, cols, axis=1)
    pk = cols[rows, np.argmax(g, axis=1)]
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


def find_edges(prof: np.ndarray, *, step_px: float, bright: bool, smooth_stations: int = 3,
               closed: bool = False, min_width_px: float = 1.0) -> Edges:
    """Find the bead's edges on profiles (N, M) sampled every ``step_px`` along the normals.

    Parameters
    ----------
    prof : (N, M) float32
        Profiles, grey levels; column ``M // 2`` is the path.
    step_px : float
        Sample spacing along the normal, px.
    bright : bool
        True when the bead is brighter than its surroundings.
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
    e = max(int(round(_END_PX / step_px)), 1)
    end_a, end_b = p[:, :e].mean(axis=1), p[:, -e:].mean(axis=1)
    lo, hi = np.minimum(end_a, end_b), np.maximum(end_a, end_b)
    peak = p.max(axis=1)
    # The bead must stand out from both sides, so the brighter end is the background,
    # unless that end is on the bead itself (a bead pushed to the band's edge).
    bg = np.where(hi - lo < 0.65 * (peak - lo), hi, lo)
    contrast = peak - bg
    thr = bg + LEVEL_FRACTION * contrast
    mask = (p > thr[:, None]).astype(np.uint8)
    k = int(round(_CLOSE_PX / step_px)) | 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8))
    start, end, found = _longest_runs(mask)
    found &= (end - start + 1) * step_px >= min_width_px

    grad = np.zeros_like(p)
    grad[:, 1:-1] = (p[:, 2:] - p[:, :-2]) * (0.5 / step_px)
    reach = max(int(round(_REFINE_PX / step_px)), 1)
    lcol, lsig, lh = _refine(p, grad, start, 1, step_px, reach)
    rcol, rsig, rh = _refine(p, grad, end, -1, step_px, reach)
    c0 = (m - 1) / 2.0
    left = ((lcol - c0) * step_px).astype(np.float32)
    right = ((rcol - c0) * step_px).astype(np.float32)
    found &= right > left
    left = np.where(found, left, np.nan).astype(np.float32)
    right = np.where(found, right, np.nan).astype(np.float32)
    return Edges(left_px=left, right_px=right, found=found, contrast=contrast.astype(np.float32),
                 sigma_px=(0.5 * (lsig + rsig)).astype(np.float32))
