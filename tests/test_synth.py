"""Synthetic scenes: the rendered bead is exactly the truth footprint, defects sit where they
were put, and the same seed gives the same image."""

import dataclasses

import numpy as np
import pytest

from vision_qc.geometry import build_stations, rigid_transform
from vision_qc.recipe import recipe_to_dict
from vision_qc.synth import (DEFECT_KINDS, DefectSpec, Nuisances, SceneRenderer, sample_scene,
                             windshield_path)
from vision_qc.synth.coords import band_coords, station_curvature

SIZE_WH = (1280, 1024)


def quiet(spec, **changes):
    """The spec without noise, blur or any other nuisance (and with ``changes``)."""
    return dataclasses.replace(spec, nuisances=Nuisances(), **changes)


@pytest.fixture(scope="module")
def plain_spec():
    """A defect-free closed windshield, noise-free."""
    return quiet(sample_scene(5, preset="clean", size_wh=SIZE_WH, ng_fraction=0.0, polarity="bright"))


@pytest.fixture(scope="module")
def plain(plain_spec):
    return SceneRenderer(plain_spec)


# ----------------------------------------------------------------------------------------
# Truth exactness


def windowed_widths(renderer, centers_px, half_px):
    """Rendered and true bead width averaged over a triangular window along the path, px.

    Rendered: the bead's pixel coverage summed with weight g(s) (triangle of half length
    ``half_px`` round each centre) over ∫ g ds. True: the same weighted integral of the
    footprint, ∫ g(s) ∫_left^right (1 - κ t) dt ds / ∫ g ds, where (1 - κ t) is the area
    element of the path's curved coordinates (t along the normal, κ the curvature).
    """
    st, fp = renderer.stations, renderer.footprint
    kappa = station_curvature(st)
    left, right = np.nan_to_num(fp.left_px), np.nan_to_num(fp.right_px)
    area_per_px = (right - left) - kappa * (right**2 - left**2) / 2
    alpha = renderer.bead_alpha.astype(np.float64)
    out = []
    for c in centers_px:
        g_pix = np.clip(1 - np.abs(renderer.bead_s - c) / half_px, 0, None)
        g_st = np.clip(1 - np.abs(st.arc_px - c) / half_px, 0, None)
        norm = g_st.sum() * st.spacing_px
        out.append(((alpha * g_pix).sum() / norm, (g_st * area_per_px).sum() * st.spacing_px / norm))
    return np.array(out).reshape(-1, 2)


def exactness_stations(renderer, half_px, every_px=7.0):
    """Window centres away from the path's start and end and from every disc (gap ends, blobs,
    end caps), split into straight-ish (radius > 1000 px) and curved (radius < 400 px) ones.

    Why not at discs: there the true width changes like a circle's chord, infinitely steep at
    a tip, and the edge bends within a pixel (a cap's radius is ~4 px here), so neither the
    truth sampled once per station nor a pixel's straight-edge coverage resolves a cap's area
    to hundredths of a pixel. Why not at the path's ends: the window would be cut there.
    """
    st, fp = renderer.stations, renderer.footprint
    c = np.arange(half_px + 2, st.length_px - half_px - 2, every_px)
    for sc, _, r in fp.discs:
        c = c[np.abs(c - sc) > r + half_px + 2]
    kappa = np.abs(station_curvature(st))[np.round(c / st.spacing_px).astype(int)]
    return c[kappa < 1 / 1000], c[kappa > 1 / 400]


@pytest.mark.parametrize("case", ["closed", "open", "thin-wide-offset", "gap-blob"])
def test_rendered_coverage_integrates_to_the_true_width(case):
    kinds = {"thin-wide-offset": ("thin", "wide", "offset"), "gap-blob": ("gap", "blob")}.get(case)
    spec = sample_scene(21, preset="clean", size_wh=SIZE_WH, ng_fraction=1.0 if kinds else 0.0,
                        defect_kinds=kinds or DEFECT_KINDS, max_defects=3, open_path=case == "open")
    renderer = SceneRenderer(quiet(spec))
    half = 12.0
    straight, curved = exactness_stations(renderer, half)
    assert len(straight) > 20 and len(curved) > 20
    for centres in (straight, curved):
        rendered, true = windowed_widths(renderer, centres, half).T
        assert true.min() > 5.0                      # a bead is there: ~7.5 px wide
        np.testing.assert_allclose(rendered, true, atol=0.02)


