"""Stage 4, judging: per-station status against the recipe, then runs of failing stations.

Runs are found on a padded boolean array with ``np.diff``; on a closed path a run that
crosses the start is one run (its start index is then larger than its end index).
"""

from __future__ import annotations

import numpy as np

from ..results import STATUS_CODES, Defect

__all__ = ["find_runs", "station_status", "merge_runs", "judge"]


def find_runs(mask: np.ndarray, *, closed: bool) -> np.ndarray:
    """Runs of True as rows ``(start, end)`` of inclusive indices, int64 (K, 2).

    On a closed path a run through the last and first elements is joined and has
    ``start > end``; an all-True mask is the single run ``(0, n - 1)``.
    """
    mask = np.asarray(mask, dtype=bool)
    n = len(mask)
    if n == 0 or not mask.any():
        return np.zeros((0, 2), np.int64)
    if mask.all():
        return np.array([[0, n - 1]], np.int64)
    d = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    runs = np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1], axis=1)
    if closed and len(runs) > 1 and runs[0, 0] == 0 and runs[-1, 1] == n - 1:
        runs = np.vstack([[runs[-1, 0], runs[0, 1]], runs[1:-1]])
    return runs


def run_lengths(runs: np.ndarray, n: int) -> np.ndarray:
    """Number of stations in each run (wrapping runs counted across the start)."""
    return (runs[:, 1] - runs[:, 0]) % n + 1 if len(runs) else np.zeros(0, np.int64)


def merge_runs(mask: np.ndarray, *, closed: bool, max_gap: int) -> np.ndarray:
    """``mask`` with holes of at most ``max_gap`` stations between True runs filled."""
    mask = np.asarray(mask, dtype=bool)
    if max_gap <= 0 or not mask.any():
        return mask
    holes = find_runs(~mask, closed=closed)
    n = len(mask)
    if not closed:
        # a hole touching an end of an open path lies between nothing: keep it
        inner = (holes[:, 0] > 0) & (holes[:, 1] < n - 1)
        holes = holes[inner]
    short = holes[run_lengths(holes, n) <= max_gap]
    out = mask.copy()
    if len(short):
        lens = run_lengths(short, n)
        idx = (np.repeat(short[:, 0], lens) + _ramp_index(lens)) % n
        out[idx] = True
    return out


def _ramp_index(lens: np.ndarray) -> np.ndarray:
    """0..len-1 for each length, concatenated (vectorised ``np.concatenate([arange(l)...])``)."""
    total = int(lens.sum())
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    return np.arange(total) - starts


def station_status(present, width_mm, offset_mm, *, width_min_mm, width_max_mm, max_offset_mm,
                   judged=None) -> np.ndarray:
    """Status code per station (:data:`~vision_qc.results.STATUS_CODES`).

    A value exactly at a limit passes. A station not judged (beyond the dispensed length in
    live mode) is OK. No bead → gap; then thin, wide, offset in that order.
    """
    present = np.asarray(present, bool)
    w = np.where(present, width_mm, np.nan)
    o = np.where(present, np.abs(offset_mm), np.nan)
    status = np.zeros(len(present), np.int8)
    with np.errstate(invalid="ignore"):
        status[o > max_offset_mm] = STATUS_CODES["offset"]
        status[w > width_max_mm] = STATUS_CODES["wide"]
        status[w < width_min_mm] = STATUS_CODES["thin"]
    status[~present] = STATUS_CODES["gap"]
    if judged is not None:
        status[~np.asarray(judged, bool)] = 0
    return status


def _crossing_arc(arc, vals, i_out, i_in, length, closed):
    """Arc length where ``vals`` (≥ 0 good, < 0 bad) crosses zero between two stations."""
    n = len(arc)
    if not closed and (i_out < 0 or i_out >= n):
        return arc[min(max(i_in, 0), n - 1)]
    io, ii = i_out % n, i_in % n
    ao, ai = arc[io], arc[ii]
    if closed and abs(ai - ao) > length / 2:
        ao = ao + length if ai > ao else ao - length
    vo, vi = vals[io], vals[ii]
    if not (np.isfinite(vo) and np.isfinite(vi)) or vo == vi:
        f = 0.5
    else:
        f = float(np.clip(vo / (vo - vi), 0.0, 1.0))
    a = ao + f * (ai - ao)
    return a % length if closed else a


def judge(status, *, arc_mm, length_mm, closed, width_mm, offset_mm, present, xy_px,
          width_min_mm, width_max_mm, max_offset_mm, min_defect_mm, merge_stations=2):
    """Defect segments from per-station status.

    Runs of one type separated by at most ``merge_stations`` stations are merged; runs shorter
    than ``min_defect_mm`` (from end to end, sub-station) are dropped. The ends of a run are
    placed where the measured value crosses its limit, interpolated between stations; gap ends
    half way between the last station with bead and the first without.

    Returns a tuple of :class:`~vision_qc.results.Defect`, ordered by start.
    """
    n = len(status)
    if n == 0:
        return ()
    spacing = length_mm / n if closed else length_mm / max(n - 1, 1)
    w = np.asarray(width_mm, np.float64)
    o = np.abs(np.asarray(offset_mm, np.float64))
    margin = {
        "gap": np.where(present, 1.0, -1.0),
        "thin": w - width_min_mm,
        "wide": width_max_mm - w,
        "offset": max_offset_mm - o,
    }
    limit = {"gap": width_min_mm, "thin": width_min_mm, "wide": width_max_mm, "offset": max_offset_mm}
    out = []
    for name in ("gap", "thin", "wide", "offset"):
        mask = merge_runs(status == STATUS_CODES[name], closed=closed, max_gap=merge_stations)
        runs = find_runs(mask, closed=closed)
        if not len(runs):
            continue
        vals = margin[name]
        for i0, i1 in runs:
            a0 = _crossing_arc(arc_mm, vals, i0 - 1, i0, length_mm, closed)
            a1 = _crossing_arc(arc_mm, vals, i1 + 1, i1, length_mm, closed)
            if i0 == 0 and i1 == n - 1 and closed:
                a0, a1 = 0.0, length_mm
            seg = (a1 - a0) % length_mm if closed else a1 - a0
            if closed and seg == 0 and i1 - i0 == n - 1:
                seg = length_mm
            if seg < min_defect_mm:
                continue
            idx = (i0 + np.arange(((i1 - i0) % n) + 1)) % n
            if name == "gap":
                worst = float(np.nan_to_num(np.nanmin(np.where(present[idx], w[idx], 0.0)), nan=0.0))
            elif name == "thin":
                worst = float(np.nanmin(w[idx]))
            elif name == "wide":
                worst = float(np.nanmax(w[idx]))
            else:
                worst = float(np.nanmax(o[idx]))
            mid_i = int(round((a0 + seg / 2) / spacing)) % n if closed else \
                int(np.clip(round((a0 + seg / 2) / spacing), 0, n - 1))
            out.append(Defect(type=name, start_mm=float(a0), end_mm=float(a1), length_mm=float(seg),
                              center_px=(float(xy_px[mid_i, 0]), float(xy_px[mid_i, 1])),
                              worst_mm=worst, limit_mm=float(limit[name])))
    out.sort(key=lambda d: d.start_mm)
    return tuple(out)
