"""Stage 2, edges: find the bead's two edges on every profile at once, to sub-pixel precision.

Per profile (all stations at once, no loop):

1. Smooth over a few neighbouring stations and a little along the profile; flip dark beads so
   that the bead is always brighter than its surroundings (one separable filter).
   Steps 2 and 3 run on every other sample (1 px apart): they only decide where the bead and
   its edges lie to a sample or so; steps 4 and 5 use the full profile in a small window
   round each edge.
2. Locate the bead: on a dark bead, first close dips up to 0.3 × the nominal width (its
   bright specular ridge, which splits it in two lobes). Then a difference of boxes at a few
   widths (inner part of the bead minus the brighter of its two flanks) gives the centre and
   the bead's contrast. A step such as the glass edge or the frit's inner edge has one bright
   flank and scores nothing. The locator searches every 2nd station; each station then
   re-checks its two located neighbours' centres on its own profile, so the contrast (which
   decides presence, and so the gap ends) stays per station.
3. On each side, walk outwards from a quarter width inside the bead: the local background is
   where the profile turns flat, the edge sample where the profile has come down to 20 % of
   the bead's height above it. Each is refined to the gradient peak within 1 px (farther in,
   a dim, shaded flank keeps steepening towards the crest and would pull the edge inwards).
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
_DEPART = 0.2              # the walk's edge: where the profile has come down to this × the bead's height
_BRIDGE = 0.3              # dips up to this × nominal width inside the bead are bridged
_REFINE_PX = 1.0           # gradient peak searched this far around the walk's edge (farther in,
                           # a dim, shaded flank keeps steepening towards the crest)
_LOCATE_EVERY = 2          # the locator searches every 2nd station; the rest re-check its neighbours' centres
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
    """Box over ``smooth_stations`` stations × Gaussian (σ 0.7 samples) across, sign-flipped for
    dark beads: one separable filter from uint8 or float32 to float32 (N, M).

    Both 3-tap borders (reflect along stations on an open path, replicate across) agree; a
    closed path wraps round, so its first and last rows are redone from the other end.
    """
    n = prof.shape[0]
    k = max(int(smooth_stations), 1)
    kx = cv2.getGaussianKernel(3, 0.7, cv2.CV_32F) * (1.0 if bright else -1.0)
    ky = np.full((k, 1), 1.0 / k, np.float32)
    p = cv2.sepFilter2D(prof, cv2.CV_32F, kx, ky, borderType=cv2.BORDER_REFLECT)
    h = k // 2
    if closed and h and n > 2 * h:
        ends = np.concatenate([prof[-2 * h:], prof[:2 * h]], axis=0)
        e = cv2.sepFilter2D(ends, cv2.CV_32F, kx, ky, borderType=cv2.BORDER_REFLECT)
        p[-h:] = e[h:2 * h]
        p[:h] = e[2 * h:3 * h]
    return p


def _interp_rows(p: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``p`` (C-contiguous) at fractional column ``pos``
    (clamped)."""
    n, m = p.shape
    pos = np.clip(pos, 0, m - 1.000001)
    i = pos.astype(np.int64)
    f = (pos - i).astype(np.float32)
    flat = p.ravel()
    at = np.arange(n) * m + i
    a = flat.take(at)
    return a + (flat.take(at + 1) - a) * f


def _refine(p, idx, sign, step, reach):
    """Sub-pixel gradient peak near column ``idx``; ``sign`` +1 rising (left), -1 falling (right).

    Only the ``2 reach + 5`` samples round ``idx`` are read (central differences, zero in the
    first and last column). Returns the corrected edge column (float), blur σ in px, and the
    step's contrast.
    """
    n, m = p.shape
    rows = np.arange(n)
    # one gather of the samples round idx, laid out (window, N) so that every step below runs
    # on contiguous rows of N; the gradient at columns idx-reach-1 .. idx+reach+1 (pk-1 ..
    # pk+1 too) is a difference of its rows
    win = np.arange(-reach - 2, reach + 3)
    # the window leaves the row (and central differences their columns [1, m-2]) only for
    # edges near an end of the profile
    near_end = idx.min() - reach - 2 < 0 or idx.max() + reach + 2 > m - 1
    if near_end:
        cols = np.add.outer(win, idx)
        at = np.clip(cols, 0, m - 1)
        at += rows * m
    else:
        at = np.add.outer(win, idx + rows * m)
    smp = p.ravel().take(at)
    g = (smp[2:] - smp[:-2]) * (0.5 / step)
    if sign < 0:
        np.negative(g, out=g)
    # central differences only in columns [1, m-2]: zero elsewhere (rows near the ends only)
    inside = None
    if near_end:
        gcols = cols[1:-1]
        inside = (gcols >= 1) & (gcols <= m - 2)
        g = np.where(inside, g, np.float32(0.0))
    if reach:
        # first maximum among the columns in [1, m-2] (as clipping the window would give)
        gw = np.where(inside[1:-1], g[1:-1], -np.inf) if near_end else g[1:-1]
        pk = idx + _argmax0(gw) - reach
    else:
        pk = idx
    # gradient at pk-1, pk, pk+1: rows of the window (pk - idx + reach + 1 + {-1, 0, 1})
    at = (pk - idx + reach + 1) * n + rows
    gf = g.ravel()
    ga = np.maximum(gf.take(at - n), 1e-3)
    gb = np.maximum(gf.take(at), 1e-3)
    gc = np.maximum(gf.take(at + n), 1e-3)
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


