"""Path geometry: stations, arc length, normals, transforms; answers worked out by hand."""

from fractions import Fraction

import numpy as np
import pytest

from vision_qc.geometry import _on_path, build_stations, rigid_transform


def circle_xy(n, r=100.0, center=(500.0, 400.0), start_deg=0.0):
    """n points on a circle, clockwise on screen (y down), so the normals point inwards."""
    th = np.deg2rad(start_deg) + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([center[0] + r * np.cos(th), center[1] + r * np.sin(th)], axis=1)


@pytest.mark.parametrize("interpolation", ["spline", "linear"])
@pytest.mark.parametrize("spacing_px", [1.0, 0.5, 0.37])
def test_straight_line_stations_are_evenly_spaced_on_the_line(interpolation, spacing_px):
    st = build_stations([[10.0, 20.0], [110.0, 20.0]], closed=False, spacing_px=spacing_px,
                        interpolation=interpolation)
    assert st.length_px == pytest.approx(100.0, abs=1e-9)
    steps = np.diff(st.arc_px)
    assert steps.max() <= spacing_px + 1e-12
    np.testing.assert_allclose(steps, st.spacing_px, atol=1e-9)
    assert st.arc_px[0] == 0.0 and st.arc_px[-1] == pytest.approx(100.0)
    np.testing.assert_allclose(st.xy[:, 0], 10.0 + st.arc_px, atol=1e-9)
    np.testing.assert_allclose(st.xy[:, 1], 20.0, atol=1e-9)
    np.testing.assert_allclose(st.tangent_xy, [[1.0, 0.0]] * len(st), atol=1e-12)
    # n = (-ty, tx): a path running right has its normal pointing down the image (+y)
    np.testing.assert_allclose(st.normal_xy, [[0.0, 1.0]] * len(st), atol=1e-12)


def test_uneven_points_give_even_stations():
    pts = [[0.0, 0.0], [0.5, 0.0], [40.0, 0.0], [41.0, 0.0], [100.0, 0.0]]
    st = build_stations(pts, closed=False, interpolation="linear")
    np.testing.assert_allclose(np.diff(st.arc_px), 1.0, atol=1e-9)
    assert len(st) == 101


@pytest.mark.parametrize("n_points", [64, 360])
def test_circle_arc_length_is_two_pi_r(n_points):
    st = build_stations(circle_xy(n_points, r=100.0), closed=True)
    assert st.length_px == pytest.approx(2 * np.pi * 100.0, abs=1e-3)
    assert st.spacing_px <= 1.0
    # a closed path's stations stop one spacing short of the start: no duplicate station
    assert st.arc_px[-1] == pytest.approx(st.length_px - st.spacing_px)
    np.testing.assert_allclose(np.hypot(*(st.xy - [500.0, 400.0]).T), 100.0, atol=1e-4)


def test_circle_normals_are_unit_perpendicular_and_point_inwards():
    st = build_stations(circle_xy(48, r=80.0), closed=True)
    np.testing.assert_allclose(np.hypot(*st.normal_xy.T), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.hypot(*st.tangent_xy.T), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.einsum("ij,ij->i", st.normal_xy, st.tangent_xy), 0.0, atol=1e-12)
    inward = ([500.0, 400.0] - st.xy) / 80.0
    np.testing.assert_allclose(st.normal_xy, inward, atol=1e-4)


def test_normals_are_unit_and_perpendicular_on_a_wiggly_open_path():
    x = np.linspace(0, 400, 30)
    pts = np.stack([x, 200 + 40 * np.sin(x / 50)], axis=1)
    st = build_stations(pts, closed=False)
    np.testing.assert_allclose(np.hypot(*st.normal_xy.T), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.einsum("ij,ij->i", st.normal_xy, st.tangent_xy), 0.0, atol=1e-12)
    # the tangent is the direction of travel: consecutive stations move along it
    step = np.diff(st.xy, axis=0)
    assert np.all(np.einsum("ij,ij->i", step, st.tangent_xy[:-1]) > 0.9 * st.spacing_px)


def test_reversed_open_path_reverses_the_stations():
    x = np.linspace(0, 300, 12)
    pts = np.stack([x, 100 + 30 * np.cos(x / 40)], axis=1)
    fwd = build_stations(pts, closed=False)
    back = build_stations(pts[::-1], closed=False)
    assert back.length_px == pytest.approx(fwd.length_px, abs=1e-9)
    np.testing.assert_allclose(back.xy, fwd.xy[::-1], atol=1e-6)
    np.testing.assert_allclose(back.tangent_xy, -fwd.tangent_xy[::-1], atol=1e-6)
    np.testing.assert_allclose(back.normal_xy, -fwd.normal_xy[::-1], atol=1e-6)


def test_reversed_closed_path_runs_the_other_way_round():
    pts = circle_xy(40, r=120.0)
    fwd = build_stations(pts, closed=True)
    # same start point, other direction
    back = build_stations(np.vstack([pts[:1], pts[:0:-1]]), closed=True)
    assert back.length_px == pytest.approx(fwd.length_px, abs=1e-9)
    # station k of the reversed path is station N-k of the forward one
    np.testing.assert_allclose(back.xy[1:], fwd.xy[:0:-1], atol=1e-6)
    np.testing.assert_allclose(back.normal_xy[1:], -fwd.normal_xy[:0:-1], atol=1e-6)


def test_closed_path_with_repeated_end_point_is_the_same_path():
    pts = circle_xy(30, r=90.0)
    plain = build_stations(pts, closed=True)
    repeated = build_stations(np.vstack([pts, pts[:1]]), closed=True)
    assert len(repeated) == len(plain)
    np.testing.assert_allclose(repeated.xy, plain.xy, atol=1e-9)
    np.testing.assert_allclose(repeated.normal_xy, plain.normal_xy, atol=1e-9)


