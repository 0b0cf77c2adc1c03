"""The judge: runs, merging, minimum length, limits, wrap-round."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vision_qc.engine.judge import find_runs, judge, merge_runs, station_status
from vision_qc.results import STATUS_CODES, Defect


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


def _judge(width, *, closed=False, min_defect_mm=3.0, present=None, offset=None,
           min_gap_mm=None):
    n = len(width)
    width = np.asarray(width, float)
    present = np.isfinite(width) if present is None else np.asarray(present, bool)
    offset = np.zeros(n) if offset is None else np.asarray(offset, float)
    status = station_status(present, width, offset, **LIMITS)
    arc = np.arange(n, dtype=float)   # 1 mm between stations
    length = float(n if closed else n - 1)
    xy = np.stack([arc, np.zeros(n)], axis=1)
    return judge(status, arc_mm=arc, length_mm=length, closed=closed, width_mm=width,
                 offset_mm=offset, present=present, xy_px=xy, min_defect_mm=min_defect_mm,
                 min_gap_mm=min_gap_mm, **LIMITS)


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


def test_gap_runs_have_their_own_shortest_length():
    # the inspector keeps shorter gap runs and judges them once their ends are measured
    w = np.full(40, 10.0)
    w[5:7] = np.nan            # a gap run of 2 mm
    w[20:22] = 5.0             # a thin run of 2 mm
    assert _judge(w) == ()
    kept = _judge(w, min_gap_mm=1.5)
    assert [(d.type, d.length_mm) for d in kept] == [("gap", pytest.approx(2.0))]
    assert _judge(w, min_gap_mm=2.01) == ()


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


def test_float32_widths_are_compared_with_the_float32_nearest_the_limit():
    # numpy compares a float32 array with a Python float in float32: the compiled status does too
    w = np.array([2.3, 2.3], np.float32)
    s = station_status(np.array([True, True]), w, np.zeros(2, np.float32), width_min_mm=2.3,
                       width_max_mm=2.3, max_offset_mm=1.0)
    assert s.tolist() == [0, 0]
    s = station_status(np.array([True]), w[:1].astype(np.float64), np.zeros(1), width_min_mm=2.3,
                       width_max_mm=3.0, max_offset_mm=1.0)
    assert s.tolist() == [STATUS_CODES["thin"]]


# ---- slow, obvious references for the compiled judge, and random inputs checked against them


def _merge_ref(mask, closed, max_gap):
    """Walk the holes between True runs; fill the short ones."""
    mask = list(mask)
    n, out = len(mask), list(mask)
    if max_gap <= 0 or not any(mask):
        return out
    for i0, i1 in _runs_ref([not m for m in mask], closed):
        length = (i1 - i0) % n + 1
        if not closed and (i0 == 0 or i1 == n - 1):
            continue
        if length <= max_gap:
            for j in range(length):
                out[(i0 + j) % n] = True
    return out


def _status_ref(present, width, offset, judged, width_min_mm, width_max_mm, max_offset_mm):
    out = []
    for p, w, o, j in zip(present, width, offset, judged):
        if not j:
            code = "ok"
        elif not p:
            code = "gap"
        elif w < width_min_mm:
            code = "thin"
        elif w > width_max_mm:
            code = "wide"
        elif abs(o) > max_offset_mm:
            code = "offset"
        else:
            code = "ok"
        out.append(STATUS_CODES[code])
    return out


def _crossing_ref(arc, vals, i_out, i_in, length, closed):
    n = len(arc)
    if not closed and not 0 <= i_out < n:
        return float(arc[min(max(i_in, 0), n - 1)])
    ao, ai = float(arc[i_out % n]), float(arc[i_in % n])
    if closed and abs(ai - ao) > length / 2:
        ao = ao + length if ai > ao else ao - length
    vo, vi = vals[i_out % n], vals[i_in % n]
    f = 0.5 if not (np.isfinite(vo) and np.isfinite(vi)) or vo == vi else min(max(vo / (vo - vi), 0.0), 1.0)
    a = ao + f * (ai - ao)
    return a % length if closed else a


def _judge_ref(status, *, arc_mm, length_mm, closed, width_mm, offset_mm, present, xy_px,
               width_min_mm, width_max_mm, max_offset_mm, min_defect_mm, merge_stations=2):
    """Run by run, station by station, in plain Python."""
    n = len(status)
    spacing = length_mm / n if closed else length_mm / max(n - 1, 1)
    w = [float(x) for x in width_mm]
    o = [abs(float(x)) for x in offset_mm]
    margin = {"gap": [1.0 if p else -1.0 for p in present],
              "thin": [x - width_min_mm for x in w], "wide": [width_max_mm - x for x in w],
              "offset": [max_offset_mm - x for x in o]}
    limit = {"gap": width_min_mm, "thin": width_min_mm, "wide": width_max_mm, "offset": max_offset_mm}
    out = []
    width_codes = (STATUS_CODES["thin"], STATUS_CODES["wide"])
    for name in ("gap", "thin", "wide", "offset"):
        hits = [s == STATUS_CODES[name] for s in status]
        if name == "offset":
            # a thin or wide stretch off the path is reported as an offset too
            hits = [h or (s in width_codes and p and x > max_offset_mm)
                    for h, s, p, x in zip(hits, status, present, o)]
        mask = _merge_ref(hits, closed, merge_stations)
        for i0, i1 in _runs_ref(mask, closed):
            a0 = _crossing_ref(arc_mm, margin[name], i0 - 1, i0, length_mm, closed)
            a1 = _crossing_ref(arc_mm, margin[name], i1 + 1, i1, length_mm, closed)
            if closed and i0 == 0 and i1 == n - 1:
                a0, a1 = 0.0, length_mm
            seg = (a1 - a0) % length_mm if closed else a1 - a0
            if closed and seg == 0 and i1 - i0 == n - 1:
                seg = length_mm
            if seg < min_defect_mm:
                continue
            idx = [(i0 + j) % n for j in range((i1 - i0) % n + 1)]
            # the worst measured value: stations without one (a merged hole, a gap station
            # inside a thin run) are skipped, NaN only when none has one
            if name == "gap":
                vals, pick = [(w[i] if present[i] else 0.0) for i in idx], min
            else:
                vals = [o[i] if name == "offset" else w[i] for i in idx]
                pick = min if name == "thin" else max
            vals = [v for v in vals if v == v]
            worst = pick(vals) if vals else float("nan")
            mid = round((a0 + seg / 2) / spacing)
            mid = mid % n if closed else min(max(mid, 0), n - 1)
            out.append(Defect(type=name, start_mm=a0, end_mm=a1, length_mm=seg,
                              center_px=(float(xy_px[mid, 0]), float(xy_px[mid, 1])),
                              worst_mm=worst, limit_mm=limit[name]))
    return tuple(sorted(out, key=lambda d: d.start_mm))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=40), st.booleans(), st.integers(0, 4))
def test_runs_and_merging_equal_the_references(mask, closed, max_gap):
    m = np.array(mask, bool)
    assert find_runs(m, closed=closed).tolist() == _runs_ref(mask, closed)
    assert merge_runs(m, closed=closed, max_gap=max_gap).tolist() == _merge_ref(mask, closed, max_gap)


# widths and offsets on and round the limits, so that runs start and stop everywhere
_WIDTHS = st.sampled_from([np.nan, 3.0, 7.0, 7.5, 7.6, 10.0, 12.4, 12.5, 13.0, 20.0])
_OFFSETS = st.sampled_from([0.0, 1.0, -3.9, 4.0, -4.0, 4.5, -6.0])


@settings(max_examples=400, deadline=None)
# a thin run merged across a gap station of a 2-station loop: the worst is the measured 3.0
@example([(np.nan, 0.0), (3.0, 0.0)], True, np.float32, 0.0, 1, 1.0, False)
@given(st.lists(st.tuples(_WIDTHS, _OFFSETS), max_size=60), st.booleans(),
       st.sampled_from([np.float32, np.float64]), st.floats(0.0, 12.0), st.integers(0, 3),
       st.floats(0.3, 2.0), st.booleans())
def test_status_and_judge_equal_the_references(stations, closed, dtype, min_defect_mm,
                                               merge_stations, spacing_mm, partly_judged):
    n = len(stations)
    width = np.array([s[0] for s in stations], dtype)
    offset = np.array([s[1] for s in stations], dtype)
    present = np.isfinite(width)
    offset[~present] = np.nan
    judged = np.arange(n) < n // 2 if partly_judged else np.ones(n, bool)
    status = station_status(present, width, offset, judged=judged, **LIMITS)
    assert status.tolist() == _status_ref(present, width, offset, judged, **LIMITS)
    arc = np.arange(n) * spacing_mm
    length = n * spacing_mm if closed else max(n - 1, 1) * spacing_mm
    xy = np.stack([arc, -arc], axis=1)
    kw = dict(arc_mm=arc, length_mm=length, closed=closed, width_mm=width, offset_mm=offset,
              present=present, xy_px=xy, min_defect_mm=min_defect_mm,
              merge_stations=merge_stations, **LIMITS)
    assert judge(status, **kw) == (_judge_ref(status, **kw) if n else ())


def test_judge_one_station_and_whole_loops():
    for closed in (False, True):
        for width in (np.nan, 5.0, 10.0, 20.0):
            w = np.array([width])
            present = np.isfinite(w)
            status = station_status(present, w, np.zeros(1), **LIMITS)
            kw = dict(arc_mm=np.zeros(1), length_mm=1.0, closed=closed, width_mm=w,
                      offset_mm=np.zeros(1), present=present, xy_px=np.zeros((1, 2)),
                      min_defect_mm=0.0, **LIMITS)
            assert judge(status, **kw) == _judge_ref(status, **kw)
    # a gap all the way round a loop is one defect over its whole length
    (d,) = _judge(np.full(30, np.nan), closed=True)
    assert (d.type, d.start_mm, d.end_mm, d.length_mm) == ("gap", 0.0, 30.0, 30.0)


def test_a_wide_stretch_off_the_path_is_reported_as_both():
    """A bead laid off its path onto something as dark as itself is measured too wide there as
    well as off centre: both limits are broken and both are reported (the station status, the
    overlay's colour, keeps the first: wide)."""
    n = 100
    width = np.full(n, 10.0)
    offset = np.zeros(n)
    width[40:60] = 14.0
    offset[40:60] = 6.0
    present = np.ones(n, bool)
    status = station_status(present, width, offset, **LIMITS)
    assert set(status[40:60].tolist()) == {STATUS_CODES["wide"]}
    arc = np.arange(n) * 1.0
    got = judge(status, arc_mm=arc, length_mm=float(n), closed=True, width_mm=width,
                offset_mm=offset, present=present, xy_px=np.stack([arc, arc], 1),
                min_defect_mm=3.0, **LIMITS)
    assert sorted(d.type for d in got) == ["offset", "wide"]
    for d in got:       # each end where its own value crosses its limit, between two stations
        assert 39.0 < d.start_mm < 40.0 and 59.0 < d.end_mm < 60.0
        assert d.worst_mm == (14.0 if d.type == "wide" else 6.0)
    # centred, the same wide stretch is wide only
    offset[40:60] = 0.0
    got = judge(status, arc_mm=arc, length_mm=float(n), closed=True, width_mm=width,
                offset_mm=offset, present=present, xy_px=np.stack([arc, arc], 1),
                min_defect_mm=3.0, **LIMITS)
    assert [d.type for d in got] == ["wide"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_limit_as_compared_cached_keeps_the_limits_type(dtype):
    # cached per type too: a Python float is rounded to float32 values' dtype, a numpy
    # float64 of the same value is not (numpy's promotion); an array limit is not hashable
    from vision_qc.engine.judge import _limit_as_compared, _limit_rounded
    for _ in range(2):
        for limit in (0.35, np.float64(0.35), np.float32(0.35), 1, np.array(0.35)):
            assert _limit_as_compared(dtype, limit) == _limit_rounded(dtype, limit)
            assert _limit_as_compared(np.dtype(dtype), limit) == _limit_rounded(dtype, limit)
    assert _limit_as_compared(np.float32, 0.35) != _limit_as_compared(np.float32, np.float64(0.35))


def test_merged_runs_is_find_runs_of_the_merged_mask():
    # the judge's one-pass runs equal the runs of the merged mask, on every status sequence
    # of up to 7 stations (three codes), open and closed, holes of 0 to 3 merged
    import itertools

    from vision_qc.engine.judge import _find_runs_kernel, _merged_runs, _merged_runs_mask
    for n in range(1, 8):
        for codes in itertools.product((0, 1, 2), repeat=n):
            values = np.array(codes, np.int8)
            for closed in (False, True):
                for gap in range(4):
                    mask, any_station = _merged_runs_mask(values, np.int8(1), closed, gap)
                    ref = (_find_runs_kernel(mask, closed) if any_station
                           else np.zeros((0, 2), np.int64))
                    np.testing.assert_array_equal(_merged_runs(values, np.int8(1), closed, gap),
                                                  ref)
