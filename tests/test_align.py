"""Alignment: pose recovery over a grid of shifts and turns, robustness to defects, refusal of
frames without a part, moved maps equal to maps of moved stations, the inspector hook."""

import dataclasses

import numpy as np
import pytest

from vision_qc.engine.align import (
    Aligner,
    AlignError,
    Pose,
    move_maps,
    pose_matrix,
    robust_pose_fit,
)
from vision_qc.engine.sampling import build_maps
from vision_qc.geometry import build_stations, rigid_transform
from vision_qc.inspector import FrameError, Inspector, PartNotFoundError
from vision_qc.synth import SceneRenderer, sample_scene

SIZE = (1280, 1024)
# shifts and turns at the corners and the middle of the ±40 px, ±3° range
GRID = [(40.0, -40.0, 3.0), (-40.0, 40.0, -3.0), (-40.0, -40.0, 1.5), (25.0, 10.0, -2.0),
        (0.0, 0.0, 0.0)]


def _aligner(recipe, **kw):
    st = build_stations(recipe.points_xy, closed=recipe.closed, spacing_px=1.0)
    return Aligner(st, size_wh=recipe.image_size_wh, bright=recipe.polarity == "bright",
                   width_px=recipe.width_mm / recipe.mm_per_px, **kw), st


def _glass_edge(spec, st):
    """The generator's glass edge: the bead's nominal path moved out by the inset."""
    pts = st.xy[::8] - spec.inset_mm / spec.mm_per_px * st.normal_xy[::8]
    return {"points": pts.tolist(), "closed": True, "polarity": "falling"}


@pytest.fixture(scope="module")
def base_specs():
    # no slow wobble of the bead's centre: what is measured is the aligner, not the bead
    # (with the wobble, the bead itself lies a tenth of a pixel off its nominal path)
    return [dataclasses.replace(sample_scene(s, preset="normal", size_wh=SIZE, polarity=p),
                                wobble_offset_mm=0.0)
            for s, p in [(101, "bright"), (102, "dark")]]


@pytest.mark.parametrize("pose", GRID, ids=lambda p: f"{p[0]:+.0f},{p[1]:+.0f},{p[2]:+.1f}deg")
def test_reference_edge_recovers_the_pose_within_0_2_px_and_0_02_deg(base_specs, pose):
    for spec in base_specs:
        sc = SceneRenderer(dataclasses.replace(spec, pose=pose)).render()
        al, _ = _aligner(sc.recipe, reference={"edge": _glass_edge(spec, st_of(sc.recipe))})
        p = al.estimate(sc.image)
        assert abs(p.dx_px - pose[0]) <= 0.2
        assert abs(p.dy_px - pose[1]) <= 0.2
        assert abs(p.angle_deg - pose[2]) <= 0.02


def st_of(recipe):
    return build_stations(recipe.points_xy, closed=recipe.closed, spacing_px=1.0)


@pytest.mark.parametrize("pose", GRID[:3], ids=lambda p: f"{p[0]:+.0f},{p[1]:+.0f},{p[2]:+.1f}deg")
def test_bead_alone_recovers_the_pose(base_specs, pose):
    """Without a stored reference the bead is the track: the error is then the edge finder's
    direction-dependent bias (the light leans the bead's shading), a few tenths of a pixel at
    this resolution."""
    for spec in base_specs:
        sc = SceneRenderer(dataclasses.replace(spec, pose=pose)).render()
        al, _ = _aligner(sc.recipe)
        p = al.estimate(sc.image)
        assert abs(p.dx_px - pose[0]) <= 0.6
        assert abs(p.dy_px - pose[1]) <= 0.6
        assert abs(p.angle_deg - pose[2]) <= 0.04
        assert p.inliers >= 0.8


@pytest.mark.parametrize("pose", GRID, ids=lambda p: f"{p[0]:+.0f},{p[1]:+.0f},{p[2]:+.1f}deg")
def test_bead_alone_meets_0_2_px_and_0_02_deg_without_the_beads_own_wobble(base_specs, pose):
    """The issue's figures on the bead track: where the bead lies on its nominal path (no
    slow wobble of its centre, which is a true turn and shift of the bead itself), the pose
    from the bead alone is within 0.2 px and 0.02° over the whole grid, bright and dark."""
    for spec in base_specs:
        sc = SceneRenderer(dataclasses.replace(spec, pose=pose)).render()
        al, _ = _aligner(sc.recipe)
        p = al.estimate(sc.image)
        assert np.hypot(p.dx_px - pose[0], p.dy_px - pose[1]) <= 0.2
        assert abs(p.angle_deg - pose[2]) <= 0.02