def test_the_width_check_sees_a_tenth_of_a_pixel(plain_spec, plain):
    """The check above can fail: a bead 1.5 % wider (0.11 px) is caught."""
    wider = SceneRenderer(dataclasses.replace(plain_spec, width_mm=plain_spec.width_mm * 1.015))
    straight, _ = exactness_stations(plain, 12.0)
    rendered = windowed_widths(wider, straight, 12.0)[:, 0]
    true = windowed_widths(plain, straight, 12.0)[:, 1]
    assert np.all(np.abs(rendered - true) > 0.08)


def test_coverage_is_a_fraction_and_full_on_the_crest(plain):
    a = plain.bead_alpha
    assert a.dtype == np.float32 and a.min() > 0 and a.max() == 1.0
    # a pixel centre within 1 px of the path's centre line lies well inside a 7.5 px bead
    w = plain.spec.size_wh[0]
    near = np.round(plain.posed.xy[::50]).astype(int)
    flat = near[:, 1] * w + near[:, 0]
    lookup = dict(zip(plain.bead_idx.tolist(), a.tolist()))
    assert all(lookup.get(int(i)) == 1.0 for i in flat)


def test_compose_changes_only_bead_pixels_and_follows_the_dispensed_length(plain):
    full = plain.compose()
    changed = np.flatnonzero(full.reshape(-1) != plain.base.reshape(-1))
    assert np.isin(changed, plain.bead_idx).all()
    idx, a, r = plain.bead_idx, plain.bead_alpha, plain.bead_radiance
    np.testing.assert_allclose(full.reshape(-1)[idx], (1 - a) * plain.base.reshape(-1)[idx] + a * r,
                               rtol=1e-6)
    half_mm = 0.5 * plain.stations.length_px * plain.spec.mm_per_px
    part = plain.compose(half_mm).reshape(-1)
    laid = plain.bead_s <= half_mm / plain.spec.mm_per_px
    np.testing.assert_array_equal(part[idx[laid]], full.reshape(-1)[idx[laid]])
    np.testing.assert_array_equal(part[idx[~laid]], plain.base.reshape(-1)[idx[~laid]])
    out = np.empty_like(plain.base)
    assert plain.compose(half_mm, out=out) is out
    np.testing.assert_array_equal(out.reshape(-1), part)


# ----------------------------------------------------------------------------------------
# Defects where they were put


def with_defects(spec, *defects):
    return dataclasses.replace(spec, defects=tuple(defects))


def station_slice(renderer, a_mm, b_mm):
    arc_mm = renderer.stations.arc_px * renderer.spec.mm_per_px
    return (arc_mm > a_mm) & (arc_mm < b_mm)


