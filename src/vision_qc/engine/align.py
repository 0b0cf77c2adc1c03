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
   kept, takes the midpoint of the two edges each fitted as a blurred step with the flank's
   shading as a ramp inside it (:func:`_step_centres`). A threshold or a gradient peak
   leans with the light: a bright bead lit at a slant has a dim flank, whose edge such a
   finder places inside the footprint, and a lit one, placed outside, by the same amount,
   which round a loop is a shift of the whole bead along the light, up to 0.35 px on the
   normal preset (1.5 px on the hard one), that no fit can tell from the pose; the step
   model does not lean. Where it fits fewer than ``_STEP_MIN_FIT`` of the kept profiles (a
   flank about as dark as the background has no step), the final fit takes the midpoint of
   where the profile leaves the background on either side. A reference edge's position is
   its sub-pixel gradient peak, and on a loop the fit also frees one offset common to all
   its normals (a glass cut a little larger or smaller than the taught one). Tukey fit; one
   Gauss-Newton step from the medium pose is exact to thousandths of a pixel, a second is
   taken only when the first moved far.

The fits reject what does not follow the part: a gap has no ridge; an offset stretch, glare,
dust or a blob give residuals far beyond the fit's robust scale and get zero weight, so a
defect is still reported after alignment, not aligned away. A frame where too few profiles
agree on a pose (within ``INLIER_PX``), or agree only loosely, raises :class:`AlignError`
with the reason; so does a pose outside the search range.