def test_defects_are_not_aligned_away():
    """An offset stretch and gaps pull a least-squares fit; the robust fit ignores them and
    the inspector still reports them."""
    spec = sample_scene(3, preset="clean", size_wh=SIZE, polarity="bright",
                        defect_kinds=("offset", "gap"), ng_fraction=1.0, max_defects=2)
    spec = dataclasses.replace(spec, pose=(30.0, -20.0, 2.0), wobble_offset_mm=0.0)
    sc = SceneRenderer(spec).render()
    al, _ = _aligner(sc.recipe)
    p = al.estimate(sc.image)
    assert abs(p.dx_px - 30.0) <= 0.6 and abs(p.dy_px + 20.0) <= 0.6
    assert abs(p.angle_deg - 2.0) <= 0.04
    res = Inspector(sc.recipe.replace(align=True)).inspect(sc.image)
    truth_types = sorted(d["type"] for d in sc.truth["defects"])
    assert truth_types
    for t in set(truth_types):
        assert t in {d.type for d in res.defects}


@pytest.mark.parametrize("laid", [0.55, 0.3])
def test_a_partly_missing_bead_aligns_until_too_little_is_left(base_specs, laid):
    """With 55 % of the bead laid the pose is still found; with 30 % too few places agree
    (40 % are needed) and the frame is refused, not aligned on whatever is there."""
    spec = dataclasses.replace(base_specs[0], pose=(25.0, -30.0, 2.5))
    ren = SceneRenderer(spec)
    frame = ren.sensor(ren.compose(laid * ren.stations.length_px * spec.mm_per_px), 1)
    al, _ = _aligner(ren.recipe)
    if laid < 0.4:
        with pytest.raises(AlignError, match="part not found"):
            al.estimate(frame)
        return
    p = al.estimate(frame)
    assert abs(p.dx_px - 25.0) <= 0.3 and abs(p.dy_px + 30.0) <= 0.3
    assert abs(p.angle_deg - 2.5) <= 0.02
    assert p.inliers == pytest.approx(laid, abs=0.1)


@pytest.mark.parametrize("kind", ["blank", "noise", "no_bead"])
def test_a_frame_without_the_part_is_refused_with_a_reason(kind):
    spec = sample_scene(5, preset="normal", size_wh=SIZE)
    al, _ = _aligner(spec.recipe())
    rng = np.random.default_rng(0)
    h, w = SIZE[1], SIZE[0]
    if kind == "blank":
        frame = np.full((h, w), 90, np.uint8)
    elif kind == "noise":
        frame = rng.integers(0, 256, (h, w)).astype(np.uint8)
    else:
        ren = SceneRenderer(spec)
        frame = ren.sensor(ren.base, 1)          # the part without its bead
    with pytest.raises(AlignError, match="part not found"):
        al.estimate(frame)


def test_inspector_reports_an_unfound_part_as_a_frame_error():
    spec = sample_scene(5, preset="clean", size_wh=SIZE)
    insp = Inspector(spec.recipe().replace(align=True))
    with pytest.raises(PartNotFoundError) as exc:
        insp.inspect(np.full((SIZE[1], SIZE[0]), 90, np.uint8))
    assert isinstance(exc.value, FrameError)
    assert "part not found" in str(exc.value)


def test_a_part_beyond_the_search_range_is_refused():
    spec = dataclasses.replace(sample_scene(7, preset="clean", size_wh=SIZE),
                               pose=(30.0, 0.0, 0.0))
    sc = SceneRenderer(spec).render()
    al, _ = _aligner(sc.recipe, max_shift_px=10.0, max_angle_deg=1.0)
    with pytest.raises(AlignError):
        al.estimate(sc.image)


