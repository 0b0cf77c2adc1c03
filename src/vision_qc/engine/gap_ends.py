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

from ..geometry import _on_path
from ._jit import inlined, kernel
from .edges import _median_sorted, find_edges
from .sampling import remap_blend

__all__ = ["END_STATIONS", "gap_end_tips"]

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
# the stations either side of an end (rounded to a station) whose edges these read
END_STATIONS = _INNER_TO
# stations of the frame's own bead put into the edge finder's call with the ends (it chooses
# the frame's blur on every other one of them: measured, 128 stations put the ends
# 0.05-0.2 px worse on the normal sets)
_FRAME_STATIONS = 256


@kernel
def _median_finite(buf, cnt):
    """The median of ``buf[:cnt]`` (finite values; sorted in place), NaN when ``cnt`` is 0:
    the mean of the two middle values of an even count, as np.median."""
    return np.nan if cnt == 0 else _median_sorted(buf, cnt)


@kernel
def _frame_start(present, size):
    """The first station of the first ``size`` consecutive ones that all have bead (0 when
    there are none)."""
    run = 0
    for i in range(present.shape[0]):
        run = run + 1 if present[i] else 0
        if run >= size:
            return i - size + 1
    return 0


def _frame_block(present: np.ndarray, size: int) -> slice:
    """The first ``size`` consecutive stations that all have bead (the first ``size`` when
    there are none)."""
    n = len(present)
    if n <= size:
        return slice(0, n)
    b = _frame_start(present, size)
    return slice(b, b + size)


@kernel
def _cap_rows(left_px, right_px, tips_px, into, spacing, closed):
    """Per end: whether it can be measured (its inner stations on the path, edges found at
    enough of them, a positive width), and the bead's half width (the cap's radius) and
    centre there, px: the medians over the stations ``_INNER_FROM`` to ``_INNER_TO`` inside
    the end."""
    k = tips_px.shape[0]
    n = left_px.shape[0]
    usable = np.empty(k, np.bool_)
    radius = np.empty(k)
    centre = np.empty(k)
    widths = np.empty(_INNER_TO - _INNER_FROM)
    sums = np.empty(_INNER_TO - _INNER_FROM)
    for q in range(k):
        i0 = np.int64(np.rint(tips_px[q] / spacing))
        step = np.int64(into[q])
        inside = True
        cnt = 0
        for s in range(_INNER_FROM, _INNER_TO):
            i = i0 - step * s
            if closed:
                i %= n
            elif i < 0 or i >= n:
                inside = False
                i = min(max(i, 0), n - 1)
            lo = np.float64(left_px[i])
            hi = np.float64(right_px[i])
            if np.isfinite(lo) and np.isfinite(hi):
                widths[cnt] = hi - lo
                sums[cnt] = hi + lo
                cnt += 1
        r = 0.5 * _median_finite(widths, cnt)
        radius[q] = r
        centre[q] = 0.5 * _median_finite(sums, cnt)
        usable[q] = inside and cnt >= (_INNER_TO - _INNER_FROM) // 2 and np.isfinite(r) and r > 0
    return usable, radius, centre


@kernel
def _end_maps(cap, into, reach, centre, t_px, rows, xy, normal, arc_px, length, closed):
    """The sampling maps (M, K·R) float32 of the ends' profiles: sample i of end q at offset
    ``rows[r]`` from its centre line lies at arc length ``cap + into · min(|t_i|, reach)``
    (mirrored about the cap's centre, held at the gap's middle beyond it); positions and
    normals there as ``Stations.at_arc`` and ``normal_at_arc`` give them."""
    m = t_px.shape[0]
    k = cap.shape[0]
    r_n = rows.shape[0]
    map_x = np.empty((m, k * r_n), np.float32)
    map_y = np.empty((m, k * r_n), np.float32)
    for i in range(m):
        t = abs(t_px[i])
        for q in range(k):
            a = cap[q] + into[q] * min(t, reach[q])
            x, y = _on_path(a, arc_px, xy, length, closed)
            nx, ny = _on_path(a, arc_px, normal, length, closed)
            for r in range(r_n):
                off = centre[q] + rows[r]
                map_x[i, q * r_n + r] = np.float32(x + off * nx)
                map_y[i, q * r_n + r] = np.float32(y + off * ny)
    return map_x, map_y


