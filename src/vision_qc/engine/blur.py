"""The frame's blur, measured on a clean step beside the bead.

Step 6 of :func:`~vision_qc.engine.edges.find_edges` places each bead edge with a blurred
step-and-ramp model, and the edge it finds moves with the blur the model is given (on the
accuracy sets, a frame's mean width moves ~0.3 px per 0.1 px of blur). Chosen from the bead's
own flanks (the vertex of the model's median residual over candidate blurs), the blur takes up
whatever the model misses of the flank's shading: a dark bead's rim darker than its crest, a
cap's curvature. On the `hard` preset it came out 0.14 px low on the median frame and up to
0.6-0.9 px low (p95), and the edges then lie outside the footprint (hard dark seed 7 ws_0172:
blur 1.01 px chosen against 1.51, the width read 1.0 mm wide along the whole path, 19 "wide"
false alarms). Where the frame shows a clean step (a flat level on each side: the glass edge
against the fixture beyond the frit, the edge of a fixture or a mask), the blur is read there
instead, where a blurred step is the whole model: that is what an optician does with a
slanted-edge target, taken from the frame itself.

:func:`clean_step_blur` samples profiles across the path at ``_STATIONS`` stations spread
along it, reaching ``_REACH_WIDTHS`` nominal widths beyond the bead's search band, and finds
on each the steepest step (difference over two samples) beyond the bead's reach (the nominal
width plus the largest offset either side of the path: a bead twice as wide, off its path
by the limit, stays inside). Its place between samples (the vertex of the difference's
parabola) picks one of ``_PHASES`` phases, and ``b + S Φ((x - e)/σ)`` is fitted there by
least squares over ±8 px for each candidate σ of an even grid (0.4-2.6 px): the edge's own
blur is the vertex of its residual's parabola. The edges kept are those whose best fit
leaves the least residual for the height of their step (the better half, and under
``_MAX_MISFIT`` of the step: a soft ramp such as the frit's halftone fade, a glare stripe's
flank or a second step inside the window fits worse); their median is the frame's blur.
Fewer than ``_MIN_EDGES`` kept: None, and step 6 chooses the blur itself as before.
Profiles are smoothed across as step 1 smooths them (σ 0.35 px), so the blur is the one the
step model sees. Tried and dropped: a free move of the edge in the fit (the step's
derivative in the basis) lets a wider σ fit a bump beside the step (+0.04 to +0.08 px);
the vertex of the edges' median residual instead of the median of their own vertices
(p95 0.09-0.26 px on `hard` against 0.07-0.10).

Measured against the generator's blur (40 frames per set; a bead edge's effective blur
taken as √(blur² + 0.29): the optics', the pixel's box, the bilinear sampling and step 1's
smoothing): see the README's figures. The glass edge reads up to 0.03 px blurrier than that
(its variance over the optics' is ~0.37 px² against the 0.29 the bead's edges were found to
have). Cost: one compiled pass over 96 profiles of ~180 samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..geometry import Stations
from ._jit import kernel
from .edges import _SMOOTH_ACROSS_PX
from .edges import _STEP_SIGMA_ROUND as _ROUND_PX
from .sampling import ProfileSampler, build_sampler, sample_stations

__all__ = ["BlurProbe", "build_blur_probe", "clean_step_blur"]

_GRID = tuple(round(0.4 + 0.1 * i, 2) for i in range(23))   # px: candidate blurs 0.4 … 2.6
_GRID_F64 = np.asarray(_GRID, np.float64)
_GRID_F64.flags.writeable = False
_HALF_WINDOW_PX = 8.0      # the step is fitted this far either side of its gradient peak
_PHASES = 8                # the step is tried at this many places between two samples
_STATIONS = 96             # profiles sampled, spread along the path
_REACH_WIDTHS = 2.0        # beyond the search band, the profiles reach this many nominal widths
_MIN_EDGES = 16            # fewer clean steps than this: no blur (step 6 chooses its own)
_MAX_MISFIT = 0.1          # a kept step's rms residual is at most this × its height
# the profiles are smoothed across as find_edges' step 1 smooths them (_SMOOTH_ACROSS_PX),
# and the blur is given to step 6's own rounding (_ROUND_PX)


@dataclass(frozen=True, eq=False)
class BlurProbe:
    """What :func:`clean_step_blur` needs, built once per recipe: the sampler of the
    profiles (a subset of the stations, reaching beyond the search band), the half width
    ``exclude_px`` about the path beyond which a step is looked for, and the fit's tables
    for the sampler's step (:func:`_tables`)."""

    sampler: ProfileSampler
    exclude_px: float
    tables: tuple


