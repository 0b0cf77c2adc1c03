"""A wide dark bead read as one of its lobes (inspector.LOBE_MAX_MM): the stations asked
(Inspector._lobes, _inset_stations), the re-reading without a ramp (_tracked_kernel with
need_ramp False), and what it does to whole parts."""

import numpy as np
import pytest

import vision_qc.inspector as inspector_mod
from vision_qc.inspector import Inspector, _inset_stations

from glare_scenes import straight_recipe
from test_tracked_presence import T, _profiles, _reference, _scene, _tracked

MM = 0.5                        # mm per px in the station tables below
WIDTH_MAX, NOMINAL, SIDES = 6.25, 5.0, 0.25     # mm (nominal 10 px), LOBE_SIDES


def _stations(n=60):
    """Stations all read good: a 10 px bead centred on the path."""
    return (np.ones(n, bool), np.ones(n, bool), np.full(n, 5.0, np.float32),
            np.zeros(n, np.float32), np.full(n, -5.0, np.float32), np.full(n, 5.0, np.float32))


def _lobes(present, judged, width, offset, left, right, *, closed=False, max_run=30.0):
    return _inset_stations(True, present, judged, width, offset, left, right, 3.75, WIDTH_MAX,
                           NOMINAL, 2.0, SIDES, closed, max_run, MM, 3.0, 2.0)


def test_the_inspector_takes_stations_widened_on_both_sides(monkeypatch):
    recipe = straight_recipe()
    ins = Inspector(recipe)
    monkeypatch.setattr(inspector_mod, "LOBE_MAX_MM", 30.0 * MM * ins.stations.spacing_px)
    n = len(ins)
    present, judged, width, offset, left, right = _stations(n)
    width[10:30] = 10.0
    width[18:22] = 6.0
    left[18:22], right[18:22] = 0.0, 10.0
    width[100:120] = 10.0
    offset[100:120] = 1.5                    # more than a quarter of the 5 mm excess
    width[108:112] = 6.0
    left[108:112], right[108:112] = 0.0, 10.0
    args = (present, judged, width, offset, left, right)
    for got, want in zip(ins._lobes(*args), _lobes(*args)):
        assert np.array_equal(got, want)
    assert list(ins._lobes(*args)[0]) == [18, 19, 20, 21]
    monkeypatch.setattr(inspector_mod, "LOBE_MAX_MM", 0.0)
    assert ins._lobes(*args)[0].size == 0


def test_a_lobe_between_wide_stations_is_asked_at_their_edges():
    present, judged, width, offset, left, right = _stations()
    width[10:30] = 10.0                      # read wide: 20 px, edges at -10 and 10
    left[10:30], right[10:30] = -10.0, 10.0
    width[18:22] = 6.0                       # the lobe: the walk's left edge stopped at 0
    offset[18:22] = 2.5 * MM
    left[18:22], right[18:22] = 0.0, 10.0
    at, lo, hi, kept_left = _lobes(present, judged, width, offset, left, right)
    assert list(at) == [18, 19, 20, 21]
    assert np.allclose(lo, -10.0) and np.allclose(hi, 10.0)
    assert not kept_left.any()                # the right edge stayed


def test_the_anchors_widths_are_interpolated():
    present, judged, width, offset, left, right = _stations()
    width[10:20], width[24:30] = 9.0, 11.0   # 18 px, then 22 px
    left[20:24], right[20:24] = 1.0, 10.0
    at, lo, hi, _ = _lobes(present, judged, width, offset, left, right)
    assert list(at) == [20, 21, 22, 23]
    f = (np.arange(20, 24) - 19) / 5
    assert np.allclose(hi - lo, ((1 - f) * 9.0 + f * 11.0) / MM)


def test_stations_read_narrower_on_both_sides_or_outside_are_not_asked():
    present, judged, width, offset, left, right = _stations()
    width[10:30] = 10.0
    width[18:24] = 5.0                       # read within limits, where the walk found:
    left[18:20], right[18:20] = -5.0, 5.0    # a nominal bead inside: both edges in by 5 px
    left[20:22], right[20:22] = -9.0, 9.0    # both within the limit
    present[22] = False                      # no bead: the other rules' business
    judged[23] = False                       # not judged
    assert list(_lobes(present, judged, width, offset, left, right)[0]) == []


def test_the_kept_edge_may_lie_outside():
    present, judged, width, offset, left, right = _stations()
    width[10:30] = 10.0
    width[18:22] = 6.0
    left[18:20], right[18:20] = -13.0, -1.0  # the left edge 3 px out, the right 11 px in
    left[20:22], right[20:22] = -7.5, -1.0   # the left edge 2.5 px in: more than 2 px
    at, _, _, kept_left = _lobes(present, judged, width, offset, left, right)
    assert list(at) == [18, 19] and kept_left.all()


def test_at_a_wide_stretch_end_the_nearest_wide_station_is_taken():
    present, judged, width, offset, left, right = _stations()
    width[20:30], width[40] = 10.0, 8.0      # a wide stretch, and one wide station farther
    offset[20:30] = 0.5
    left[15:20], right[15:20] = 2.0, 11.0    # lobes before the stretch, 1-5 stations from it
    at, lo, hi, _ = _lobes(present, judged, width, offset, left, right, max_run=8.0)
    assert list(at) == [15, 16, 17, 18, 19]
    assert np.allclose(lo, (0.5 - 5.0) / MM) and np.allclose(hi, (0.5 + 5.0) / MM)
    # the stretch's far end (30) and the next wide station (40) are 10 apart: station 31 is
    # 1 from the stretch, and takes it
    left[31], right[31] = 2.0, 11.0
    at, lo, _, _ = _lobes(present, judged, width, offset, left, right, max_run=8.0)
    assert 31 in at and lo[list(at).index(31)] == pytest.approx((0.5 - 5.0) / MM)