@inlined
def _bilinear(g, w, h, step, x, y):
    """The byte ``cv2.remap`` (INTER_LINEAR, BORDER_REPLICATE, float32 maps) gives at ``(x,
    y)`` (float32) of the W × H uint8 frame ``g`` (rows ``step`` bytes apart, W and H ≥ 2):
    OpenCV 5's arithmetic, as :func:`~.sampling._sample_kernel` has it (see there why the
    clamping before the floor gives the same bytes), one sample at a time."""
    x = min(max(x, np.float32(0.0)), np.float32(w - 1))
    y = min(max(y, np.float32(0.0)), np.float32(h - 1))
    fx = min(np.floor(x), np.float32(w - 2))
    fy = np.floor(y)
    wx = x - fx
    wy = y - fy
    a = np.int64(fy) * step + np.int64(fx)
    b = a + (step if fy < np.float32(h - 1) else 0)
    v = remap_blend(np.float32(g[a]), np.float32(g[a + 1]), np.float32(g[b]),
                    np.float32(g[b + 1]), wx, wy)
    return np.uint8(np.int32(v))


@kernel
def _end_profiles(g, w, h, step, prof, present, frame_stations, left_px, right_px, tips_px,
                  into, far_px, spacing, t_px, rows, xy, normal, arc_px, length, closed):
    """The edge finder's input for the ends in one call: the frame's block of stations
    (:func:`_frame_block`) followed by each usable end's R profiles (:func:`_cap_rows`),
    sampled at the points of :func:`_end_maps` as ``cv2.remap`` of those maps samples them
    (:func:`_bilinear`), (M, nb + K·R) uint8; and nb, the ends' usability, radius and cap
    centre (K,)."""
    usable, radius, centre = _cap_rows(left_px, right_px, tips_px, into, spacing, closed)
    k = tips_px.shape[0]
    m, n = prof.shape
    r_n = rows.shape[0]
    cap = np.empty(k)
    ku = 0
    for q in range(k):
        cap[q] = tips_px[q] - into[q] * radius[q]
        if usable[q]:
            ku += 1
    if n <= frame_stations:
        b0, nb = 0, n
    else:
        b0, nb = _frame_start(present, frame_stations), frame_stations
    both = np.empty((m, nb + ku * r_n), np.uint8)
    if ku == 0:
        return both, b0, nb, usable, radius, cap
    arcs = np.empty(m)
    j = nb
    for q in range(k):
        if not usable[q]:
            continue
        for i in range(m):
            a = cap[q] + into[q] * min(abs(t_px[i]), radius[q] + far_px[q])
            arcs[i] = a
            # a sample at the arc length of one already sampled (its mirror image about the
            # cap's centre, or held at the gap's middle) has its bytes: about two thirds of
            # them on the bench frame, whose 99 samples reach 24 px and the ends ~16
            same = -1
            if i > 0 and a == arcs[i - 1]:
                same = i - 1
            elif m - 1 - i < i and a == arcs[m - 1 - i]:
                same = m - 1 - i
            if same >= 0:
                for r in range(r_n):
                    both[i, j + r] = both[same, j + r]
                continue
            x, y = _on_path(a, arc_px, xy, length, closed)
            nx, ny = _on_path(a, arc_px, normal, length, closed)
            for r in range(r_n):
                off = centre[q] + rows[r]
                both[i, j + r] = _bilinear(g, w, h, step, np.float32(x + off * nx),
                                           np.float32(y + off * ny))
        j += r_n
    return both, b0, nb, usable, radius, cap


@kernel
def _tip_arcs(left_px, right_px, usable, radius, cap, into, tips, rows, length, closed):
    """Each end's tip, px along the path, from the edges found on the profiles of the usable
    ends (``left_px``, ``right_px``: R per usable end, in order): the median over the offsets
    within ``_ROWS_REACH`` of the cap's radius of the edge's distance from the cap's centre
    plus the outline's inset there; NaN where the end is not usable, where there is none, or
    where the tip lies farther than the radius from ``tips``."""
    k = cap.shape[0]
    r_n = rows.shape[0]
    out = np.full(k, np.nan)
    buf = np.empty(r_n)
    u = 0
    for q in range(k):
        if not usable[q]:
            continue
        rq = radius[q]
        cnt = 0
        for r in range(r_n):
            j = u * r_n + r
            t = rows[r]
            if not abs(t) <= _ROWS_REACH * rq:
                continue
            half = 0.5 * np.float64(right_px[j] - left_px[j])
            # the outline at offset t from the centre line lies that much farther in
            v = half + (rq - np.sqrt(max(rq * rq - t * t, 0.0)))
            if np.isfinite(v):
                buf[cnt] = v
                cnt += 1
        u += 1
        tip = cap[q] + into[q] * _median_finite(buf, cnt)
        if not abs(tip - tips[q]) <= rq:
            tip = np.nan
        out[q] = tip % length if closed else tip
    return out