def build_blur_probe(stations: Stations, *, search_px: float, width_px: float,
                     max_offset_px: float, step_px: float = 0.5) -> BlurProbe:
    """The probe for one recipe: ``_STATIONS`` stations spread along the path, profiles
    reaching ``_REACH_WIDTHS`` nominal widths beyond the search band, a step looked for
    beyond the nominal width plus the largest offset either side of the path (a bead twice
    as wide as nominal, off its path by the limit, stays inside)."""
    n = len(stations)
    idx = np.unique(np.linspace(0, n - 1, min(_STATIONS, n)).round().astype(np.int64))
    sub = Stations(xy=stations.xy[idx], tangent_xy=stations.tangent_xy[idx],
                   normal_xy=stations.normal_xy[idx], arc_px=stations.arc_px[idx],
                   length_px=stations.length_px, closed=stations.closed)
    reach = float(search_px) + _REACH_WIDTHS * float(width_px)
    sampler = build_sampler(sub, half_width_px=reach, step_px=step_px)
    return BlurProbe(sampler, float(width_px) + float(max_offset_px),
                     _tables(float(sampler.step_px)))


@lru_cache(maxsize=8)
def _tables(step_px: float):
    """For every phase ψ and candidate σ, of the basis ``[1, Φ(u)]``, ``u = (x - ψ) / σ``,
    over the window's K samples: an orthonormal basis of its span (the residual is the
    window's squared norm less that of its projection), (K, Q, S·2), and the row of its
    least-squares solver that gives the step's height, (K, Q, S); float64, read-only."""
    from scipy.special import ndtr

    w = int(round(_HALF_WINDOW_PX / step_px))
    j = np.arange(-w, w + 1)
    psi = (np.arange(_PHASES) + 0.5) / _PHASES - 0.5                      # samples
    sig = np.asarray(_GRID)
    x = (j[None, None, :] - psi[:, None, None]) * step_px                  # (Q, 1, K)
    u = x / sig[None, :, None]                                             # (Q, S, K)
    basis = np.stack([np.ones_like(u), ndtr(u)], 3)                        # (Q, S, K, 2)
    ortho = np.linalg.qr(basis)[0]                                         # (Q, S, K, 2)
    height = np.linalg.pinv(basis)[:, :, 1, :]                             # (Q, S, K)
    k = len(j)
    ortho = np.ascontiguousarray(np.moveaxis(ortho, 2, 0).reshape(k, _PHASES, -1))
    height = np.ascontiguousarray(np.moveaxis(height, 2, 0))
    ortho.flags.writeable = False
    height.flags.writeable = False
    # step 1's smoothing across (edges._smooth_taps), in float64
    taps = cv2.getGaussianKernel(3, _SMOOTH_ACROSS_PX / step_px, cv2.CV_64F).ravel()
    return w, ortho, height, float(taps[1]), float(taps[0])


