"""The batch report: one self-contained HTML file (plots as inline SVG, images as base64),
built from the records in ``results.jsonl`` and the per-file thumbnails and width profiles the
workers left in ``report_data/``. It opens from disk, without a server or network.

Sections: summary (counts, yield), Pareto of defect types, distributions of width and offset
per part, the width along the path of NG parts against the tolerance band, every image with its
verdict, defects and thumbnail, and the recipe and software that made the results.
"""

from __future__ import annotations

import base64
import html
import math
import os
import statistics
import zipfile
from collections import Counter

import numpy as np
import yaml

from .batch import DATA_DIR, OVERLAY_DIR
from .records import artifact_stem, write_atomic

__all__ = ["build_report", "render_report", "TYPE_COLORS", "VERDICT_COLORS", "MAX_PROFILES"]

VERDICT_COLORS = {"OK": "#1b7f3b", "NG": "#c62828", "ERROR": "#a35a00"}
# Same hues as the overlay's station colours (vision_qc.overlay.STATUS_COLORS_BGR), as RGB.
TYPE_COLORS = {"gap": "#ff2828", "thin": "#ffaa00", "wide": "#c850ff", "offset": "#00c8ff"}
_OTHER_COLOR = "#888888"
MAX_PROFILES = 60            # NG width profiles drawn; the table lists every part regardless

_E = html.escape

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;
 color:#1d2329;background:#f4f6f8}
header{padding:18px 28px 8px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:0 0 10px}
.sub{color:#5b6670}
main{padding:0 28px 28px}
section.card{background:#fff;border:1px solid #dde3e8;border-radius:8px;padding:16px 18px;
 margin:14px 0}
.summary{display:flex;flex-wrap:wrap;gap:28px;align-items:center;color:#fff;border-radius:8px;
 padding:18px 24px;margin:10px 0 14px}
.summary .n{font-size:34px;font-weight:700;line-height:1.1}
.summary .l{font-size:13px;opacity:.9;text-transform:uppercase;letter-spacing:.04em}
.summary .verdict{font-size:28px;font-weight:800;margin-right:18px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px}
.grid>div{min-width:0}
svg{width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e6ebef;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6;font-weight:600;position:sticky;top:0}
th.num{text-align:right}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;min-width:52px;text-align:center;color:#fff;border-radius:4px;
 padding:1px 6px;font-weight:700;font-size:12px}
