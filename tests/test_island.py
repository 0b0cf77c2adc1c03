"""A short piece of "bead" far off the path inside a gap is a speck (inspector.ISLAND_PX): the
stations dropped (_island_kernel) and what it does to a whole part."""

import cv2
import numpy as np
import pytest

import vision_qc.inspector as inspector_mod
from vision_qc.inspector import Inspector, _island_kernel

from glare_scenes import straight_recipe


def _island(present, offset, *, max_len=3, min_gap=1, closed=False, judged=None, limit=4.0):
    present = np.asarray(present, bool)
    judged = np.ones(len(present), bool) if judged is None else np.asarray(judged, bool)
    return _island_kernel(present, judged, np.asarray(offset, np.float32), limit, max_len,
                          min_gap, closed).astype(int).tolist()


@pytest.mark.parametrize("closed", [False, True])
def test_a_short_far_run_between_stations_without_bead_is_dropped(closed):
    present = [0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0]
    offset = [0, 0, 9, -9, 0, 0, 9, 9, 9, 1, 0]
    # the first run is short and far; the second is longer than 3 stations (and one of its
    # stations lies within the limit)
    assert _island(present, offset, closed=closed) == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("present, offset, expected", [
    ([0, 1, 1, 0], [0, 9, 3, 0], [0, 0, 0, 0]),          # one station within the limit: bead
    ([0, 1, 1, 0], [0, 9, 4, 0], [0, 0, 0, 0]),          # exactly at the limit is within it
    ([0, 1, 1, 1, 1, 0], [0, 9, 9, 9, 9, 0], [0] * 6),   # longer than max_len
    ([1, 1, 0, 0], [9, 9, 0, 0], [0, 0, 0, 0]),          # touches an open path's start
    ([0, 0, 1, 1], [0, 0, 9, 9], [0, 0, 0, 0]),          # ... or its end
])
def test_what_is_kept(present, offset, expected):
    assert _island(present, offset) == expected


def test_the_gap_must_reach_min_gap_stations_on_each_side():
    # a low-contrast bead laid off its path, read without bead but for a few stations at one
    # end of its stretch (hard bright s7 ws_0045): those few are the bead, offset
    present = [1, 0, 0, 0, 0, 1, 1, 0, 1, 1]
    offset = [0, 0, 0, 0, 0, 9, 9, 0, 0, 0]
    assert _island(present, offset, min_gap=1) == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert _island(present, offset, min_gap=2) == [0] * 10
    assert _island([1, 0, 0, 1, 0, 0, 1], [0, 0, 0, 9, 0, 0, 0], min_gap=2) == [0, 0, 0, 1, 0, 0, 0]


def test_round_a_closed_path_and_beside_stations_not_judged():
    # wraps round the start of a loop
    assert _island([1, 0, 0, 0, 0, 1], [9, 0, 0, 0, 0, -9], closed=True) == [1, 0, 0, 0, 0, 1]
    assert _island([1, 0, 0, 0, 0, 1], [9, 0, 0, 0, 0, -9], closed=False) == [0] * 6
    # a neighbour not judged (beyond what was dispensed) is not known to be without bead
    assert _island([0, 1, 1, 0], [0, 9, 9, 0], judged=[1, 1, 1, 0]) == [0, 0, 0, 0]
    # nothing without bead, or nothing at all
    assert _island([1, 1, 1], [9, 9, 9], closed=True) == [0, 0, 0]
    assert _island([0, 0, 0], [0, 0, 0]) == [0, 0, 0]


def _gap_with_speck(dy, seed=1):
    """A dark bead 10 px wide along y = 80 (the straight recipe's), missing from x = 130 to
    170 px (55-75 mm along the path), with a dark speck 6 px across, as dark as the bead, at
    x = 150 and ``dy`` px off the path."""
    h, w = 160, 300
    bead = np.zeros((h, w), np.float32)
    bead[75:85, 20:281] = 1.0
    bead[:, 130:170] = 0.0
    cv2.circle(bead, (150, 80 + dy), 3, 1.0, -1)
    img = 130.0 - 30.0 * cv2.GaussianBlur(bead, (0, 0), 1.0)
    img += np.random.default_rng(seed).normal(0.0, 2.0, img.shape).astype(np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dy", [9, -9])
def test_a_speck_beside_the_path_does_not_split_a_gap(monkeypatch, dy):
    frame = _gap_with_speck(dy)
    res = Inspector(straight_recipe()).inspect(frame)
    assert [d.type for d in res.defects] == ["gap"]
    assert res.defects[0].start_mm == pytest.approx(55.0, abs=0.5)
    assert res.defects[0].end_mm == pytest.approx(75.0, abs=0.5)
    # without the rule the speck reads as a piece of bead 4.5 mm off the path
    monkeypatch.setattr(inspector_mod, "ISLAND_PX", 0.0)
    types = [d.type for d in Inspector(straight_recipe()).inspect(frame).defects]
    assert types.count("gap") == 2 and "offset" in types


def test_a_blob_on_the_path_inside_a_gap_stays():
    # on the path it may be bead (a drip): the gap stays split, as before
    res = Inspector(straight_recipe()).inspect(_gap_with_speck(0))
    assert [d.type for d in res.defects].count("gap") == 2