@pytest.mark.parametrize("defect, typ", [
    (DefectSpec("gap", 0, 20.0), "gap"),
    (DefectSpec("thin", 0, 30.0, 8.0, 0.5), "thin"),
    (DefectSpec("wide", 0, 30.0, 8.0, 1.6), "wide"),
    (DefectSpec("blob", 0, 20.0), "wide"),
    (DefectSpec("offset", 0, 40.0, 10.0, 7.0), "offset"),
    (DefectSpec("offset", 0, 40.0, 10.0, -7.0), "offset"),
])
@pytest.mark.parametrize("where", [0.3, 0.62])
def test_each_defect_is_true_where_it_was_inserted(plain_spec, defect, typ, where):
    length_mm = SceneRenderer(plain_spec).stations.length_px * plain_spec.mm_per_px
    c = where * length_mm
    spec = with_defects(plain_spec, dataclasses.replace(defect, center_mm=c))
    r = SceneRenderer(spec)
    truth = r.truth()
    assert truth["verdict"] == "NG"
    (d,) = truth["defects"]
    assert d["type"] == typ
    plateau = (c - defect.length_mm / 2, c + defect.length_mm / 2)
    reach = (plateau[0] - defect.ramp_mm, plateau[1] + defect.ramp_mm)
    mm = spec.mm_per_px
    width = np.asarray(truth["stations"]["width_mm"])
    offset = np.asarray(truth["stations"]["offset_mm"])
    if defect.kind == "gap":
        # a gap runs exactly between the tips of its rounded ends; no bead inside
        assert d["start_mm"] == pytest.approx(plateau[0], abs=1e-3)
        assert d["end_mm"] == pytest.approx(plateau[1], abs=1e-3)
        assert np.all(width[station_slice(r, *plateau)] == 0)
        beyond = station_slice(r, plateau[0] - 3, plateau[0] - mm) | station_slice(r, plateau[1] + mm, plateau[1] + 3)
        assert np.all(width[beyond] > 0)
        assert d["worst_mm"] == 0.0
    elif defect.kind == "blob":
        # a disc of the given diameter, wider than the limit on the middle of its span
        assert plateau[0] < d["start_mm"] < c < d["end_mm"] < plateau[1]
        assert d["worst_mm"] == pytest.approx(defect.length_mm, abs=0.3)
        assert d["worst_mm"] > spec.width_mm + spec.width_tol_mm
    else:
        # the flagged stretch covers the plateau and stays within the ramps
        assert reach[0] < d["start_mm"] < plateau[0] and plateau[1] < d["end_mm"] < reach[1]
        inside = station_slice(r, *plateau)
        if defect.kind == "thin":
            assert np.all(width[inside] < spec.width_mm - spec.width_tol_mm)
            assert d["worst_mm"] == pytest.approx(0.5 * spec.width_mm, rel=0.1)
        elif defect.kind == "wide":
            assert np.all(width[inside] > spec.width_mm + spec.width_tol_mm)
            assert d["worst_mm"] == pytest.approx(1.6 * spec.width_mm, rel=0.1)
        else:
            assert np.all(np.abs(offset[inside]) > spec.max_offset_mm)
            assert np.sign(offset[inside]).tolist() == [np.sign(defect.value)] * inside.sum()
            assert d["worst_mm"] == pytest.approx(abs(defect.value), abs=0.8)
    assert d["length_mm"] == pytest.approx(d["end_mm"] - d["start_mm"], abs=2e-3)
    assert d["limit_mm"] == pytest.approx({"gap": 7.5, "thin": 7.5, "wide": 12.5, "offset": 4.0}[typ])
    mid = r.posed.at_arc((d["start_mm"] + d["end_mm"]) / 2 / mm)
    np.testing.assert_allclose(d["center_px"], mid, atol=0.01)
    # outside the defect's reach the bead is good
    far = ~station_slice(r, reach[0] - spec.width_mm, reach[1] + spec.width_mm)
    assert np.all(np.abs(width[far] - spec.width_mm) <= spec.width_tol_mm)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("preset", ["clean", "normal", "hard"])
@pytest.mark.parametrize("open_path", [False, True])
def test_ok_scenes_have_no_defects_and_stay_in_tolerance(seed, preset, open_path):
    spec = sample_scene(seed, preset=preset, size_wh=(800, 600), ng_fraction=0.0, open_path=open_path)
    assert spec.defects == ()
    truth = SceneRenderer(spec).truth()
    assert truth["verdict"] == "OK" and truth["defects"] == []
    width = np.asarray(truth["stations"]["width_mm"])
    offset = np.asarray(truth["stations"]["offset_mm"])
    assert np.all(np.abs(width - spec.width_mm) <= spec.width_tol_mm)
    assert np.all(np.abs(offset) <= spec.max_offset_mm)


def test_ng_scenes_have_a_truth_defect_for_every_inserted_one():
    expected = {"gap": "gap", "overlap_gap": "gap", "thin": "thin", "wide": "wide", "blob": "wide",
                "offset": "offset"}
    seen = set()
    for seed in range(8):
        for open_path in (False, True):
            spec = sample_scene(seed, preset="normal", size_wh=(800, 600), ng_fraction=1.0,
                                max_defects=3, open_path=open_path)
            truth = SceneRenderer(spec).truth()
            assert [d["type"] for d in truth["defects"]] == [expected[d.kind] for d in spec.defects]
            assert truth["verdict"] == ("NG" if spec.defects else "OK")
            seen |= {d.kind for d in spec.defects}
    assert seen == set(DEFECT_KINDS)


