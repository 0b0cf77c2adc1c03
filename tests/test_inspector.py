"""The inspector end to end on generated scenes with exact truth, and its input checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision_qc.inspector import FrameError, Inspector, _median_of_finite, _smooth_valid, to_gray
from vision_qc.recipe import recipe_from_dict
from vision_qc.synth import SceneRenderer, sample_scene


@pytest.fixture(scope="module")
def scenes():
    out = []
    for seed, pol in [(1, "dark"), (2, "bright"), (4, "dark"), (5, "bright")]:
        spec = sample_scene(seed, preset="clean", ng_fraction=0.7, polarity=pol)
        out.append(SceneRenderer(spec).render())
    return out


def test_clean_scenes_verdicts_and_defects_match_truth(scenes):
    for sc in scenes:
        res = Inspector(sc.recipe).inspect(sc.image)
        assert res.verdict == sc.truth["verdict"]
        assert sorted(d.type for d in res.defects) == sorted(d["type"] for d in sc.truth["defects"])
        for t in sc.truth["defects"]:
            f = min((d for d in res.defects if d.type == t["type"]),
                    key=lambda d: abs(d.start_mm - t["start_mm"]))
            tol = 2 * sc.truth["mm_per_px"]          # ends within 2 px
            assert abs(f.start_mm - t["start_mm"]) <= tol
            assert abs(f.end_mm - t["end_mm"]) <= tol


def test_clean_width_error_per_station(scenes):
    errs = []
    for sc in scenes:
        res = Inspector(sc.recipe).inspect(sc.image)
        tw = np.array(sc.truth["stations"]["width_mm"])
        good = res.present & (np.abs(tw - sc.recipe.width_mm) < 2)
        errs.append((res.width_mm[good] - tw[good]) / sc.truth["mm_per_px"])
    e = np.abs(np.concatenate(errs))
    assert np.median(e) <= 0.15
    assert np.percentile(e, 95) <= 0.5


def test_record_has_contract_fields(scenes):
    sc = scenes[0]
    rec = Inspector(sc.recipe).inspect(sc.image).to_record("a.png")
    assert set(rec) >= {"file", "verdict", "error", "defects", "stats", "timing_ms"}
    assert set(rec["stats"]) == {"width_mean_mm", "width_min_mm", "width_max_mm", "offset_max_mm", "coverage"}
    assert "total" in rec["timing_ms"]
    for d in rec["defects"]:
        assert set(d) == {"type", "start_mm", "end_mm", "length_mm", "center_px", "worst_mm", "limit_mm"}


def test_colour_and_16_bit_frames_give_the_same_verdict(scenes):
    sc = scenes[1]
    insp = Inspector(sc.recipe)
    base = insp.inspect(sc.image)
    bgr = np.repeat(sc.image[..., None], 3, axis=2)
    assert insp.inspect(bgr).verdict == base.verdict
    bgra = np.concatenate([bgr, np.full_like(bgr[..., :1], 255)], axis=2)
    assert insp.inspect(bgra).verdict == base.verdict
    u16 = sc.image.astype(np.uint16) << 8
    assert np.array_equal(to_gray(u16), sc.image)


def test_wrong_frames_are_refused_with_words(scenes):
    insp = Inspector(scenes[0].recipe)
    with pytest.raises(FrameError, match="recipe"):
        insp.inspect(np.zeros((100, 100), np.uint8))
    w, h = scenes[0].recipe.image_size_wh
    with pytest.raises(FrameError, match="dtype"):
        insp.inspect(np.zeros((h, w), np.float32))
    with pytest.raises(FrameError):
        insp.inspect(np.zeros((h, w, 2), np.uint8))
    with pytest.raises(TypeError):
        Inspector({"not": "a recipe"})


def test_progressive_inspection_judges_only_what_is_laid(scenes):
    sc = scenes[0]
    insp = Inspector(sc.recipe)
    res = insp.inspect(sc.image, upto_mm=100.0)
    assert all(d.start_mm <= 100.0 for d in res.defects)
    assert (res.status[insp.arc_mm > 100.0] == 0).all()


def _straight_recipe(width_mm=4.0, closed=False):
    return recipe_from_dict({
        "image_size": [200, 120], "mm_per_px": 0.5, "polarity": "bright",
        "path": {"closed": closed, "points": [[20, 60], [180, 60]]},
        "bead": {"width_mm": width_mm, "width_tol_mm": 1.0, "max_offset_mm": 2.0,
                 "min_defect_mm": 2.0, "search_mm": 8.0}})


def test_blank_frame_is_one_gap_over_the_whole_path():
    r = _straight_recipe()
    res = Inspector(r).inspect(np.full((120, 200), 40, np.uint8))
    assert res.verdict == "NG"
    assert [d.type for d in res.defects] == ["gap"]
    assert res.stats["coverage"] == 0.0


def test_reversed_path_gives_reversed_stations():
    r = _straight_recipe()
    rev = r.replace(points_xy=r.points_xy[::-1].copy())
    a, b = Inspector(r), Inspector(rev)
    assert np.allclose(a.stations.xy, b.stations.xy[::-1])
    assert np.allclose(a.stations.normal_xy, -b.stations.normal_xy[::-1])


def _smooth_ref(values, valid, k, closed):
    """Per station, np.median of the valid values among its k neighbours."""
    n, h = len(values), k // 2
    out = np.full(n, np.nan)
    for i in range(n):
        if not valid[i]:
            continue
        if k <= 1:
            out[i] = values[i]
            continue
        idx = [i + j for j in range(-h, h + 1)]
        idx = [p % n for p in idx] if closed and n > k else [p for p in idx if 0 <= p < n]
        out[i] = np.median([values[p] for p in idx if valid[p]])
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50, width=32), st.booleans()), max_size=30),
       st.sampled_from([1, 3, 5, 7]), st.booleans())
def test_smoothing_equals_a_median_per_station(stations, k, closed):
    values = np.array([s[0] for s in stations], np.float32)
    valid = np.array([s[1] for s in stations], bool)
    values[~valid & (np.arange(len(values)) % 2 == 0)] = np.nan   # invalid may be anything
    np.testing.assert_array_equal(_smooth_valid(values, valid, k, closed),
                                  _smooth_ref(values.astype(np.float64), valid, k, closed))


@pytest.mark.parametrize("size", [1, 2, 3, 511, 512, 513, 2000, 7509])
@pytest.mark.parametrize("kind", ["normal", "few values", "sorted", "all equal"])
def test_typical_contrast_is_numpys_median(size, kind):
    rng = np.random.default_rng(size)
    x = {"normal": rng.normal(40, 8, size), "few values": rng.integers(0, 4, size) * 10.0,
         "sorted": np.sort(rng.normal(40, 8, size)), "all equal": np.full(size, 7.0)}[kind]
    for dtype in (np.float32, np.float64):
        v = x.astype(dtype)
        assert _median_of_finite(v.copy()) == float(np.median(v))


def test_smoothing_keeps_steps_and_skips_invalid():
    v = np.array([1, 1, 1, 9, 9, 9], np.float32)
    assert _smooth_valid(v, np.ones(6, bool), 5, False).tolist() == [1, 1, 1, 9, 9, 9]
    valid = np.array([1, 1, 0, 1, 1, 1], bool)
    out = _smooth_valid(v, valid, 3, False)
    assert np.isnan(out[2]) and out.tolist()[:2] == [1, 1] and out[3] == 9
    # a loop wraps round: the first station's neighbours include the last two
    v = np.array([5, 0, 0, 0, 0, 0, 5, 5], np.float32)
    assert _smooth_valid(v, np.ones(8, bool), 5, True)[0] == 5
    assert _smooth_valid(v, np.ones(8, bool), 5, False)[0] == 0
    assert _smooth_valid(v[:0], np.zeros(0, bool), 5, True).shape == (0,)


def test_overlay_labels_two_defects_in_one_place_one_under_the_other():
    """A stretch that is both too wide and off the path gives two defects with one centre: both
    labels stay readable (each in its type's colour), not one drawn over the other."""
    import dataclasses

    from vision_qc.overlay import STATUS_COLORS_BGR, _free_row, draw_overlay
    from vision_qc.results import STATUS_CODES, Defect

    placed = [(100, 80, 200, 104)]
    y = _free_row(placed, 102, 100, 96, 16, 500)
    assert y != 100 and (y - 16 - 4 >= 104 or y + 4 <= 80)
    assert _free_row([], 102, 100, 96, 16, 500) == 100

    scene = SceneRenderer(sample_scene(4, size_wh=(640, 512), ng_fraction=0.0)).render()
    res = Inspector(scene.recipe).inspect(scene.image)
    c = tuple(float(v) for v in res.xy_px[len(res.xy_px) // 3])
    both = tuple(Defect(type=t, start_mm=10.0, end_mm=30.0, length_mm=20.0, center_px=c,
                        worst_mm=w, limit_mm=lim)
                 for t, w, lim in (("wide", 14.0, 12.5), ("offset", 6.0, 4.0)))
    img = draw_overlay(scene.image, dataclasses.replace(res, defects=both, verdict="NG"),
                       scene.recipe)
    for t in ("wide", "offset"):
        colour = np.array(STATUS_COLORS_BGR[STATUS_CODES[t]], np.uint8)
        assert np.all(img == colour, axis=2).sum() > 20, t
