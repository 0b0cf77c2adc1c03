"""Sampling without maps: :func:`sample_stations` gives exactly the bytes of ``cv2.remap`` of
the maps of :func:`build_maps`, moved by :func:`move_maps` (``cv2.transform``) when there is a
pose: random frames, stations, offsets and poses (turned, shifted only, turned by less than
FLT_EPSILON, scaled), points outside the frame and on its last row and column, points on the
1/32 and 1/64 px grid, frames of 2 and 3 px."""

import numpy as np
import pytest

from vision_qc.engine.align import move_maps
from vision_qc.engine.sampling import (
    build_maps,
    build_sampler,
    sample_profiles,
    sample_stations,
)
from vision_qc.geometry import Stations, rigid_transform


def _stations(xy, normal_xy) -> Stations:
    n = len(xy)
    return Stations(xy=np.asarray(xy, np.float64), tangent_xy=np.zeros((n, 2)),
                    normal_xy=np.asarray(normal_xy, np.float64), arc_px=np.arange(n, dtype=float),
                    length_px=float(n), closed=False)


def _random_stations(rng, n, size_wh, reach):
    w, h = size_wh
    xy = np.column_stack([rng.uniform(-reach, w - 1 + reach, n),
                          rng.uniform(-reach, h - 1 + reach, n)])
    a = rng.uniform(0, 2 * np.pi, n)
    return _stations(xy, np.column_stack([np.cos(a), np.sin(a)]))


def _by_maps(gray, st, half, step, matrix):
    maps = build_maps(st, half_width_px=half, step_px=step)
    if matrix is not None:
        maps = move_maps(maps, matrix)
    return sample_profiles(gray, maps)


def _check(gray, st, half, step, matrix):
    got = sample_stations(gray, build_sampler(st, half_width_px=half, step_px=step), matrix)
    want = _by_maps(gray, st, half, step, matrix)
    assert got.shape == want.shape and got.dtype == np.uint8
    bad = np.argwhere(got != want)
    assert len(bad) == 0, f"{len(bad)} of {got.size} samples differ, first at {bad[:5].tolist()}"


def _poses(rng, size_wh):
    c = (size_wh[0] / 2, size_wh[1] / 2)
    yield None
    yield rigid_transform(shift_xy=rng.uniform(-40, 40, 2), angle_deg=rng.uniform(-4, 4),
                          center_xy=c)
    yield rigid_transform(shift_xy=rng.uniform(-40, 40, 2), angle_deg=rng.uniform(-4, 4),
                          center_xy=c, scale=rng.uniform(0.97, 1.03))
    yield rigid_transform(shift_xy=rng.uniform(-40, 40, 2), angle_deg=0.0, center_xy=c)  # diagonal
    yield rigid_transform(shift_xy=(0.0, 0.0), angle_deg=0.0, center_xy=c, scale=1.02)
    # a turn below FLT_EPSILON: cv2.transform's diagonal path ignores it
    yield rigid_transform(shift_xy=rng.uniform(-5, 5, 2), angle_deg=3e-6, center_xy=c)
    # ... and one just above it
    yield rigid_transform(shift_xy=rng.uniform(-5, 5, 2), angle_deg=2e-5, center_xy=c)


@pytest.mark.parametrize("seed", range(4))
def test_equals_remap_of_moved_maps_on_random_frames(seed):
    rng = np.random.default_rng(seed)
    size_wh = [(640, 480), (333, 257), (64, 17), (1000, 3)][seed]
    gray = rng.integers(0, 256, size_wh[::-1], dtype=np.uint8)   # noise: every ulp shows
    st = _random_stations(rng, 1500, size_wh, reach=30.0)
    for matrix in _poses(rng, size_wh):
        _check(gray, st, half=12.3, step=0.5, matrix=matrix)
    _check(gray, st, half=5.0, step=0.37, matrix=None)