def _box_means(cst: np.ndarray, a0: int, size: int, count: int) -> np.ndarray:
    """Means over the ``count`` boxes [a0 + k, a0 + k + size), k = 0..count-1, from the
    cumulative sums laid out (M+1, N) (``cst``, one contiguous row per column): (count, N),
    a difference of two contiguous blocks of rows."""
    out = cv2.subtract(cst[a0 + size:a0 + size + count], cst[a0:a0 + count])
    return np.multiply(out, 1.0 / size, out=out)


def _first_true(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first True along axis 0 of a (K, N) bool mask, 0 where a column has none
    (as ``np.argmax(mask, axis=0)`` gives), and whether it has one. Up to 255 rows, a weighted
    maximum over contiguous rows of N costs a fraction of numpy's argmax along axis 0 (which
    transposes)."""
    k = mask.shape[0]
    if k > 255:
        first = np.argmax(mask, axis=0)
        return first, mask[first, np.arange(mask.shape[1])]
    # row i weighs k - i: the maximum is k - (first True), 0 where there is none
    top = (mask.view(np.uint8) * np.arange(k, 0, -1, dtype=np.uint8)[:, None]).max(axis=0)
    found = top > 0
    return np.where(found, k - top.astype(np.intp), 0), found


def _argmax0(a: np.ndarray) -> np.ndarray:
    """``np.argmax(a, axis=0)`` of a float (K, N) array: the first index of each column's
    maximum, by a maximum and :func:`_first_true` over contiguous rows of N."""
    first, found = _first_true(a == a.max(axis=0))
    if not found.all():                  # columns with a NaN (argmax takes the first NaN)
        first[~found] = np.argmax(a[:, ~found], axis=0)
    return first


def _row_cumsum(p: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sums (N, M+1) with a leading zero column, float32."""
    # the difference of consecutive rows of cv2.integral (a 2-D sum, float64, so no precision
    # is lost) written straight to float32 costs under half of np.cumsum along rows
    ii = cv2.integral(p, sdepth=cv2.CV_64F)
    return cv2.subtract(ii[1:], ii[:-1], dtype=cv2.CV_32F)


def _box_geometry(w_cols, step_px):
    """Inner half size, flank offset and flank size (columns) of the locator's boxes for a
    bead ``w_cols`` columns wide (scalar or per row)."""
    flank = max(int(round(2.0 / step_px)), 1)
    margin = max(int(round(1.5 / step_px)), 1)
    h = np.maximum(np.round(0.35 * np.asarray(w_cols)), 1).astype(np.int64)
    o = np.round(0.5 * np.asarray(w_cols)).astype(np.int64) + margin
    return h, o, flank


def _response_at(cs: np.ndarray, center: np.ndarray, w_cols: np.ndarray, step_px: float):
    """The locator's response, left flank and right flank at a given centre and bead width
    per row (the per-row counterpart of one scale of :func:`_locate`); ``center`` and
    ``w_cols`` are (N,) or (K, N), K candidates per row."""
    n, m1 = cs.shape
    h, o, flank = _box_geometry(w_cols, step_px)
    c = np.clip(center, o + flank, m1 - 2 - o - flank)
    rows = np.arange(n)
    if 2 * (int(o.max()) + flank) <= m1 - 2:
        # every box lies in its row: gather from the flat array by each row's centre
        flat, at = cs.ravel(), c + rows * m1

        def sums(a):
            return flat.take(at + a)
    else:
        # profiles too short for the widest box (numpy's negative indices wrap in the row)
        def sums(a):
            return cs[rows, c + a]

    def box(a, size):
        return (sums(a + size) - sums(a)) / size

    inner = box(-h, 2 * h + 1)
    left = box(-o - flank, flank)
    right = box(o + 1, flank)
    return inner - np.maximum(left, right), left, right


