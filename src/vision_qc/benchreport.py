"""The benchmark report: Markdown and a self-contained HTML page with an SVG chart of time per
stage against the budget, and the comparison with the previous run. Pure: data in, text out."""

from __future__ import annotations

import html

__all__ = ["case_key", "compare", "render_markdown", "render_html"]

STAGE_ORDER = ("convert", "align", "sample", "edges", "measure", "judge")
STAGE_COLORS = {"convert": "#9aa5b1", "align": "#6c5ce7", "sample": "#0984e3", "edges": "#00b894",
                "measure": "#fdcb6e", "judge": "#e17055", "other": "#b2bec3"}
# A case is a regression when its p50 grew by more than this fraction and this many ms.
REGRESSION_FRACTION = 0.10
REGRESSION_MS = 0.2


def case_key(f: dict) -> str:
    w, h = f["size"]
    aligned = ", aligned" if f.get("aligned") else ""
    return f"{w}x{h} spacing {f['spacing_px']:.2f} px, {f['threads']}{aligned}"


def compare(current: dict, previous: dict | None) -> list[dict]:
    """Per case: previous and current p50 and whether it regressed."""
    if not previous:
        return []
    prev = {case_key(f): f for f in previous.get("frames", [])}
    rows = []
    for f in current["frames"]:
        p = prev.get(case_key(f))
        if p is None:
            continue
        delta = f["p50_ms"] - p["p50_ms"]
        rows.append({"case": case_key(f), "previous_p50_ms": p["p50_ms"], "p50_ms": f["p50_ms"],
                     "delta_ms": delta,
                     "regression": delta > REGRESSION_MS and delta > REGRESSION_FRACTION * p["p50_ms"]})
    return rows


def _stage_rows(f: dict) -> list[tuple[str, float]]:
    stages = f.get("stages_p50_ms", {})
    out = [(s, stages[s]) for s in STAGE_ORDER if s in stages]
    known = sum(v for _, v in out)
    other = f["p50_ms"] - known
    if other > 0.01:
        out.append(("other", other))
    return out


def render_markdown(data: dict, comparison: list[dict]) -> str:
    m = data["machine"]
    lines = [f"# vision-qc benchmark report ({data['created']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, OpenCV {m['opencv']}, "
             f"numpy {m['numpy']}, scikit-image {m['scikit_image']}.", "",
             f"Budget per frame: **{data['budget_ms']:g} ms** (aim {data['aim_ms']:g} ms). "
             f"Mode: {'quick' if data['quick'] else 'full'}.", "",
             "| size | stations | spacing px | threads | p50 ms | p99 ms | vs budget | naive ms | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for f in data["frames"]:
        w, h = f["size"]
        verdict = "within" if f["p50_ms"] <= f["budget_ms"] else "**OVER**"
        naive = f"{f['naive_ms']:.0f}" if f.get("naive_ms") else "-"
        ratio = f"{f['naive_ratio']:.0f}×" if f.get("naive_ratio") else "-"
        threads = f["threads"] + (", aligned" if f.get("aligned") else "")
        lines.append(f"| {w}×{h} | {f['stations']} | {f['spacing_px']:.2f} | {threads} | "
                     f"{f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {verdict} | {naive} | {ratio} |")
    lines += ["", "## Where the time goes (p50 per stage, ms)", ""]
    stages = [s for s in STAGE_ORDER if any(s in f.get("stages_p50_ms", {}) for f in data["frames"])]
    lines.append("| case | " + " | ".join(stages) + " | floor (touch the pixels) |")
    lines.append("|---" * (len(stages) + 2) + "|")
    for f in data["frames"]:
        st = f.get("stages_p50_ms", {})
        cells = " | ".join(f"{st[s]:.2f}" if s in st else "-" for s in stages)
        floor = f"{f['floor_ms']:.2f}" if f.get("floor_ms") is not None else "-"
        lines.append(f"| {case_key(f)} | {cells} | {floor} |")
    for name, extra in data.get("extras", {}).items():
        lines += ["", f"## {name}", ""]
        for k, v in extra.items():
            lines.append(f"- {k}: {v}")
    lines += ["", "## Against the previous run", ""]
    if not comparison:
        lines.append("No previous run to compare with.")
    else:
        lines += ["| case | previous p50 ms | p50 ms | change ms | |", "|---|---|---|---|---|"]
        for r in comparison:
            flag = "**REGRESSION**" if r["regression"] else ""
            lines.append(f"| {r['case']} | {r['previous_p50_ms']:.2f} | {r['p50_ms']:.2f} | "
                         f"{r['delta_ms']:+.2f} | {flag} |")
    return "\n".join(lines) + "\n"


def _svg_chart(data: dict) -> str:
    frames = data["frames"]
    bar_h, gap, left, right_pad = 22, 10, 290, 40
    width = 900
    top = 30
    height = top + len(frames) * (bar_h + gap) + 40
    vmax = max([data["budget_ms"]] + [f["p50_ms"] for f in frames]) * 1.1
    scale = (width - left - right_pad) / vmax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">']
    for i, f in enumerate(frames):
        y = top + i * (bar_h + gap)
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{html.escape(case_key(f))}</text>')
        x = left
        for stage, ms in _stage_rows(f):
            w = max(ms * scale, 0.5)
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{STAGE_COLORS.get(stage, "#ccc")}"><title>{stage}: {ms:.2f} ms</title></rect>')
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{f["p50_ms"]:.2f} ms</text>')
    bx = left + data["budget_ms"] * scale
    parts.append(f'<line x1="{bx:.1f}" y1="{top - 10}" x2="{bx:.1f}" y2="{height - 30}" stroke="#d63031" '
                 f'stroke-width="2" stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{bx + 4:.1f}" y="{top - 14}" fill="#d63031">budget {data["budget_ms"]:g} ms</text>')
    lx = left
    for stage in list(STAGE_ORDER) + ["other"]:
        parts.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{STAGE_COLORS[stage]}"/>')
        parts.append(f'<text x="{lx + 16}" y="{height - 12}">{stage}</text>')
        lx += 80
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: dict, comparison: list[dict]) -> str:
    md = render_markdown(data, comparison)
    body = []
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
                tag = "th"
            else:
                tag = "td"
            row = "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells)
            body.append(f"<tr>{row}</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
            body.append(_svg_chart(data))
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<li>{_inline(line[2:])}</li>")
        elif line:
            body.append(f"<p>{_inline(line)}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>vision-qc benchmark</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _inline(text: str) -> str:
    t = html.escape(text)
    while "**" in t:
        t = t.replace("**", "<b>", 1).replace("**", "</b>", 1)
    return t