def test_equals_remap_on_the_border_and_far_outside():
    rng = np.random.default_rng(7)
    w, h = 97, 61
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    edges_x = [-1e6, -40.0, -1.5, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, w - 2.0, w - 1.5,
               w - 1.0 - 1e-4, w - 1.0, w - 1.0 + 1e-4, w - 0.5, w + 0.0, w + 3.0, 1e6]
    edges_y = [-1e6, -1.0, -0.25, 0.0, 0.75, h - 2.0, h - 1.25, h - 1.0, h - 0.5, h + 5.0, 1e6]
    xy = np.array([(x, y) for x in edges_x for y in edges_y])
    for nrm in ([1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-0.8, 0.6]):
        st = _stations(xy, np.tile(nrm, (len(xy), 1)))
        for matrix in (None, rigid_transform(shift_xy=(0.5, -0.25), angle_deg=0.0),
                       rigid_transform(shift_xy=(0.3, 0.1), angle_deg=1.0,
                                       center_xy=(w / 2, h / 2))):
            _check(gray, st, half=3.0, step=0.5, matrix=matrix)


@pytest.mark.parametrize("grid", [32, 64])
def test_equals_remap_on_the_sub_pixel_grid(grid):
    # points exactly on the 1/32 and 1/64 px grid (the old fixed-point remap's table steps),
    # the fractions half way between grid steps included
    rng = np.random.default_rng(grid)
    w, h = 120, 90
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    xy = rng.integers(-2 * grid, (w + 2) * grid, (3000, 2)) / grid
    xy[:, 1] = rng.integers(-2 * grid, (h + 2) * grid, 3000) / grid
    for nrm in ([1.0, 0.0], [0.0, -1.0]):
        st = _stations(xy, np.tile(nrm, (len(xy), 1)))
        _check(gray, st, half=2.0, step=1.0 / grid, matrix=None)
        _check(gray, st, half=2.0, step=0.5, matrix=rigid_transform(shift_xy=(1 / grid, -3 / grid),
                                                                      angle_deg=0.0))


# Points (float32) where the blend rounds differently unfused (v0 = p00 + ax (p01 - p00), ...)
# than with OpenCV's fused multiply-adds, on the frame of seed 5: found by search, 10 in 12M.
_FMA_POINTS = [[130.27627563476562, 86.5839614868164], [254.52943420410156, 171.1978759765625],
               [24.58181381225586, 147.78883361816406], [274.7670593261719, 284.7593078613281],
               [121.12613677978516, 42.98495101928711], [273.2933044433594, 177.9551239013672],
               [43.88029098510742, 205.76332092285156], [380.99395751953125, 118.14468383789062],
               [15.863903999328613, 244.3573760986328], [105.18263244628906, 229.20501708984375]]


def test_equals_remap_where_only_the_fused_blend_does():
    gray = np.random.default_rng(5).integers(0, 256, (300, 400), dtype=np.uint8)
    st = _stations(_FMA_POINTS, np.tile([1.0, 0.0], (len(_FMA_POINTS), 1)))
    _check(gray, st, half=0.1, step=0.5, matrix=None)   # offsets -0.5, 0, 0.5: 0 is the point


def test_equals_remap_on_flat_and_saturated_frames():
    # constant and two-level frames: every blend is exact, rounding half way included
    rng = np.random.default_rng(3)
    st = _random_stations(rng, 400, (50, 40), reach=5.0)
    m = rigid_transform(shift_xy=(0.25, 0.5), angle_deg=2.0, center_xy=(25, 20))
    for gray in (np.full((40, 50), 255, np.uint8), np.zeros((40, 50), np.uint8),
                 np.tile(np.array([0, 1], np.uint8), (40, 25)),
                 (np.indices((40, 50)).sum(0) % 2 * 255).astype(np.uint8)):
        for matrix in (None, m):
            _check(gray, st, half=4.0, step=0.25, matrix=matrix)