def test_aligned_inspection_matches_the_unposed_one_and_records_the_pose():
    spec = sample_scene(8, preset="clean", size_wh=SIZE, polarity="dark", ng_fraction=1.0,
                        defect_kinds=("gap", "wide"))
    posed = SceneRenderer(dataclasses.replace(spec, pose=(-35.0, 22.0, -2.5))).render()
    still = SceneRenderer(spec).render()
    r = still.recipe
    base = Inspector(r).inspect(still.image)
    res = Inspector(r.replace(align=True)).inspect(posed.image)
    assert res.verdict == base.verdict == posed.truth["verdict"]
    assert sorted(d.type for d in res.defects) == sorted(d.type for d in base.defects)
    # defects are placed in the image where the posed part has them
    for d in res.defects:
        t = min(posed.truth["defects"], key=lambda t: abs(t["start_mm"] - d.start_mm))
        assert np.hypot(*(np.subtract(d.center_px, t["center_px"]))) < 10.0
    rec = res.to_record("a.png")
    assert set(rec["pose"]) >= {"dx_px", "dy_px", "angle_deg"}
    assert abs(rec["pose"]["angle_deg"] + 2.5) < 0.05
    assert "align" in rec["timing_ms"]


def test_scale_is_estimated_when_asked(base_specs):
    """A part seen 1.5 % larger (camera moved closer: the input frame is scaled here, the
    aligner never warps): found with ``scale=True``, refused without."""
    import cv2

    sc = SceneRenderer(base_specs[0]).render()
    m = rigid_transform(shift_xy=(10, -5), angle_deg=1.0, center_xy=(640, 512), scale=1.015)
    frame = cv2.warpAffine(sc.image, m, SIZE, flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)
    al, _ = _aligner(sc.recipe, scale=True)
    p = al.estimate(frame)
    assert p.scale == pytest.approx(1.015, abs=5e-4)
    assert p.angle_deg == pytest.approx(1.0, abs=0.02)
    assert p.dx_px == pytest.approx(10.0, abs=0.3) and p.dy_px == pytest.approx(-5.0, abs=0.3)
    with pytest.raises(AlignError):
        _aligner(sc.recipe)[0].estimate(frame)


def test_move_maps_equals_maps_of_moved_stations():
    st = build_stations(np.array([[10.0, 10], [200, 30], [220, 180], [30, 200]]), closed=True)
    maps = build_maps(st, half_width_px=6.0, step_px=0.5)
    m = rigid_transform(shift_xy=(3.5, -2.25), angle_deg=1.7, center_xy=(100, 100))
    moved = move_maps(maps, m)
    ref = build_maps(st.transformed(m), half_width_px=6.0, step_px=0.5)
    np.testing.assert_allclose(moved.map1, ref.map1, atol=1e-3)
    np.testing.assert_array_equal(moved.t_px, ref.t_px)


def test_pose_matrix_round_trips_through_pose():
    m = pose_matrix(12.5, -3.0, 2.25, center_xy=(640, 512))
    p = Pose.from_matrix(m, (640, 512))
    assert p.dx_px == pytest.approx(12.5) and p.dy_px == pytest.approx(-3.0)
    assert p.angle_deg == pytest.approx(2.25) and p.scale == pytest.approx(1.0)
    np.testing.assert_allclose(p.matrix, m, atol=1e-12)


@pytest.mark.parametrize("with_outliers", [False, True])
def test_robust_fit_recovers_a_small_motion(with_outliers):
    """Lines through the points of an ellipse, offsets that a known small shift and turn
    produce along their normals (the point-to-line model, first order): the fit gives the
    motion back, and a quarter of wild offsets (an offset stretch, glare) gets zero weight."""
    a = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    c = np.array([500.0, 400.0])
    xy = c + np.stack([300 * np.cos(a), 200 * np.sin(a)], axis=1)
    tangent = np.stack([-300 * np.sin(a), 200 * np.cos(a)], axis=1)
    tangent /= np.hypot(*tangent.T)[:, None]
    nrm = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    shift, turn = np.array([0.8, -0.5]), np.deg2rad(0.05)
    rel = xy - c
    off = nrm @ shift + turn * (nrm[:, 1] * rel[:, 0] - nrm[:, 0] * rel[:, 1])
    if with_outliers:
        off = off.copy()
        off[::4] += 7.0
    inc, w, _ = robust_pose_fit(xy, nrm, off, center_xy=c)
    p = Pose.from_matrix(inc, c)
    assert p.dx_px == pytest.approx(0.8, abs=1e-3)
    assert p.dy_px == pytest.approx(-0.5, abs=1e-3)
    assert p.angle_deg == pytest.approx(0.05, abs=1e-4)
    if with_outliers:
        assert (w[::4] == 0).all() and (w[1::4] > 0).all()