def gap_end_tips(gray: np.ndarray, prof: np.ndarray, *, stations, t_px: np.ndarray,
                 present: np.ndarray, left_px: np.ndarray, right_px: np.ndarray,
                 tips_px: np.ndarray, into: np.ndarray, far_px: np.ndarray, bright: bool,
                 width_px: float, smooth_stations: int,
                 blur_px: float | None = None) -> np.ndarray:
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
    blur_px : float, optional
        The frame's blur measured on a clean step (``find_edges``' ``blur_px``); None: the
        edge finder chooses it on the frame's stations put in with the ends.

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
    # the per-end arithmetic, the ends' sampling and the edge finder's input in one compiled
    # call: the maps, cv2.remap, the block's copy and ~15 small numpy calls between them took
    # ~0.1 ms of the 2448×2048 bench frame's gap (thread time)
    tips_px = np.asarray(tips_px, np.float64)
    into = np.asarray(into, np.float64)
    far_px = np.asarray(far_px, np.float64)
    h, w = gray.shape
    if gray.dtype != np.uint8 or prof.dtype != np.uint8 or h < 2 or w < 2:
        both, nb, usable, radius, cap = _end_profiles_by_remap(
            gray, prof, stations=stations, t_px=t_px, present=present, left_px=left_px,
            right_px=right_px, tips_px=tips_px, into=into, far_px=far_px)
    else:
        step, unit = gray.strides
        if unit != 1 or step < w:
            gray = np.ascontiguousarray(gray)
            step = w
        # the rows as one run of bytes, the padding between them included (a view; ravel
        # where there is none: as_strided costs 3.5 us)
        g = (gray.ravel() if step == w else
             np.lib.stride_tricks.as_strided(gray, shape=((h - 1) * step + w,), strides=(1,)))
        both, b0, nb, usable, radius, cap = _end_profiles(
            g, w, h, step, prof, np.asarray(present, bool), _FRAME_STATIONS, left_px, right_px,
            tips_px, into, far_px, stations.spacing_px, np.asarray(t_px, np.float64), _ROWS_PX,
            stations.xy, stations.normal_xy, stations.arc_px, float(stations.length_px),
            stations.closed)
        if both.shape[1] > nb:
            # the frame's block in numpy (a row copy each): 2 us, ~10 us in the kernel
            both[:, :nb] = prof[:, b0:b0 + nb]
    if both.shape[1] == nb:
        # no end usable
        return np.full(k, np.nan)
    edges = find_edges(both, step_px=float(t_px[1] - t_px[0]), bright=bright, width_px=width_px,
                       smooth_stations=smooth_stations, closed=False, blur_px=blur_px)
    return _tip_arcs(edges.left_px[nb:], edges.right_px[nb:], usable, radius, cap, into,
                     tips_px, _ROWS_PX, float(stations.length_px), stations.closed)


def _end_profiles_by_remap(gray, prof, *, stations, t_px, present, left_px, right_px, tips_px,
                           into, far_px):
    """:func:`_end_profiles` with the maps and ``cv2.remap`` (frames that are not uint8 or
    under 2 px a side)."""
    usable, radius, centre = _cap_rows(left_px, right_px, tips_px, into, stations.spacing_px,
                                       stations.closed)
    cap = tips_px - into * radius
    block = prof[:, _frame_block(np.asarray(present, bool), _FRAME_STATIONS)]
    nb = block.shape[1]
    if not usable.any():
        return block, nb, usable, radius, cap
    # the cap's centre, and the samples' arc lengths: mirrored about it, and held at the gap's
    # middle beyond it
    reach = radius[usable] + far_px[usable]
    map_x, map_y = _end_maps(cap[usable], into[usable], reach, centre[usable],
                             np.asarray(t_px, np.float64), _ROWS_PX, stations.xy,
                             stations.normal_xy, stations.arc_px, float(stations.length_px),
                             stations.closed)
    ends = cv2.remap(gray, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    both = np.concatenate([block, ends.astype(block.dtype, copy=False)], axis=1)
    return both, nb, usable, radius, cap