def test_equals_remap_for_every_pair_of_pixel_values():
    # the blend takes a loaded pair of neighbours apart in float32 (q // 256, q % 256):
    # every (left, right) pair of values, over the row below's pair, at a few weights
    y, k = np.indices((257, 256))
    gray = np.empty((257, 512), np.uint8)
    gray[:, 0::2] = np.minimum(y, 255)
    gray[:, 1::2] = k
    for rows in (slice(r, r + 64) for r in range(0, 256, 64)):   # remap: < 32,767 columns
        yy, kk = (v[rows].ravel() for v in np.indices((256, 256)))
        for fx, fy in ((0.5, 0.5), (0.25, 0.75), (0.9, 0.1)):
            xy = np.column_stack([2 * kk + fx, yy + fy])
            st = _stations(xy, np.tile([0.0, 1.0], (len(xy), 1)))
            _check(gray, st, half=0.1, step=0.5, matrix=None)


@pytest.mark.parametrize("size_hw", [(2, 2), (1, 5), (5, 1), (2, 7), (1, 1)])
def test_tiny_frames(size_hw):
    rng = np.random.default_rng(11)
    gray = rng.integers(0, 256, size_hw, dtype=np.uint8)
    st = _random_stations(rng, 50, size_hw[::-1], reach=2.0)
    for matrix in (None, rigid_transform(shift_xy=(0.3, -0.2), angle_deg=5.0)):
        _check(gray, st, half=2.0, step=0.5, matrix=matrix)


def test_views_are_sampled_as_their_copies():
    # a window of a larger image (rows farther apart than its width: read in place), a
    # flipped and a strided one (copied first)
    rng = np.random.default_rng(5)
    big = rng.integers(0, 256, (140, 130), dtype=np.uint8)
    st = _random_stations(rng, 300, (113, 65), reach=3.0)
    s = build_sampler(st, half_width_px=4.0)
    m = rigid_transform(shift_xy=(1.5, -0.5), angle_deg=2.0, center_xy=(56, 32))
    for view in (big[5:70, 7:120], big[70:5:-1, 7:120], big[5:135:2, 7:120]):
        assert view.shape == (65, 113)
        for matrix in (None, m):
            want = _by_maps(view.copy(), st, 4.0, 0.5, matrix)
            np.testing.assert_array_equal(sample_stations(view, s, matrix), want)
            np.testing.assert_array_equal(_by_maps(view, st, 4.0, 0.5, matrix), want)


def test_bad_input_is_refused():
    st = _stations([[5.0, 5.0]], [[1.0, 0.0]])
    s = build_sampler(st, half_width_px=2.0)
    with pytest.raises(TypeError, match="gray"):
        sample_stations(np.zeros((10, 10), np.float32), s)
    with pytest.raises(TypeError, match="gray"):
        sample_stations(np.zeros((10, 10, 3), np.uint8), s)
    with pytest.raises(ValueError, match="matrix_2x3"):
        sample_stations(np.zeros((10, 10), np.uint8), s, np.array([[1, 0, np.nan], [0, 1, 0]]))
    with pytest.raises(ValueError, match="finite"):
        build_sampler(_stations([[np.inf, 5.0]], [[1.0, 0.0]]), half_width_px=2.0)


def test_sampler_offsets_are_those_of_the_maps():
    st = _stations([[5.0, 5.0], [6.0, 5.0]], [[0.0, 1.0], [0.0, 1.0]])
    s = build_sampler(st, half_width_px=3.1, step_px=0.5)
    maps = build_maps(st, half_width_px=3.1, step_px=0.5)
    np.testing.assert_array_equal(s.t_px, maps.t_px)
    assert s.step_px == maps.step_px


def test_inspector_profiles_equal_the_moved_maps_remap():
    from vision_qc.benchmark import frame_case
    c = frame_case((640, 512), spacing_px=1.0, align=True)
    insp = c.inspector
    m = insp.aligner.estimate(c.frame).matrix
    np.testing.assert_array_equal(sample_stations(c.frame, insp.sampler, m),
                                  sample_profiles(c.frame, move_maps(insp.maps, m)))
