"""Stage 1, sampling: the profiles across the path at all stations.

Two ways to the same bytes. :func:`sample_profiles` is one ``cv2.remap`` of maps built once
per recipe (and moved by :func:`~vision_qc.engine.align.move_maps` when the part's pose
changes). The inspector uses :func:`sample_stations`, one compiled pass that computes each
sample's position from its station's point and normal (moved by the pose) and interpolates
the frame there, with no map arrays: it gives exactly the bytes of the remap of the moved
maps (see :func:`_sample_kernel` for how), in less time (the maps are 6 MB to move and read
per frame at 7,509 stations × 99 samples).

Layout: the profiles come out (M, N), one row per sample offset across the path and one
column per station. Every later stage works on whole rows of N stations (contiguous), which
is what the edge finder's compiled kernels vectorise over; teaching and analysis, which look
at one station's profile at a time, use :func:`profiles_by_station` (N, M).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import Stations
from ._jit import fma32, inlined, kernel

__all__ = ["ProfileMaps", "ProfileSampler", "build_maps", "build_sampler", "profiles_by_station",
           "sample_profiles", "sample_stations"]


@dataclass(frozen=True, eq=False)
class ProfileMaps:
    """Sampling maps for N profiles of M samples each.

    Attributes
    ----------
    t_px : (M,) float32
        Offsets of the samples along the station normal, px (negative: the left side).
    map1 : (M, N, 2) float32
        Sample positions (x, y) for ``cv2.remap``: row k holds the k-th offset at every
        station. One two-channel float map is faster than the fixed-point pair here
        (measured: 1.3 vs 2.4 ms for 6,000 × 97 samples, one thread) and keeps full sub-pixel
        precision instead of 1/32 px.
    map2 : None
        Kept for the ``cv2.remap`` call signature.
    """

    t_px: np.ndarray
    map1: np.ndarray
    map2: None = None

    @property
    def step_px(self) -> float:
        return float(self.t_px[1] - self.t_px[0])


def _offsets(half_width_px: float, step_px: float) -> np.ndarray:
    m = int(np.ceil(half_width_px / step_px))
    return (np.arange(-m, m + 1) * step_px).astype(np.float32)


def build_maps(stations: Stations, *, half_width_px: float, step_px: float = 0.5) -> ProfileMaps:
    """Maps that sample ``[-half_width_px, +half_width_px]`` along each station normal."""
    t = _offsets(half_width_px, step_px)
    xy = stations.xy.astype(np.float32)
    nrm = stations.normal_xy.astype(np.float32)
    xy_map = np.empty((len(t), len(xy), 2), np.float32)
    xy_map[..., 0] = xy[None, :, 0] + t[:, None] * nrm[None, :, 0]
    xy_map[..., 1] = xy[None, :, 1] + t[:, None] * nrm[None, :, 1]
    return ProfileMaps(t_px=t, map1=xy_map, map2=None)


def sample_profiles(gray: np.ndarray, maps: ProfileMaps) -> np.ndarray:
    """Profiles (M, N) uint8 from a grey uint8 frame: column i is station i's profile, row k
    the samples at offset ``t_px[k]``. Bilinear; samples outside the frame read the border
    (replicated)."""
    return cv2.remap(gray, maps.map1, maps.map2, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def profiles_by_station(gray: np.ndarray, maps: ProfileMaps) -> np.ndarray:
    """The same profiles one row per station, (N, M) float32."""
    return np.ascontiguousarray(sample_profiles(gray, maps).T, dtype=np.float32)


# ----------------------------------------------------------------------------------------
# Sampling without maps. The bytes must be those of ``cv2.remap`` (INTER_LINEAR,
# BORDER_REPLICATE) of the maps that build_maps and move_maps make, so every step below is
# OpenCV's own arithmetic (5.0: modules/core/src/matmul.simd.hpp and
# modules/imgproc/src/warp_kernels.simd.hpp, warp_common.*.hpp), in float32, with its fused
# multiply-adds where it has them; checked sample by sample against cv2 in
# tests/test_sampling.py.


@dataclass(frozen=True, eq=False)
class ProfileSampler:
    """What :func:`sample_stations` needs to sample N profiles of M samples each: the
    offsets along the normals and the stations' points and normals, in float32 (the
    precision of the maps of :func:`build_maps`), one array per coordinate.

    Attributes
    ----------
    t_px : (M,) float32
        Offsets of the samples along the station normal, px (as ``ProfileMaps.t_px``).
    x_px, y_px, nx, ny : (N,) float32
        The stations' points, px, and unit normals.
    """

    t_px: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray
    nx: np.ndarray
    ny: np.ndarray

    @property
    def step_px(self) -> float:
        return float(self.t_px[1] - self.t_px[0])


def build_sampler(stations: Stations, *, half_width_px: float,
                  step_px: float = 0.5) -> ProfileSampler:
    """The sampler of the profiles of :func:`build_maps` (same arguments)."""
    xy = stations.xy.astype(np.float32)
    nrm = stations.normal_xy.astype(np.float32)
    if not (np.isfinite(xy).all() and np.isfinite(nrm).all()):
        raise ValueError("stations must have finite points and normals")
    return ProfileSampler(t_px=_offsets(half_width_px, step_px),
                          x_px=np.ascontiguousarray(xy[:, 0]), y_px=np.ascontiguousarray(xy[:, 1]),
                          nx=np.ascontiguousarray(nrm[:, 0]), ny=np.ascontiguousarray(nrm[:, 1]))


@inlined
def remap_blend(p00, p01, p10, p11, ax, ay):
    """``cv2.remap``'s INTER_LINEAR value (OpenCV 5, warp_kernels.simd.hpp) from the four
    neighbours (float32 grey levels, ``p01`` right of ``p00``, ``p10`` below it) and the
    weights ``ax``, ``ay`` (float32): ``fma(ay, v1 - v0, v0)`` of the rows' ``fma(ax, p01 -
    p00, p00)``, rounded half to even, as float32. The one definition of the blend for every
    sampler that must give remap's bytes (here, alignment's strips, the gap ends)."""
    v0 = fma32(ax, p01 - p00, p00)
    v1 = fma32(ax, p11 - p10, p10)
    magic = np.float32(12582912.0)     # 1.5 * 2**23: adding and subtracting it rounds to even
    return (fma32(ay, v1 - v0, v0) + magic) - magic


@inlined
def remap_blend_pairs(q_top, q_bot, ax, ay):
    """:func:`remap_blend` of two rows' neighbours each read as one 16-bit load (the left
    pixel in the low byte). The pairs are split in float32 (exact: integers below 2**16), not
    by & and >>, which Numba widens to int64, half the lanes per vector (sample_stations 1.22
    -> 1.05 ms)."""
    qt = np.float32(q_top)
    qb = np.float32(q_bot)
    inv256 = np.float32(1.0 / 256.0)
    c256 = np.float32(256.0)
    p01 = np.floor(qt * inv256)
    p11 = np.floor(qb * inv256)
    return remap_blend(qt - p01 * c256, p01, qb - p11 * c256, p11, ax, ay)


_POSE_NONE, _POSE_FULL, _POSE_DIAG = 0, 1, 2
# Stations per block. Warm, 64 to 256 cost the same (1.13-1.18 ms); in the pipeline, where
# the edge finder has evicted the output's lines, 256 is 0.25 ms faster than 64 (1.45-1.54
# vs 1.74-1.78 ms after an inspection): 99 output runs of 256 bytes, not 64, per block.
_BLOCK = 256


@kernel
def _sample_kernel(g, w, h, step, x_px, y_px, nx, ny, t, mat, pose, out):
    """Profiles ``out`` (M, N) uint8 of the frame ``g``, W × H uint8 pixels whose rows start
    ``step`` bytes apart, at ``(x, y) + t n`` moved by ``mat`` (6,) float32 as ``pose`` says.

    Exactly ``cv2.remap(gray, cv2.transform(build_maps(...).map1, matrix), None,
    INTER_LINEAR, borderMode=BORDER_REPLICATE)``, step by step:

    * the map: ``x + t * nx`` rounded after the product and after the sum (numpy's);
    * the pose (``cv2.transform`` of float32 points, matmul.simd.hpp): the matrix rounded to
      float32, then ``fma(m0, x, m1 y) + m2`` and ``fma(m3, x, m4 y) + m5``; when both
      off-diagonal entries are within FLT_EPSILON of 0, its diagonal path, ``fma(m0, x,
      m2)`` and ``fma(m4, y, m5)`` (``_POSE_DIAG``);
    * the remap (warp_kernels.simd.hpp, remapLinearInvoker_8UC1, both its vector body and
      its scalar tail): ``ix = floor(x)``, ``ax = x - ix``, the neighbours' columns and rows
      clamped into the frame (replicated border), ``v0 = fma(ax, p01 - p00, p00)``, ``v1``
      likewise on the row below, ``fma(ay, v1 - v0, v0)`` rounded half to even.

    The coordinates are clamped before the floor instead, which gives the same bytes, keeps
    far-off points from overflowing and every read inside the frame: ``x`` to ``[0, W - 1]``
    with ``ix <= W - 2`` (beyond either side both neighbours are the border pixel, and at
    ``x = W - 1``, ``fma(1, p01 - p00, p00)`` is ``p01`` exactly: integers), so that one
    16-bit load reads both neighbours of a row; ``y`` to ``[0, H - 1]``, the row below
    being row ``H - 1`` again at ``y = H - 1`` (there ``ay = 0``; above the frame ``ay = 0``
    too, and ``fma(0, v1 - v0, v0)`` is ``v0``). Not ``iy <= H - 2`` as for the columns:
    ``fma(1, v1 - v0, v0)`` need not be ``v1``.

    Order: blocks of ``_BLOCK`` consecutive stations; per block, one offset after the other;
    per offset, the block's stations in passes that the compiler vectorises except the
    loads (points; weights and addresses; the two 16-bit loads per sample; the blend, in
    float32 only, stored straight into the output row). The frame lines a block reads stay
    in L1 or L2 from one offset to the next (the stations are ~1 px apart and each crosses
    the path), and the output is written in runs of ``_BLOCK`` bytes: a station at a time (99 bytes
    7,509 apart) was 0.7 ms slower, the frame being read in the same order.
    """
    n_samples = t.shape[0]
    n = x_px.shape[0]
    zero = np.float32(0.0)
    x_hi = np.float32(w - 1)
    x_top = np.float32(w - 2)
    y_hi = np.float32(h - 1)
    m0, m1, m2, m3, m4, m5 = mat[0], mat[1], mat[2], mat[3], mat[4], mat[5]
    row = np.int32(step)
    one = np.uint64(1)
    sx = np.empty(_BLOCK, np.float32)
    sy = np.empty(_BLOCK, np.float32)
    a_top = np.empty(_BLOCK, np.int64)
    a_bot = np.empty(_BLOCK, np.int64)
    wx = np.empty(_BLOCK, np.float32)
    wy = np.empty(_BLOCK, np.float32)
    q_top = np.empty(_BLOCK, np.uint16)
    q_bot = np.empty(_BLOCK, np.uint16)
    for i0 in range(0, n, _BLOCK):
        nb = min(_BLOCK, n - i0)
        xb = x_px[i0:i0 + nb]
        yb = y_px[i0:i0 + nb]
        nxb = nx[i0:i0 + nb]
        nyb = ny[i0:i0 + nb]
        for k in range(n_samples):
            tk = t[k]
            # one loop per kind of pose (the test inside the loop cost 5 %)
            if pose == _POSE_FULL:
                for b in range(nb):
                    px = xb[b] + tk * nxb[b]
                    py = yb[b] + tk * nyb[b]
                    sx[b] = fma32(m0, px, m1 * py) + m2
                    sy[b] = fma32(m3, px, m4 * py) + m5
            elif pose == _POSE_DIAG:
                for b in range(nb):
                    sx[b] = fma32(m0, xb[b] + tk * nxb[b], m2)
                    sy[b] = fma32(m4, yb[b] + tk * nyb[b], m5)
            else:
                for b in range(nb):
                    sx[b] = xb[b] + tk * nxb[b]
                    sy[b] = yb[b] + tk * nyb[b]
            for b in range(nb):
                x = min(max(sx[b], zero), x_hi)
                y = min(max(sy[b], zero), y_hi)
                fx = min(np.floor(x), x_top)
                fy = np.floor(y)
                wx[b] = x - fx
                wy[b] = y - fy
                a = np.int32(fy) * row + np.int32(fx)
                a_top[b] = a
                a_bot[b] = a + (row if fy < y_hi else np.int32(0))
            for b in range(nb):
                a = np.uint64(a_top[b])
                q_top[b] = np.uint16(g[a]) | (np.uint16(g[a + one]) << np.uint16(8))
                a = np.uint64(a_bot[b])
                q_bot[b] = np.uint16(g[a]) | (np.uint16(g[a + one]) << np.uint16(8))
            out_k = out[k, i0:i0 + nb]
            for b in range(nb):
                v = remap_blend_pairs(q_top[b], q_bot[b], wx[b], wy[b])
                out_k[b] = np.uint8(np.int32(v))


def sample_stations(gray: np.ndarray, sampler: ProfileSampler,
                    matrix_2x3: np.ndarray | None = None) -> np.ndarray:
    """Profiles (M, N) uint8 sampled straight from a grey uint8 frame: the bytes
    ``sample_profiles(gray, move_maps(maps, matrix_2x3))`` gives (``sample_profiles(gray,
    maps)`` without a pose) for the maps of the same stations, without building, moving or
    reading any map.

    Parameters
    ----------
    gray : (H, W) uint8
    sampler : ProfileSampler
        From :func:`build_sampler`.
    matrix_2x3 : (2, 3) array_like, optional
        The part's pose, px (:attr:`~vision_qc.engine.align.Pose.matrix`).
    """
    if not isinstance(gray, np.ndarray) or gray.dtype != np.uint8 or gray.ndim != 2:
        raise TypeError(f"gray must be a 2-D uint8 array; got "
                        f"{getattr(gray, 'dtype', type(gray).__name__)} {np.shape(gray)}")
    if matrix_2x3 is None:
        mat = np.zeros(6, np.float32)
        pose = _POSE_NONE
    else:
        # cv2.transform rounds the matrix to float32 for float32 points, and takes its
        # diagonal path when the turn is below FLT_EPSILON
        mat = np.asarray(matrix_2x3, dtype=np.float64).reshape(6).astype(np.float32)
        if not np.isfinite(mat).all():
            raise ValueError(f"matrix_2x3 must be finite; got {np.asarray(matrix_2x3).tolist()}")
        eps = np.finfo(np.float32).eps
        pose = _POSE_DIAG if abs(mat[1]) <= eps and abs(mat[3]) <= eps else _POSE_FULL
    h, w = gray.shape
    if h < 2 or w < 2:
        return _sample_by_remap(gray, sampler, matrix_2x3)
    out = np.empty((len(sampler.t_px), len(sampler.x_px)), np.uint8)
    step, unit = gray.strides
    if unit != 1 or step < w:
        gray = np.ascontiguousarray(gray)
        step = w
    # the rows as one run of bytes, the padding between them included (a view, not a copy)
    g = np.lib.stride_tricks.as_strided(gray, shape=((h - 1) * step + w,), strides=(1,))
    _sample_kernel(g, w, h, step, sampler.x_px, sampler.y_px, sampler.nx, sampler.ny,
                   sampler.t_px, mat, pose, out)
    return out


def _sample_by_remap(gray: np.ndarray, sampler: ProfileSampler,
                     matrix_2x3: np.ndarray | None) -> np.ndarray:
    """:func:`sample_stations` the way the maps do it (frames under 2 px a side, tests)."""
    t = sampler.t_px[:, None]
    xy_map = np.stack([sampler.x_px[None, :] + t * sampler.nx[None, :],
                       sampler.y_px[None, :] + t * sampler.ny[None, :]], axis=-1)
    if matrix_2x3 is not None:
        m = np.asarray(matrix_2x3, dtype=np.float64)
        xy_map = cv2.transform(xy_map.reshape(-1, 1, 2), m).reshape(xy_map.shape)
    return cv2.remap(gray, xy_map, None, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