.thumb{width:160px;border:1px solid #ccd;display:block}
.nothumb{width:160px;height:60px;background:#eef0f2;color:#8a949c;display:flex;
 align-items:center;justify-content:center;font-size:12px}
.file{min-width:200px;word-break:break-all;font-family:ui-monospace,Menlo,Consolas,monospace;
 font-size:12.5px}
.err{color:#a35a00}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}
dl.kv dt{color:#5b6670}
dl.kv dd{margin:0;word-break:break-all}
pre{background:#f6f8fa;padding:10px;overflow:auto;max-height:420px;font-size:12px}
.profile{margin:0 0 14px}
.profile .t{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;margin-bottom:2px}
.legend span{display:inline-block;margin-right:14px;font-size:12.5px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
"""


# ----------------------------------------------------------------------------------------
# Small SVG plots. Coordinates: a viewBox of W×H with margins; text in px of that box.


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


class _Axes:
    """Linear x/y mapping of data into an SVG box with margins."""

    def __init__(self, x0, x1, y0, y1, *, w=560, h=230, left=48, right=14, top=14, bottom=38):
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        self.y0, self.y1 = y0, y1 if y1 > y0 else y0 + 1
        self.w, self.h, self.l, self.r, self.t, self.b = w, h, left, right, top, bottom

    def x(self, v):
        return self.l + (v - self.x0) / (self.x1 - self.x0) * (self.w - self.l - self.r)

    def y(self, v):
        return self.h - self.b - (v - self.y0) / (self.y1 - self.y0) * (self.h - self.t - self.b)

    def points(self, x, y) -> str:
        """An SVG ``points`` list of data arrays ``x``, ``y`` (equal length), 0.1 px steps:
        mapped with whole-array arithmetic, formatted from Python floats (a profile has
        thousands of points; mapping and formatting numpy scalars one by one took ~2 ms)."""
        xs = self.x(np.asarray(x, np.float64)).tolist()
        ys = self.y(np.asarray(y, np.float64)).tolist()
        return " ".join(map("{:.1f},{:.1f}".format, xs, ys))

    def frame(self, xlabel: str, ylabel: str, *, xticks=None, yticks=None) -> list[str]:
        out = []
        xl, xr, yt, yb = self.l, self.w - self.r, self.t, self.h - self.b
        for v in yticks if yticks is not None else _nice_ticks(self.y0, self.y1, 4):
            yy = self.y(v)
            out.append(f'<line x1="{xl}" x2="{xr}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e6ebef"/>')
            out.append(f'<text x="{xl - 5}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" '
                       f'fill="#5b6670">{_fmt(v)}</text>')
        for v in xticks if xticks is not None else _nice_ticks(self.x0, self.x1, 6):
            xx = self.x(v)
            out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{yb}" y2="{yb + 4}" '
                       f'stroke="#8a949c"/>')
            out.append(f'<text x="{xx:.1f}" y="{yb + 16}" text-anchor="middle" font-size="11" '
                       f'fill="#5b6670">{_fmt(v)}</text>')
        out.append(f'<line x1="{xl}" x2="{xr}" y1="{yb}" y2="{yb}" stroke="#8a949c"/>')
        out.append(f'<line x1="{xl}" x2="{xl}" y1="{yt}" y2="{yb}" stroke="#8a949c"/>')
        out.append(f'<text x="{(xl + xr) / 2:.1f}" y="{self.h - 4}" text-anchor="middle" '
                   f'font-size="12" fill="#1d2329">{_E(xlabel)}</text>')
        ym = (yt + yb) / 2
        out.append(f'<text x="12" y="{ym:.1f}" text-anchor="middle" font-size="12" '
                   f'fill="#1d2329" transform="rotate(-90 12 {ym:.1f})">{_E(ylabel)}</text>')
        return out

    def svg(self, body: list[str], label: str) -> str:
        return (f'<svg viewBox="0 0 {self.w} {self.h}" xmlns="http://www.w3.org/2000/svg" '
                f'role="img" aria-label="{_E(label)}">' + "".join(body) + "</svg>")


def _no_data(text: str, w=560, h=120) -> str:
    return (f'<svg viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="{_E(text)}"><rect width="{w}" height="{h}" fill="#f6f8fa"/>'
            f'<text x="{w / 2}" y="{h / 2 + 4}" text-anchor="middle" font-size="13" '
            f'fill="#8a949c">{_E(text)}</text></svg>')


def svg_pareto(counts: dict[str, int]) -> str:
    """Bars of defect counts per type, largest first, and the cumulative share as a line."""
    items = sorted(((k, v) for k, v in counts.items() if v > 0), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return _no_data("no defects")
    total = sum(v for _, v in items)
    # bars up to 80% of the height: their labels stay clear of the cumulative line's 100%
    ax = _Axes(0, len(items), 0, max(v for _, v in items) * 1.25, right=44)
    body = ax.frame("defect type", "defects", xticks=[])
    slot = (ax.w - ax.l - ax.r) / len(items)
    cum, pts = 0, []
    for i, (name, v) in enumerate(items):
        bar = min(slot * 0.64, 90.0)
        x0 = ax.x(i + 0.5) - bar / 2
        color = TYPE_COLORS.get(name, _OTHER_COLOR)
        body.append(f'<rect x="{x0:.1f}" y="{ax.y(v):.1f}" width="{bar:.1f}" '
                    f'height="{ax.y(0) - ax.y(v):.1f}" fill="{color}"><title>{_E(name)}: {v}'
                    f'</title></rect>')
        body.append(f'<text x="{ax.x(i + 0.5):.1f}" y="{ax.y(v) - 4:.1f}" text-anchor="middle" '
                    f'font-size="12" font-weight="600">{v}</text>')
        body.append(f'<text x="{ax.x(i + 0.5):.1f}" y="{ax.h - ax.b + 15}" text-anchor="middle" '
                    f'font-size="12">{_E(name)}</text>')
        cum += v
        pts.append((ax.x(i + 0.5), ax.t + (1 - cum / total) * (ax.h - ax.t - ax.b)))
    body.append('<polyline fill="none" stroke="#1d2329" stroke-width="1.5" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
    for (x, y), share in zip(pts, np.cumsum([v for _, v in items]) / total):
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1d2329"/>')
        body.append(f'<text x="{x + 5:.1f}" y="{y - 5:.1f}" font-size="11">'
                    f'{share * 100:.0f}%</text>')
    xr = ax.w - ax.r
    body.append(f'<line x1="{xr}" x2="{xr}" y1="{ax.t}" y2="{ax.h - ax.b}" stroke="#8a949c"/>')
    for p in (0, 50, 100):
        yy = ax.t + (1 - p / 100) * (ax.h - ax.t - ax.b)
        body.append(f'<text x="{xr + 4}" y="{yy + 4:.1f}" font-size="11" fill="#5b6670">'
                    f'{p}%</text>')
    return ax.svg(body, "Pareto of defect types")


def svg_histogram(series: list[tuple[str, list[float], str]], *, xlabel: str, bins: int = 30,
                  band: tuple[float, float] | None = None,
                  lines: tuple[tuple[float, str, str], ...] = ()) -> str:
    """Histograms of one or more series on shared bins (step outlines, lightly filled).

    series : (label, values, colour); band : shaded accepted range; lines : (x, label, colour).
    """
    vals = [np.asarray([v for v in s[1] if v is not None and math.isfinite(v)], float)
            for s in series]
    allv = np.concatenate(vals) if vals else np.empty(0)
    if allv.size == 0:
        return _no_data("no measurements")
    marks = [x for x, _, _ in lines] + (list(band) if band else [])
    lo = min(float(allv.min()), *marks) if marks else float(allv.min())
    hi = max(float(allv.max()), *marks) if marks else float(allv.max())
    pad = (hi - lo) * 0.05 or 0.5
    edges = np.linspace(lo - pad, hi + pad, bins + 1)
    hists = [np.histogram(v, edges)[0] for v in vals]
    ax = _Axes(edges[0], edges[-1], 0, max(int(h.max()) for h in hists) * 1.15 or 1)
    body = []
    if band:
        x0, x1 = ax.x(band[0]), ax.x(band[1])
        body.append(f'<rect x="{x0:.1f}" y="{ax.t}" width="{x1 - x0:.1f}" '
                    f'height="{ax.h - ax.t - ax.b}" fill="#1b7f3b" fill-opacity="0.08"/>')
    body += ax.frame(xlabel, "parts", yticks=[t for t in _nice_ticks(0, ax.y1, 4) if t == int(t)])
    for (label, _, color), h in zip(series, hists):
        pts = [f"{ax.x(edges[0]):.1f},{ax.y(0):.1f}"]
        for i, c in enumerate(h):
            pts.append(f"{ax.x(edges[i]):.1f},{ax.y(c):.1f}")
            pts.append(f"{ax.x(edges[i + 1]):.1f},{ax.y(c):.1f}")
        pts.append(f"{ax.x(edges[-1]):.1f},{ax.y(0):.1f}")
        body.append(f'<polygon points="{" ".join(pts)}" fill="{color}" fill-opacity="0.25" '
                    f'stroke="{color}" stroke-width="1.5"><title>{_E(label)}</title></polygon>')
    for x, label, color in lines:
        xx = ax.x(x)
        # labels near the right edge go on the left of their line
        right = xx > ax.w - ax.r - 60
        body.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{ax.t}" y2="{ax.h - ax.b}" '
                    f'stroke="{color}" stroke-dasharray="4 3" stroke-width="1.5"/>')
        anchor = "end" if right else "start"
        body.append(f'<text x="{xx - 3 if right else xx + 3:.1f}" y="{ax.t + 10}" font-size="11" '
                    f'text-anchor="{anchor}" fill="{color}">{_E(label)}</text>')
    return ax.svg(body, f"histogram of {xlabel}")


def svg_profile(arc_mm: np.ndarray, lo_mm: np.ndarray, hi_mm: np.ndarray, *, length_mm: float,
                band: tuple[float, float], nominal: float, defects: list[dict]) -> str:
    """The width along the path (min/max envelope per bin) against the tolerance band, with
    the defects shaded in their type's colour. NaN: no bead (drawn as a gap)."""
    top = max(band[1] * 1.35, float(np.nanmax(hi_mm)) * 1.08 if np.isfinite(hi_mm).any() else 0)
    ax = _Axes(0, length_mm, 0, top, w=560, h=180, bottom=34)
    body = []
    for d in defects:
        s, e = float(d.get("start_mm", 0)), float(d.get("end_mm", 0))
        spans = [(s, e)] if e >= s else [(s, length_mm), (0.0, e)]
        color = TYPE_COLORS.get(d.get("type"), _OTHER_COLOR)
        for a, b in spans:
            width = max(ax.x(b) - ax.x(a), 1.5)
            body.append(f'<rect x="{ax.x(a):.1f}" y="{ax.t}" width="{width:.1f}" '
                        f'height="{ax.h - ax.t - ax.b}" fill="{color}" fill-opacity="0.22">'
                        f'<title>{_E(str(d.get("type")))} {a:.1f}–{b:.1f} mm</title></rect>')
    body.append(f'<rect x="{ax.l}" y="{ax.y(band[1]):.1f}" width="{ax.w - ax.l - ax.r}" '
                f'height="{ax.y(band[0]) - ax.y(band[1]):.1f}" fill="#1b7f3b" '
                f'fill-opacity="0.10"/>')
    body += ax.frame("arc length along the path (mm)", "width (mm)")
    for v, dash in ((band[0], "4 3"), (band[1], "4 3"), (nominal, "1 3")):
        body.append(f'<line x1="{ax.l}" x2="{ax.w - ax.r}" y1="{ax.y(v):.1f}" y2="{ax.y(v):.1f}" '
                    f'stroke="#1b7f3b" stroke-dasharray="{dash}"/>')
    ok = np.isfinite(lo_mm) & np.isfinite(hi_mm)
    # runs of bins with a bead, found on the padded mask
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        arc = np.asarray(arc_mm[a:b], np.float64)
        hi_v, lo_v = hi_mm[a:b], lo_mm[a:b]
        if b - a == 1:
            # one bin: a sliver 1 px wide (half a px either side of it)
            half_px = 0.5 * (ax.x1 - ax.x0) / (ax.w - ax.l - ax.r)
            arc = np.array([arc[0] - half_px, arc[0] + half_px])
            hi_v, lo_v = np.repeat(hi_v, 2), np.repeat(lo_v, 2)
        outline = ax.points(np.concatenate([arc, arc[::-1]]),
                            np.concatenate([hi_v, lo_v[::-1]]))
        body.append(f'<polygon points="{outline}" fill="#1d4e89" fill-opacity="0.55" '
                    f'stroke="#1d4e89" stroke-width="0.8"/>')
    return ax.svg(body, "width along the path")


# ----------------------------------------------------------------------------------------
# The page


def _b64_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode("ascii")
    except OSError:
        return None


def _num(v, digits=2, suffix="") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}{suffix}"


def _defect_text(d: dict) -> str:
    return (f"{d.get('type')} {_num(d.get('length_mm'), 1)} mm at "
            f"{_num(d.get('start_mm'), 0)}–{_num(d.get('end_mm'), 0)} mm "
            f"(worst {_num(d.get('worst_mm'), 2)}, limit {_num(d.get('limit_mm'), 2)})")


def _badge(verdict: str) -> str:
    return (f'<span class="badge" style="background:{VERDICT_COLORS.get(verdict, _OTHER_COLOR)}">'
            f'{_E(verdict)}</span>')


def _summary(records: list[dict]) -> tuple[str, dict]:
    counts = Counter(r.get("verdict") for r in records)
    n_ok, n_ng, n_err = counts.get("OK", 0), counts.get("NG", 0), counts.get("ERROR", 0)
    judged = n_ok + n_ng
    yield_txt = f"{100.0 * n_ok / judged:.1f}%" if judged else "–"
    overall = "NG" if n_ng else ("ERROR" if n_err else "OK")
    headline = {"OK": "ALL OK", "NG": "NG PARTS", "ERROR": "UNREADABLE INPUT"}[overall]
    cells = [("parts", len(records)), ("OK", n_ok), ("NG", n_ng), ("ERROR", n_err),
             ("yield (OK of inspected)", yield_txt)]
    body = "".join(f'<div><div class="n">{_E(str(v))}</div><div class="l">{_E(k)}</div></div>'
                   for k, v in cells)
    html_ = (f'<section id="summary" class="summary" data-verdict="{overall}" '
             f'style="background:{VERDICT_COLORS[overall]}"><div class="verdict">{headline}</div>'
             f'{body}</section>')
    return html_, {"OK": n_ok, "NG": n_ng, "ERROR": n_err, "yield": yield_txt, "overall": overall}


def _recipe_section(run_info: dict) -> str:
    rec = run_info.get("recipe") or {}
    bead = rec.get("bead") or {}
    path = rec.get("path") or {}
    w, tol = bead.get("width_mm"), bead.get("width_tol_mm")
    rows = [("recipe file", run_info.get("recipe_file")), ("name", rec.get("name")),
            ("image size (px)", "×".join(map(str, rec.get("image_size") or [])) or None),
            ("scale (mm/px)", rec.get("mm_per_px")), ("polarity", rec.get("polarity")),
            ("path", f"{'closed' if path.get('closed') else 'open'}, "
                     f"{len(path.get('points') or [])} points" if path else None),
            ("bead width (mm)", f"{w} ± {tol}" if w is not None else None),
            ("max offset (mm)", bead.get("max_offset_mm")),
            ("min defect length (mm)", bead.get("min_defect_mm")),
            ("search half-width (mm)", bead.get("search_mm")), ("align", rec.get("align")),
            ("recipe sha256", run_info.get("recipe_sha256"))]
    kv = "".join(f"<dt>{_E(k)}</dt><dd>{_E(str(v))}</dd>" for k, v in rows if v is not None)
    # libyaml's emitter where PyYAML has it: the pure-Python one took ~50 ms for a recipe with
    # a few hundred path points
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    full = (yaml.dump(rec, Dumper=dumper, sort_keys=False, width=100, default_flow_style=None)
            if rec else "")
    return (f'<dl class="kv">{kv}</dl>'
            + (f"<details><summary>full recipe</summary><pre>{_E(full)}</pre></details>"
               if full else ""))


def _software_section(run_info: dict, records: list[dict]) -> str:
    sw = run_info.get("software") or {}
    rows = [(f"{k}", v) for k, v in sw.items()]
    if run_info.get("command"):
        rows.append(("command", " ".join(run_info["command"])))
    if run_info.get("cwd"):
        rows.append(("working folder", run_info["cwd"]))
    for i, s in enumerate(run_info.get("sessions") or [], start=1):
        rate = (f", {s['inspected'] / s['elapsed_s']:.1f} images/s" if s.get("elapsed_s") and
                s.get("inspected") else "")
        state = "interrupted" if s.get("interrupted") else "finished"
        rows.append((f"run {i}", f"{s.get('started', '?')}: {s.get('inspected', 0)} images "
                                 f"with {s.get('workers', '?')} worker(s) in "
                                 f"{s.get('elapsed_s', 0):.1f} s{rate} ({state})"))
    timings = [r.get("timing_ms") or {} for r in records]
    tot = [t["total"] for t in timings if t.get("total") is not None]
    rd = [t["read"] for t in timings if t.get("read") is not None]
    if tot:
        rows.append(("inspection time per image", f"median {statistics.median(tot):.1f} ms, "
                                                  f"max {max(tot):.1f} ms"))
    if rd:
        rows.append(("reading + decoding per image", f"median {statistics.median(rd):.1f} ms"))
    kv = "".join(f"<dt>{_E(k)}</dt><dd>{_E(str(v))}</dd>" for k, v in rows)
    return f'<dl class="kv">{kv}</dl>'


def _load_profile(out_dir: str, file: str):
    path = os.path.join(out_dir, DATA_DIR, artifact_stem(file) + ".npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in ("arc_mm", "lo_mm", "hi_mm", "length_mm")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def render_report(records: list[dict], *, run_info: dict, out_dir: str | os.PathLike | None = None,
                  title: str = "vision-qc batch report", generated: str | None = None) -> str:
    """The report's HTML text.

    Parameters
    ----------
    records : list of dict
        Result records (DESIGN §5) in the order the table lists them.
    run_info : dict
        ``recipe`` (contract layout), ``recipe_file``, ``recipe_sha256``, ``software``,
        ``command``, ``sessions``; missing keys are left out.
    out_dir : path, keyword-only
        The batch output folder: thumbnails and NG width profiles are read from its
        ``report_data/``, overlays linked from ``overlays/``. None: no images.
    """
    out_dir = None if out_dir is None else os.fspath(out_dir)
    recipe = run_info.get("recipe") or {}
    bead = recipe.get("bead") or {}
    width, tol = bead.get("width_mm"), bead.get("width_tol_mm")
    band = (width - tol, width + tol) if width is not None and tol is not None else None
    max_off = bead.get("max_offset_mm")

    summary_html, counts = _summary(records)
    defect_counts = Counter(d.get("type") for r in records for d in r.get("defects") or [])
    parts_with = Counter(t for r in records
                         for t in {d.get("type") for d in r.get("defects") or []})
    pareto_table = "".join(
        f"<tr><td>{_E(str(t))}</td><td class='num'>{n}</td>"
        f"<td class='num'>{parts_with[t]}</td></tr>"
        for t, n in sorted(defect_counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))

    stats = [r.get("stats") or {} for r in records]
    col = lambda k: [s.get(k) for s in stats]  # noqa: E731
    band_lines = ()
    if band:
        band_lines = ((band[0], f"min {_fmt(band[0])}", "#1b7f3b"),
                      (band[1], f"max {_fmt(band[1])}", "#1b7f3b"))
    hist_mean = svg_histogram([("mean width", col("width_mean_mm"), "#1d4e89")],
                              xlabel="mean width per part (mm)", band=band, lines=band_lines)
    hist_extremes = svg_histogram([("narrowest", col("width_min_mm"), "#ffaa00"),
                                   ("widest", col("width_max_mm"), "#c850ff")],
                                  xlabel="narrowest and widest point per part (mm)", band=band,
                                  lines=band_lines)
    hist_offset = svg_histogram([("largest offset", col("offset_max_mm"), "#00a0d0")],
                                xlabel="largest centre offset per part (mm)",
                                band=(0.0, max_off) if max_off is not None else None,
                                lines=((max_off, f"limit {_fmt(max_off)}", "#c62828"),)
                                if max_off is not None else ())

    # NG width profiles
    ng = [r for r in records if r.get("verdict") == "NG"]
    profiles = []
    for r in ng[:MAX_PROFILES]:
        p = _load_profile(out_dir, r["file"]) if out_dir and band else None
        types = ", ".join(dict.fromkeys(d.get("type") for d in r.get("defects") or []))
        head = f'<div class="t">{_E(r["file"])} — {_E(types)}</div>'
        if p is None:
            missing = _no_data("no width profile stored", 560, 60)
            profiles.append(f'<div class="profile">{head}{missing}</div>')
            continue
        svg = svg_profile(p["arc_mm"], p["lo_mm"], p["hi_mm"], length_mm=float(p["length_mm"]),
                          band=band, nominal=width, defects=r.get("defects") or [])
        profiles.append(f'<div class="profile">{head}{svg}</div>')
    more = (f"<p class='sub'>{len(ng) - MAX_PROFILES} more NG parts are not drawn here; the table "
            f"below lists them all.</p>" if len(ng) > MAX_PROFILES else "")
    legend = "".join(f'<span><i style="background:{c};opacity:.5"></i>{t}</span>'
                     for t, c in TYPE_COLORS.items())
    profile_html = (f'<div class="grid">{"".join(profiles)}</div>{more}' if ng
                    else "<p class='sub'>No NG parts.</p>")

    # the table of every image
    rows = []
    for r in records:
        stem = artifact_stem(r["file"])
        thumb = _b64_file(os.path.join(out_dir, DATA_DIR, stem + ".jpg")) if out_dir else None
        img = (f'<img class="thumb" loading="lazy" alt="" src="data:image/jpeg;base64,{thumb}">'
               if thumb else '<div class="nothumb">no image</div>')
        overlay_rel = f"{OVERLAY_DIR}/{stem}.jpg"
        if out_dir and os.path.exists(os.path.join(out_dir, OVERLAY_DIR, stem + ".jpg")):
            img = f'<a href="{_E(overlay_rel)}">{img}</a>'
        if r.get("verdict") == "ERROR":
            what = f'<span class="err">{_E(str(r.get("error")))}</span>'
        else:
            what = "<br>".join(_E(_defect_text(d)) for d in r.get("defects") or []) or "–"
        if r.get("warnings"):
            what += "".join(f'<br><span class="sub">{_E(str(w))}</span>' for w in r["warnings"])
        s = r.get("stats") or {}
        cov = s.get("coverage")
        width_cell = "–"
        if s.get("width_mean_mm") is not None:
            width_cell = (f"{_num(s.get('width_mean_mm'))}<br>{_num(s.get('width_min_mm'))}–"
                          f"{_num(s.get('width_max_mm'))}")
        t = r.get("timing_ms") or {}
        rows.append(
            f"<tr data-verdict='{_E(str(r.get('verdict')))}'><td>{img}</td>"
            f"<td class='file'>{_E(r['file'])}</td><td>{_badge(str(r.get('verdict')))}</td>"
            f"<td>{what}</td>"
            f"<td class='num'>{width_cell}</td>"
            f"<td class='num'>{_num(s.get('offset_max_mm'))}</td>"
            f"<td class='num'>{_num(None if cov is None else 100 * cov, 1, '%')}</td>"
            f"<td class='num'>{_num(t.get('total'), 1)}</td></tr>")

    name = recipe.get("name") or run_info.get("recipe_file") or ""
    when = generated or run_info.get("finished") or ""
    sw = run_info.get("software") or {}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_E(title)} — {_E(name)}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>{_E(title)}</h1>
<div class="sub">recipe <b>{_E(name)}</b> · {len(records)} images · {_E(when)} ·
vision-qc {_E(str(sw.get("vision_qc", "?")))}</div></header>
<main>
{summary_html}
<section class="card" id="pareto"><h2>Defects by type (Pareto)</h2>
<div class="grid"><div>{svg_pareto(dict(defect_counts))}</div>
<div><table><thead><tr><th>type</th><th class="num">defects</th>
<th class="num">parts with it</th></tr></thead>
<tbody>{pareto_table or "<tr><td colspan='3'>no defects</td></tr>"}</tbody></table></div></div>
</section>
<section class="card" id="distributions"><h2>Width and offset per part</h2>
<p class="sub">Green band: the accepted range from the recipe. Parts with no bead found are
not counted here.</p>
<div class="grid"><div>{hist_mean}</div><div>{hist_extremes}</div><div>{hist_offset}</div></div>
</section>
<section class="card" id="profiles"><h2>Width along the path — NG parts</h2>
<p class="sub legend">Blue: the measured width (smallest to largest per step along the path);
green band: tolerance; shaded: defects. {legend}</p>
{profile_html}
</section>
<section class="card" id="parts"><h2>Every image</h2>
<table><thead><tr><th>image</th><th>file</th><th>verdict</th><th>defects / error</th>
<th>width mm<br>mean, min–max</th><th>offset max mm</th><th>coverage</th><th>ms</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
</section>
<section class="card" id="recipe"><h2>Recipe</h2>{_recipe_section(run_info)}</section>
<section class="card" id="software"><h2>Software and runs</h2>
{_software_section(run_info, records)}</section>
</main></body></html>
"""


def build_report(out_dir: str | os.PathLike, records: list[dict], *, run_info: dict,
                 filename: str = "report.html", **kwargs) -> str:
    """Write ``out_dir/report.html`` (atomically) and return its path."""
    text = render_report(records, run_info=run_info, out_dir=out_dir, **kwargs)
    path = os.path.join(os.fspath(out_dir), filename)
    write_atomic(path, text.encode("utf-8"))
    return path

