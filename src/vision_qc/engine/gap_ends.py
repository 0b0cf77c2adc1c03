"""Stage 4b, gap ends: where the bead's rounded end meets the surface, along the path.

Presence is decided per station on the bead's contrast (:mod:`vision_qc.inspector`), and a
gap's ends from it land where that contrast falls to its threshold: not where the bead ends.
Near a gap the bead ends in a rounded cap, and its contrast fades over the cap (its chord
narrows) at a rate set by the bead's shading: a bright bead's rim is dimmer than its crest,
a dark bead's is not, so the same threshold is crossed ~0.4 px inside the tip on bright beads
and ~0.15 px beyond it on dark ones, and the station grid adds ±0.5 px on top.

The cap seen along the path is the bead seen across it: a cap whose radius is the bead's
half width has, along its axis, the bead's own cross-section from the rim to the crest. So
each end is measured the way the edge finder measures an edge across the path: the image is
sampled along the path at a few offsets round the bead's centre line, from the cap's centre
(half a width inside the end, where the crest is) out into the gap, and mirrored about the
cap's centre. That makes a profile of a bead of the bead's own width, whose edge
:func:`~vision_qc.engine.edges.find_edges` finds to sub-pixel precision, with the shading
and blur models it uses across the path; the edge's distance from the cap's centre places the
tip. The frame's own profiles go into the same call, so that the frame-wide estimates the
edge finder makes (noise, blur) come from the frame's beads, not from a few mirrored ones.
"""

from __future__ import annotations

import cv2
import numpy as np

from .edges import find_edges

__all__ = ["gap_end_tips"]

# offsets (px) across the path, either side of the bead's centre line, at which the end is
# measured, and how far out of the cap's radius r they may go: within 0.5 r of its axis the
# cap's outline lies at most 0.13 r behind the tip (r - sqrt(r² - t²), corrected) and crosses
# the path within 30° of square, so each offset sees a sharp edge; the median over them reads
# past a speck or a noisy offset. Measured per end on the normal sets (484 ends): ±1.5 px put
# the 99th percentile of |error| at 0.60 px and the largest at 1.10 px; ±2.5 px, 0.53 and
# 0.90 px (±0.4 r, the offsets moving with each end's measured radius: 0.63 and 1.03 px)
_ROWS_PX = np.arange(-5, 6) * 0.5
_ROWS_REACH = 0.5
# the bead's width and centre next to the end: the median over these stations inside it
# (the cap's rounding starts about half a width in; these lie beyond the fade of its chord)
_INNER_FROM, _INNER_TO = 3, 12
# stations of the frame's own bead put into the edge finder's call with the ends (it chooses
# the frame's blur on every other one of them: measured, 128 stations put the ends
# 0.05-0.2 px worse on the normal sets)
_FRAME_STATIONS = 256