@kernel
def _fit_kernel(prof, t, exclude, w, k_mid, k_out, ortho, height, n_phase, grid):
    """Per profile (column of ``prof``), smoothed across by the 3 taps ``k_out, k_mid,
    k_out`` (the border replicated): the steepest step (the largest difference over two
    samples, ``|p[r + 1] - p[r - 1]|``) at rows ``r`` with ``|t[r]| >= exclude`` and a whole
    window of ``w`` samples either side; its place between samples (the vertex of the
    parabola through that difference and its neighbours', a masked row's taken as 0) as one
    of ``n_phase`` phases; the step model fitted on the window for every candidate σ of
    ``grid`` at that phase (the mean squared residual: the window's squared norm, its mean
    taken off, less that of its projection on ``ortho``); the edge's own blur, the vertex of
    the parabola through the smallest residual's candidate and its neighbours (not past
    them; the grid's second and last but one candidates at its ends); and its misfit, the
    rms residual at the best candidate over the step's height there (``height``). Returns
    (blur (N,), misfit (N,), ok (N,)): ``ok`` False where no step was found."""
    m, n = prof.shape
    n_s = grid.shape[0]
    k_len = 2 * w + 1
    blur = np.zeros(n)
    misfit = np.zeros(n)
    ok = np.zeros(n, np.bool_)
    col_p = np.empty(m)
    win = np.empty(k_len)
    acc = np.empty(2 * n_s)
    res = np.empty(n_s)
    for c in range(n):
        for r in range(m):
            a = np.float64(prof[max(r - 1, 0), c])
            b = np.float64(prof[min(r + 1, m - 1), c])
            col_p[r] = k_mid * np.float64(prof[r, c]) + k_out * (a + b)
        kb = -1
        top = 0.0
        for r in range(w, m - w):
            if abs(t[r]) < exclude:
                continue
            v = abs(col_p[r + 1] - col_p[r - 1])
            if v > top:
                top = v
                kb = r
        if kb < 0:
            continue
        lo = 0.0
        if kb - 1 >= w and abs(t[kb - 1]) >= exclude:
            lo = abs(col_p[kb] - col_p[kb - 2])
        hi = 0.0
        if kb + 1 < m - w and abs(t[kb + 1]) >= exclude:
            hi = abs(col_p[kb + 2] - col_p[kb])
        den = lo - 2.0 * top + hi
        delta = 0.5 * (lo - hi) / den if den < 0 else 0.0
        delta = min(max(delta, -0.5), 0.5)
        q = min(max(int(np.floor((delta + 0.5) * n_phase)), 0), n_phase - 1)
        mean = 0.0
        for j in range(k_len):
            win[j] = col_p[kb - w + j]
            mean += win[j]
        mean /= k_len
        norm2 = 0.0
        for j in range(k_len):
            win[j] -= mean
            norm2 += win[j] * win[j]
        acc[:] = 0.0
        for j in range(k_len):
            v = win[j]
            for col in range(2 * n_s):
                acc[col] += v * ortho[j, q, col]
        best = 0
        for s in range(n_s):
            res[s] = max((norm2 - acc[2 * s] ** 2 - acc[2 * s + 1] ** 2) / k_len, 0.0)
            if res[s] < res[best]:
                best = s
        hgt = 0.0
        for j in range(k_len):
            hgt += win[j] * height[j, q, best]
        misfit[c] = math.sqrt(res[best]) / max(abs(hgt), 1e-6)
        b = min(max(best, 1), n_s - 2)
        den = res[b - 1] - 2.0 * res[b] + res[b + 1]
        move = 0.5 * (res[b - 1] - res[b + 1]) / den if den > 0 else 0.0
        blur[c] = grid[b] + (grid[1] - grid[0]) * min(max(move, -1.0), 1.0)
        ok[c] = True
    return blur, misfit, ok


def clean_step_blur(gray: np.ndarray, probe: BlurProbe, matrix: np.ndarray | None = None
                    ) -> float | None:
    """The frame's blur, px (as find_edges' step 6 sees it), read on the clean steps beside
    the bead; None where fewer than ``_MIN_EDGES`` are clean enough. ``matrix``: the part's
    pose (2×3), as for :func:`~vision_qc.engine.sampling.sample_stations`."""
    sampler = probe.sampler
    w, ortho, height, k_mid, k_out = probe.tables
    blur, misfit, ok = _fit_kernel(sample_stations(gray, sampler, matrix), sampler.t_px,
                                   probe.exclude_px, w, k_mid, k_out, ortho, height, _PHASES,
                                   _GRID_F64)
    if ok.sum() < _MIN_EDGES:
        return None
    blur, misfit = blur[ok], misfit[ok]
    keep = misfit <= min(float(np.median(misfit)), _MAX_MISFIT)
    if keep.sum() < _MIN_EDGES:
        return None
    return round(float(np.median(blur[keep])) / _ROUND_PX) * _ROUND_PX