def test_a_gap_across_the_start_has_start_after_end(plain_spec):
    length_mm = SceneRenderer(plain_spec).stations.length_px * plain_spec.mm_per_px
    spec = with_defects(plain_spec, DefectSpec("overlap_gap", 2.0, 12.0))
    r = SceneRenderer(spec)
    (d,) = r.truth()["defects"]
    assert d["type"] == "gap"
    assert d["start_mm"] > d["end_mm"]
    assert d["start_mm"] == pytest.approx(length_mm - 4.0, abs=1e-3)
    assert d["end_mm"] == pytest.approx(8.0, abs=1e-3)
    assert d["length_mm"] == pytest.approx(12.0, abs=1e-3)
    width = np.asarray(r.truth()["stations"]["width_mm"])
    arc_mm = r.stations.arc_px * spec.mm_per_px
    assert np.all(width[(arc_mm < 8.0) | (arc_mm > length_mm - 4.0)] == 0)
    np.testing.assert_allclose(d["center_px"], r.posed.at_arc(2.0 / spec.mm_per_px), atol=0.01)


def test_sampled_overlap_gaps_cross_the_start():
    found = 0
    for seed in range(30):
        spec = sample_scene(seed, size_wh=(800, 600), ng_fraction=1.0, defect_kinds=("overlap_gap",),
                            max_defects=1)
        for d in SceneRenderer(spec).truth()["defects"]:
            found += 1
            assert d["start_mm"] > d["end_mm"]
        if found >= 3:
            break
    assert found >= 3


