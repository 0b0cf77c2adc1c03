"""Stage 0, alignment: where is the part in this frame? A rigid pose (shift, turn, optionally
scale) of the recipe's path, found on a few profiles, never by warping the frame.

The part is found on the bead, and finally fitted to a *track*: the bead itself (a ridge of
the recipe's width and polarity) unless the recipe stores a better one under
``reference.edge`` (a taught glass or frit edge: a step, rising or falling along the curve's
normal), which does not move with the bead: a bead laid off its place is then reported as
offset even where the whole of it is off.

Three stages, each a robust fit of the pose to offsets measured along normals
(point-to-line, linear in the pose increment ``(dx, dy, dθ[, ds])`` about the image centre):

1. coarse, on the bead: 64 wide profiles (covering the whole search range) at 2 px steps,
   sampled straight from the frame (a reduced image would cost more to make than these few
   thousand samples); the strongest bead-like ridge per profile (inner box minus the brighter
   flank); a consensus over precomputed well-conditioned triples of profiles (RANSAC whose
   hypotheses, about 40, no profile in more than two, are one 3×3 product each, all at
   once) then a Tukey-reweighted fit;
2. medium, on the bead: 128 narrow profiles at 1 px steps round the coarse pose; Tukey fit;
3. fine, on the track: 256 profiles at 0.5 px steps, each the mean of three parallel ones
   2 px apart (dust, noise). On the bead, each profile is two short windows round the
   bead's nominal edges, and the centre is measured here, not by the inspection's edge
   finder (:func:`_bead_centres`): a robust midpoint of the edges' rises decides which
   profiles count and fits the pose robustly; the final fit, over the profiles that one
   kept, takes the midpoint of where the profile leaves the background on either side
   (less lean with the shading). A reference edge's position is its sub-pixel gradient
   peak, and on a loop the fit also frees one offset common to all its normals (a glass cut
   a little larger or smaller than the taught one). Tukey fit; one Gauss-Newton step from
   the medium pose is exact to thousandths of a pixel, a second is taken only when the
   first moved far.

The fits reject what does not follow the part: a gap has no ridge; an offset stretch, glare,
dust or a blob give residuals far beyond the fit's robust scale and get zero weight, so a
defect is still reported after alignment, not aligned away. A frame where too few profiles
agree on a pose (within ``INLIER_PX``), or agree only loosely, raises :class:`AlignError`
with the reason; so does a pose outside the search range.

Everything that depends only on the recipe (the subsets of stations, their sampling
templates, the consensus triples and their inverses) is built once in :class:`Aligner`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import Stations, build_stations, rigid_transform
from .sampling import ProfileMaps

__all__ = [
    "ALIGN_AIM_MS",
    "MAX_ANGLE_DEG",
    "MAX_SHIFT_PX",
    "AlignError",
    "Aligner",
    "Pose",
    "move_maps",
    "pose_matrix",
    "robust_pose_fit",
]

ALIGN_AIM_MS = 1.5          # what alignment aims to cost per 2448×2048 frame, one core
MAX_SHIFT_PX = 60.0         # default search range: shift of the part, px (each axis)
MAX_ANGLE_DEG = 4.0         # ... and its turn about the image centre, degrees
MIN_INLIERS = 0.40          # fraction of fine profiles that must agree with the pose ...
INLIER_PX = 2.0             # ... within this distance, px
MAX_RESIDUAL_PX = 1.5       # robust scale of the fine residuals above which the fit is refused
N_COARSE = 128              # medium profiles along the bead (evenly spread)
N_COARSE_FIND = 64          # coarse profiles (every other medium one)
_COARSE_STEP_PX = 2.0       # sample step of the coarse profiles
N_FINE = 256                # fine profiles along a reference edge
N_FINE_BEAD = 256           # fine profiles along the bead (each samples only its two edges)
_MIN_EVERY_PX = 4.0         # ... but no closer than this
EDGE_SEARCH_PX = 5.0        # default half-width searched round a reference edge, px
_EDGE_OUT_PX = 3.0          # fine bead windows reach this much further out: the background
_MIN_SNR = 3.0              # a fine bead edge's step, in the frame's noise (sd), at least
_CLEAR_SNR = 20.0           # a "clear" bead: typical step in noise sd (see _bead_centres)
_DEPART = 0.2               # the bead's edge: where the profile has risen this much of its step
_BEAD_STRIP_PX = 2.0        # fine bead profiles averaged over stations this far either side
_STRIP_PX = 2.0             # fine profiles averaged over stations this far either side (dust, noise)
_TUKEY_C = 4.685            # Tukey biweight constant, in robust standard deviations
_N_TRIPLES = 64             # consensus hypotheses per frame


class AlignError(ValueError):
    """The part could not be located in the frame; the message says why and what to check."""


@dataclass(frozen=True)
class Pose:
    """A rigid (or similarity) pose of the part: ``x_frame = c + s R(θ) (x - c) + d``.

    Attributes
    ----------
    dx_px, dy_px : float
        Shift ``d``, px.
    angle_deg : float
        Turn θ about ``center_xy`` (positive turns +x towards +y: clockwise on screen).
    scale : float
        ``s``; 1 unless scale was estimated.
    center_xy : (float, float)
        Centre of the turn, px (the image centre by default, as the generator's truth).
    residual_px : float
        Robust standard deviation of the fine offsets about the fit, px.
    inliers : float
        Fraction of the fine profiles whose feature lies within ``INLIER_PX`` of the pose.
    """

    dx_px: float
    dy_px: float
    angle_deg: float
    scale: float = 1.0
    center_xy: tuple[float, float] = (0.0, 0.0)
    residual_px: float = 0.0
    inliers: float = 1.0

    @property
    def matrix(self) -> np.ndarray:
        """The 2×3 matrix ``[sR | t]`` that maps recipe (part) coordinates to the frame, px."""
        return rigid_transform(shift_xy=(self.dx_px, self.dy_px), angle_deg=self.angle_deg,
                               center_xy=self.center_xy, scale=self.scale)

    def to_dict(self) -> dict:
        """Flat numbers for the result record (``pose``)."""
        return {"dx_px": self.dx_px, "dy_px": self.dy_px, "angle_deg": self.angle_deg,
                "scale": self.scale, "center_x_px": self.center_xy[0],
                "center_y_px": self.center_xy[1], "residual_px": self.residual_px,
                "inliers": self.inliers}

    @classmethod
    def from_matrix(cls, matrix_2x3, center_xy, **quality) -> Pose:
        m = np.asarray(matrix_2x3, dtype=np.float64)
        a = m[:, :2]
        scale = float(np.sqrt(abs(np.linalg.det(a))))
        angle = float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))
        c = np.asarray(center_xy, dtype=np.float64)
        d = m[:, 2] - c + a @ c
        return cls(float(d[0]), float(d[1]), angle, scale, (float(c[0]), float(c[1])), **quality)


def pose_matrix(dx_px: float, dy_px: float, angle_deg: float, *, center_xy, scale: float = 1.0):
    """The 2×3 matrix of a pose given as shift and turn about ``center_xy`` (as the generator's
    truth ``pose``: ``dx_px``, ``dy_px``, ``angle_deg``, ``center_px``)."""
    return rigid_transform(shift_xy=(dx_px, dy_px), angle_deg=angle_deg, center_xy=center_xy,
                           scale=scale)


def move_maps(maps: ProfileMaps, matrix_2x3: np.ndarray) -> ProfileMaps:
    """Sampling maps moved by a pose: exactly the maps of ``stations.transformed(matrix)``
    (a sample at ``p + t n`` goes to ``A p + b + t A n``), in one ``cv2.transform`` call
    instead of rebuilding them.

    Parameters
    ----------
    maps : ProfileMaps
        Maps built for the recipe's (nominal) stations.
    matrix_2x3 : (2, 3) array_like
        The pose, px.

    Returns
    -------
    ProfileMaps
        New maps (the input is not modified).
    """
    m = np.asarray(matrix_2x3, dtype=np.float64)
    moved = cv2.transform(maps.map1.reshape(-1, 1, 2), m).reshape(maps.map1.shape)
    return ProfileMaps(t_px=maps.t_px, map1=moved, map2=None)


# ----------------------------------------------------------------------------------------
# Robust point-to-line fit


def _design(xy: np.ndarray, nrm: np.ndarray, center: np.ndarray, r_scale: float,
            with_scale: bool) -> np.ndarray:
    """Rows ``[nx, ny, n·J(p-c)/r, (n·(p-c)/r)]``: the offset along ``n`` that a small
    increment ``(dx, dy, r dθ[, r ds])`` produces at ``p``."""
    rel = xy - center
    cols = [nrm[:, 0], nrm[:, 1], (nrm[:, 1] * rel[:, 0] - nrm[:, 0] * rel[:, 1]) / r_scale]
    if with_scale:
        cols.append((nrm[:, 0] * rel[:, 0] + nrm[:, 1] * rel[:, 1]) / r_scale)
    return np.stack(cols, axis=1)


def _increment_matrix(x: np.ndarray, center: np.ndarray, r_scale: float) -> np.ndarray:
    scale = 1.0 + (x[3] / r_scale if len(x) > 3 else 0.0)
    return rigid_transform(shift_xy=(x[0], x[1]), angle_deg=np.degrees(x[2] / r_scale),
                           center_xy=center, scale=scale)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer ∘ inner`` for 2×3 affine matrices."""
    a = outer[:, :2] @ inner[:, :2]
    b = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.hstack([a, b[:, None]])


def _median(x: np.ndarray) -> float:
    """Median of a 1-D array without NaN (the upper one for even sizes): one partition,
    without ``np.median``'s checks, which cost more than the work at these sizes."""
    k = len(x) // 2
    return float(np.partition(x, k)[k])


def _tukey_fit(a: np.ndarray, t: np.ndarray, valid: np.ndarray, *, x0: np.ndarray | None,
               sigma_floor: float, iterations: int = 3):
    """Tukey-biweight IRLS of ``a x ≈ t`` over the valid rows.

    The scale σ is the MAD of the residuals at the start (where most rows are near zero:
    they were measured at the current pose) and again after the first step; it is not
    re-estimated every step. Returns ``x``, the weights (0 for rejected rows), σ (px) and
    the residuals (NaN on the rows that are not valid).
    """
    k = a.shape[1]
    w = np.zeros(len(t))
    idx = np.flatnonzero(valid)
    if len(idx) < k + 2:
        return np.zeros(k), w, np.inf, np.full(len(t), np.nan)
    av, tv = a[idx], t[idx]
    # start from no increment: a least-squares start would be pulled by the outliers
    x = np.zeros(k) if x0 is None else np.asarray(x0, dtype=np.float64)
    ridge = 1e-9 * np.eye(k)
    r = tv - av @ x
    for it in range(iterations):
        if it < 2:
            sigma = max(1.4826 * _median(np.abs(r)), sigma_floor)
        u = r * (1.0 / (_TUKEY_C * sigma))
        wv = np.maximum(1.0 - u * u, 0.0) ** 2
        if np.count_nonzero(wv) < k + 2:
            break
        aw = av * wv[:, None]
        x_new = np.linalg.solve(aw.T @ av + ridge, aw.T @ tv)
        step = float(np.max(np.abs(x_new - x)))
        x = x_new
        r = tv - av @ x
        if step < 1e-3 and it >= 1:
            break
    inl = np.abs(r) < _TUKEY_C * sigma
    sigma = max(1.4826 * _median(np.abs(r[inl])) if inl.any() else np.inf, sigma_floor)
    u = r * (1.0 / (_TUKEY_C * sigma))
    w[idx] = np.maximum(1.0 - u * u, 0.0) ** 2
    resid = np.full(len(t), np.nan)
    resid[idx] = r
    return x, w, sigma, resid


def robust_pose_fit(xy_px: np.ndarray, normal_xy: np.ndarray, offset_px: np.ndarray, *,
                    center_xy, scale: bool = False, sigma_floor_px: float = 0.05):
    """The small pose increment that moves the lines through ``xy_px`` (normals
    ``normal_xy``) onto the points ``xy_px + offset_px · normal_xy``, robustly.

    Parameters
    ----------
    xy_px, normal_xy : (N, 2) float
        Points of a curve and their unit normals, px.
    offset_px : (N,) float
        Measured offsets along the normals, px; NaN where nothing was measured.
    center_xy : (float, float), keyword-only
        Centre of the turn, px.
    scale : bool, keyword-only
        Also fit a scale about the centre.
    sigma_floor_px : float, keyword-only
        Smallest robust scale used for the weights, px.

    Returns
    -------
    matrix : (2, 3) float64
        The increment as a pose matrix (to be composed after the pose the points were
        measured at).
    weights : (N,) float64
        Tukey weights; 0 for rejected or missing rows.
    sigma_px : float
        Robust standard deviation of the residuals, px.
    """
    xy = np.asarray(xy_px, dtype=np.float64)
    nrm = np.asarray(normal_xy, dtype=np.float64)
    t = np.asarray(offset_px, dtype=np.float64)
    c = np.asarray(center_xy, dtype=np.float64)
    r_scale = max(float(np.abs(xy - c).max()), 1.0) if len(xy) else 1.0
    a = _design(xy, nrm, c, r_scale, scale)
    valid = np.isfinite(t)
    x, w, sigma, _ = _tukey_fit(a, np.nan_to_num(t), valid, x0=None, sigma_floor=sigma_floor_px)
    return _increment_matrix(x, c, r_scale), w, sigma


# ----------------------------------------------------------------------------------------
# Tracks: the curves the pose is measured on


def _subset(st: Stations, count: int) -> np.ndarray:
    every_px = max(st.length_px / count, _MIN_EVERY_PX)
    step = max(round(every_px / st.spacing_px), 1)
    idx = np.arange(0, len(st), step)
    if not st.closed and len(st) - 1 - idx[-1] > step // 2:
        idx = np.append(idx, len(st) - 1)
    return idx


def _strip_templates(xy, tangent, normal, t_px, strip_px):
    """Sample positions (K, S, M, 2) float32: S = 3 parallel profiles ``strip_px`` apart
    along the tangent (S = 1 when ``strip_px`` is 0), of offsets ``t_px`` along the normals."""
    shifts = np.array([-strip_px, 0.0, strip_px]) if strip_px else np.zeros(1)
    base = xy[:, None, :] + shifts[None, :, None] * tangent[:, None, :]          # (K, 3, 2)
    pos = base[:, :, None, :] + t_px[None, None, :, None] * normal[:, None, None, :]
    return pos.astype(np.float32)


def _sample(gray: np.ndarray, template, matrix: np.ndarray | None) -> np.ndarray:
    """Profiles (K, M) float32: the strip template moved by ``matrix``, sampled, averaged.
    ``template`` may also be a pair of fixed-point maps (``cv2.convertMaps``) of a template
    that is never moved (the coarse one): remapping with those costs half as much."""
    if isinstance(template, tuple):
        return cv2.remap(gray, template[0], template[1], interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    k, s, m, _ = template.shape
    pos = template.reshape(-1, 1, 2)
    if matrix is not None:
        pos = cv2.transform(pos, matrix)
    pos = pos.reshape(k * s, m, 2)
    prof = cv2.remap(gray, pos, None, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if s == 1:
        return prof.astype(np.float32)
    q = prof.reshape(k, s, m).astype(np.float32)
    out = q[:, 0]
    for i in range(1, s):
        out += q[:, i]               # cheaper than .mean(axis=1) on these small arrays
    return out * (1.0 / s)


def _ridge_response(p: np.ndarray, width_cols: float) -> np.ndarray:
    """Inner box minus the brighter flank, per column (N, M); -inf where the boxes do not fit.
    ``p`` already flipped so that the feature is bright. Box sums are slices of the row-wise
    cumulative sum (no gathers)."""
    n, m = p.shape
    cs = np.zeros((n, m + 1), np.float32)
    np.cumsum(p, axis=1, out=cs[:, 1:])
    h = max(round(0.3 * width_cols), 1)
    o = round(0.5 * width_cols) + 1
    f = max(round(0.4 * width_cols), 2)
    lo, hi = o + f, m - o - f
    out = np.full((n, m), -np.inf, np.float32)
    if hi <= lo:
        return out
    inner = (cs[:, lo + h + 1:hi + h + 1] - cs[:, lo - h:hi - h]) * (1.0 / (2 * h + 1))
    left = (cs[:, lo - o + 1:hi - o + 1] - cs[:, lo - o - f + 1:hi - o - f + 1]) * (1.0 / f)
    right = (cs[:, lo + o + f:hi + o + f] - cs[:, lo + o:hi + o]) * (1.0 / f)
    np.subtract(inner, np.maximum(left, right), out=out[:, lo:hi])
    return out


def _peak(resp: np.ndarray, t_px: np.ndarray):
    """Strongest column per row, refined by a parabola: (offset px, response)."""
    n, m = resp.shape
    rows = np.arange(n)
    k = np.argmax(resp, axis=1)
    r0 = resp[rows, k]
    km = np.clip(k - 1, 0, m - 1)
    kp = np.clip(k + 1, 0, m - 1)
    ra, rc = resp[rows, km], resp[rows, kp]
    ok = np.isfinite(ra) & np.isfinite(rc) & (k > 0) & (k < m - 1)
    den = np.where(ok, ra - 2 * r0 + rc, -1.0)
    delta = np.where(ok & (den < 0), 0.5 * (ra - rc) / np.where(den < 0, den, -1.0), 0.0)
    step = float(t_px[1] - t_px[0])
    return t_px[k] + np.clip(delta, -0.5, 0.5) * step, r0


def _edge_reach(width_px: float) -> float:
    """How far either side of a nominal bead edge the fine stage looks, px: the medium pose
    is good to a pixel or so, and the width wobbles by a few per cent."""
    return max(3.0, 0.3 * width_px)


def _smooth121(q: np.ndarray) -> np.ndarray:
    """A [1 2 1] / 4 smoothing along each row; the two end columns are dropped."""
    return (q[:, :-2] + 2.0 * q[:, 1:-1] + q[:, 2:]) * 0.25


def _bead_centres(p: np.ndarray, t_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bead's centre on each fine profile, twice: a robust one (which profiles count)
    and the one the pose is finally fitted to (where the bead's footprint begins).

    ``p`` (K, 2 Mw) holds the two edge windows side by side, the bead made bright; each runs
    from ``_EDGE_OUT_PX`` outside the window round the nominal edge (the background) past the
    nominal edge into the bead (the right one is stored ascending and reversed here). Per side:

    * the *rise*: the outermost local peak of the gradient (of the profile smoothed by
      [1 2 1] twice) that reaches 0.7 of the window's largest, refined by a parabola. Not
      simply the largest: on a bright bead the highlight's flank, inside the edge, can be
      steeper; and a weak rise (a gap, glare, a faint stretch) marks no bead;
    * a station counts only where both sides' steps (crest less background) stand
      ``_MIN_SNR`` times the frame's noise out of it;
    * the *departure*, where the footprint begins, as in the inspection's edge finder:
      walking out from the rise, where the profile (smoothed once) comes down to
      ``background + _DEPART · (level − background)``, interpolated; the background is the
      mean of the window's outer samples. The level is the profile's 1 px inside the rise
      on a clear bead (typical step ≥ ``_CLEAR_SNR`` noise sd); on a faint one, whose
      shaded flank has hardly a step of its own, the window's brightest sample (towards
      the crest), and the walk starts there. The rise leans inwards on a shaded flank (the
      grey level keeps climbing towards the crest); the departure far less.

    Returns
    -------
    rise, depart : (K,) float64
        Midpoints of the two edges, px along the normal; NaN where either side has no edge
        as strong as a bead's (0.4 of the typical) or no departure.
    """
    n, m2 = p.shape
    m = m2 // 2
    step = float(t_px[1] - t_px[0])
    k0 = round(_EDGE_OUT_PX / step) - 2                # first column searched for the rise
    # the frame's noise: differences 1 px apart over the background samples of all profiles
    outer = np.concatenate([p[:, :k0 + 2:2], p[:, m2 - k0 - 2::2]], axis=1)
    noise = max(1.4826 / np.sqrt(2.0) * _median(np.abs(np.diff(outer, axis=1)).ravel()), 0.5)
    # both sides at once, each running from outside the bead inwards (rising): rows 0..n-1
    # the left windows, n..2n-1 the right ones reversed
    q = _smooth121(np.vstack([p[:, :m], p[:, :m - 1:-1]]))
    t = t_px[1:m - 1]                                  # the left window's offsets
    mq = q.shape[1]
    rows = np.arange(2 * n)
    qq = q.copy()
    qq[:, 1:-1] = _smooth121(q)
    g = np.zeros_like(q)                               # gradient at each sample
    g[:, 1:-1] = qq[:, 2:] - qq[:, :-2]
    gs = g[:, k0 + 1:]
    lm = np.zeros(gs.shape, bool)
    lm[:, 1:-1] = (gs[:, 1:-1] >= gs[:, :-2]) & (gs[:, 1:-1] >= gs[:, 2:])
    k = np.argmax(lm & (gs >= 0.7 * gs.max(axis=1)[:, None]), axis=1) + k0 + 1
    ok = (k > k0 + 1) & (k < mq - 4)
    kc = np.clip(k, 1, mq - 2)
    ga, gb, gc = g[rows, kc - 1], g[rows, kc], g[rows, kc + 1]
    den = ga - 2.0 * gb + gc
    bend = den < 0
    d = np.where(bend, 0.5 * (ga - gc) / np.where(bend, den, -1.0), 0.0)
    rise = np.where(ok, kc + np.clip(d, -0.5, 0.5), np.nan)          # in samples, inwards
    bg = q[:, :k0].mean(axis=1)
    kt = k0 + np.argmax(q[:, k0:], axis=1)             # the brightest sample: towards the crest
    top = q[rows, kt]
    cols = np.arange(mq)

    def departure(level, upto):
        """Where the profile last lies below ``bg + _DEPART (level - bg)`` before ``upto``,
        interpolated, in samples inwards."""
        thr = bg + _DEPART * (level - bg)
        below = (q < thr[:, None]) & (cols[None, :] <= upto[:, None])
        j = np.where(below, cols[None, :], -1).max(axis=1)
        jc = np.clip(j, 0, mq - 2)
        q0, q1 = q[rows, jc], q[rows, jc + 1]
        frac = np.clip((thr - q0) / np.where(q1 > q0, q1 - q0, 1.0), 0.0, 1.0)
        return np.where(ok & (j >= 0) & (level > bg), jc + frac, np.nan)

    # samples inwards → offsets: the left window ascends from t[0]; the right one, stored
    # ascending from its inner end, descends from -t[0] when reversed
    t0 = float(t[0])
    strength = np.where(ok, gb, 0.0)
    s = np.minimum(strength[:n], strength[n:])
    height = np.minimum(top[:n] - bg[:n], top[n:] - bg[n:])
    # a bead stands out of the noise on both sides (a frame of noise has rises everywhere)
    good = np.isfinite(rise[:n]) & np.isfinite(rise[n:]) & (s > 0) & (height >= _MIN_SNR * noise)
    if not good.any():
        nan = np.full(n, np.nan)
        return nan, nan
    # both edges as strong as a bead's: a gap, glare or a faint stretch is no centre
    good &= s >= 0.4 * _median(s[good])
    t_right0 = float(t_px[m2 - 2])                     # the right window's outer offset after smoothing
    rise_c = 0.5 * ((t0 + rise[:n] * step) + (t_right0 - rise[n:] * step))
    if _median(height[good]) >= _CLEAR_SNR * noise:
        # a clear bead: its step at the rise, measured 1 px inside it
        dep = departure(q[rows, np.minimum(kc + 2, mq - 1)], kc)
    else:
        # a faint one: the crest's height (a shaded flank's own step is lost in the noise)
        dep = departure(top, kt)
    dep_c = 0.5 * ((t0 + dep[:n] * step) + (t_right0 - dep[n:] * step))
    return np.where(good, rise_c, np.nan), np.where(good, dep_c, np.nan)


@dataclass(frozen=True, eq=False)
class _Coarse:
    """The bead's coarse/medium profiles: built once per recipe."""

    sign: float               # +1: the bead is brighter than its surroundings
    width_px: float
    st: Stations              # the subset of stations (nominal), of the medium profiles
    st_coarse: Stations       # ... and of the coarse ones (fewer)
    t_coarse: np.ndarray      # (Mc,) offsets of the coarse profiles, px
    t_medium: np.ndarray      # (Mm,)
    tpl_coarse: tuple         # fixed-point maps (K, Mc) of the coarse sample positions
    tpl_medium: np.ndarray    # (K, 1, Mm, 2)
    triples: np.ndarray       # (T, 3) indices into the subset: the consensus hypotheses
    tri_inv: np.ndarray       # (T, 3, 3) inverses of their design rows


@dataclass(frozen=True, eq=False)
class _Fine:
    """The fine profiles on the track the pose is finally fitted to: built once."""

    kind: str                 # "bead" | "edge"
    sign: float               # bead: +1 brighter; edge: +1 rising along the normal
    width_px: float
    st: Stations
    t_px: np.ndarray          # (Mf,)
    tpl: np.ndarray           # (K, 3, Mf, 2) float32
    xy_h: np.ndarray          # (K, 3) homogeneous points, to measure a pose update


def _take(st: Stations, idx: np.ndarray) -> Stations:
    return Stations(xy=st.xy[idx], tangent_xy=st.tangent_xy[idx], normal_xy=st.normal_xy[idx],
                    arc_px=st.arc_px[idx], length_px=st.length_px, closed=st.closed)


def _offsets(half_px: float, step_px: float) -> np.ndarray:
    m = int(np.ceil(half_px / step_px))
    return np.arange(-m, m + 1) * step_px


class Aligner:
    """Locates the part in a frame; built once per recipe, called per frame.

    Parameters
    ----------
    stations : Stations
        The recipe path's stations (nominal, part frame).
    size_wh : (int, int), keyword-only
        Image width and height, px; the pose turns about the image centre.
    bright : bool, keyword-only
        The bead is brighter than its surroundings.
    width_px : float, keyword-only
        Nominal bead width, px.
    reference : dict or None, keyword-only
        The recipe's ``reference``. Optional keys: ``edge`` (a mapping with ``points``
        [[x, y], ...] px in order, ``closed``, and ``polarity`` ``rising``/``falling``: how
        the grey level changes along the curve's normal ``(-ty, tx)``), ``max_shift_px``,
        ``max_angle_deg``, ``scale`` (true: also estimate a scale). ``edge.search_px``: how
        far either side of the edge to look (default 5; less than its distance to the bead's
        nearer edge). Without ``edge`` the
        pose is fitted to the bead.
    max_shift_px, max_angle_deg : float, keyword-only
        The search range (override the reference's).
    scale : bool or None, keyword-only
        Estimate a scale too (None: the reference's choice, default False).

    Raises
    ------
    ValueError
        A bad width or reference.
    """

    def __init__(self, stations: Stations, *, size_wh, bright: bool, width_px: float,
                 reference: dict | None = None, max_shift_px: float | None = None,
                 max_angle_deg: float | None = None, scale: bool | None = None):
        if not isinstance(stations, Stations):
            raise TypeError(f"stations must be Stations; got {type(stations).__name__}")
        if not width_px > 0:
            raise ValueError(f"width_px must be > 0; got {width_px!r}")
        ref = dict(reference or {})
        w, h = (int(v) for v in size_wh)
        self.size_wh = (w, h)
        self.center_xy = np.array([w / 2.0, h / 2.0])
        self.max_shift_px = float(max_shift_px if max_shift_px is not None
                                  else ref.get("max_shift_px", MAX_SHIFT_PX))
        self.max_angle_deg = float(max_angle_deg if max_angle_deg is not None
                                   else ref.get("max_angle_deg", MAX_ANGLE_DEG))
        if not (self.max_shift_px >= 0 and self.max_angle_deg >= 0):
            raise ValueError(f"the alignment range must be >= 0; got max_shift_px="
                             f"{self.max_shift_px!r}, max_angle_deg={self.max_angle_deg!r}")
        self.scale = bool(scale if scale is not None else ref.get("scale", False))
        sign = 1.0 if bright else -1.0
        self.coarse = self._build_coarse(stations, sign, float(width_px))
        edge = ref.get("edge")
        if edge is None:
            self.fine = self._build_fine_bead(stations, sign, float(width_px))
        else:
            if not isinstance(edge, dict) or "points" not in edge:
                raise ValueError("reference.edge must be a mapping with 'points' ([[x, y], ...] px), "
                                 f"'closed' and 'polarity'; got {edge!r}")
            pol = edge.get("polarity", "rising")
            if pol not in ("rising", "falling"):
                raise ValueError(f"reference.edge.polarity must be 'rising' or 'falling'; got {pol!r}")
            pts = np.asarray(edge["points"], dtype=np.float64)
            est = build_stations(pts, closed=bool(edge.get("closed", True)), spacing_px=1.0)
            # the window must not reach the bead's own edges, which are steps too
            half = float(edge.get("search_px", EDGE_SEARCH_PX))
            if not half >= 2.0:
                raise ValueError(f"reference.edge.search_px must be >= 2; got {half!r}")
            self.fine = self._build_fine_edge(est, 1.0 if pol == "rising" else -1.0,
                                              float(width_px), half + 2.0)

    @property
    def track(self) -> str:
        """What the pose is finally fitted to: ``"bead"`` or ``"edge"`` (the reference)."""
        return self.fine.kind

    # -- built once
    def _build_coarse(self, st: Stations, sign: float, width_px: float) -> _Coarse:
        r_max = float(np.hypot(*(st.xy - self.center_xy).T).max())
        # how far along its normal any point of the path can move within the search range
        reach = self.max_shift_px * np.sqrt(2) + np.deg2rad(self.max_angle_deg) * r_max
        t_coarse = _offsets(reach + width_px + 6.0, _COARSE_STEP_PX)
        t_medium = _offsets(width_px + 10.0, 1.0)
        sub = _take(st, _subset(st, N_COARSE))
        # the coarse search on every other medium profile: enough for the consensus
        few = _take(sub, np.arange(0, len(sub), N_COARSE // N_COARSE_FIND))
        tc = _strip_templates(few.xy, few.tangent_xy, few.normal_xy, t_coarse, 0.0)
        # never moved: fixed-point maps (1/32 px, plenty at these steps), built once
        tc = cv2.convertMaps(tc.reshape(len(few), len(t_coarse), 2), None, cv2.CV_16SC2)
        tm = _strip_templates(sub.xy, sub.tangent_xy, sub.normal_xy, t_medium, 0.0)
        triples, tri_inv = self._triples(few)
        return _Coarse(sign=sign, width_px=width_px, st=sub, st_coarse=few, t_coarse=t_coarse,
                       t_medium=t_medium, tpl_coarse=tc, tpl_medium=tm, triples=triples,
                       tri_inv=tri_inv)

    def _build_fine_edge(self, st: Stations, sign: float, width_px: float,
                         half_px: float) -> _Fine:
        """The reference edge's fine profiles: ``±half_px`` round it at 0.5 px steps."""
        sub = _take(st, _subset(st, N_FINE))
        t = _offsets(half_px, 0.5)
        tpl = _strip_templates(sub.xy, sub.tangent_xy, sub.normal_xy, t, _STRIP_PX)
        return _Fine(kind="edge", sign=sign, width_px=width_px, st=sub, t_px=t, tpl=tpl,
                     xy_h=np.hstack([sub.xy, np.ones((len(sub), 1))]))

    def _build_fine_bead(self, st: Stations, sign: float, width_px: float) -> _Fine:
        """The bead's fine profiles: two short windows per station, one round each nominal
        edge (``±width/2 ± reach``, 0.5 px steps), side by side in one template."""
        sub = _take(st, _subset(st, N_FINE_BEAD))
        m = int(np.ceil((_edge_reach(width_px) + 0.5) / 0.5))
        win = np.arange(-m - round(_EDGE_OUT_PX / 0.5), m + 1) * 0.5   # outside → inside
        t = np.concatenate([-0.5 * width_px + win, 0.5 * width_px - win[::-1]])
        tpl = _strip_templates(sub.xy, sub.tangent_xy, sub.normal_xy, t, _BEAD_STRIP_PX)
        return _Fine(kind="bead", sign=sign, width_px=width_px, st=sub, t_px=t, tpl=tpl,
                     xy_h=np.hstack([sub.xy, np.ones((len(sub), 1))]))

    def _triples(self, sub: Stations):
        """Well-conditioned triples of coarse profiles (the consensus hypotheses) and the
        inverses of their 3×3 design matrices; fixed per recipe, drawn from a fixed seed."""
        n = len(sub)
        if n < 3:
            return np.zeros((0, 3), np.int64), np.zeros((0, 3, 3))
        a = _design(sub.xy, sub.normal_xy, self.center_xy, self._r_scale(sub), False)
        rng = np.random.default_rng(0)
        cand = np.sort(rng.random((40 * _N_TRIPLES, n)).argsort(axis=1)[:, :3], axis=1)
        det = np.abs(np.linalg.det(a[cand]))
        chosen, used = [], np.zeros(n, np.int64)
        for i in np.argsort(det)[::-1]:
            if det[i] <= 1e-3 or len(chosen) == _N_TRIPLES:
                break
            # spread the hypotheses over the path: no profile in more than two of them
            if used[cand[i]].max() >= 2:
                continue
            chosen.append(i)
            used[cand[i]] += 1
        if not chosen:
            return np.zeros((0, 3), np.int64), np.zeros((0, 3, 3))
        tri = cand[chosen]
        return tri, np.linalg.inv(a[tri])

    def _r_scale(self, st: Stations) -> float:
        return max(float(np.abs(st.xy - self.center_xy).max()), 1.0)

    # -- per frame
    def _measure_ridge(self, gray, tpl, t_px, matrix):
        """Offsets (K,) px of the strongest bead-like ridge on each coarse profile (NaN where
        none stands out)."""
        co = self.coarse
        p = _sample(gray, tpl, matrix) * co.sign
        step = float(t_px[1] - t_px[0])
        off, r = _peak(_ridge_response(p, co.width_px / step), t_px)
        good = np.isfinite(r) & (r > 0)
        if good.any():
            # a profile counts when its ridge stands out: a quarter of the typical response
            good &= r >= 0.25 * _median(r[good])
        return np.where(good, off, np.nan)

    def _measure_fine(self, gray, matrix):
        """Offsets (K,) px of the fine track on each fine profile (NaN where not found), twice:
        the robust ones that decide which profiles count, and the final ones (the same for an
        edge; for the bead, see :func:`_bead_centres`)."""
        fi = self.fine
        prof = _sample(gray, fi.tpl, matrix)
        if fi.kind == "bead":
            return _bead_centres(prof * fi.sign, fi.t_px)
        step = float(fi.t_px[1] - fi.t_px[0])
        # a step between two flat levels: the gradient peak is the edge (Gaussian 3-point fit)
        p = cv2.GaussianBlur(prof * fi.sign, (5, 1), 1.0, borderType=cv2.BORDER_REPLICATE)
        g = np.zeros_like(p)
        g[:, 1:-1] = p[:, 2:] - p[:, :-2]
        n, m = g.shape
        rows = np.arange(n)
        k = np.argmax(g[:, 2:-2], axis=1) + 2
        ga, gb, gc = (np.maximum(g[rows, k + d], 1e-3) for d in (-1, 0, 1))
        la, lb, lc = np.log(ga), np.log(gb), np.log(gc)
        curv = la - 2 * lb + lc
        bend = curv < -1e-6
        delta = np.where(bend, 0.5 * (la - lc) / np.where(bend, curv, -1.0), 0.0)
        off = (k + np.clip(delta, -0.5, 0.5) - (m - 1) / 2.0) * step
        typical = _median(gb)
        off = np.where((gb >= 0.4 * typical) & (k > 2) & (k < m - 3), off, np.nan)
        return off, off

    def _fit(self, st: Stations, offsets, matrix, sigma_floor=0.05, free_offset=False,
             iterations=3):
        """Fit the increment to offsets measured at ``st`` moved by ``matrix``; compose.

        ``free_offset``: one more unknown, the same offset along every normal (a glass cut a
        little larger or smaller than the taught one moves its edge so; on a loop this is
        independent of the pose), fitted and left out of the pose.
        """
        a2 = matrix[:, :2]
        xy = st.xy @ a2.T + matrix[:, 2]
        nrm = st.normal_xy @ a2.T
        if self.scale:
            nrm = nrm / np.hypot(nrm[:, 0], nrm[:, 1])[:, None]
        r_scale = self._r_scale(st)
        valid = np.isfinite(offsets)
        a = _design(xy, nrm, self.center_xy, r_scale, self.scale)
        if free_offset:
            a = np.hstack([a, np.ones((len(a), 1))])
        x, _, sigma, resid = _tukey_fit(a, np.where(valid, offsets, 0.0), valid, x0=None,
                                        sigma_floor=sigma_floor, iterations=iterations)
        if free_offset:
            x = x[:-1]
        return _compose(_increment_matrix(x, self.center_xy, r_scale), matrix), resid, sigma

    def _consensus(self, offsets: np.ndarray, tol_px: float) -> np.ndarray:
        """The coarse pose (2×3) that most coarse profiles agree with, from the triples."""
        co = self.coarse
        r_scale = self._r_scale(co.st_coarse)
        a = _design(co.st_coarse.xy, co.st_coarse.normal_xy, self.center_xy, r_scale, False)
        t = np.nan_to_num(offsets, nan=1e9)
        best = np.zeros(3)
        if len(co.triples):
            xs = np.einsum("tij,tj->ti", co.tri_inv, t[co.triples])          # (T, 3)
            res = np.abs(t[None, :] - xs @ a.T)                               # (T, K)
            score = np.sum(np.maximum(1.0 - res * (1.0 / tol_px), 0.0), axis=1)
            best = xs[int(np.argmax(score))]
        x, _, _, _ = _tukey_fit(a, t, np.isfinite(offsets), x0=best, sigma_floor=tol_px / 3)
        return _increment_matrix(x, self.center_xy, r_scale)

    def estimate(self, gray: np.ndarray) -> Pose:
        """The part's pose in a grey frame.

        Parameters
        ----------
        gray : (H, W) uint8
            The frame, of the recipe's image size.

        Returns
        -------
        Pose

        Raises
        ------
        AlignError
            Too few profiles agree on a pose (no part, another part, a frame far from the
            taught one), or the pose lies outside the search range.
        """
        co, fi = self.coarse, self.fine
        coarse_off = self._measure_ridge(gray, co.tpl_coarse, co.t_coarse, None)
        found = float(np.isfinite(coarse_off).mean()) if len(coarse_off) else 0.0
        if found < 0.2 or np.isfinite(coarse_off).sum() < 6:
            raise AlignError(self._not_found(found, "coarse search"))
        m = self._consensus(coarse_off, tol_px=4.0)
        med_off = self._measure_ridge(gray, co.tpl_medium, co.t_medium, m)
        m, _, _ = self._fit(co.st, med_off, m, sigma_floor=0.5)
        # One Gauss-Newton step from a pose good to a pixel or two is exact to a few
        # thousandths of a pixel; a second only when the first moved the track much.
        sigma, resid = np.inf, np.full(len(fi.st), np.nan)
        free = fi.kind == "edge" and fi.st.closed
        for it in range(2):
            fine_off, final_off = self._measure_fine(gray, m)
            m_new, resid, sigma = self._fit(fi.st, fine_off, m, free_offset=free)
            if it or float(np.abs(fi.xy_h @ (m_new - m).T).max()) < 1.5:
                break
            m = m_new
        if final_off is not fine_off:
            # the bead's pose from where its footprint begins (the robust centres lean with
            # the shading), over the profiles the robust fit kept; not if it strays from it
            keep = np.abs(np.nan_to_num(resid, nan=np.inf)) <= _TUKEY_C * sigma
            m_dep, _, _ = self._fit(fi.st, np.where(keep, final_off, np.nan), m, iterations=2)
            if float(np.abs(fi.xy_h @ (m_dep - m_new).T).max()) < 1.0:
                m_new = m_dep
        m = m_new
        agree = float(np.mean(np.abs(np.nan_to_num(resid, nan=np.inf)) <= INLIER_PX))
        pose = Pose.from_matrix(m, self.center_xy, residual_px=float(sigma), inliers=agree)
        if agree < MIN_INLIERS or not sigma <= MAX_RESIDUAL_PX:
            raise AlignError(self._not_found(agree, "fine fit", sigma))
        if (abs(pose.angle_deg) > 1.25 * self.max_angle_deg
                or max(abs(pose.dx_px), abs(pose.dy_px)) > 1.25 * self.max_shift_px):
            raise AlignError(
                f"the part was found shifted by ({pose.dx_px:.1f}, {pose.dy_px:.1f}) px and turned "
                f"by {pose.angle_deg:.2f}°, outside the alignment range (±{self.max_shift_px:g} px, "
                f"±{self.max_angle_deg:g}°); check the fixture, or widen the range in the recipe "
                f"(reference.max_shift_px, reference.max_angle_deg)")
        return pose

    def _not_found(self, fraction: float, stage: str, sigma: float | None = None) -> str:
        what = "the bead" if stage == "coarse search" or self.track == "bead" else "the reference edge"
        spread = "" if sigma is None or not np.isfinite(sigma) else f", spread {sigma:.2f} px"
        return (f"part not found: {what} lies within {INLIER_PX:g} px of one pose at only "
                f"{100 * fraction:.0f}% of the sampled places ({stage}{spread}; "
                f"{100 * MIN_INLIERS:.0f}% and a spread of at most {MAX_RESIDUAL_PX:g} px needed); "
                f"check that a part is in view and lit as when taught, and the recipe's polarity "
                f"and width")
