"""Scoring inspection results against the generator's ground truth. Pure: records in, figures out.

Matching rule: a found defect matches a truth defect of the same type when their arc
intervals overlap, or come within ``tol_mm`` of each other (wrap-round aware on closed
paths). Each truth defect is matched at most once. An NG part called OK is an escape; an OK
part called NG is a false reject; a found defect matched to no truth defect is a false alarm.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .results import DEFECT_TYPES

__all__ = ["PathMap", "interval_distance", "match_defects", "score"]


class PathMap:
    """Arc lengths and per-station values of one path (a recipe's: taught, from CAD) read along
    another (the generator's, along which the truth is given), both at the part's reference
    pose (the recipes' frame).

    The truth gives a defect's start and end as arc lengths along the generator's path and a
    width and offset per station of it; a recipe with its own path (a taught one starts where
    its teacher clicked, runs a fraction of a mm longer or shorter, and lies on the bead's
    true centre line, not the generator's nominal one) reports its arcs and stations along
    that path. Each of its stations is projected onto the generator's path: its nearest
    station, then along that station's tangent (stations ~1 px apart: to well under 0.05 px
    on the curves of a windshield).

    Parameters
    ----------
    src, dst : :class:`~vision_qc.geometry.Stations`
        The recipe's and the generator's stations, px.
    mm_per_px : float
    """

    def __init__(self, src, dst, mm_per_px: float):
        from scipy.spatial import cKDTree

        self.mm = float(mm_per_px)
        self.closed = bool(dst.closed)
        self.dst_length_mm = float(dst.length_px) * self.mm
        self.src_arc_mm = np.asarray(src.arc_px, float) * self.mm
        self.src_closed = bool(src.closed)
        self.src_length_mm = float(src.length_px) * self.mm
        j = cKDTree(dst.xy).query(src.xy)[1]
        d = src.xy - dst.xy[j]
        along = np.einsum("ij,ij->i", d, dst.tangent_xy[j])
        arc = (dst.arc_px[j] + along) * self.mm
        if self.closed:
            arc = np.mod(arc, self.dst_length_mm)
        #: (N_src,) arc along the generator's path of each recipe station, mm
        self.arc_mm = arc
        #: (N_src,) the recipe station's distance from the generator's path along its normal, mm
        self.across_mm = np.einsum("ij,ij->i", d, dst.normal_xy[j]) * self.mm
        #: (N_src,) +1 where the two paths' normals point the same way, -1 where they do not
        self.normal_sign = np.sign(np.einsum("ij,ij->i", src.normal_xy, dst.normal_xy[j]))
        # the reverse: each generator station's nearest recipe station
        self.src_of_dst = cKDTree(src.xy).query(dst.xy)[1]

    def arc(self, arc_mm: float) -> float:
        """An arc length along the recipe's path, mm, as an arc length along the generator's."""
        a = float(arc_mm)
        if self.src_closed:
            a = a % self.src_length_mm
        src = self.src_arc_mm
        i = int(np.clip(np.searchsorted(src, a) - 1, 0, len(src) - 1))
        nxt = (i + 1) % len(src) if self.src_closed else min(i + 1, len(src) - 1)
        span = (src[nxt] - src[i]) if nxt > i else (self.src_length_mm - src[i] if nxt < i else 0.0)
        f = 0.0 if span <= 0 else min(max((a - src[i]) / span, 0.0), 1.0)
        step = self.arc_mm[nxt] - self.arc_mm[i]
        if self.closed:
            step = (step + self.dst_length_mm / 2) % self.dst_length_mm - self.dst_length_mm / 2
        out = self.arc_mm[i] + f * step
        return float(out % self.dst_length_mm) if self.closed else float(out)

    def record(self, rec: dict) -> dict:
        """A result record with its defects' start, end and centre arcs read along the
        generator's path (the rest unchanged)."""
        out = dict(rec)
        defects = []
        for d in rec.get("defects", []):
            d = dict(d)
            for k in ("start_mm", "end_mm"):
                if d.get(k) is not None:
                    d[k] = round(self.arc(d[k]), 3)
            defects.append(d)
        out["defects"] = defects
        return out

    def per_station(self, width_mm: np.ndarray,
                    offset_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-station width and offset (mm, along the recipe's stations) at the generator's
        stations: each its nearest recipe station's, the offset measured from the generator's
        path (the recipe's path's own offset from it added, its normal turned to the
        generator's)."""
        i = self.src_of_dst
        w = np.asarray(width_mm, float)[i]
        o = self.normal_sign[i] * np.asarray(offset_mm, float)[i] + self.across_mm[i]
        return w, o


def _interval(d: dict, length_mm: float | None) -> tuple[float, float]:
    a, b = float(d["start_mm"]), float(d["end_mm"])
    if a > b and length_mm:
        b += length_mm
    return a, b


def interval_distance(a: tuple[float, float], b: tuple[float, float], length_mm: float | None) -> float:
    """Gap between two arc intervals, mm (0 when they overlap); wraps on closed paths."""
    best = np.inf
    shifts = (-length_mm, 0.0, length_mm) if length_mm else (0.0,)
    for s in shifts:
        lo, hi = b[0] + s, b[1] + s
        best = min(best, max(lo - a[1], a[0] - hi, 0.0))
    return float(best)


def _arc_diff(x: float, y: float, length_mm: float | None) -> float:
    d = x - y
    if length_mm:
        d = (d + length_mm / 2) % length_mm - length_mm / 2
    return d


def match_defects(found: list[dict], truth: list[dict], *, length_mm: float | None, tol_mm: float = 2.0):
    """Pairs ``(i_found, i_truth)`` of matched defects, greedy by distance."""
    cand = []
    for i, f in enumerate(found):
        for j, t in enumerate(truth):
            if f["type"] != t["type"]:
                continue
            dist = interval_distance(_interval(f, length_mm), _interval(t, length_mm), length_mm)
            if dist <= tol_mm:
                cand.append((dist, i, j))
    cand.sort()
    used_f, used_t, pairs = set(), set(), []
    for _, i, j in cand:
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
        pairs.append((i, j))
    return pairs


def _closed_length_from_truth(truth: dict) -> float | None:
    """Length of a closed path from the truth's stations (None for an open path or no stations)."""
    st = truth.get("stations")
    spec = truth.get("spec", {})
    if not st or "spacing_mm" not in st or float(spec.get("span_deg", 360.0)) < 360.0:
        return None
    return float(st["spacing_mm"]) * len(st["width_mm"])


def _pct(values, q):
    return float(np.percentile(values, q)) if len(values) else None


def score(items: list[dict], *, tol_mm: float = 2.0) -> dict:
    """Score records against truth.

    Parameters
    ----------
    items : list of dict
        Each with ``record`` (the result record), ``truth`` (the truth record), and optionally
        ``length_mm`` (path length, for wrap-round), ``closed``, and per-station arrays
        ``width_mm``/``offset_mm``/``present`` (measured) for per-station errors.

    Returns
    -------
    dict
        ``overall`` and ``by_preset`` figures (see :func:`_score_group`).
    """
    groups = defaultdict(list)
    for it in items:
        groups[it["truth"].get("preset", "unknown")].append(it)
    return {"overall": _score_group(items, tol_mm),
            "by_preset": {k: _score_group(v, tol_mm) for k, v in sorted(groups.items())}}


def _score_group(items: list[dict], tol_mm: float) -> dict:
    conf = {"ng_called_ng": 0, "escapes": 0, "false_rejects": 0, "ok_called_ok": 0, "errors": 0}
    per_type = {t: {"truth": 0, "found": 0, "matched_truth": 0, "matched_found": 0} for t in DEFECT_TYPES}
    false_alarms = 0
    gap_end_mm, gap_end_px = [], []
    width_err_px, offset_err_px, mean_width_err_mm = [], [], []
    escapes, false_rejects = [], []
    for it in items:
        rec, tr = it["record"], it["truth"]
        mm = float(tr.get("mm_per_px", 1.0))
        if rec.get("verdict") == "ERROR":
            conf["errors"] += 1
            continue
        t_ng = tr["verdict"] == "NG"
        f_ng = rec["verdict"] == "NG"
        key = {(True, True): "ng_called_ng", (True, False): "escapes",
               (False, True): "false_rejects", (False, False): "ok_called_ok"}[(t_ng, f_ng)]
        conf[key] += 1
        if key == "escapes":
            escapes.append(rec.get("file"))
        elif key == "false_rejects":
            false_rejects.append(rec.get("file"))
        length = it["length_mm"] if "length_mm" in it else _closed_length_from_truth(tr)
        if not it.get("closed", True):
            length = None
        found, truth = rec.get("defects", []), tr.get("defects", [])
        pairs = match_defects(found, truth, length_mm=length, tol_mm=tol_mm)
        for d in truth:
            per_type[d["type"]]["truth"] += 1
        for d in found:
            per_type.setdefault(d["type"], {"truth": 0, "found": 0, "matched_truth": 0,
                                            "matched_found": 0})["found"] += 1
        for i, j in pairs:
            per_type[truth[j]["type"]]["matched_truth"] += 1
            per_type[found[i]["type"]]["matched_found"] += 1
            if truth[j]["type"] == "gap":
                for k in ("start_mm", "end_mm"):
                    e = abs(_arc_diff(found[i][k], truth[j][k], length))
                    gap_end_mm.append(e)
                    gap_end_px.append(e / mm)
        false_alarms += len(found) - len(pairs)
        st = tr.get("stations")
        if st and it.get("width_mm") is not None:
            tw = np.asarray(st["width_mm"], float)
            to = np.asarray(st["offset_mm"], float)
            w = np.asarray(it["width_mm"], float)
            o = np.asarray(it["offset_mm"], float)
            if len(tw) == len(w):
                # per-station errors where both have bead and the truth is inside tolerance
                # (defect stretches have their own figures: recall and ends)
                spec = tr.get("spec", {})
                nominal = float(spec.get("width_mm", np.nanmedian(tw[tw > 0])))
                tol = float(spec.get("width_tol_mm", 0.25 * nominal))
                sel = (tw > 0) & np.isfinite(w) & (np.abs(tw - nominal) <= tol)
                width_err_px.extend(((w[sel] - tw[sel]) / mm).tolist())
                offset_err_px.extend(((o[sel] - to[sel]) / mm).tolist())
        if rec.get("stats", {}).get("width_mean_mm") is not None and st:
            tw = np.asarray(st["width_mm"], float)
            present = tw > 0
            if present.any():
                mean_width_err_mm.append(rec["stats"]["width_mean_mm"] - float(tw[present].mean()))
    n = sum(conf.values())
    recall = {t: (v["matched_truth"] / v["truth"] if v["truth"] else None) for t, v in per_type.items()}
    precision = {t: (v["matched_found"] / v["found"] if v["found"] else None) for t, v in per_type.items()}
    we = np.abs(np.asarray(width_err_px))
    oe = np.abs(np.asarray(offset_err_px))
    mwe = np.abs(np.asarray(mean_width_err_mm))
    n_judged = n - conf["errors"]
    mm_est = float(np.median([float(it["truth"].get("mm_per_px", 1.0)) for it in items])) if items else 1.0
    return {
        "images": n,
        "confusion": conf,
        "escape_files": escapes,
        "false_reject_files": false_rejects,
        "false_reject_rate": (conf["false_rejects"] / max(conf["false_rejects"] + conf["ok_called_ok"], 1)),
        "defects": per_type,
        "recall": recall,
        "precision": precision,
        "false_alarms": false_alarms,
        "false_alarms_per_image": false_alarms / max(n_judged, 1),
        "width_error_px": {"bias": float(np.median(width_err_px)) if len(we) else None,
                           "median_abs": _pct(we, 50), "p95_abs": _pct(we, 95), "stations": int(len(we))},
        "width_error_mm": {"median_abs": None if not len(we) else _pct(we, 50) * mm_est,
                           "p95_abs": None if not len(we) else _pct(we, 95) * mm_est},
        "offset_error_px": {"median_abs": _pct(oe, 50), "p95_abs": _pct(oe, 95)},
        "mean_width_error_mm": {"median_abs": _pct(mwe, 50), "max_abs": float(mwe.max()) if len(mwe) else None},
        "gap_end_error": {"px_max": float(max(gap_end_px)) if gap_end_px else None,
                          "px_median": _pct(gap_end_px, 50),
                          "mm_max": float(max(gap_end_mm)) if gap_end_mm else None, "ends": len(gap_end_px)},
    }
