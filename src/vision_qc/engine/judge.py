"""Stage 4, judging: per-station status against the recipe, then runs of failing stations.

On a closed path a run that crosses the start is one run (its start index is then larger than
its end index). The per-station work (status, runs, merging, the ends and worst value of each
run) is done by compiled kernels (:mod:`._jit`): one call each per frame instead of dozens of
small numpy calls, whose fixed cost dominated at a few thousand stations. Only the defects that
survive become Python objects. Each kernel has a slow, obvious reference in
``tests/test_judge.py`` that it must equal.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..results import STATUS_CODES, Defect
from ._jit import finite, kernel

__all__ = ["find_runs", "station_status", "merge_runs", "judge"]

# judge's defect types, in the order their runs are listed (the order of DEFECT_TYPES)
_TYPES = ("gap", "thin", "wide", "offset")
_CODES = np.array([STATUS_CODES[t] for t in _TYPES], np.int8)
_OFFSET = _TYPES.index("offset")
_F64_MAX = float(np.finfo(np.float64).max)


@kernel
def _find_runs_kernel(mask, closed):
    """find_runs on a 1-D bool array (see :func:`find_runs`)."""
    n = mask.shape[0]
    count = 0
    for i in range(n):
        if mask[i] and (i == 0 or not mask[i - 1]):
            count += 1
    if count == 0:
        return np.zeros((0, 2), np.int64)
    if count == 1 and mask[0] and mask[n - 1]:
        # all True (one run from end to end)
        runs = np.empty((1, 2), np.int64)
        runs[0, 0] = 0
        runs[0, 1] = n - 1
        return runs
    runs = np.empty((count, 2), np.int64)
    k = 0
    for i in range(n):
        if mask[i] and (i == 0 or not mask[i - 1]):
            runs[k, 0] = i
        if mask[i] and (i == n - 1 or not mask[i + 1]):
            runs[k, 1] = i
            k += 1
    if closed and count > 1 and mask[0] and mask[n - 1]:
        # the last run goes on through the start into the first: one run, listed first
        out = np.empty((count - 1, 2), np.int64)
        out[0, 0] = runs[count - 1, 0]
        out[0, 1] = runs[0, 1]
        out[1:] = runs[1:count - 1]
        return out
    return runs


@kernel
def _merged_runs_mask(values, value, closed, max_gap):
    """``values == value`` with holes of at most ``max_gap`` between True runs filled, and
    whether any is True; one pass (see :func:`merge_runs`)."""
    n = values.shape[0]
    out = np.empty(n, np.bool_)
    first = last = -1
    for i in range(n):
        hit = values[i] == value
        out[i] = hit
        if hit:
            if last >= 0 and i - last - 1 <= max_gap:
                for j in range(last + 1, i):
                    out[j] = True
            if first < 0:
                first = i
            last = i
    # on a loop the hole after the last run and before the first is one hole too; on an
    # open path a hole touching an end lies between nothing and stays
    hole = n - 1 - last + first
    if closed and first >= 0 and 0 < hole <= max_gap:
        out[last + 1:] = True
        out[:first] = True
    return out, first >= 0


@kernel
def _merged_runs(values, value, closed, max_gap):
    """``_find_runs_kernel(_merged_runs_mask(values, value, closed, max_gap)[0], closed)`` in
    one pass over ``values`` and no mask: the judge's two kinds with stations on the bench
    frame took 18 us (warm) through the mask, its merging and the two passes over it."""
    n = values.shape[0]
    starts = np.empty(n, np.int64)
    ends = np.empty(n, np.int64)
    count = 0
    last = -1
    for i in range(n):
        if values[i] == value:
            if last < 0 or i - last - 1 > max_gap:
                starts[count] = i
                count += 1
            ends[count - 1] = i
            last = i
    if count == 0:
        return np.zeros((0, 2), np.int64)
    first = starts[0]
    # on a loop the hole after the last run and before the first is one hole too (filled:
    # the last run reaches the end and the first the start)
    hole = n - 1 - last + first
    if closed and 0 < hole <= max_gap:
        starts[0] = 0
        ends[count - 1] = n - 1
    if starts[0] == 0 and ends[count - 1] == n - 1:
        if count == 1:
            runs = np.empty((1, 2), np.int64)
            runs[0, 0] = 0
            runs[0, 1] = n - 1
            return runs
        if closed:
            # the last run goes on through the start into the first: one run, listed first
            out = np.empty((count - 1, 2), np.int64)
            out[0, 0] = starts[count - 1]
            out[0, 1] = ends[0]
            for r in range(1, count - 1):
                out[r, 0] = starts[r]
                out[r, 1] = ends[r]
            return out
    runs = np.empty((count, 2), np.int64)
    for r in range(count):
        runs[r, 0] = starts[r]
        runs[r, 1] = ends[r]
    return runs


def find_runs(mask: np.ndarray, *, closed: bool) -> np.ndarray:
    """Runs of True as rows ``(start, end)`` of inclusive indices, int64 (K, 2).

    On a closed path a run through the last and first elements is joined and has
    ``start > end``; an all-True mask is the single run ``(0, n - 1)``.
    """
    return _find_runs_kernel(np.asarray(mask, dtype=bool), bool(closed))


def run_lengths(runs: np.ndarray, n: int) -> np.ndarray:
    """Number of stations in each run (wrapping runs counted across the start)."""
    return (runs[:, 1] - runs[:, 0]) % n + 1 if len(runs) else np.zeros(0, np.int64)


def merge_runs(mask: np.ndarray, *, closed: bool, max_gap: int) -> np.ndarray:
    """``mask`` with holes of at most ``max_gap`` stations between True runs filled."""
    mask = np.asarray(mask, dtype=bool)
    if max_gap <= 0 or not mask.any():
        return mask
    return _merged_runs_mask(mask, True, bool(closed), int(max_gap))[0]


@kernel
def _status_kernel(present, width, offset, judged, has_judged, width_min, width_max, max_offset,
                   gap, thin, wide, off):
    """station_status per station; the limits come already rounded to the comparison dtype."""
    n = present.shape[0]
    status = np.zeros(n, np.int8)
    for i in range(n):
        if has_judged and not judged[i]:
            continue
        if not present[i]:
            status[i] = gap
            continue
        w = np.float64(width[i])
        # NaN compares False everywhere, as it did in the array version
        if w < width_min:
            status[i] = thin
        elif w > width_max:
            status[i] = wide
        elif abs(np.float64(offset[i])) > max_offset:
            status[i] = off
    return status


def _float_array(x) -> np.ndarray:
    """``x`` as a float32 or float64 array, converted exactly (ints and float16 widened)."""
    x = np.asarray(x)
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x
    return x.astype(np.float32 if x.dtype == np.float16 else np.float64)


def _limit_as_compared(dtype: np.dtype, limit) -> float:
    """``limit`` rounded to the dtype numpy compares ``np.where(present, values, nan)`` with it
    in, for ``values`` of ``dtype`` (float32 for float32 values and a Python float limit), as a
    float64: compared in float64 with the exactly widened values, it decides as that did."""
    try:
        return _limit_cached(np.dtype(dtype), limit)
    except TypeError:       # unhashable (an array)
        return _limit_rounded(dtype, limit)


def _limit_rounded(dtype, limit) -> float:
    masked = np.result_type(dtype, np.nan)
    return float(np.result_type(masked, limit).type(limit))


# per (dtype, limit, the limit's type: a numpy float64 is no weak Python float to numpy's
# promotion): four calls a frame took 6.5 us (warm), 0.3 cached
_limit_cached = lru_cache(maxsize=256, typed=True)(_limit_rounded)


def station_status(present, width_mm, offset_mm, *, width_min_mm, width_max_mm, max_offset_mm,
                   judged=None) -> np.ndarray:
    """Status code per station (:data:`~vision_qc.results.STATUS_CODES`).

    A value exactly at a limit passes. A station not judged (beyond the dispensed length in
    live mode) is OK. No bead → gap; then thin, wide, offset in that order.

    Parameters
    ----------
    present : (N,) bool
    width_mm, offset_mm : (N,) float
        Ignored where not ``present``. Compared with the limits in their own dtype (a float32
        width against the float32 nearest to the limit), as numpy compares an array with a
        scalar.
    width_min_mm, width_max_mm, max_offset_mm : float, keyword-only
    judged : (N,) bool, optional
        Stations to judge; all when None.

    Returns
    -------
    (N,) int8
    """
    present = np.asarray(present, bool)
    width_mm, offset_mm = np.asarray(width_mm), np.asarray(offset_mm)
    j = present if judged is None else np.asarray(judged, bool)
    return _status_kernel(present, _float_array(width_mm), _float_array(offset_mm), j,
                          judged is not None, _limit_as_compared(width_mm.dtype, width_min_mm),
                          _limit_as_compared(width_mm.dtype, width_max_mm),
                          _limit_as_compared(offset_mm.dtype, max_offset_mm),
                          STATUS_CODES["gap"], STATUS_CODES["thin"], STATUS_CODES["wide"],
                          STATUS_CODES["offset"])


@kernel
def _margin(kind, i, present, width, offset, width_min, width_max, max_offset):
    """How far station ``i`` is inside its limit for defect type ``kind`` (≥ 0 good, < 0 bad)."""
    if kind == 0:
        return 1.0 if present[i] else -1.0
    if kind == 1:
        return np.float64(width[i]) - width_min
    if kind == 2:
        return width_max - np.float64(width[i])
    return max_offset - abs(np.float64(offset[i]))


@kernel
def _crossing_arc(arc, kind, i_out, i_in, length, closed, present, width, offset, width_min,
                  width_max, max_offset):
    """Arc length where the margin crosses zero between stations ``i_out`` and ``i_in``.

    ``i_out`` may lie one beyond either end: on a closed path it wraps; on an open one the
    run's own end station is the answer.
    """
    n = arc.shape[0]
    if not closed and (i_out < 0 or i_out >= n):
        return arc[min(max(i_in, 0), n - 1)]
    io, ii = i_out % n, i_in % n
    ao, ai = arc[io], arc[ii]
    if closed and abs(ai - ao) > length / 2:
        ao = ao + length if ai > ao else ao - length
    vo = _margin(kind, io, present, width, offset, width_min, width_max, max_offset)
    vi = _margin(kind, ii, present, width, offset, width_min, width_max, max_offset)
    if not (np.isfinite(vo) and np.isfinite(vi)) or vo == vi:
        f = 0.5
    else:
        f = vo / (vo - vi)
        # np.clip's scalar order (NaN and -0.0 pass through)
        if f < 0.0:
            f = 0.0
        elif f > 1.0:
            f = 1.0
    a = ao + f * (ai - ao)
    return a % length if closed else a


@kernel
def _worst(kind, i0, count, present, width, offset):
    """Worst value over ``count`` stations from ``i0`` (wrapping): smallest width (a station
    without bead counts 0) for gap and thin, largest width for wide, largest |offset|; NaN
    values are skipped (NaN when all are)."""
    n = present.shape[0]
    best = np.nan
    for j in range(count):
        i = (i0 + j) % n
        if kind == 0:
            v = np.float64(width[i]) if present[i] else 0.0
        elif kind == 3:
            v = abs(np.float64(offset[i]))
        else:
            v = np.float64(width[i])
        if np.isnan(v):
            continue
        if np.isnan(best) or (v < best if kind <= 1 else v > best):
            best = v
    if kind == 0:
        # as np.nan_to_num: no width at all is 0, infinities the largest finite floats
        best = finite(best, _F64_MAX)
    return best


@kernel
def _judge_kernel(status, codes, arc, length, closed, present, width, offset, width_min,
                  width_max, max_offset, min_defect, merge_stations, spacing, off_limit,
                  min_gap):
    """The defects of :func:`judge` as parallel arrays (kind, start, end, length, worst,
    middle station), kinds in ``codes`` order, each kind's runs in find_runs order.

    Offset runs are found on the status with the thin and wide stations whose centre is also
    off the path by more than ``off_limit`` (rounded as :func:`_limit_as_compared`) marked
    offset: the status code keeps one type per station (the overlay's colour), but a stretch
    that breaks two limits is reported under both (a bead laid off its path onto a dark frit
    or fixture is measured too wide as well: reported as wide only, the offset went
    unreported). Gap runs shorter than ``min_gap``, the others shorter than ``min_defect``,
    are dropped."""
    n = status.shape[0]
    # one pass for which kinds have a station at all (the others' runs are not looked for)
    # and whether any thin or wide station is off the path too: judge 0.045 -> 0.027 ms on
    # the benchmark frame (7,509 stations), 0.026 -> 0.010 on a frame without defects
    c_gap, c_thin, c_wide, c_off = codes[0], codes[1], codes[2], codes[_OFFSET]
    h_gap = h_thin = h_wide = h_off = extra = False
    for i in range(n):
        c = status[i]
        h_gap |= c == c_gap
        h_thin |= c == c_thin
        h_wide |= c == c_wide
        h_off |= c == c_off
        extra |= ((c == c_thin) | (c == c_wide)) & present[i] & (
            abs(np.float64(offset[i])) > off_limit)
    off_status = status
    if extra:
        off_status = status.copy()
        for i in range(n):
            c = status[i]
            if (((c == c_thin) | (c == c_wide)) & present[i]
                    & (abs(np.float64(offset[i])) > off_limit)):
                off_status[i] = c_off
        h_off = True
    has = (h_gap, h_thin, h_wide, h_off)
    # a station lies in at most two runs (thin or wide, and offset)
    kinds = np.empty(2 * n, np.int64)
    starts = np.empty(2 * n)
    ends = np.empty(2 * n)
    lengths = np.empty(2 * n)
    worsts = np.empty(2 * n)
    mids = np.empty(2 * n, np.int64)
    k = 0
    for kind in range(4):
        if not has[kind]:
            continue
        runs = _merged_runs(off_status if kind == _OFFSET else status, codes[kind], closed,
                            merge_stations)
        for r in range(runs.shape[0]):
            i0, i1 = runs[r, 0], runs[r, 1]
            a0 = _crossing_arc(arc, kind, i0 - 1, i0, length, closed, present, width, offset,
                               width_min, width_max, max_offset)
            a1 = _crossing_arc(arc, kind, i1 + 1, i1, length, closed, present, width, offset,
                               width_min, width_max, max_offset)
            if i0 == 0 and i1 == n - 1 and closed:
                a0, a1 = 0.0, length
            seg = (a1 - a0) % length if closed else a1 - a0
            if closed and seg == 0 and i1 - i0 == n - 1:
                seg = length
            if seg < (min_gap if kind == 0 else min_defect):
                continue
            mid = np.rint((a0 + seg / 2) / spacing)
            if closed:
                mid_i = int(mid) % n
            else:
                mid_i = int(min(max(mid, 0.0), n - 1.0))
            kinds[k] = kind
            starts[k] = a0
            ends[k] = a1
            lengths[k] = seg
            worsts[k] = _worst(kind, i0, (i1 - i0) % n + 1, present, width, offset)
            mids[k] = mid_i
            k += 1
    return kinds[:k], starts[:k], ends[:k], lengths[:k], worsts[:k], mids[:k]


def judge(status, *, arc_mm, length_mm, closed, width_mm, offset_mm, present, xy_px,
          width_min_mm, width_max_mm, max_offset_mm, min_defect_mm, merge_stations=2,
          min_gap_mm=None):
    """Defect segments from per-station status.

    Runs of one type separated by at most ``merge_stations`` stations are merged; runs shorter
    than ``min_defect_mm`` (gap runs: ``min_gap_mm``; from end to end, sub-station) are
    dropped. The ends of a run are
    placed where the measured value crosses its limit, interpolated between stations; gap ends
    half way between the last station with bead and the first without (the inspector then
    measures them on the image: :mod:`.gap_ends`). A stretch too thin or
    too wide whose centre is also off the path beyond ``max_offset_mm`` is reported as an
    offset as well (the status keeps one type per station, the defects every limit broken).

    Parameters
    ----------
    status : (N,) int
        :data:`~vision_qc.results.STATUS_CODES` per station.
    arc_mm : (N,) float
        Arc length of each station.
    length_mm : float
        Path length (a closed path's arc wraps round at it).
    closed : bool
    width_mm, offset_mm : (N,) float
        Measured width and centre offset (NaN where no bead).
    present : (N,) bool
    xy_px : (N, 2) float
        Station positions (a defect's centre is the station nearest its middle).
    width_min_mm, width_max_mm, max_offset_mm, min_defect_mm : float
    merge_stations : int
    min_gap_mm : float or None
        Gap runs shorter than this are dropped (None: ``min_defect_mm``). The inspector
        passes less and drops a gap shorter than ``min_defect_mm`` once its ends are measured
        on the image (:data:`vision_qc.inspector.GAP_RUN_FRACTION`).

    Returns
    -------
    tuple of Defect
        Ordered by start.
    """
    n = len(status)
    if n == 0:
        return ()
    status = np.asarray(status)
    if status.dtype != np.int8:
        status = status.astype(np.int64)
    codes = _CODES if status.dtype == np.int8 else _CODES.astype(np.int64)
    spacing = length_mm / n if closed else length_mm / max(n - 1, 1)
    limit = (width_min_mm, width_min_mm, width_max_mm, max_offset_mm)
    kinds, a0, a1, seg, worst, mid = _judge_kernel(
        status, codes, np.asarray(arc_mm, np.float64), float(length_mm), bool(closed),
        np.asarray(present, bool), _float_array(width_mm), _float_array(offset_mm),
        float(width_min_mm), float(width_max_mm), float(max_offset_mm), float(min_defect_mm),
        int(merge_stations), float(spacing),
        _limit_as_compared(np.asarray(offset_mm).dtype, max_offset_mm),
        float(min_defect_mm if min_gap_mm is None else min_gap_mm))
    out = [Defect(type=_TYPES[k], start_mm=s, end_mm=e, length_mm=g,
                  center_px=(float(xy_px[m, 0]), float(xy_px[m, 1])), worst_mm=v,
                  limit_mm=float(limit[k]))
           for k, s, e, g, v, m in zip(kinds.tolist(), a0.tolist(), a1.tolist(), seg.tolist(),
                                       worst.tolist(), mid.tolist())]
    out.sort(key=lambda d: d.start_mm)
    return tuple(out)