def test_repeated_consecutive_points_are_dropped():
    st = build_stations([[0.0, 0.0], [0.0, 0.0], [50.0, 0.0], [50.0, 0.0]], closed=False)
    assert st.length_px == pytest.approx(50.0)


def test_at_arc_wraps_on_a_closed_path_and_clamps_on_an_open_one():
    closed = build_stations(circle_xy(60, r=100.0), closed=True)
    np.testing.assert_allclose(closed.at_arc(closed.length_px + 10.0), closed.at_arc(10.0), atol=1e-9)
    np.testing.assert_allclose(closed.at_arc(-5.0), closed.at_arc(closed.length_px - 5.0), atol=1e-9)
    line = build_stations([[0.0, 0.0], [10.0, 0.0]], closed=False)
    np.testing.assert_allclose(line.at_arc([-3.0, 2.5, 99.0]), [[0, 0], [2.5, 0], [10, 0]], atol=1e-12)


@pytest.mark.parametrize("closed", [False, True])
def test_compiled_interpolation_equals_at_arc(closed):
    # the gap ends' compiled interpolation gives at_arc's (np.interp's) floats bit for bit:
    # between stations, on them, at and beyond the ends, round a loop either way, NaN
    st = build_stations(circle_xy(25, r=80.0) if closed else circle_xy(25, r=80.0)[:14],
                        closed=closed, spacing_px=0.7)
    rng = np.random.default_rng(4)
    arc = np.concatenate([rng.uniform(-2 * st.length_px, 3 * st.length_px, 2000),
                          st.arc_px[::7], [0.0, st.length_px, -0.0, np.nextafter(0.0, -1.0),
                                           np.nextafter(st.length_px, 0.0), np.nan]])
    for values, ref in ((st.xy, st.at_arc(arc)), (st.normal_xy, st.normal_at_arc(arc))):
        got = np.array([_on_path(a, st.arc_px, values, st.length_px, closed) for a in arc])
        np.testing.assert_array_equal(got, ref)
        assert np.array_equal(np.signbit(got), np.signbit(ref))


def test_rigid_transform_turns_about_its_centre_then_shifts():
    m = rigid_transform(shift_xy=(5.0, -2.0), angle_deg=90.0, center_xy=(10.0, 10.0))
    # (20, 10) is 10 px right of the centre; +90° (x towards y, clockwise on screen) puts it below
    p = m[:, :2] @ [20.0, 10.0] + m[:, 2]
    np.testing.assert_allclose(p, [10.0 + 5.0, 20.0 - 2.0], atol=1e-12)
    np.testing.assert_allclose(m[:, :2] @ [10.0, 10.0] + m[:, 2], [15.0, 8.0], atol=1e-12)


def test_transformed_stations_move_positions_and_turn_directions():
    st = build_stations([[0.0, 0.0], [100.0, 0.0]], closed=False)
    moved = st.transformed(rigid_transform(shift_xy=(3.0, 4.0), angle_deg=90.0))
    np.testing.assert_allclose(moved.xy, np.stack([-st.xy[:, 1] + 3, st.xy[:, 0] + 4], axis=1), atol=1e-9)
    np.testing.assert_allclose(moved.tangent_xy, [[0.0, 1.0]] * len(st), atol=1e-12)
    np.testing.assert_allclose(moved.arc_px, st.arc_px)


def test_transformed_rounds_as_the_matmul_it_replaced():
    # each coordinate is x r0 + y r1 with the first product rounded and the second fused with
    # it (one rounding), then the shift added: what numpy's matmul gives through OpenBLAS's
    # FMA kernels, which the inspection's results were made with
    st = build_stations(circle_xy(40, r=700.0, center=(1224.0, 1024.0)), closed=True,
                        spacing_px=0.83)
    m = rigid_transform(shift_xy=(12.3, -40.7), angle_deg=2.9, center_xy=(1224.0, 1024.0),
                        scale=1.013)
    moved = st.transformed(m)

    def row(a, r):
        return float(Fraction(a[1]) * Fraction(r[1]) + Fraction(float(a[0] * r[0])))

    some = np.linspace(0, len(st) - 1, 300).astype(int)
    for got, src, shift in ((moved.xy, st.xy, m[:, 2]), (moved.tangent_xy, st.tangent_xy, None),
                            (moved.normal_xy, st.normal_xy, None)):
        ref = np.array([[row(src[i], m[j, :2]) for j in range(2)] for i in some])
        if shift is not None:
            ref = ref + shift
        np.testing.assert_array_equal(got[some], ref)
        # ... and within a hair of the plain product
        plain = src @ m[:, :2].T + (0.0 if shift is None else shift)
        np.testing.assert_allclose(got, plain, rtol=0, atol=1e-9)


@pytest.mark.parametrize("points, closed, kwargs, match", [
    ([[0, 0], [1, 1]], True, {}, "at least 3 distinct"),
    ([[0, 0], [0, 0]], False, {}, "at least 2 distinct"),
    ([[0, 0, 0], [1, 1, 1]], False, {}, r"shape \(N, 2\)"),
    ([[0, 0], [np.nan, 1]], False, {}, "finite"),
    ([[0, 0], [5, 0]], False, {"spacing_px": 0.0}, "spacing_px"),
    ([[0, 0], [5, 0]], False, {"interpolation": "cubic"}, "interpolation"),
])
def test_bad_paths_are_refused_with_the_reason(points, closed, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_stations(points, closed=closed, **kwargs)