def _row_medians(values: np.ndarray) -> np.ndarray:
    """Median of the finite values in each row of ``values`` (K, R); NaN where none is."""
    ok = np.isfinite(values)
    count = ok.sum(1)
    srt = np.sort(np.where(ok, values, np.inf), axis=1)
    rows = np.arange(len(values))
    lo = srt[rows, np.maximum(count - 1, 0) // 2]
    hi = srt[rows, np.maximum(count, 1) // 2 - (count == 0)]
    return np.where(count > 0, 0.5 * (lo + hi), np.nan)


def _frame_block(present: np.ndarray, size: int) -> slice:
    """The first ``size`` consecutive stations that all have bead (the first ``size`` when
    there are none)."""
    n = len(present)
    if n <= size:
        return slice(0, n)
    absent = np.concatenate([[0], np.cumsum(~present)])
    ok = np.flatnonzero(absent[size:] == absent[:-size])
    b = int(ok[0]) if len(ok) else 0
    return slice(b, b + size)


def gap_end_tips(gray: np.ndarray, prof: np.ndarray, *, stations, t_px: np.ndarray,
                 present: np.ndarray, left_px: np.ndarray, right_px: np.ndarray,
                 tips_px: np.ndarray, into: np.ndarray, far_px: np.ndarray, bright: bool,
                 width_px: float, smooth_stations: int) -> np.ndarray:
    """Arc length of each gap end's tip, measured on the image along the path.

    Parameters
    ----------
    gray : (H, W) uint8
        The frame.
    prof : (M, N) uint8
        Its profiles across the path (:func:`~vision_qc.engine.sampling.sample_profiles`).
    stations : Stations
        The stations the profiles were sampled at (moved by the part's pose).
    t_px : (M,) float
        The profiles' sample offsets across the path, px.
    present, left_px, right_px : (N,)
        Presence and the edges per station (px from the path, NaN where not found).
    tips_px : (K,) float
        Each end's arc length as presence puts it, px.
    into : (K,) float
        +1 where the gap lies ahead of the end along the path (a gap's start), -1 behind it.
    far_px : (K,) float
        Half the gap's length, px: the profile goes no farther into the gap than its middle
        (beyond lies the other end's bead).
    bright : bool
    width_px : float
        Nominal bead width, px.
    smooth_stations : int
        Profiles averaged over this many neighbours (neighbouring offsets, here), as across.

    Returns
    -------
    (K,) float64
        The tips' arc lengths, px; NaN where the end could not be measured (no bead edges
        next to it, no edge found, or one farther from ``tips_px`` than the cap's radius).
    """
    k = len(tips_px)
    n = len(stations)
    if k == 0 or n == 0:
        return np.full(k, np.nan)
    spacing = stations.spacing_px
    i0 = np.rint(tips_px / spacing).astype(np.int64)
    steps = np.arange(_INNER_FROM, _INNER_TO)
    inner = i0[:, None] - into[:, None].astype(np.int64) * steps[None, :]
    if stations.closed:
        inner %= n
        usable = np.ones(k, bool)
    else:
        usable = (inner >= 0).all(1) & (inner < n).all(1)
        inner = np.clip(inner, 0, n - 1)
    lo = left_px[inner].astype(np.float64)
    hi = right_px[inner].astype(np.float64)
    usable &= (np.isfinite(lo) & np.isfinite(hi)).sum(1) >= (_INNER_TO - _INNER_FROM) // 2
    radius = 0.5 * _row_medians(hi - lo)
    centre = 0.5 * _row_medians(hi + lo)
    usable &= np.isfinite(radius) & (radius > 0)
    out = np.full(k, np.nan)
    if not usable.any():
        return out
    tips, into_u, far = tips_px[usable], into[usable].astype(np.float64), far_px[usable]
    radius, centre = radius[usable], centre[usable]
    ku, r_n, m = len(tips), len(_ROWS_PX), len(t_px)
    # the cap's centre, and the samples' arc lengths: mirrored about it, and held at the gap's
    # middle beyond it
    cap = tips - into_u * radius
    reach = radius + far
    arc = cap[None, :] + into_u[None, :] * np.minimum(np.abs(t_px)[:, None], reach[None, :])
    x, y = np.moveaxis(stations.at_arc(arc), -1, 0)
    nx, ny = np.moveaxis(stations.normal_at_arc(arc), -1, 0)
    rows = np.broadcast_to(_ROWS_PX, (ku, r_n))
    off = (centre[:, None] + rows)[None, :, :]
    map_x = (x[:, :, None] + off * nx[:, :, None]).reshape(m, ku * r_n).astype(np.float32)
    map_y = (y[:, :, None] + off * ny[:, :, None]).reshape(m, ku * r_n).astype(np.float32)
    ends = cv2.remap(gray, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    block = prof[:, _frame_block(np.asarray(present, bool), _FRAME_STATIONS)]
    nb = block.shape[1]
    both = np.concatenate([block, ends.astype(block.dtype, copy=False)], axis=1)
    step_px = float(t_px[1] - t_px[0])
    edges = find_edges(both, step_px=step_px, bright=bright, width_px=width_px,
                       smooth_stations=smooth_stations, closed=False)
    half = 0.5 * (edges.right_px[nb:] - edges.left_px[nb:]).astype(np.float64)
    # the outline at offset t from the centre line lies that much farther in than the tip
    inset = radius[:, None] - np.sqrt(np.maximum(radius[:, None] ** 2 - rows ** 2, 0.0))
    half = np.where(np.abs(rows) <= _ROWS_REACH * radius[:, None], half.reshape(ku, r_n), np.nan)
    dist = _row_medians(half + inset)
    tip = cap + into_u * dist
    # an edge farther from where presence put the end than the cap's radius is not the cap's
    # (the contrast fades within the cap): a speck or glare in the gap; the end stays unmeasured
    tip = np.where(np.abs(tip - tips) <= radius, tip, np.nan)
    if stations.closed:
        tip = np.mod(tip, stations.length_px)
    out[usable] = tip
    return out
