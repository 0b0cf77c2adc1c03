"""The judge: runs, merging, minimum length, limits, wrap-round."""

import numpy as np
import pytest

from vision_qc.engine.judge import find_runs, judge, merge_runs, station_status
from vision_qc.results import STATUS_CODES


def _runs_ref(mask, closed):
    """Slow, obvious reference: walk the array."""
    n = len(mask)
    runs, i = [], 0
    while i < n:
        if mask[i]:
            j = i
            while j + 1 < n and mask[j + 1]:
                j += 1
            runs.append([i, j])
            i = j + 1
        else:
            i += 1
    if closed and len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == n - 1:
        runs = [[runs[-1][0], runs[0][1]]] + runs[1:-1]
    if runs == [[0, n - 1]] or (n and all(mask)):
        return [[0, n - 1]]
    return runs


@pytest.mark.parametrize("mask,closed,expected", [
    ([], False, []),
    ([0, 0, 0], False, []),
    ([1, 1, 1], True, [[0, 2]]),
    ([0, 1, 1, 0, 1], False, [[1, 2], [4, 4]]),
    ([1, 0, 0, 1, 1], True, [[3, 0]]),
    ([1, 0, 0, 1, 1], False, [[0, 0], [3, 4]]),
    ([1, 0, 1, 0, 1], True, [[4, 0], [2, 2]]),
])
def test_find_runs_table(mask, closed, expected):
    got = find_runs(np.array(mask, bool), closed=closed)
    assert got.tolist() == expected


@pytest.mark.parametrize("seed", range(20))
def test_find_runs_matches_reference(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random(int(rng.integers(1, 60))) < rng.uniform(0.1, 0.9)
    for closed in (False, True):
        assert find_runs(mask, closed=closed).tolist() == _runs_ref(mask.tolist(), closed)


def test_merge_runs_fills_short_holes_only():
    m = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1], bool)
    assert merge_runs(m, closed=False, max_gap=2).astype(int).tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 1]
    # on a closed path the hole across the start counts too
    m = np.array([0, 1, 1, 0, 0, 0, 1, 1, 0], bool)
    assert merge_runs(m, closed=True, max_gap=2).astype(int).tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1]
    # an open path's end is not a hole between two runs
    m = np.array([0, 1, 1, 0], bool)
    assert merge_runs(m, closed=False, max_gap=2).tolist() == m.tolist()


LIMITS = dict(width_min_mm=7.5, width_max_mm=12.5, max_offset_mm=4.0)


@pytest.mark.parametrize("width,offset,present,expected", [
    (10.0, 0.0, True, "ok"),
    (7.5, 0.0, True, "ok"),          # exactly at the lower limit passes
    (12.5, 0.0, True, "ok"),         # exactly at the upper limit passes
    (10.0, 4.0, True, "ok"),
    (10.0, -4.0, True, "ok"),
    (7.4999, 0.0, True, "thin"),
    (12.5001, 0.0, True, "wide"),
    (10.0, 4.0001, True, "offset"),
    (10.0, -4.0001, True, "offset"),
    (5.0, 6.0, True, "thin"),        # thin wins over offset
    (np.nan, np.nan, False, "gap"),
    (10.0, 0.0, False, "gap"),
])
def test_station_status_boundaries(width, offset, present, expected):
    s = station_status(np.array([present]), np.array([width]), np.array([offset]), **LIMITS)
    assert s[0] == STATUS_CODES[expected]


def test_not_judged_stations_are_ok():
    s = station_status(np.array([False, False]), np.array([np.nan, np.nan]), np.array([0.0, 0.0]),
                       judged=np.array([True, False]), **LIMITS)
    assert s.tolist() == [STATUS_CODES["gap"], 0]


def _judge(width, *, closed=False, min_defect_mm=3.0, present=None, offset=None):
    n = len(width)
    width = np.asarray(width, float)
    present = np.isfinite(width) if present is None else np.asarray(present, bool)
    offset = np.zeros(n) if offset is None else np.asarray(offset, float)
    status = station_status(present, width, offset, **LIMITS)
    arc = np.arange(n, dtype=float)   # 1 mm between stations
    length = float(n if closed else n - 1)
    xy = np.stack([arc, np.zeros(n)], axis=1)
    return judge(status, arc_mm=arc, length_mm=length, closed=closed, width_mm=width,
                 offset_mm=offset, present=present, xy_px=xy, min_defect_mm=min_defect_mm, **LIMITS)


def test_empty_and_clean_paths_have_no_defects():
    assert _judge(np.zeros(0)) == ()
    assert _judge(np.full(50, 10.0)) == ()


def test_thin_run_ends_interpolated_at_the_limit():
    w = np.full(40, 10.0)
    w[10:20] = 5.0
    w[9] = 7.5 + 1.25   # half way down to 5 from 10 ... crossing between 9 and 10
    (d,) = _judge(w)
    assert d.type == "thin"
    assert d.start_mm == pytest.approx(9.0 + (8.75 - 7.5) / (8.75 - 5.0))
    assert d.end_mm == pytest.approx(19.5)
    assert d.worst_mm == 5.0 and d.limit_mm == 7.5


def test_short_runs_dropped_and_split_runs_merged():
    w = np.full(60, 10.0)
    w[5:7] = 5.0               # 2 stations: ~2 mm < 3 mm → dropped
    w[20:25] = 5.0
    w[26:31] = 5.0             # split by one station → merged into one defect
    ds = _judge(w)
    assert len(ds) == 1
    assert ds[0].start_mm == pytest.approx(19.5) and ds[0].end_mm == pytest.approx(30.5)


def test_min_defect_exactly_at_limit_is_reported():
    w = np.full(40, 10.0)
    w[10:13] = 5.0             # ends at 9.5 and 12.5: 3.0 mm long
    (d,) = _judge(w, min_defect_mm=3.0)
    assert d.length_mm == pytest.approx(3.0)
    assert _judge(w, min_defect_mm=3.01) == ()


def test_gap_crossing_the_start_of_a_closed_path_wraps():
    w = np.full(100, 10.0)
    w[:5] = np.nan
    w[95:] = np.nan
    (d,) = _judge(w, closed=True)
    assert d.type == "gap"
    assert d.start_mm > d.end_mm
    assert d.start_mm == pytest.approx(94.5) and d.end_mm == pytest.approx(4.5)
    assert d.length_mm == pytest.approx(10.0)
    assert d.worst_mm == 0.0


def test_offset_worst_is_absolute():
    off = np.zeros(50)
    off[10:20] = -6.0
    (d,) = _judge(np.full(50, 10.0), offset=off)
    assert d.type == "offset" and d.worst_mm == 6.0 and d.limit_mm == 4.0