def _locate_decimated(p: np.ndarray, width_px: float, step_px: float, every: int):
    """:func:`_locate` on every ``every``-th row, then each row takes the better of its two
    nearest located rows' centre and width, evaluated on its own profile. The bead moves
    slowly along the path, so a neighbour's centre is this row's centre to within a sample
    or two; the contrast stays per row, so gap ends keep their station."""
    n = p.shape[0]
    cs = _row_cumsum(p)
    if every <= 1 or n < 2 * every:
        return _locate(cs, width_px, step_px)
    c_s, _, _, _, _, w_s, _ = _locate(cs[::every], width_px, step_px)
    k = len(c_s)
    a = np.arange(n) // every
    b = a + 1
    b = np.where(b < k, b, 0 if n % every == 0 else a)   # the last rows: wrap or repeat
    # both candidates at once, (2, N); the second wins only where strictly better
    cand = np.stack([a, b])
    center, width = c_s.take(cand), w_s.take(cand)
    resp, left, right = _response_at(cs, center, width, step_px)
    pick = (resp[1] > resp[0]) * n + np.arange(n)       # flat index of each row's winner
    left, right = left.take(pick), right.take(pick)
    return (center.take(pick), resp.take(pick).astype(np.float32), np.maximum(left, right),
            left, right, width.take(pick), cs)