def test_no_wide_station_within_the_run_no_candidate():
    present, judged, width, offset, left, right = _stations()
    width[10:12] = 10.0
    left[30:34], right[30:34] = 2.0, 11.0    # 18 stations after the last wide one
    assert list(_lobes(present, judged, width, offset, left, right, max_run=15.0)[0]) == []
    assert list(_lobes(present, judged, width, offset, left, right, max_run=22.0)[0]) == \
        [30, 31, 32, 33]
    offset[10:12] = 1.5                      # widened on one side mostly (offset more than
    #                                          a quarter of the 5 mm excess): not a wide station
    assert list(_lobes(present, judged, width, offset, left, right, max_run=22.0)[0]) == []


def test_round_a_closed_path():
    present, judged, width, offset, left, right = _stations(40)
    width[34:], width[:4] = 10.0, 10.0       # a wide stretch across the start
    width[36:40] = 5.0
    left[36:40], right[36:40] = 1.0, 10.0
    width[0:2] = 5.0
    left[0:2], right[0:2] = 1.0, 10.0
    assert list(_lobes(present, judged, width, offset, left, right, closed=True)[0]) == \
        [0, 1, 36, 37, 38, 39]
    # open: station 0 and 1 have no wide station before them, but the one after within reach
    assert list(_lobes(present, judged, width, offset, left, right)[0]) == \
        [0, 1, 36, 37, 38, 39]
    assert list(_lobes(present, judged, width, offset, left, right, max_run=1.0)[0]) == [1, 36]


def _lit_face(lo=-10.0, hi=10.0, face=-4.0, n=9, noise=0.0, seed=0):
    """A dark bead 25 grey levels deep between ``lo`` and ``hi`` on flat ground, its left
    part lit up to 8 levels short of the ground round ``face`` (px): the walk stops there."""
    prof = _profiles(lambda t: 100.0 + 0.0 * t, bead=-25.0, lo=lo, hi=hi, n=n, noise=noise,
                     seed=seed).astype(np.float64)
    lit = 17.0 * np.exp(-((T - face) / 2.0) ** 2)
    prof += lit[:, None]
    return np.clip(np.round(prof), 0, 255).astype(np.uint8)


def test_a_wide_bead_with_a_lit_face_is_read_to_its_edges_without_a_ramp():
    prof = _lit_face()
    ok, got_l, got_r = _tracked(prof, bright=False, left=-10.0, right=10.0, need_ramp=False)
    assert ok.all()
    assert np.allclose(got_l, -10.0, atol=0.3) and np.allclose(got_r, 10.0, atol=0.3)
    # asked for a ramp, as the tracked test of an absent station is, flat ground fails it
    assert not _tracked(prof, bright=False, left=-10.0, right=10.0)[0].any()


@pytest.mark.parametrize("seed", range(6))
def test_kernel_without_a_ramp_equals_the_spelt_out_test(seed):
    rng = np.random.default_rng(seed)
    lo, hi = -10.0 + rng.uniform(-2, 2), 10.0 + rng.uniform(-2, 2)
    prof = _lit_face(lo, hi, face=rng.uniform(-5, 5), n=12, noise=3.0, seed=seed)
    ok, got_l, got_r = _tracked(prof, bright=False, left=-10.0, right=10.0, min_contrast=5.0,
                                need_ramp=False)
    for i in range(prof.shape[1]):
        want, want_l, want_r = _reference(prof, i, bright=False, left=-10.0, right=10.0,
                                          min_contrast=5.0, half=3, closed=False,
                                          need_ramp=False)
        assert ok[i] == want, i
        if want:
            assert got_l[i] == pytest.approx(want_l, abs=1e-9)
            assert got_r[i] == pytest.approx(want_r, abs=1e-9)


@pytest.mark.parametrize("seed, k, pieces", [(7, 182, 8), (8, 117, 2), (8, 144, 3)])
def test_a_wide_dark_bead_is_one_wide_defect(monkeypatch, seed, k, pieces):
    # normal dark seed 7 scene 182, seed 8 scenes 117 and 144 (as `vision-qc generate DIR
    # --seed S --preset normal --polarity dark` draws them): wide defects 1.5-2.4 × nominal;
    # without the lobe rule each was split into pieces, some called offset
    scene = _scene(seed, "normal", "dark", k)
    truth = scene.truth["defects"]
    assert truth and all(d["type"] == "wide" for d in truth)
    res = Inspector(scene.recipe).inspect(scene.image)
    assert [d.type for d in res.defects] == ["wide"] * len(truth), res.defects
    for d in res.defects:
        assert any(abs(d.start_mm - t["start_mm"]) < 3.0 and abs(d.end_mm - t["end_mm"]) < 3.0
                   for t in truth), (d, truth)
    monkeypatch.setattr(inspector_mod, "LOBE_MAX_MM", 0.0)
    assert len(Inspector(scene.recipe).inspect(scene.image).defects) == pieces