Everything that depends only on the recipe (the subsets of stations, their sampling
templates, the consensus triples and their inverses, the coarse design rows, the step
model's bases and Gram inverses per candidate edge and blur) is built once in
:class:`Aligner`. Per frame, the coarse profiles are sampled by ``cv2.remap`` of fixed-point
maps, the medium and fine ones, which move with the pose, by one compiled pass that gives
the bytes of ``cv2.transform`` + ``cv2.remap`` of their templates without reading or writing
a position array (:func:`_sample_moved`); everything after it
(ridges, bead edges and steps, reference edges, the consensus, the fits) runs in compiled
kernels (:mod:`vision_qc.engine._jit`): at a few hundred profiles, numpy's per-call cost was
most of the time. Each kernel has its numpy reference in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import Stations, build_stations, rigid_transform
from ._jit import fma32, kernel
from .edges import step_basis
from .sampling import ProfileMaps, remap_blend_pairs

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

ALIGN_AIM_MS = 1.0          # what alignment aims to cost per 2448×2048 frame, one core: issue #5
                            # asked 1.5; #7's 3 ms aligned frame leaves it 1.0
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
        """The pose of a 2×3 matrix ``[sR | t]``, its turn about ``center_xy``; ``quality``:
        ``residual_px``, ``inliers``. In plain floats: six numbers do not pay numpy's calls."""
        (a00, a01, t0), (a10, a11, t1) = np.asarray(matrix_2x3, dtype=np.float64).tolist()
        cx, cy = (float(v) for v in center_xy)
        scale = math.sqrt(abs(a00 * a11 - a01 * a10))
        angle = math.degrees(math.atan2(a10 - a01, a00 + a11))
        # x' = c + sR (x - c) + d  ⇒  d = t - c + sR c
        dx = t0 - cx + (a00 * cx + a01 * cy)
        dy = t1 - cy + (a10 * cx + a11 * cy)
        return cls(dx, dy, angle, scale, (cx, cy), **quality)


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
# Robust point-to-line fit. Compiled: at these sizes (a few hundred rows, 3 to 5 unknowns)
# the dozen numpy calls of a fit cost far more than its arithmetic.


@kernel
def _upper_median(x: np.ndarray) -> float:
    """Median of a 1-D array without NaN, the upper one for even sizes (the element
    ``np.partition`` puts at ``len // 2``): one selection, not a sort."""
    k = len(x) // 2
    return float(np.partition(x, k)[k])


@kernel
def _design(xy: np.ndarray, nrm: np.ndarray, center: np.ndarray, r_scale: float,
            with_scale: bool, free_offset: bool) -> np.ndarray:
    """Rows ``[nx, ny, n·J(p-c)/r, (n·(p-c)/r), (1)]``: the offset along ``n`` that a small
    increment ``(dx, dy, r dθ[, r ds][, offset])`` produces at ``p``; the last, optional
    unknown is one offset common to every normal."""
    n = len(xy)
    k = 3 + int(with_scale) + int(free_offset)
    a = np.empty((n, k))
    for i in range(n):
        nx, ny = nrm[i, 0], nrm[i, 1]
        rx, ry = xy[i, 0] - center[0], xy[i, 1] - center[1]
        a[i, 0] = nx
        a[i, 1] = ny
        a[i, 2] = (ny * rx - nx * ry) / r_scale
        if with_scale:
            a[i, 3] = (nx * rx + ny * ry) / r_scale
        if free_offset:
            a[i, k - 1] = 1.0
    return a


@kernel
def _increment_matrix(x: np.ndarray, center: np.ndarray, r_scale: float) -> np.ndarray:
    """The 2×3 matrix of an increment ``(dx, dy, r dθ[, r ds])`` about ``center``."""
    scale = 1.0 + (x[3] / r_scale if len(x) > 3 else 0.0)
    angle = x[2] / r_scale
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    m = np.empty((2, 3))
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = c, -s, s, c
    m[0, 2] = center[0] - (c * center[0] - s * center[1]) + x[0]
    m[1, 2] = center[1] - (s * center[0] + c * center[1]) + x[1]
    return m


@kernel
def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer ∘ inner`` for 2×3 affine matrices."""
    m = np.empty((2, 3))
    for i in range(2):
        for j in range(3):
            m[i, j] = outer[i, 0] * inner[0, j] + outer[i, 1] * inner[1, j]
        m[i, 2] += outer[i, 2]
    return m


@kernel
def _largest_move(xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """How far the points ``xy`` move between the poses ``b`` and ``a`` (2×3), at most along
    either axis, px."""
    d = a - b
    most = 0.0
    for i in range(len(xy)):
        for j in range(2):
            most = max(most, abs(d[j, 0] * xy[i, 0] + d[j, 1] * xy[i, 1] + d[j, 2]))
    return most


@kernel
def _solve_small(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a x = b`` for a small dense system (the normal equations of a fit, well
    conditioned by the ridge): Gaussian elimination with partial pivoting."""
    k = len(b)
    a = a.copy()
    x = b.copy()
    for c in range(k):
        p = c
        for r in range(c + 1, k):
            if abs(a[r, c]) > abs(a[p, c]):
                p = r
        if p != c:
            for j in range(k):
                a[c, j], a[p, j] = a[p, j], a[c, j]
            x[c], x[p] = x[p], x[c]
        for r in range(c + 1, k):
            f = a[r, c] / a[c, c]
            for j in range(c, k):
                a[r, j] -= f * a[c, j]
            x[r] -= f * x[c]
    for c in range(k - 1, -1, -1):
        s = x[c]
        for j in range(c + 1, k):
            s -= a[c, j] * x[j]
        x[c] = s / a[c, c]
    return x


@kernel
def _residuals(av: np.ndarray, tv: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """``out = tv - av x``."""
    for i in range(len(tv)):
        s = 0.0
        for j in range(len(x)):
            s += av[i, j] * x[j]
        out[i] = tv[i] - s


@kernel
def _tukey_fit(a: np.ndarray, t: np.ndarray, valid: np.ndarray, x0: np.ndarray,
               sigma_floor: float, iterations: int):
    """Tukey-biweight IRLS of ``a x ≈ t`` over the valid rows, from ``x0``.

    The scale σ is the MAD of the residuals at the start (where most rows are near zero:
    they were measured at the current pose) and again after the first step; it is not
    re-estimated every step. Returns ``x``, the weights (0 for rejected rows), σ (px) and
    the residuals (NaN on the rows that are not valid).
    """
    n, k = a.shape
    w = np.zeros(n)
    resid = np.full(n, np.nan)
    idx = np.flatnonzero(valid)
    nv = len(idx)
    if nv < k + 2:
        return np.zeros(k), w, np.inf, resid
    av = np.empty((nv, k))
    tv = np.empty(nv)
    for i in range(nv):
        av[i] = a[idx[i]]
        tv[i] = t[idx[i]]
    x = x0.copy()
    r = np.empty(nv)
    _residuals(av, tv, x, r)
    absr = np.empty(nv)
    wv = np.empty(nv)
    sigma = np.inf
    for it in range(iterations):
        if it < 2:
            for i in range(nv):
                absr[i] = abs(r[i])
            sigma = max(1.4826 * _upper_median(absr), sigma_floor)
        inv = 1.0 / (_TUKEY_C * sigma)
        nonzero = 0
        for i in range(nv):
            u = r[i] * inv
            wv[i] = max(1.0 - u * u, 0.0) ** 2
            nonzero += wv[i] != 0.0
        if nonzero < k + 2:
            break
        # normal equations, with a tiny ridge against a degenerate track
        nm = np.zeros((k, k))
        rhs = np.zeros(k)
        for i in range(nv):
            for p in range(k):
                awp = av[i, p] * wv[i]
                rhs[p] += awp * tv[i]
                for q in range(k):
                    nm[p, q] += awp * av[i, q]
        for p in range(k):
            nm[p, p] += 1e-9
        x_new = _solve_small(nm, rhs)
        step = np.max(np.abs(x_new - x))
        x = x_new
        _residuals(av, tv, x, r)
        if step < 1e-3 and it >= 1:
            break
    cnt = 0
    lim = _TUKEY_C * sigma
    for i in range(nv):
        if abs(r[i]) < lim:
            absr[cnt] = abs(r[i])
            cnt += 1
    sigma = max(1.4826 * _upper_median(absr[:cnt]) if cnt else np.inf, sigma_floor)
    inv = 1.0 / (_TUKEY_C * sigma)
    for i in range(nv):
        u = r[i] * inv
        w[idx[i]] = max(1.0 - u * u, 0.0) ** 2
        resid[idx[i]] = r[i]
    return x, w, sigma, resid


@kernel
def _fit_pose(xy: np.ndarray, nrm: np.ndarray, matrix: np.ndarray, center: np.ndarray,
              r_scale: float, with_scale: bool, free_offset: bool, offsets: np.ndarray,
              sigma_floor: float, iterations: int):
    """The pose fitted to ``offsets`` measured along the normals of the points ``xy``
    (normals ``nrm``, nominal) moved by ``matrix``: the increment, composed after it.

    ``free_offset``: one more unknown, the same offset along every normal, fitted and left
    out of the pose. Returns the new 2×3 matrix, the residuals (NaN where no offset) and
    the robust σ, px.
    """
    n = len(xy)
    moved = np.empty((n, 2))
    mnrm = np.empty((n, 2))
    for i in range(n):
        for j in range(2):
            moved[i, j] = matrix[j, 0] * xy[i, 0] + matrix[j, 1] * xy[i, 1] + matrix[j, 2]
            mnrm[i, j] = matrix[j, 0] * nrm[i, 0] + matrix[j, 1] * nrm[i, 1]
        if with_scale:
            length = np.hypot(mnrm[i, 0], mnrm[i, 1])
            mnrm[i, 0] /= length
            mnrm[i, 1] /= length
    a = _design(moved, mnrm, center, r_scale, with_scale, free_offset)
    valid = np.isfinite(offsets)
    t = np.where(valid, offsets, 0.0)
    x, _, sigma, resid = _tukey_fit(a, t, valid, np.zeros(a.shape[1]), sigma_floor, iterations)
    inc = _increment_matrix(x[:3 + int(with_scale)], center, r_scale)
    return _compose(inc, matrix), resid, sigma


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
    xy = np.ascontiguousarray(xy_px, dtype=np.float64)
    nrm = np.ascontiguousarray(normal_xy, dtype=np.float64)
    t = np.asarray(offset_px, dtype=np.float64)
    c = np.asarray(center_xy, dtype=np.float64)
    r_scale = max(float(np.abs(xy - c).max()), 1.0) if len(xy) else 1.0
    a = _design(xy, nrm, c, r_scale, bool(scale), False)
    valid = np.isfinite(t)
    x, w, sigma, _ = _tukey_fit(a, np.nan_to_num(t), valid, np.zeros(a.shape[1]),
                                float(sigma_floor_px), 3)
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
    """Profiles (K, M): the strip template moved by ``matrix`` and sampled; uint8 for a
    template of single profiles, float32 (the mean of the strip) otherwise. ``template``
    may also be a pair of fixed-point maps (``cv2.convertMaps``) of a template that is never
    moved (the coarse one): remapping with those costs half as much."""
    if isinstance(template, tuple):
        return cv2.remap(gray, template[0], template[1], interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    k, s, m, _ = template.shape
    pos = template.reshape(-1, 1, 2)
    if matrix is not None:
        pos = cv2.transform(pos, matrix)
    pos = pos.reshape(k * s, m, 2)
    prof = cv2.remap(gray, pos, None, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return prof if s == 1 else _strip_mean(prof, s)


def _sample_moved(gray: np.ndarray, st: Stations, t_px: np.ndarray, strip_px: float,
                  matrix: np.ndarray) -> np.ndarray:
    """:func:`_sample` of ``_strip_templates(st.xy, st.tangent_xy, st.normal_xy, t_px,
    strip_px)`` moved by ``matrix``, the same bytes, in one compiled pass
    (:func:`_strip_kernel`) that computes the positions instead of reading a template and
    writing the moved one (the fine bead template is 335 kB, cold in the pipeline): on the
    2448×2048 bench frame after an inspection, fine 0.23 → 0.19 ms, medium 0.086 → 0.082
    (warm 0.15 → 0.11, 0.038 → 0.028; thread time, medians)."""
    h, w = gray.shape
    if h < 2 or w < 2:
        return _sample(gray, _strip_templates(st.xy, st.tangent_xy, st.normal_xy, t_px,
                                              strip_px), matrix)
    shifts = np.array([-strip_px, 0.0, strip_px]) if strip_px else np.zeros(1)
    # cv2.transform rounds the matrix to float32 for float32 points, and takes its diagonal
    # path when the turn is below FLT_EPSILON (as engine.sampling.sample_stations)
    mat = np.asarray(matrix, dtype=np.float64).reshape(6).astype(np.float32)
    diag = bool(abs(mat[1]) <= _F32_EPS and abs(mat[3]) <= _F32_EPS)
    step, unit = gray.strides
    if unit != 1 or step < w:
        gray = np.ascontiguousarray(gray)
        step = w
    # the rows as one run of bytes (a view; as_strided, 3 us a call, only for padded rows)
    g = (gray.reshape(-1) if step == w else
         np.lib.stride_tricks.as_strided(gray, shape=((h - 1) * step + w,), strides=(1,)))
    out = np.empty((len(st.xy), len(t_px)), np.uint8 if len(shifts) == 1 else np.float32)
    _strip_kernel(g, w, h, step, np.ascontiguousarray(st.xy, np.float64),
                  np.ascontiguousarray(st.tangent_xy, np.float64),
                  np.ascontiguousarray(st.normal_xy, np.float64), shifts,
                  np.ascontiguousarray(t_px, np.float64), mat, diag, out)
    return out


_F32_EPS = float(np.finfo(np.float32).eps)


@kernel
def _strip_kernel(g, w, h, step, xy, tangent, normal, shifts, t, mat, diag, out):
    """``out`` (K, M): the strips of :func:`_strip_templates` (``xy``, ``tangent``,
    ``normal`` (K, 2) float64, ``shifts`` (S,) along the tangent, offsets ``t`` (M,) along
    the normal) moved by ``mat`` (6,) float32 and sampled from the frame ``g`` (W × H uint8
    pixels, rows ``step`` bytes apart); the mean of each strip's S samples when ``out`` is
    float32, the sample when uint8 (S = 1). Exactly :func:`_sample`, step by step:

    * the template: ``float32((xy + shift tangent) + t normal)``, in float64 (numpy's);
    * ``cv2.transform``: ``fma(m0, x, m1 y) + m2`` (or ``fma(m0, x, m2)`` on its diagonal
      path), in float32;
    * ``cv2.remap`` (INTER_LINEAR, as engine.sampling._sample_kernel): ``ax = x - floor(x)``,
      ``v0 = fma(ax, p01 - p00, p00)``, ``v1`` likewise, ``fma(ay, v1 - v0, v0)`` rounded
      half to even; BORDER_CONSTANT 0: a neighbour outside the frame reads 0;
    * :func:`_strip_mean`: the S samples summed in float32, in order, times ``float32(1/S)``.

    Per profile, in passes the compiler vectorises except the loads (positions, weights and
    addresses; the four neighbours; the blend); a profile with a point whose neighbours are
    not all in the frame is loaded a point at a time, with the border."""
    k_n = xy.shape[0]
    s_n = shifts.shape[0]
    m_n = t.shape[0]
    n = s_n * m_n
    m0, m1, m2, m3, m4, m5 = mat[0], mat[1], mat[2], mat[3], mat[4], mat[5]
    lo = np.float32(-2.0)
    x_hi = np.float32(w + 1)
    y_hi = np.float32(h + 1)
    x_in = np.float32(w - 2)
    y_in = np.float32(h - 2)
    zero = np.float32(0.0)
    row = np.int32(step)
    inv = np.float32(1.0 / s_n)
    sx = np.empty(m_n, np.float32)
    sy = np.empty(m_n, np.float32)
    one = np.uint64(1)
    wx = np.empty(n, np.float32)
    wy = np.empty(n, np.float32)
    ix = np.empty(n, np.int32)
    iy = np.empty(n, np.int32)
    a_top = np.empty(n, np.int32)
    q_top = np.empty(n, np.uint16)
    q_bot = np.empty(n, np.uint16)
    v = np.empty(n, np.float32)
    for k in range(k_n):
        outside = 0
        nx = normal[k, 0]
        ny = normal[k, 1]
        for s in range(s_n):
            bx = xy[k, 0] + shifts[s] * tangent[k, 0]
            by = xy[k, 1] + shifts[s] * tangent[k, 1]
            for j in range(m_n):
                sx[j] = np.float32(bx + t[j] * nx)
                sy[j] = np.float32(by + t[j] * ny)
            o = s * m_n
            if diag:
                for j in range(m_n):
                    sx[j] = fma32(m0, sx[j], m2)
                    sy[j] = fma32(m4, sy[j], m5)
            else:
                for j in range(m_n):
                    px = sx[j]
                    py = sy[j]
                    sx[j] = fma32(m0, px, m1 * py) + m2
                    sy[j] = fma32(m3, px, m4 * py) + m5
            for j in range(m_n):
                # beyond a pixel outside, every neighbour is the border: clamping there
                # changes no byte and keeps the integers small
                x = min(max(sx[j], lo), x_hi)
                y = min(max(sy[j], lo), y_hi)
                fx = np.floor(x)
                fy = np.floor(y)
                wx[o + j] = x - fx
                wy[o + j] = y - fy
                c = np.int32(fx)
                r = np.int32(fy)
                ix[o + j] = c
                iy[o + j] = r
                a_top[o + j] = r * row + c
                outside += (fx < zero) | (fy < zero) | (fx > x_in) | (fy > y_in)
        # each row's two neighbours as one 16-bit pair (as engine.sampling._sample_kernel)
        if outside == 0:
            for b in range(n):
                a = np.uint64(a_top[b])
                q_top[b] = np.uint16(g[a]) | (np.uint16(g[a + one]) << np.uint16(8))
                a = a + np.uint64(row)
                q_bot[b] = np.uint16(g[a]) | (np.uint16(g[a + one]) << np.uint16(8))
        else:
            for b in range(n):
                c, r = ix[b], iy[b]
                b00 = b01 = b10 = b11 = np.uint16(0)
                if 0 <= r < h:
                    if 0 <= c < w:
                        b00 = np.uint16(g[r * row + c])
                    if 0 <= c + 1 < w:
                        b01 = np.uint16(g[r * row + c + 1])
                if 0 <= r + 1 < h:
                    if 0 <= c < w:
                        b10 = np.uint16(g[(r + 1) * row + c])
                    if 0 <= c + 1 < w:
                        b11 = np.uint16(g[(r + 1) * row + c + 1])
                q_top[b] = b00 | (b01 << np.uint16(8))
                q_bot[b] = b10 | (b11 << np.uint16(8))
        for b in range(n):
            v[b] = remap_blend_pairs(q_top[b], q_bot[b], wx[b], wy[b])
        out_k = out[k]
        if s_n == 1:
            for j in range(m_n):
                out_k[j] = v[j]
        else:
            for j in range(m_n):
                out_k[j] = v[j]
            for s in range(1, s_n):
                for j in range(m_n):
                    out_k[j] += v[s * m_n + j]
            for j in range(m_n):
                out_k[j] *= inv


@kernel
def _strip_mean(prof: np.ndarray, s: int) -> np.ndarray:
    """(K, M) float32 means of each ``s`` consecutive rows of ``prof`` (K·s, M), summed in
    order in float32 and scaled by ``float32(1 / s)``."""
    ks, m = prof.shape
    k = ks // s
    out = np.empty((k, m), np.float32)
    inv = np.float32(1.0 / s)
    for i in range(k):
        # a row at a time (vectorised), the same sums in the same order
        acc = out[i]
        first = prof[i * s]
        for j in range(m):
            acc[j] = np.float32(first[j])
        for r in range(1, s):
            row = prof[i * s + r]
            for j in range(m):
                acc[j] += np.float32(row[j])
        for j in range(m):
            acc[j] *= inv
    return out


def _ridge_boxes(width_cols: float) -> tuple[int, int, int]:
    """The ridge response's boxes, in samples: the inner box's half-width, the distance from
    the centre to the flanks and the flanks' width."""
    return max(round(0.3 * width_cols), 1), round(0.5 * width_cols) + 1, max(round(0.4 * width_cols), 2)


@kernel
def _ridge_offsets(prof: np.ndarray, sign: float, h: int, o: int, f: int,
                   t_px: np.ndarray) -> np.ndarray:
    """Offsets (K,) px of the strongest bead-like ridge on each profile (NaN where none
    stands out).

    The response at a sample is the inner box's mean (``2h + 1`` samples) less the
    brighter flank's (``f`` samples, ``o`` from the centre), of the profile times ``sign``
    (the bead made bright); its strongest sample, refined by a parabola, is the ridge. A
    profile counts where its ridge stands out: a positive response, and at least a quarter
    of the typical (median) one. Float32 throughout, as the numpy reference in the tests.
    """
    n, m = prof.shape
    out = np.full(n, np.nan)
    lo, hi = o + f, m - o - f                          # where the boxes fit
    if n == 0 or hi <= lo:
        return out
    step = np.float32(t_px[1] - t_px[0])
    s_inner = np.float32(1.0 / (2 * h + 1))
    s_flank = np.float32(1.0 / f)
    sg = np.float32(sign)
    cs = np.empty(m + 1, np.float32)                   # running sum: box sums are differences
    resp = np.empty(m, np.float32)
    r = np.empty(n, np.float32)
    for i in range(n):
        acc = np.float32(0.0)
        cs[0] = acc
        for j in range(m):
            acc += np.float32(prof[i, j]) * sg
            cs[j + 1] = acc
        # the response (vectorised: slices from 0), then its strongest sample
        n_c = hi - lo
        a_in, b_in = cs[lo + h + 1:hi + h + 1], cs[lo - h:hi - h]
        a_l, b_l = cs[lo - o + 1:hi - o + 1], cs[lo - o - f + 1:hi - o - f + 1]
        a_r, b_r = cs[lo + o + f:hi + o + f], cs[lo + o:hi + o]
        rc = resp[lo:hi]
        for c in range(n_c):
            inner = (a_in[c] - b_in[c]) * s_inner
            left = (a_l[c] - b_l[c]) * s_flank
            right = (a_r[c] - b_r[c]) * s_flank
            rc[c] = inner - max(left, right)
        best = np.float32(-np.inf)
        k = lo
        for c in range(lo, hi):
            if resp[c] > best:
                best = resp[c]
                k = c
        d = np.float32(0.0)
        if k - 1 >= lo and k + 1 < hi:
            ra, rc = resp[k - 1], resp[k + 1]
            den = ra - np.float32(2.0) * best + rc
            if den < 0:
                d = min(max(np.float32(0.5) * (ra - rc) / den, np.float32(-0.5)), np.float32(0.5))
        r[i] = best
        out[i] = t_px[k] + np.float64(d * step)
    typical = np.empty(n, np.float32)
    cnt = 0
    for i in range(n):
        if r[i] > 0:
            typical[cnt] = r[i]
            cnt += 1
    thr = 0.25 * _upper_median(typical[:cnt]) if cnt else 0.0
    for i in range(n):
        if not (r[i] > 0 and r[i] >= thr):
            out[i] = np.nan
    return out


def _edge_reach(width_px: float) -> float:
    """How far either side of a nominal bead edge the fine stage looks, px: the medium pose
    is good to a pixel or so, and the width wobbles by a few per cent."""
    return max(3.0, 0.3 * width_px)


@kernel
def _bead_centres(prof: np.ndarray, sign: float, t_px: np.ndarray,
                  k0: int) -> tuple[np.ndarray, np.ndarray]:
    """The bead's centre on each fine profile, twice: a robust one (which profiles count)
    and where the bead's footprint begins (the final fit's fallback, see
    :func:`_step_centres`).

    ``prof`` (K, 2 Mw) holds the two edge windows side by side (times ``sign``: the bead
    bright); each runs from ``_EDGE_OUT_PX`` outside the window round the nominal edge (the
    background) past the nominal edge into the bead (the right one is stored ascending and
    reversed here). ``k0``: the first sample searched for the rise, after the smoothing.
    Per side:

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

    Float32 arithmetic as the numpy reference in the tests (bit-exact to it).

    Returns
    -------
    rise, depart : (K,) float64
        Midpoints of the two edges, px along the normal; NaN where either side has no edge
        as strong as a bead's (0.4 of the typical) or no departure.
    """
    n, m2 = prof.shape
    m = m2 // 2
    mq = m - 2                                         # samples per window after smoothing
    rise_c = np.full(n, np.nan)
    dep_c = np.full(n, np.nan)
    if n == 0 or mq <= k0 + 6:                         # no room for a rise
        return rise_c, dep_c
    step = t_px[1] - t_px[0]
    sg = np.float32(sign)
    two, quarter = np.float32(2.0), np.float32(0.25)
    # the frame's noise: differences 1 px apart over the background samples of all profiles
    # (the outer samples of the left window, then of the right one, in one row each)
    side = (k0 + 3) // 2
    per = 2 * side - 1
    diffs = np.empty(n * per, np.float32)
    outer = np.empty(2 * side, np.float32)
    for i in range(n):
        for j in range(side):
            outer[j] = prof[i, 2 * j] * sg
            outer[side + j] = prof[i, m2 - k0 - 2 + 2 * j] * sg
        for j in range(per):
            diffs[i * per + j] = abs(outer[j + 1] - outer[j])
    noise = max(1.4826 / np.sqrt(2.0) * _upper_median(diffs), 0.5)
    # both sides, each running from outside the bead inwards (rising): rows 0..n-1 the
    # left windows, n..2n-1 the right ones reversed
    rows = 2 * n
    q = np.empty((rows, mq), np.float32)               # smoothed once
    x = np.empty(m, np.float32)
    qq = np.empty(mq, np.float32)                      # ... twice
    g = np.zeros(mq, np.float32)                       # gradient at each sample
    rise = np.empty(rows)                              # in samples, inwards
    strength = np.empty(rows, np.float32)
    bg = np.empty(rows, np.float32)
    top = np.empty(rows, np.float32)
    kc = np.empty(rows, np.int64)
    kt = np.empty(rows, np.int64)
    ok = np.empty(rows, np.bool_)
    for row in range(rows):
        for j in range(m):
            x[j] = (prof[row, j] if row < n else prof[row - n, m2 - 1 - j]) * sg
        qr = q[row]
        for j in range(mq):
            qr[j] = (x[j] + two * x[j + 1] + x[j + 2]) * quarter
        qq[0], qq[mq - 1] = qr[0], qr[mq - 1]
        for j in range(1, mq - 1):
            qq[j] = (qr[j - 1] + two * qr[j] + qr[j + 1]) * quarter
        for j in range(1, mq - 1):
            g[j] = qq[j + 1] - qq[j - 1]
        # the outermost local peak of the gradient reaching 0.7 of the largest
        first = k0 + 1
        gmax = g[first]
        for j in range(first + 1, mq):
            gmax = max(gmax, g[j])
        thr = np.float32(0.7) * gmax
        k = first                                      # none: not ok
        for j in range(first + 1, mq - 1):
            if g[j] >= g[j - 1] and g[j] >= g[j + 1] and g[j] >= thr:
                k = j
                break
        ok[row] = k > k0 + 1 and k < mq - 4
        c = min(max(k, 1), mq - 2)
        ga, gb, gc = g[c - 1], g[c], g[c + 1]
        den = ga - two * gb + gc
        d = np.float32(0.0)
        if den < 0:
            d = min(max(np.float32(0.5) * (ga - gc) / den, np.float32(-0.5)), np.float32(0.5))
        rise[row] = c + np.float64(d) if ok[row] else np.nan
        strength[row] = gb if ok[row] else np.float32(0.0)
        acc = np.float32(0.0)
        for j in range(k0):
            acc += qr[j]
        bg[row] = acc / np.float32(k0)
        brightest = k0                                 # towards the crest
        for j in range(k0 + 1, mq):
            if qr[j] > qr[brightest]:
                brightest = j
        top[row] = qr[brightest]
        kc[row] = c
        kt[row] = brightest
    s = np.empty(n, np.float32)
    height = np.empty(n, np.float32)
    good = np.empty(n, np.bool_)
    min_height = np.float32(_MIN_SNR * noise)
    cnt = 0
    for i in range(n):
        s[i] = min(strength[i], strength[n + i])
        height[i] = min(top[i] - bg[i], top[n + i] - bg[n + i])
        # a bead stands out of the noise on both sides (a frame of noise has rises everywhere)
        good[i] = (np.isfinite(rise[i]) and np.isfinite(rise[n + i]) and s[i] > 0
                   and height[i] >= min_height)
        cnt += good[i]
    if cnt == 0:
        return rise_c, dep_c
    sel = np.empty(cnt, np.float32)
    cnt = 0
    for i in range(n):
        if good[i]:
            sel[cnt] = s[i]
            cnt += 1
    # both edges as strong as a bead's: a gap, glare or a faint stretch is no centre
    min_strength = np.float32(0.4 * _upper_median(sel))
    cnt = 0
    for i in range(n):
        good[i] = good[i] and s[i] >= min_strength
        if good[i]:
            sel[cnt] = height[i]
            cnt += 1
    # a clear bead: its step at the rise, measured 1 px inside it; a faint one: the crest's
    # height (a shaded flank's own step is lost in the noise)
    clear = _upper_median(sel[:cnt]) >= _CLEAR_SNR * noise
    dep = np.empty(rows)
    for row in range(rows):
        qr = q[row]
        level = qr[min(kc[row] + 2, mq - 1)] if clear else top[row]
        upto = kc[row] if clear else kt[row]
        b = bg[row]
        thr = b + np.float32(_DEPART) * (level - b)
        j = -1                                         # where the profile last lies below
        for c in range(upto, -1, -1):
            if qr[c] < thr:
                j = c
                break
        dep[row] = np.nan
        if ok[row] and j >= 0 and level > b:
            jc = min(j, mq - 2)
            q0, q1 = qr[jc], qr[jc + 1]
            frac = (thr - q0) / (q1 - q0 if q1 > q0 else np.float32(1.0))
            dep[row] = jc + np.float64(min(max(frac, np.float32(0.0)), np.float32(1.0)))
    # samples inwards → offsets: the left window ascends from t_px[1] (after smoothing); the
    # right one, stored ascending from its inner end, descends from t_px[-2] when reversed
    t0, t_right0 = t_px[1], t_px[m2 - 2]
    for i in range(n):
        if good[i]:
            rise_c[i] = 0.5 * ((t0 + rise[i] * step) + (t_right0 - rise[n + i] * step))
            dep_c[i] = 0.5 * ((t0 + dep[i] * step) + (t_right0 - dep[n + i] * step))
    return rise_c, dep_c


# The bead's edges as blurred steps. A bright bead lit from one side has one flank brighter
# than the other; a threshold (or the gradient's peak) then finds the dim flank's edge inside
# the footprint and the lit one outside it, both by the same amount, ``β (n·l)`` along the
# normal: a lean that is exactly a shift of the whole bead along the light (up to 0.35 px on
# the normal preset, 1.5 px on the hard one; measured at the true pose). The fit below places
# each edge where a model of it fits the profile best: ``b + S Φ((x - e)/σ) + s σ G((x - e)/σ)``,
# a flat background, a step S (> 0, the bead brighter) at ``e`` and a ramp s inside it (the
# flank's shading climbing to the crest), blurred by a Gaussian σ (``G`` is Φ's integral),
# over the window from its outer end to 3 px inside ``e``; linear in (b, S, s) for a given
# (e, σ): the basis, its Gram inverse and the sample range per candidate (e, σ) depend only on
# the recipe and are built once (:func:`_step_tables`).
_STEP_SIGMAS = (0.8, 1.0, 1.2, 1.4, 1.6)   # candidate blurs (the frame's is chosen), px
_STEP_INNER_PX = 3.0        # the model is fitted up to this far inside the edge
_STEP_REACH_PX = 2.5        # candidate edges within this of the nominal one, px
_STEP_DE_PX = 0.05          # ... every this much
_STEP_COARSE = 10           # ... the coarse search every this many (0.5 px)
_STEP_FINE = 4              # ... then this many either side of its vertex, every one
_STEP_SIGMA_EVERY = 16      # the blur is chosen on every this many fine profiles
_STEP_MIN_FIT = 0.85        # the model must fit this fraction of the kept profiles


def _step_tables(x_px: np.ndarray, x_nom_px: float):
    """Per candidate blur σ and edge ``e = x_nom + δ``: the samples used (``0..hi``), the
    basis columns Φ and σG on them (0 beyond, and below ``lo``, 4σ outside ``e``, where
    they are below 1e-4) and the inverse of the 3×3 Gram matrix of ``[1, Φ, σG]``. Returns
    ``(deltas (E,), lo, hi (S, E) int, phi (S, E, M), gg (S, E, M), ginv (S, E, 3, 3))``."""
    n_e = round(2 * _STEP_REACH_PX / _STEP_DE_PX) + 1
    deltas = -_STEP_REACH_PX + _STEP_DE_PX * np.arange(n_e)
    sig = np.asarray(_STEP_SIGMAS, dtype=np.float64)
    e = x_nom_px + deltas
    use = x_px[None, :] <= e[:, None] + _STEP_INNER_PX + 1e-9                   # (E, M)
    hi = np.broadcast_to(use.sum(axis=1) - 1, (len(sig), n_e)).astype(np.int64).copy()
    u = (x_px[None, None, :] - e[None, :, None]) / sig[:, None, None]           # (S, E, M)
    big_phi, gg, _ = step_basis(u, sig[:, None, None])
    near = use[None] & (u >= -4.0)
    lo = np.argmax(near, axis=2).astype(np.int64)
    big_phi = np.where(near, big_phi, 0.0)
    gg = np.where(near, gg, 0.0)
    basis = np.stack([np.broadcast_to(use[None], u.shape).astype(np.float64), big_phi, gg], -1)
    gram = np.einsum("sejk,sejl->sekl", basis, basis)
    ginv = np.linalg.inv(gram)
    return deltas, lo, hi, np.ascontiguousarray(big_phi), np.ascontiguousarray(gg), ginv


@kernel
def _step_rss(wt: np.ndarray, p1: np.ndarray, p2: np.ndarray, phi: np.ndarray,
              gg: np.ndarray, ginv: np.ndarray, lo: np.ndarray, hi: np.ndarray, s: int,
              k_first: int, k_step: int, r_from: int, r_to: int, out: np.ndarray) -> None:
    """``out[c, r]``: the mean squared residual of the step model with candidate (blur ``s``,
    edge ``k = k_first + c k_step``, ``c < len(out)``) on window ``r`` (``r_from`` to
    ``r_to``), inf where the model's step is not positive. ``wt`` (M, R): the windows, a
    row per sample; ``p1``, ``p2`` (M + 1, R): their running sums of samples and squares.

    The same candidates on many windows, the windows innermost: each window's sums still
    add their terms in the window's order (the same floats as one window at a time), and
    the windows side by side fill the vector registers."""
    # slices, each loop from 0: the compiler then knows the indices in range and vectorises
    nr = r_to - r_from
    b1 = np.empty(nr)
    b2 = np.empty(nr)
    for c in range(out.shape[0]):
        k = k_first + c * k_step
        for r in range(nr):
            b1[r] = 0.0
            b2[r] = 0.0
        for j in range(lo[s, k], hi[s, k] + 1):
            f1 = phi[s, k, j]
            f2 = gg[s, k, j]
            wj = wt[j, r_from:r_to]
            for r in range(nr):
                b1[r] += wj[r] * f1
                b2[r] += wj[r] * f2
        h = hi[s, k]
        g00, g01, g02 = ginv[s, k, 0, 0], ginv[s, k, 0, 1], ginv[s, k, 0, 2]
        g10, g11, g12 = ginv[s, k, 1, 0], ginv[s, k, 1, 1], ginv[s, k, 1, 2]
        g20, g21, g22 = ginv[s, k, 2, 0], ginv[s, k, 2, 1], ginv[s, k, 2, 2]
        q1 = p1[h + 1, r_from:r_to]
        q2 = p2[h + 1, r_from:r_to]
        oc = out[c, r_from:r_to]
        for r in range(nr):
            b0 = q1[r]
            c0 = g00 * b0 + g01 * b1[r] + g02 * b2[r]
            c1 = g10 * b0 + g11 * b1[r] + g12 * b2[r]
            c2 = g20 * b0 + g21 * b1[r] + g22 * b2[r]
            oc[r] = (q2[r] - (c0 * b0 + c1 * b1[r] + c2 * b2[r])) / (h + 1) if c1 > 0 else np.inf


@kernel
def _columns(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``a[:, idx]``, row by row (each row's gather stays in the nearest cache)."""
    out = np.empty((a.shape[0], len(idx)))
    for j in range(a.shape[0]):
        row = a[j]
        for q in range(len(idx)):
            out[j, q] = row[idx[q]]
    return out


@kernel
def _step_pick(rss: np.ndarray, r: int, k_step: int, k_first: int):
    """The candidate ``k_first + c k_step`` with the smallest residual ``rss[c, r]`` (the
    first of equals; -1 where all are inf) and the parabola's vertex through it and its
    neighbours, in candidates from it (0 at either end or where the parabola has no
    minimum). Returns ``(k, residual, vertex)``."""
    best, cb = np.inf, -1
    n_c = rss.shape[0]
    for c in range(n_c):
        if rss[c, r] < best:
            best, cb = rss[c, r], c
    d = 0.0
    if 0 < cb < n_c - 1:
        ra, rc = rss[cb - 1, r], rss[cb + 1, r]
        den = ra - 2.0 * best + rc
        if ra < np.inf and rc < np.inf and den > 0:
            d = min(max(0.5 * (ra - rc) / den, -0.5), 0.5)
    return (k_first + cb * k_step if cb >= 0 else -1), best, d * k_step


@kernel
def _step_centres(prof: np.ndarray, sign: float, deltas: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, phi: np.ndarray, gg: np.ndarray, ginv: np.ndarray,
                  rows_ok: np.ndarray) -> tuple[np.ndarray, int]:
    """The bead's centre on each fine profile from its two edges fitted as blurred steps
    (see ``_STEP_SIGMAS``), NaN where either edge has no fit in range or the profile is not
    in ``rows_ok``. The blur is the candidate whose best fits on every
    ``_STEP_SIGMA_EVERY``-th profile have the smallest median residual. Returns the centres
    (K,) px and the blur's index.

    Each edge's window is searched on every ``_STEP_COARSE``-th candidate; then on the
    ``2 _STEP_FINE + 1`` round the coarse parabola's vertex, the best refined by a
    parabola; a coarse best at either end of the range (or none with a positive step) is
    no edge. The coarse candidates are the same on every window, and so are the fine ones
    on windows whose coarse vertex rounds to the same candidate: each set is fitted to all
    its windows at once (:func:`_step_rss`)."""
    n, m2 = prof.shape
    m = m2 // 2
    out = np.full(n, np.nan)
    n_s = phi.shape[0]
    if n == 0:
        return out, 0
    # windows 0..n-1 the left ones, n..2n-1 the right ones reversed: all run inwards; a row
    # per sample, and the running sums of the samples and their squares
    nw = 2 * n
    wt = np.empty((m, nw))
    for j in range(m):
        for i in range(n):
            wt[j, i] = prof[i, j] * sign
            wt[j, n + i] = prof[i, m2 - 1 - j] * sign
    p1 = np.zeros((m + 1, nw))
    p2 = np.zeros((m + 1, nw))
    for j in range(m):
        for r in range(nw):
            p1[j + 1, r] = p1[j, r] + wt[j, r]
            p2[j + 1, r] = p2[j, r] + wt[j, r] * wt[j, r]
    n_e = phi.shape[1]
    cs = _STEP_COARSE
    n_c = (n_e - 1) // cs + 1
    # the frame's blur: on a few profiles, both sides, the coarse search only
    best_s, best_med = 0, np.inf
    if n_s > 1:
        few = np.empty(nw, np.int64)
        n_few = 0
        for i in range(0, n, _STEP_SIGMA_EVERY):
            if rows_ok[i]:
                few[n_few], few[n_few + 1] = i, n + i
                n_few += 2
        wt_few = _columns(wt, few[:n_few])
        p1_few = _columns(p1, few[:n_few])
        p2_few = _columns(p2, few[:n_few])
        rss_few = np.empty((n_c, n_few))
        sel = np.empty(n_few)
        for s in range(n_s):
            _step_rss(wt_few, p1_few, p2_few, phi, gg, ginv, lo, hi, s, 0, cs, 0, n_few,
                      rss_few)
            cnt = 0
            for q in range(n_few):
                kb, best, _ = _step_pick(rss_few, q, cs, 0)
                if 0 < kb < n_e - 1:
                    sel[cnt] = best
                    cnt += 1
            if cnt:
                med = _upper_median(sel[:cnt])
                if med < best_med:
                    best_med, best_s = med, s
    s = best_s
    # the coarse search on every window (the profiles not kept too: picking the kept ones
    # out would cost more), then the picks on the kept ones
    use = np.empty(nw, np.int64)
    n_use = 0
    for i in range(n):
        if rows_ok[i]:
            use[n_use], use[n_use + 1] = i, n + i
            n_use += 2
    coarse = np.empty((n_c, nw))
    _step_rss(wt, p1, p2, phi, gg, ginv, lo, hi, s, 0, cs, 0, nw, coarse)
    # ... then the fine one, on the windows grouped by their first fine candidate
    f = 2 * _STEP_FINE + 1
    first = np.full(nw, -1)
    count = np.zeros(n_e + 1, np.int64)
    for q in range(n_use):
        r = use[q]
        kb, _, d = _step_pick(coarse, r, cs, 0)
        if 0 < kb < n_e - 1:
            k0 = min(max(int(np.floor(kb + d + 0.5)) - _STEP_FINE, 0), n_e - f)
            first[r] = k0
            count[k0 + 1] += 1
    for k in range(n_e):
        count[k + 1] += count[k]                       # where each group starts
    n_fine = count[n_e]
    at = count[:n_e].copy()
    order = np.empty(n_fine, np.int64)
    for q in range(n_use):
        r = use[q]
        if first[r] >= 0:
            order[at[first[r]]] = r
            at[first[r]] += 1
    wt_g = _columns(wt, order)
    p1_g = _columns(p1, order)
    p2_g = _columns(p2, order)
    fine = np.empty((f, n_fine))
    edge = np.full(nw, np.nan)                         # the best candidate, fractional
    for k0 in range(n_e - f + 1):
        a, b = count[k0], count[k0 + 1]
        if a == b:
            continue
        _step_rss(wt_g, p1_g, p2_g, phi, gg, ginv, lo, hi, s, k0, 1, a, b, fine)
        for q in range(a, b):
            kb, _, d = _step_pick(fine, q, 1, k0)
            if kb >= 0:
                edge[order[q]] = kb + d
    de = deltas[1] - deltas[0]
    for i in range(n):
        if rows_ok[i] and np.isfinite(edge[i]) and np.isfinite(edge[n + i]):
            # left edge at -w/2 + δl, right one at w/2 - δr (its window runs inwards, reversed)
            out[i] = 0.5 * (edge[i] - edge[n + i]) * de
    return out, s


@kernel
def _edge_offsets(p: np.ndarray, step_px: float) -> np.ndarray:
    """Offsets (K,) px of a reference edge on each fine profile (smoothed, times the
    polarity: rising), NaN where not found: a step between two flat levels, whose gradient
    peak (refined by a Gaussian 3-point fit) is the edge; it counts when at least 0.4 of
    the typical gradient and not at the window's ends."""
    n, m = p.shape
    out = np.full(n, np.nan)
    if n == 0 or m < 7:
        return out
    g = np.zeros(m, np.float32)
    peak = np.empty(n, np.float32)
    at = np.empty(n, np.int64)
    floor = np.float32(1e-3)
    half = np.float32(0.5)
    for i in range(n):
        for j in range(1, m - 1):
            g[j] = p[i, j + 1] - p[i, j - 1]
        k = 2
        for j in range(3, m - 2):
            if g[j] > g[k]:
                k = j
        gb = max(g[k], floor)
        la, lb, lc = np.log(max(g[k - 1], floor)), np.log(gb), np.log(max(g[k + 1], floor))
        curv = la - np.float32(2.0) * lb + lc
        d = np.float32(0.0)
        if curv < np.float32(-1e-6):
            d = min(max(half * (la - lc) / curv, -half), half)
        out[i] = (k + np.float64(d) - (m - 1) / 2.0) * step_px
        peak[i] = gb
        at[i] = k
    thr = np.float32(0.4 * _upper_median(peak))
    for i in range(n):
        if not (peak[i] >= thr and 2 < at[i] < m - 3):
            out[i] = np.nan
    return out


@kernel
def _consensus(a: np.ndarray, triples: np.ndarray, tri_inv: np.ndarray, offsets: np.ndarray,
               tol_px: float, center: np.ndarray, r_scale: float) -> np.ndarray:
    """The coarse pose (2×3) that most coarse profiles agree with: of the hypotheses (the
    increments exact on a triple of profiles, ``tri_inv`` times their offsets), the one
    with the largest sum over profiles of ``max(1 - |residual| / tol_px, 0)``, refined by a
    Tukey fit from there. ``a``: the profiles' design rows (K, 3); ``offsets`` NaN where no
    ridge was found."""
    n = len(offsets)
    valid = np.isfinite(offsets)
    t = np.where(valid, offsets, 1e9)                  # a missing ridge agrees with nothing
    best = np.zeros(3)
    best_score = -np.inf
    x = np.empty(3)
    inv_tol = 1.0 / tol_px
    for h in range(len(triples)):
        for i in range(3):
            x[i] = 0.0
            for j in range(3):
                x[i] += tri_inv[h, i, j] * t[triples[h, j]]
        score = 0.0
        for j in range(n):
            res = abs(t[j] - (a[j, 0] * x[0] + a[j, 1] * x[1] + a[j, 2] * x[2]))
            score += max(1.0 - res * inv_tol, 0.0)
        if score > best_score:
            best_score = score
            best[:] = x
    x, _, _, _ = _tukey_fit(a, t, valid, best, tol_px / 3.0, 3)
    return _increment_matrix(x, center, r_scale)


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
    boxes_coarse: tuple       # the ridge response's boxes (_ridge_boxes), coarse samples
    boxes_medium: tuple       # ... medium samples
    r_scale: float            # the fits' turn unit (_r_scale) for the medium subset, px
    r_scale_coarse: float     # ... for the coarse one
    design_coarse: np.ndarray  # (Kc, 3) the coarse profiles' design rows (at the nominal pose)
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
    r_scale: float            # the fits' turn unit (_r_scale), px
    k0: int                   # bead: the first sample searched for a rise (_bead_centres)
    step: tuple = ()          # bead: the step model's tables (_step_tables)
    strip_px: float = _STRIP_PX  # the strips' spacing along the tangent, px


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
        triples, tri_inv = self._triples(few)
        r_coarse = self._r_scale(few)
        return _Coarse(sign=sign, width_px=width_px, st=sub, st_coarse=few, t_coarse=t_coarse,
                       t_medium=t_medium, tpl_coarse=tc,
                       boxes_coarse=_ridge_boxes(width_px / _COARSE_STEP_PX),
                       boxes_medium=_ridge_boxes(width_px / 1.0), r_scale=self._r_scale(sub),
                       r_scale_coarse=r_coarse,
                       design_coarse=_design(few.xy, few.normal_xy, self.center_xy, r_coarse,
                                             False, False),
                       triples=triples, tri_inv=tri_inv)

    def _build_fine_edge(self, st: Stations, sign: float, width_px: float,
                         half_px: float) -> _Fine:
        """The reference edge's fine profiles: ``±half_px`` round it at 0.5 px steps."""
        sub = _take(st, _subset(st, N_FINE))
        t = _offsets(half_px, 0.5)
        return _Fine(kind="edge", sign=sign, width_px=width_px, st=sub, t_px=t,
                     r_scale=self._r_scale(sub), k0=0)

    def _build_fine_bead(self, st: Stations, sign: float, width_px: float) -> _Fine:
        """The bead's fine profiles: two short windows per station, one round each nominal
        edge (``±width/2 ± reach``, 0.5 px steps), side by side in one template."""
        sub = _take(st, _subset(st, N_FINE_BEAD))
        m = int(np.ceil((_edge_reach(width_px) + 0.5) / 0.5))
        win = np.arange(-m - round(_EDGE_OUT_PX / 0.5), m + 1) * 0.5   # outside → inside
        t = np.concatenate([-0.5 * width_px + win, 0.5 * width_px - win[::-1]])
        return _Fine(kind="bead", sign=sign, width_px=width_px, st=sub, t_px=t,
                     r_scale=self._r_scale(sub), k0=round(_EDGE_OUT_PX / 0.5) - 2,
                     step=_step_tables(win - win[0], -win[0]), strip_px=_BEAD_STRIP_PX)

    def _triples(self, sub: Stations):
        """Well-conditioned triples of coarse profiles (the consensus hypotheses) and the
        inverses of their 3×3 design matrices; fixed per recipe, drawn from a fixed seed."""
        n = len(sub)
        if n < 3:
            return np.zeros((0, 3), np.int64), np.zeros((0, 3, 3))
        a = _design(sub.xy, sub.normal_xy, self.center_xy, self._r_scale(sub), False, False)
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
    def _measure_ridge(self, gray, tpl, t_px, boxes, matrix):
        """Offsets (K,) px of the strongest bead-like ridge on each coarse or medium profile
        (NaN where none stands out)."""
        return _ridge_offsets(_sample(gray, tpl, matrix), self.coarse.sign, *boxes, t_px)

    def _measure_fine(self, gray, matrix):
        """Offsets (K,) px of the fine track on each fine profile (NaN where not found), twice:
        the robust ones that decide which profiles count, and the final ones (the same for an
        edge; for the bead, see :func:`_bead_centres`)."""
        fi = self.fine
        prof = _sample_moved(gray, fi.st, fi.t_px, fi.strip_px, matrix)
        if fi.kind == "bead":
            rise, dep = _bead_centres(prof, fi.sign, fi.t_px, fi.k0)
            return rise, (prof, dep)
        p = cv2.GaussianBlur(prof * fi.sign, (5, 1), 1.0, borderType=cv2.BORDER_REPLICATE)
        return _edge_offsets(p, float(fi.t_px[1] - fi.t_px[0])), None

    def _fit(self, st: Stations, r_scale: float, offsets, matrix, sigma_floor=0.05,
             free_offset=False, iterations=3):
        """Fit the increment to offsets measured at ``st`` moved by ``matrix``; compose.
        Returns the new matrix, the residuals and their robust σ (see :func:`_fit_pose`).

        ``free_offset``: one more unknown, the same offset along every normal (a glass cut a
        little larger or smaller than the taught one moves its edge so; on a loop this is
        independent of the pose), fitted and left out of the pose.
        """
        return _fit_pose(st.xy, st.normal_xy, matrix, self.center_xy, r_scale, self.scale,
                         free_offset, offsets, sigma_floor, iterations)

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
        coarse_off = self._measure_ridge(gray, co.tpl_coarse, co.t_coarse, co.boxes_coarse, None)
        n_found = int(np.count_nonzero(np.isfinite(coarse_off)))
        found = n_found / len(coarse_off) if len(coarse_off) else 0.0
        if found < 0.2 or n_found < 6:
            raise AlignError(self._not_found(found, "coarse search"))
        m = _consensus(co.design_coarse, co.triples, co.tri_inv, coarse_off, 4.0, self.center_xy,
                       co.r_scale_coarse)
        med_off = _ridge_offsets(_sample_moved(gray, co.st, co.t_medium, 0.0, m), co.sign,
                                 *co.boxes_medium, co.t_medium)
        m, _, _ = self._fit(co.st, co.r_scale, med_off, m, sigma_floor=0.5)
        # One Gauss-Newton step from a pose good to a pixel or two is exact to a few
        # thousandths of a pixel; a second only when the first moved the track much.
        sigma, resid = np.inf, np.full(len(fi.st), np.nan)
        free = fi.kind == "edge" and fi.st.closed
        for it in range(2):
            fine_off, more = self._measure_fine(gray, m)
            m_new, resid, sigma = self._fit(fi.st, fi.r_scale, fine_off, m, free_offset=free)
            if it or _largest_move(fi.st.xy, m_new, m) < 1.5:
                break
            m = m_new
        if fi.kind == "bead":
            # the bead's pose from its edges fitted as blurred steps, over the profiles the
            # robust fit kept (the robust centres lean with the shading); where the model
            # fits too few of them (a flank as dark as the background has no step), from
            # where the footprint begins, as the inspection's edge finder; not if it strays
            keep = np.abs(resid) <= _TUKEY_C * sigma          # False where NaN
            prof, dep_off = more
            final, _ = _step_centres(prof, fi.sign, *fi.step, keep)
            if np.count_nonzero(np.isfinite(final)) < _STEP_MIN_FIT * np.count_nonzero(keep):
                final = np.where(keep, dep_off, np.nan)
            m_fin, _, _ = self._fit(fi.st, fi.r_scale, final, m, iterations=2)
            if _largest_move(fi.st.xy, m_fin, m_new) < 1.0:
                m_new = m_fin
        m = m_new
        agree = np.count_nonzero(np.abs(resid) <= INLIER_PX) / max(len(resid), 1)
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