def _locate(cs: np.ndarray, width_px: float, step_px: float):
    """Bead centre column, contrast and background level per row, by a multi-scale
    difference of boxes.

    At each scale the response is the mean of the bead's inner part minus the brighter of
    the two flanks just outside it: a bead must stand out on both sides, which a step (the
    glass edge, the frit's inner edge) does not.
    """
    n, m = cs.shape[0], cs.shape[1] - 1
    # (M+1, N): each scale's boxes at every centre are differences of contiguous blocks of
    # rows, and the best centre a maximum over rows of N
    cst = cv2.transpose(cs)
    best = np.full(n, -np.inf, np.float32)
    where = np.full(n, m // 2, np.int64)
    offset = np.zeros(n, np.int64)     # the winning scale's flank offset
    width = np.zeros(n, np.float32)
    flank = max(int(round(2.0 / step_px)), 1)
    margin = max(int(round(1.5 / step_px)), 1)
    # the flank boxes have one size at every scale: their means at every start, once
    flank_means = _box_means(cst, 0, flank, m + 1 - flank) if m > 2 * flank else None
    for scale in _SCALES:
        w = scale * width_px / step_px
        h = max(int(round(0.35 * w)), 1)
        o = int(round(0.5 * w)) + margin
        j0, cnt = o + flank, m - 2 * (o + flank)     # centres j0 .. j0 + cnt - 1
        if cnt <= 0:
            continue
        flanks = cv2.max(flank_means[j0 - o - flank:j0 - o - flank + cnt],
                         flank_means[j0 + o + 1:j0 + o + 1 + cnt])
        resp = _box_means(cst, j0 - h, 2 * h + 1, cnt)             # the inner part ...
        cv2.subtract(resp, flanks, dst=resp)                        # ... minus the flanks
        # the maximum and the first centre that reaches it (NaN where a row has a NaN, as
        # the value at np.argmax would be: such a row is then never better)
        r = resp.max(axis=0)
        k, _ = _first_true(resp == r)
        # far flanks of a large box often land on brighter structures (glass edge, glare,
        # halftone) and inflate the response; a scale wider than nominal must win clearly
        margin_f = _WIDER_MARGIN if scale > 1.0 else 0.0
        better = r > (best + margin_f * np.abs(best) if margin_f else best)
        best = np.where(better, r, best)
        where = np.where(better, j0 + k, where)
        offset = np.where(better, o, offset)
        width = np.where(better, np.float32(w), width)
    # the winner's flanks, read once at its centre (the same sums as its scale's boxes); 0
    # where no scale won (no centre fits, or a NaN), as before any scale is tried
    lost = best == -np.inf
    if lost.all():
        zero = np.zeros(n, np.float32)
        return where, best, zero, zero.copy(), zero.copy(), width, cs
    flat, rows = cst.ravel(), np.arange(n)

    def flank_mean(a):
        return (flat.take((a + flank) * n + rows) - flat.take(a * n + rows)) * (1.0 / flank)

    bg_left = flank_mean(where - offset - flank)
    bg_right = flank_mean(where + offset + 1)
    level = np.maximum(bg_left, bg_right)
    if lost.any():
        for a in (bg_left, bg_right, level):
            a[lost] = 0.0
    return where, best, level, bg_left, bg_right, width, cs


def find_edges(prof: np.ndarray, *, step_px: float, bright: bool, width_px: float,
               smooth_stations: int = 3, closed: bool = False) -> Edges:
    """Find the bead's edges on profiles (N, M) sampled every ``step_px`` along the normals.

    Parameters
    ----------
    prof : (N, M) uint8 or float32
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
    # the bead and its edges are found to a sample on a 1 px grid (every other sample at
    # 0.5 px): half the work, and the edge is then refined on the full profile
    dec = max(int(round(1.0 / step_px)), 1) if m >= 16 else 1
    pc = np.ascontiguousarray(p[:, ::dec]) if dec > 1 else p
    cstep = step_px * dec
    # a dark bead's specular ridge (bright, so a dip once flipped) splits it in two lobes and
    # the locator would take one lobe for the bead; a closing over the ridge's width
    # (≈ 0.12 of the half width either side of its crest, by the cap's geometry) bridges it,
    # while edges and ramps stay where they are. A bright bead's ridge is a peak: nothing to
    # bridge, and a closing there fills the dark shaded flank's dips instead (measured: more
    # false "thin" calls)
    span = int(np.ceil(_BRIDGE * width_px / cstep)) | 1
    if not bright and span > 1 and pc.shape[1] > span:
        pc = cv2.morphologyEx(pc, cv2.MORPH_CLOSE, np.ones((1, span), np.uint8),
                              borderType=cv2.BORDER_REPLICATE)
    center, contrast, level, bg_l, bg_r, w_cols, cs = _locate_decimated(pc, width_px, cstep, _LOCATE_EVERY)
    tol = 3.0 * np.sqrt(2.0) * _noise(prof, smooth_stations) + 0.1 * np.abs(contrast)
    lx, lok = _side_edge(pc, center, w_cols, bg_l, -1, cstep, tol)
    rx, rok = _side_edge(pc, center, w_cols, bg_r, +1, cstep, tol)
    reach = max(int(round(_REFINE_PX / step_px)), 1)
    lcol, lsig, _ = _refine(p, np.clip(np.round(lx * dec).astype(np.int64), 1, m - 2), 1, step_px, reach)
    rcol, rsig, _ = _refine(p, np.clip(np.round(rx * dec).astype(np.int64), 1, m - 2), -1, step_px, reach)
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
    sub = prof[:: max(n // 512, 1), ::3].astype(np.float32)
    diff = np.abs(sub[1:] - sub[:-1])
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
    2. The edge sample is the first one whose departure from that level is at most 20 %
       of the bead's departure at the starting point; it is refined afterwards.
    """
    n, m = p.shape
    rows = np.arange(n)
    q = np.clip(center + d * np.round(0.25 * w_cols).astype(np.int64), 0, m - 1)
    f = max(int(round(2.0 / step_px)), 1)
    kmax = int(np.ceil(0.3 * w_cols.max() + 6.0 / step_px)) + f + 1
    # (kmax, N): one contiguous row per step of the walk, so the running maximum and the
    # first-hit searches below are vector operations over all stations
    at = np.add.outer(d * np.arange(kmax), q)
    if d < 0:                                                 # q is in the row: the walk
        np.maximum(at, 0, out=at)                             # leaves it on one side only
    else:
        np.minimum(at, m - 1, out=at)
    at += rows * m
    v = p.ravel().take(at)
    bg_flank = np.asarray(bg_flank, np.float32)
    sgn0 = np.where(v[0] >= bg_flank, 1.0, -1.0).astype(np.float32)
    rel = np.subtract(v, bg_flank)                            # towards the bead > 0
    rel *= sgn0
    top = np.empty_like(rel)
    top[0] = rel[0]
    for i in range(1, kmax):                                  # a running max over ~20 steps
        np.maximum(top[i - 1], rel[i], out=top[i])
    flat = np.abs(v[:-f] - v[f:]) <= np.asarray(tol, np.float32)
    top *= 0.5
    foot_ok = flat & (rel[:-f] <= top[:-f])
    kf, has_foot = _first_true(foot_ok)
    vf = v.ravel()
    at = kf * n + rows
    bg_local = (vf.take(at) + vf.take(at + (f // 2) * n) + vf.take(at + f * n)) * (1.0 / 3.0)
    bg = np.where(has_foot, bg_local, bg_flank)
    body = v[0] - bg
    sgn = np.where(body >= 0, 1.0, -1.0).astype(np.float32)
    delta = _DEPART * np.abs(body)
    np.subtract(v, bg, out=rel)
    rel *= sgn
    ks, ok = _first_true(rel <= delta)
    ok &= ks > 0
    ks = np.maximum(ks, 1)
    relf = rel.ravel()
    at = ks * n + rows
    v_out = relf.take(at)
    v_in = relf.take(at - n)
    frac = np.clip((v_in - delta) / np.maximum(v_in - v_out, 1e-6), 0.0, 1.0)
    xc = q + d * (ks - 1 + frac)
    return xc, ok