@pytest.mark.parametrize("pose", [(25.0, -12.0, 0.0), (-30.0, 18.0, 2.5)])
def test_pose_moves_the_bead_and_the_defect_centres(plain_spec, pose):
    spec = with_defects(plain_spec, DefectSpec("gap", 1000.0, 15.0))
    still = SceneRenderer(spec)
    moved = SceneRenderer(dataclasses.replace(spec, pose=pose))
    m = rigid_transform(shift_xy=pose[:2], angle_deg=pose[2],
                        center_xy=(spec.size_wh[0] / 2, spec.size_wh[1] / 2))
    (a,), (b,) = still.truth()["defects"], moved.truth()["defects"]
    np.testing.assert_allclose(b["center_px"], m[:, :2] @ a["center_px"] + m[:, 2], atol=0.02)
    assert (b["start_mm"], b["end_mm"]) == (a["start_mm"], a["end_mm"])
    assert moved.truth()["pose"] == {"dx_px": pose[0], "dy_px": pose[1], "angle_deg": pose[2],
                                     "center_px": [640.0, 512.0]}
    # the rendered bead's centroid moves with the pose
    w = spec.size_wh[0]

    def centroid(r):
        xy = np.stack([r.bead_idx % w, r.bead_idx // w], axis=1)
        return (xy * r.bead_alpha[:, None]).sum(0) / r.bead_alpha.sum()

    np.testing.assert_allclose(centroid(moved), m[:, :2] @ centroid(still) + m[:, 2], atol=0.3)


# ----------------------------------------------------------------------------------------
# Open paths


def test_open_path_recipe_and_rounded_end_caps():
    spec = quiet(sample_scene(4, preset="clean", size_wh=SIZE_WH, ng_fraction=0.0, open_path=True))
    r = SceneRenderer(spec)
    assert not spec.closed and r.recipe.closed is False and r.stations.closed is False
    st = r.stations
    # the bead goes on past both ends by a rounded cap of its half width...
    half0, half1 = r.footprint.half_px[0], r.footprint.half_px[-1]
    assert r.bead_s.min() == pytest.approx(-half0, abs=0.7)
    assert r.bead_s.max() == pytest.approx(st.length_px + half1, abs=0.7)
    # ...a half disc at each end: the bead's area is the band's plus pi/2 (r0^2 + r1^2)
    fp = r.footprint
    kappa = station_curvature(st)
    band = np.trapezoid((fp.right_px - fp.left_px) - kappa * (fp.right_px**2 - fp.left_px**2) / 2, st.arc_px)
    caps = 0.5 * np.pi * (half0**2 + half1**2)
    assert caps > 40.0
    assert r.bead_alpha.sum() == pytest.approx(band + caps, abs=1.0)
    # ...and is full width at every station, with no defect at the ends
    truth = r.truth()
    assert truth["verdict"] == "OK"
    width = np.asarray(truth["stations"]["width_mm"])
    assert np.all(np.abs(width - spec.width_mm) <= spec.width_tol_mm)
    assert width[0] == pytest.approx(2 * half0 * spec.mm_per_px, abs=1e-3)


def test_open_path_is_the_bottom_stretch_of_the_loop():
    spec = sample_scene(4, size_wh=(800, 600), ng_fraction=0.0, open_path=True)
    pts = spec.recipe().points_xy
    loop = windshield_path(spec.size_wh, spec.shape)
    # every open-path point lies on the closed outline
    gap = np.min(np.hypot(*(pts[:, None, :] - loop[None, :, :]).transpose(2, 0, 1)), axis=1)
    assert gap.max() < 8.0
    # it starts low on the right, runs along the bottom edge and ends low on the left
    assert pts[0, 0] > 600 and pts[-1, 0] < 200
    assert pts[:, 1].min() > 300 and pts[len(pts) // 2, 1] > 500


def test_open_path_defects_never_include_a_gap_across_the_start():
    for seed in range(5):
        spec = sample_scene(seed, size_wh=(800, 600), ng_fraction=1.0, open_path=True,
                            defect_kinds=("overlap_gap", "gap"), max_defects=2)
        assert all(d.kind == "gap" for d in spec.defects)
        for d in SceneRenderer(spec).truth()["defects"]:
            assert d["start_mm"] < d["end_mm"]
    with pytest.raises(ValueError, match="no kind"):
        sample_scene(0, open_path=True, defect_kinds=("overlap_gap",))


# ----------------------------------------------------------------------------------------
# Reproducibility, recipe, sensor


def test_pose_moves_the_same_part():
    """The same seed with and without ``pose`` draws the same part, light and defects: only
    the pose differs (so a posed set can be scored against its unposed twin)."""
    kw = dict(preset="normal", size_wh=(640, 480), ng_fraction=1.0)
    flat = dataclasses.asdict(sample_scene(23, **kw))
    posed = dataclasses.asdict(sample_scene(23, pose=True, **kw))
    assert posed["pose"] != (0.0, 0.0, 0.0)
    assert {k for k in flat if flat[k] != posed[k]} == {"pose"}


def test_same_seed_same_image_other_seed_other_image():
    kw = dict(preset="hard", size_wh=(640, 480), ng_fraction=1.0, pose=True)
    a = SceneRenderer(sample_scene(17, **kw)).render()
    b = SceneRenderer(sample_scene(17, **kw)).render()
    c = SceneRenderer(sample_scene(18, **kw)).render()
    assert sample_scene(17, **kw) == sample_scene(17, **kw)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.truth == b.truth
    assert not np.array_equal(a.image, c.image)


def test_scenes_that_share_the_part_share_one_recipe():
    shape = (0.40, 0.38, 0.15, 4.5, 0.04)
    specs = [sample_scene(seed, preset=p, size_wh=(800, 600), shape=shape, polarity="dark")
             for seed, p in [(1, "clean"), (2, "normal"), (3, "hard")]]
    recipes = [recipe_to_dict(s.recipe()) for s in specs]
    assert recipes[0] == recipes[1] == recipes[2]
    assert len({s.seed for s in specs}) == 3


def test_noise_is_fresh_per_call_but_truth_is_not(plain_spec):
    r = SceneRenderer(dataclasses.replace(plain_spec, nuisances=Nuisances(noise_sigma=2.0, dust=30)))
    radiance = r.compose()
    a, b = r.sensor(radiance, 1), r.sensor(radiance, 2)
    assert a.shape == (1024, 1280) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, r.sensor(radiance, 1))
    assert np.abs(a.astype(int) - b.astype(int)).mean() == pytest.approx(2 * 2 / np.sqrt(np.pi), rel=0.1)
    # other dust specks on request
    assert not np.array_equal(r.sensor(radiance, 1), r.sensor(radiance, 1, dust_rng_seed=99))
    assert r.render().truth == r.truth()


def test_colour_scenes_are_bgr_with_tinted_glass():
    spec = sample_scene(3, preset="clean", size_wh=(640, 480), color=True, ng_fraction=0.0)
    img = SceneRenderer(spec).render().image
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    centre = img[200:280, 280:360].reshape(-1, 3).mean(0)        # glass: green-blue, less red
    assert centre[1] > centre[2] and centre[0] > centre[2]


def test_the_glass_ends_at_the_glass_edge_not_at_the_path(plain):
    """Glare and tint follow the glass mask: it is glass on both sides of the bead (the frit
    lies on the glass) and fixture only beyond the glass edge, an inset outside the path."""
    sp, st = plain.spec, plain.stations
    k = 1.0 / sp.mm_per_px
    i = np.arange(0, len(st), 97)
    def mask_at(t_px):
        xy = np.round(st.xy[i] + t_px * st.normal_xy[i]).astype(int)
        return plain.glass_mask[xy[:, 1], xy[:, 0]]
    outward = -1.0 if mask_at(-(sp.inset_mm + 3) * k).mean() < 0.5 else 1.0
    for t_mm in (-3.0, 0.0, 3.0, sp.inset_mm - 2):
        assert np.all(mask_at(outward * t_mm * k) == 1.0), t_mm
    assert np.all(mask_at(outward * (sp.inset_mm + 2) * k) == 0.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "extreme"}, "preset"),
    ({"defect_kinds": ("gap", "hole")}, "hole"),
    ({"polarity": "purple"}, "polarity"),
    ({"shape": (0.4, 0.4, 0.1)}, "shape"),
])
def test_sample_scene_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_scene(0, **kwargs)


