"""Scoring against truth: matching, confusion, by preset."""

import numpy as np
import pytest

from vision_qc.evaluation import PathMap, interval_distance, match_defects, score
from vision_qc.geometry import build_stations


def _d(typ, a, b):
    return {"type": typ, "start_mm": a, "end_mm": b, "length_mm": abs(b - a)}


@pytest.mark.parametrize("a,b,length,expected", [
    ((0, 10), (5, 15), None, 0.0),
    ((0, 10), (12, 15), None, 2.0),
    ((95, 105), (0, 3), 100.0, 0.0),      # wraps: 95..105 covers 0..5
    ((90, 98), (1, 3), 100.0, 3.0),
])
def test_interval_distance(a, b, length, expected):
    assert interval_distance(a, b, length) == pytest.approx(expected)


def test_match_by_type_and_distance_each_truth_once():
    found = [_d("gap", 10, 20), _d("gap", 11, 19), _d("thin", 50, 60), _d("wide", 200, 210)]
    truth = [_d("gap", 10.5, 20.5), _d("thin", 61, 70), _d("wide", 300, 310)]
    pairs = match_defects(found, truth, length_mm=None, tol_mm=2.0)
    assert sorted(pairs) == [(0, 0), (2, 1)]


def test_score_confusion_and_rates():
    items = [
        {"record": {"verdict": "NG", "defects": [_d("gap", 10, 20)]},
         "truth": {"verdict": "NG", "preset": "clean", "defects": [_d("gap", 10.2, 20.1)], "mm_per_px": 0.5}},
        {"record": {"verdict": "OK", "defects": []},
         "truth": {"verdict": "NG", "preset": "hard", "defects": [_d("thin", 5, 9)], "mm_per_px": 0.5}},
        {"record": {"verdict": "NG", "defects": [_d("wide", 1, 9)]},
         "truth": {"verdict": "OK", "preset": "hard", "defects": [], "mm_per_px": 0.5}},
        {"record": {"verdict": "ERROR", "error": "x"},
         "truth": {"verdict": "OK", "preset": "hard", "defects": []}},
    ]
    f = score(items)
    c = f["overall"]["confusion"]
    assert c == {"ng_called_ng": 1, "escapes": 1, "false_rejects": 1, "ok_called_ok": 0, "errors": 1}
    assert f["overall"]["recall"]["gap"] == 1.0 and f["overall"]["recall"]["thin"] == 0.0
    assert f["overall"]["false_alarms_per_image"] == pytest.approx(1 / 3)
    assert f["overall"]["gap_end_error"]["mm_max"] == pytest.approx(0.2)
    assert f["overall"]["gap_end_error"]["px_max"] == pytest.approx(0.4)
    assert set(f["by_preset"]) == {"clean", "hard"}
    assert f["by_preset"]["clean"]["confusion"]["escapes"] == 0


def test_score_of_nothing_is_valid():
    f = score([])
    assert f["overall"]["images"] == 0 and f["by_preset"] == {}


def test_wrapping_gap_matches_without_a_recipe_length():
    """Records read back from results.jsonl carry no path length: it comes from the truth."""
    truth = {"verdict": "NG", "preset": "normal", "mm_per_px": 1.0,
             "defects": [_d("gap", 98.0, 2.0)],
             "stations": {"spacing_mm": 1.0, "width_mm": [10.0] * 100, "offset_mm": [0.0] * 100},
             "spec": {"span_deg": 360.0}}
    rec = {"verdict": "NG", "defects": [_d("gap", 98.5, 1.5)]}
    f = score([{"record": rec, "truth": truth}])
    assert f["overall"]["recall"]["gap"] == 1.0
    assert f["overall"]["gap_end_error"]["mm_max"] == pytest.approx(0.5)


def _circle(n_pts, r, start_deg=0.0, cx=200.0, cy=150.0):
    a = np.deg2rad(start_deg) + np.linspace(0.0, 2 * np.pi, n_pts, endpoint=False)
    return np.c_[cx + r * np.cos(a), cy + r * np.sin(a)]


def test_path_map_reads_arcs_along_the_truths_path():
    # the truth's path: a circle of radius 100 px starting at 0°; the recipe's: the same
    # circle (its points elsewhere) starting at 90°, so its arc a is the truth's a + r π / 2
    mm = 0.5
    dst = build_stations(_circle(72, 100.0), closed=True)
    src = build_stations(_circle(50, 100.0, start_deg=90.0), closed=True)
    pm = PathMap(src, dst, mm)
    quarter = 100.0 * np.pi / 2 * mm
    length = dst.length_px * mm
    for a in (0.0, 10.0, 100.0, 250.0):
        assert pm.arc(a) == pytest.approx((a + quarter) % length, abs=0.02)
    # round the truth's start: wraps
    assert pm.arc(3 * quarter + 1.0) == pytest.approx(1.0, abs=0.02)
    rec = pm.record({"verdict": "NG",
                     "defects": [{"type": "gap", "start_mm": 10.0, "end_mm": 20.0}]})
    assert rec["defects"][0]["start_mm"] == pytest.approx(10.0 + quarter, abs=0.02)
    assert rec["defects"][0]["end_mm"] == pytest.approx(20.0 + quarter, abs=0.02)


def test_path_map_offsets_are_measured_from_the_truths_path():
    # the recipe's path runs 2 px outside the truth's (radius 102): a bead 1 px inside the
    # recipe's path lies 1 px outside the truth's; widths are carried over as they are
    mm = 0.5
    dst = build_stations(_circle(72, 100.0), closed=True)
    src = build_stations(_circle(72, 102.0), closed=True)
    pm = PathMap(src, dst, mm)
    across = float(np.median(pm.across_mm * pm.normal_sign))   # signed along the recipe's normal
    assert abs(across) == pytest.approx(2.0 * mm, abs=0.01)
    n = len(src)
    width, offset = pm.per_station(np.full(n, 5.0), np.full(n, -np.sign(across) * 1.0 * mm))
    assert len(width) == len(dst) and np.allclose(width, 5.0)
    assert np.allclose(np.abs(offset), 1.0 * mm, atol=0.01)
    assert np.all(np.sign(offset) == np.sign(np.median(pm.across_mm)))