def test_windshield_path_closed_has_no_repeated_end_and_open_keeps_both_ends():
    shape = (0.41, 0.39, 0.18, 4.5, 0.05)
    loop = windshield_path((1000, 800), shape)
    assert np.hypot(*(loop[-1] - loop[0])) > 4.0
    # starts at the bottom middle: half height b = 0.39 * 800 below the centre, bowed by bow * b / 2
    np.testing.assert_allclose(loop[0], [500.0, 400 + 312.0 + 0.05 * 312.0 / 2], atol=1e-6)
    stretch = windshield_path((1000, 800), shape, 20.0, span_deg=140.0)
    # both ends kept: where loops started at 20° and at 160° start
    np.testing.assert_allclose(stretch[0], windshield_path((1000, 800), shape, 20.0)[0], atol=1e-9)
    np.testing.assert_allclose(stretch[-1], windshield_path((1000, 800), shape, 160.0)[0], atol=1e-6)
    steps = np.hypot(*np.diff(stretch, axis=0).T)
    assert 8.0 <= steps.min() and steps.max() < 8.1
    with pytest.raises(ValueError, match="span_deg"):
        windshield_path((1000, 800), shape, span_deg=0.0)


# ----------------------------------------------------------------------------------------
# Path coordinates


def test_band_coords_on_a_circle_are_the_polar_coordinates():
    r0, centre = 150.0, np.array([400.0, 300.0])
    th = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    st = build_stations(centre + r0 * np.stack([np.cos(th), np.sin(th)], axis=1), closed=True)
    bc = band_coords(st, (800, 600), 12.0)
    xy = np.stack([bc.flat_idx % 800, bc.flat_idx // 800], axis=1) - centre
    rho = np.hypot(*xy.T)
    angle = np.mod(np.arctan2(xy[:, 1], xy[:, 0]), 2 * np.pi)
    assert len(bc.flat_idx) > 2 * 12 * 2 * np.pi * r0 * 0.95
    np.testing.assert_allclose(bc.t_px, r0 - rho, atol=2e-3)            # normals point inwards
    s_err = (bc.s_px - angle * st.length_px / (2 * np.pi) + st.length_px / 2) % st.length_px - st.length_px / 2
    assert np.abs(s_err).max() < 0.02
    assert np.abs(bc.t_px).max() <= 12.0


def test_band_coords_extend_straight_past_the_ends_of_an_open_path():
    st = build_stations([[100.0, 100.0], [200.0, 100.0]], closed=False)
    bc = band_coords(st, (300, 200), 5.0)
    x, y = bc.flat_idx % 300, bc.flat_idx // 300
    np.testing.assert_allclose(bc.s_px, x - 100.0, atol=1e-9)
    np.testing.assert_allclose(bc.t_px, y - 100.0, atol=1e-9)
    before, after = bc.s_px < 0, bc.s_px > 100
    assert before.any() and after.any()
    assert np.hypot(bc.s_px[before], bc.t_px[before]).max() <= 5.0
    assert np.hypot(bc.s_px[after] - 100, bc.t_px[after]).max() <= 5.0
    assert bc.s_px.min() == -5.0 and bc.s_px.max() == 105.0
