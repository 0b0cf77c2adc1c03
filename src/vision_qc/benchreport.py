"""The benchmark report: Markdown and a self-contained HTML page with an SVG chart of time per
stage against the budget (the overlay drawn beside it), what the floor is and how far each
stage is from it (written from the measured numbers), batch throughput against the
decode-only floor, the live loop's frame rate and latency, and the comparison with the
previous run. Pure: data in, text out. A run without some section (an older ``bench.json``)
renders without it."""

from __future__ import annotations

import html

__all__ = [
    "case_key",
    "compare",
    "compare_sections",
    "floor_text",
    "render_html",
    "render_markdown",
]

STAGE_ORDER = ("convert", "align", "sample", "edges", "measure", "judge")
STAGE_COLORS = {"convert": "#9aa5b1", "align": "#6c5ce7", "sample": "#0984e3", "edges": "#00b894",
                "measure": "#fdcb6e", "judge": "#e17055", "other": "#b2bec3", "overlay": "#dfe6e9"}
# A case is a regression when its p50 grew by more than this fraction and this many ms.
REGRESSION_FRACTION = 0.10
REGRESSION_MS = 0.2
# A rate (images/s, frames/s) regresses when it fell by more than this fraction; a live
# latency when it grew by this fraction and this many ms (a whole loop is noisier than a call).
RATE_REGRESSION_FRACTION = 0.10
LATENCY_REGRESSION_MS = 1.0


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


def _size(f: dict) -> str:
    w, h = f["size"]
    return f"{w}x{h}"


def throughput_key(t: dict) -> str:
    return f"batch {_size(t)}, {t['images']} images, {t['workers']} processes"


def live_key(lv: dict) -> str:
    return f"live {_size(lv)}, {lv['mode']}"


# (section, key of a row, metric, field, higher is better, least change that counts)
_SECTION_METRICS = (
    ("overlay", case_key, "overlay p50 ms", "overlay_p50_ms", False, REGRESSION_MS),
    ("throughput", throughput_key, "batch images/s", "batch_images_per_s", True, 0.0),
    ("throughput", throughput_key, "read + inspect images/s", "inspect_images_per_s", True, 0.0),
    ("throughput", throughput_key, "decode-only floor images/s", "floor_images_per_s", True, None),
    ("throughput", throughput_key, "batch / floor", "batch_vs_floor", True, 0.0),
    ("throughput", throughput_key, "batch images/s, steady state", "batch_steady_images_per_s",
     True, 0.0),
    ("throughput", throughput_key, "batch / floor, steady state", "batch_vs_floor_steady", True,
     0.0),
    ("throughput", throughput_key, "batch / floor, CPU", "batch_vs_floor_cpu", True, 0.0),
    ("live", live_key, "frames/s", "fps", True, 0.0),
    ("live", live_key, "latency p99 ms", "latency_p99_ms", False, LATENCY_REGRESSION_MS),
)


def compare_sections(current: dict, previous: dict | None) -> list[dict]:
    """The overlay, batch throughput and live loop against the previous run, row per metric:
    ``{"section", "case", "metric", "previous", "current", "change", "regression"}``
    (``change`` a fraction of ``previous``). A time regresses when it grew by more than 10 %
    and its least change (0.2 ms a frame, 1 ms a live latency); a rate when it fell by more
    than 10 %. The decode-only floor is the machine's, not the code's: shown, never flagged.
    Sections missing from either run (older runs have none) give no rows."""
    if not previous:
        return []
    rows = []
    for section, key, metric, field, higher, least in _SECTION_METRICS:
        items = "frames" if section == "overlay" else section
        prev = {key(x): x for x in previous.get(items) or [] if x.get(field) is not None}
        for x in current.get(items) or []:
            p = prev.get(key(x))
            if p is None or x.get(field) is None or not p[field]:
                continue
            before, now = float(p[field]), float(x[field])
            change = (now - before) / before
            if least is None:
                bad = False
            elif higher:
                bad = change < -RATE_REGRESSION_FRACTION
            else:
                bad = change > REGRESSION_FRACTION and now - before > least
            rows.append({"section": section, "case": key(x), "metric": metric,
                         "previous": before, "current": now, "change": change,
                         "regression": bool(bad)})
    return rows


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def _fmt_x(v: float) -> str:
    return f"{v:.0f}×" if v >= 10 else f"{v:.1f}×"


def floor_text(data: dict) -> list[str]:
    """Paragraphs that say what the floor is and how far the hot path and each stage are from
    it, from the measured numbers (the budget's own case if it was run, else the largest)."""
    frames = [f for f in data.get("frames", []) if f.get("floor_ms")]
    if not frames:
        return []
    aligned = [f for f in frames if f.get("aligned")]
    one = [f for f in frames if f["threads"] == "1 thread"] or frames
    f = aligned[0] if aligned else max(one, key=lambda x: x["size"][0] * x["size"][1] * x["stations"])
    w, h = f["size"]
    fl = f["floor_ms"]
    m = f.get("samples_per_station")
    n_samples = f["stations"] * m if m else None
    # stages under 1 % of the frame (the grey conversion, alignment when off) are left out
    st = {k: v for k, v in f.get("stages_p50_ms", {}).items() if v >= 0.01 * f["p50_ms"]}
    what = (f"{f['stations']:,} stations × {m} samples = {n_samples / 1e6:.2f} M samples"
            if n_samples else f"{f['stations']:,} stations' samples")
    out = [
        (f"**The floor** is the cost of touching the pixels the inspection needs and nothing more: "
        f"reading the same sample positions across the path ({what}) with a nearest-neighbour "
        f"`cv2.remap`, no interpolation and no arithmetic on them. For {w}×{h}, "
        f"{f['threads']}{', alignment included' if f.get('aligned') else ''}, it takes "
        f"{fl:.2f} ms; the whole frame takes {f['p50_ms']:.2f} ms (p50), "
        f"**{_fmt_x(f['p50_ms'] / fl)} the floor** ({f['p50_ms'] - fl:.2f} ms above it).")]
    ordered = sorted(st.items(), key=lambda kv: -kv[1])
    parts = [f"{name} {ms:.2f} ms ({100 * ms / f['p50_ms']:.0f} %, {_fmt_x(ms / fl)} the floor)"
             for name, ms in ordered]
    why = []
    if "sample" in st:
        why.append(f"Sampling is the only stage that reads the image for the profiles; it is "
                   f"{_fmt_x(st['sample'] / fl)} the floor because bilinear interpolation reads "
                   f"four pixels per sample and blends them (three float multiply-adds), where "
                   f"the floor copies one byte.")
    rest = [k for k in ("edges", "measure", "judge") if k in st]
    if rest:
        rest_ms = sum(st[k] for k in rest)
        why.append(f"{', '.join(rest).capitalize()} ({rest_ms:.2f} ms together, "
                   f"{100 * rest_ms / f['p50_ms']:.0f} % of the frame) never touch the image: "
                   f"they work on the sampled profiles and per-station values, so all of their "
                   f"time is computation above the floor, not memory traffic.")
    if "align" in st:
        why.append(f"Alignment ({st['align']:.2f} ms) locates the part before sampling, reading "
                   f"pixels the floor does not count.")
    if ordered:
        top, top_ms = ordered[0]
        why.append(f"Most of the distance from the floor is in {top} ({100 * top_ms / f['p50_ms']:.0f} "
                   f"% of the frame): that is the stage to work on to come closer to it.")
    out.append("Stage by stage (p50): " + "; ".join(parts) + ". " + " ".join(why))
    ratios = [x["p50_ms"] / x["floor_ms"] for x in frames]
    samp = [x["stages_p50_ms"]["sample"] / x["floor_ms"] for x in frames
            if "sample" in x.get("stages_p50_ms", {})]
    line = (f"Over all {len(frames)} cases the whole frame is {_fmt_x(min(ratios))}–"
            f"{_fmt_x(max(ratios))} the floor")
    if samp:
        line += f"; sampling alone {_fmt_x(min(samp))}–{_fmt_x(max(samp))}"
    out.append(line + ".")
    ov = [x for x in frames if x.get("overlay_p50_ms") is not None]
    if ov:
        g = f if f.get("overlay_p50_ms") is not None else ov[-1]
        out.append(f"Drawing the overlay on the full-size frame (`draw_overlay`, as the live "
                   f"window and recording show it; not part of the inspection's time) takes "
                   f"{g['overlay_p50_ms']:.2f} ms at {g['size'][0]}×{g['size'][1]}: it draws on a "
                   f"full-size colour copy of the frame, "
                   f"{_fmt_x(g['overlay_p50_ms'] / g['floor_ms'])} the inspection's floor.")
    return out


def _table_head(title: str, intro: str, columns) -> list[str]:
    """A report section's heading, its introductory paragraph and its table's header rows."""
    return ["", f"## {title}", "", intro, "", "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns)]


# |wall-time ratio - CPU ratio| above which the report says the machine was shared
CPU_DISAGREEMENT = 0.10


def _throughput_rows(t: dict) -> list[tuple[str, dict]]:
    """(measure, figures) per row: whole runs of each length, then the steady state."""
    rows = [(f"run of {t['images']} images", t)]
    large = t.get("large_run")
    if large:
        rows.append((f"run of {large['images']} images", large))
    if t.get("batch_vs_floor_steady") is not None:
        rows.append(("steady state (per image)",
                     {f"{k}_images_per_s": t[f"{k}_steady_images_per_s"]
                      for k in ("floor", "inspect", "batch")}
                     | {"inspect_vs_floor": t["inspect_vs_floor_steady"],
                        "batch_vs_floor": t["batch_vs_floor_steady"]}))
    return rows


def _throughput_lines(data: dict) -> list[str]:
    tp = data.get("throughput") or []
    if not tp:
        return []
    lines = _table_head(
        "Batch throughput (images/s, all cores)",
        "The floor here is decoding the same image files alone, with the same number of "
        "processes and the same pool (`run_batch` with `task=decode_file`); read + inspect "
        "keeps the records in memory; the full batch writes what `vision-qc inspect` does "
        "per file (fsync'd `results.jsonl`, NG overlays, report thumbnails). Each round "
        "starts its own pool, as a user's run does; median of alternating rounds. A whole "
        "run's rate includes what a run costs whatever its length (starting the pool and the "
        "workers, each worker's first image, the tail when one worker is done and the other "
        "not); the steady state is what one more image costs, from the runs of both lengths "
        "in the same rounds: the throughput of a batch of thousands of images. The floor and "
        "the batch are measured the same way in each row.",
        ("size", "measure", "processes", "decode-only floor", "read + inspect", "full batch",
         "batch / floor"))
    for t in tp:
        w, h = t["size"]
        for measure, x in _throughput_rows(t):
            lines.append(f"| {w}×{h} | {measure} | {t['workers']} | "
                         f"{x['floor_images_per_s']:.1f} | "
                         f"{x['inspect_images_per_s']:.1f} ({100 * x['inspect_vs_floor']:.0f} %) | "
                         f"{x['batch_images_per_s']:.1f} | **{100 * x['batch_vs_floor']:.0f} %** |")
    for t in tp:
        lines.append("")
        w, h = t["size"]
        measure, x = _throughput_rows(t)[-1]
        per = {k: 1e3 * t["workers"] / x[f"{k}_images_per_s"] for k in ("floor", "inspect", "batch")}
        add, write = per["inspect"] - per["floor"], per["batch"] - per["inspect"]
        where = ("once a run is going" if measure.startswith("steady")
                 else "(plus its share of the pool's start)")
        text = (f"At {w}×{h} each process spends {per['floor']:.1f} ms per image at the floor "
                f"{where} (reading and decoding), inspection adds {add:.1f} ms and writing the "
                f"per-file outputs {write:.1f} ms: the full batch runs at "
                f"{100 * x['batch_vs_floor']:.0f} % of what decoding alone allows.")
        cpu = t.get("cpu_ms_per_image")
        if cpu and t.get("batch_vs_floor_cpu") is not None:
            text += (f" CPU time per image over all the run's processes ({t['cpu_measure']}): "
                     f"floor {cpu['floor']:.1f} ms, read + inspect {cpu['inspect']:.1f} ms, full "
                     f"batch {cpu['batch']:.1f} ms: by CPU time the full batch runs at "
                     f"{100 * t['batch_vs_floor_cpu']:.0f} % of the floor's rate. Unlike the "
                     f"rates, this does not depend on how a shared machine's scheduler shares "
                     f"the cores out.")
            if abs(x["batch_vs_floor"] - t["batch_vs_floor_cpu"]) > CPU_DISAGREEMENT:
                text += (f" The two disagree by more than {100 * CPU_DISAGREEMENT:.0f} points: "
                         f"other work shared the cores during this run (a kind with more "
                         f"threads then gets a larger share of them), so the rates above are "
                         f"not the code's; the CPU figure is.")
        if "steady_images" in t and t.get("batch_vs_floor_steady") is None:
            text += (" The steady state is not shown: a longer run came out no slower than a "
                     "shorter one, so the machine's load changed under the rounds.")
        if t.get("batch_fixed_s") is not None:
            text += (f" Whatever its length, a run costs a fixed {t['batch_fixed_s']:.2f} s "
                     f"(the floor's {t['floor_fixed_s']:.2f} s; read + inspect "
                     f"{t['inspect_fixed_s']:.2f} s).")
        if add < 0 or write < 0:
            text += (" (Doing more came out faster here, which it cannot be on a quiet machine: "
                     "the machine was busy during this run; rerun before relying on it.)")
        lines.append(text)
    return lines


def _live_lines(data: dict) -> list[str]:
    lv = data.get("live") or []
    if not lv:
        return []
    lines = _table_head(
        "Live loop (headless)",
        "`vision-qc live --no-window`'s loop on a dispensing clip rendered beforehand (making "
        "the frames costs nothing, as with a camera), parts one after another: taking every "
        "frame as fast as the loop goes (its top frame rate), and paced like a camera (the "
        "newest frame taken, the others dropped). Latency: from the frame's capture to its "
        "verdict; step: the inspection of the frame.",
        ("size", "stations", "mode", "frames", "dropped", "frames/s", "latency p50 ms",
         "latency p99 ms", "step p50 ms"))
    for x in lv:
        w, h = x["size"]
        lines.append(f"| {w}×{h} | {x['stations']} | {x['mode']} | {x['frames']} | {x['dropped']} | "
                     f"{x['fps']:.1f} | {x['latency_p50_ms']:.1f} | {x['latency_p99_ms']:.1f} | "
                     f"{x['step_p50_ms']:.1f} |")
    for x in lv:
        lines.append("")
        w, h = x["size"]
        if not x.get("paced_fps"):
            per = 1e3 / x["fps"]
            lines.append(
                f"At {w}×{h}, taking every frame, the loop turns one around every {per:.1f} ms "
                f"({x['fps']:.0f} frames/s), of which the inspection step is {x['step_p50_ms']:.1f} "
                f"ms and the loop's own work (records, part tracking, handing frames between "
                f"threads) {max(per - x['step_p50_ms'], 0):.1f} ms. Its latency "
                f"(p50 {x['latency_p50_ms']:.1f} ms) counts the wait in the reading queue "
                f"behind the frames before it: here the source is never waited for.")
        else:
            interval = 1e3 / x["paced_fps"]
            kept = "kept up" if x["dropped"] == 0 else f"dropped {x['dropped']} of {x['frames_offered']} frames"
            lines.append(
                f"Paced like a {x['paced_fps']:g} fps camera at {w}×{h} it {kept}, at "
                f"{x['fps']:.1f} frames/s; a verdict comes {x['latency_p50_ms']:.1f} ms after "
                f"capture (p50; p99 {x['latency_p99_ms']:.1f} ms), "
                f"{100 * x['latency_p50_ms'] / interval:.0f} % of the {interval:.1f} ms between "
                f"frames.")
    return lines


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
             (f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, OpenCV {m['opencv']}, "
             f"numpy {m['numpy']}, scikit-image {m['scikit_image']}."), "",
             (f"Budget per frame: **{data['budget_ms']:g} ms** (aim {data['aim_ms']:g} ms). "
             f"Mode: {'quick' if data['quick'] else 'full'}."), "",
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
    has_overlay = any(f.get("overlay_p50_ms") is not None for f in data["frames"])
    lines.append("| case | " + " | ".join(stages) + " | whole frame | floor (touch the pixels) | "
                 "frame / floor |" + (" overlay (not in the frame) |" if has_overlay else ""))
    lines.append("|---" * (len(stages) + 4 + has_overlay) + "|")
    for f in data["frames"]:
        st = f.get("stages_p50_ms", {})
        cells = " | ".join(f"{st[s]:.2f}" if s in st else "-" for s in stages)
        fl = f.get("floor_ms")
        floor = f"{fl:.2f}" if fl is not None else "-"
        ratio = _fmt_x(f["p50_ms"] / fl) if fl else "-"
        row = f"| {case_key(f)} | {cells} | {f['p50_ms']:.2f} | {floor} | {ratio} |"
        if has_overlay:
            ov = f.get("overlay_p50_ms")
            row += f" {ov:.2f} |" if ov is not None else " - |"
        lines.append(row)
    text = floor_text(data)
    if text:
        lines += ["", "## The floor, and how far the hot path is from it", ""]
        for para in text:
            lines += [para, ""]
        lines.pop()
    lines += _throughput_lines(data)
    lines += _live_lines(data)
    for name, extra in data.get("extras", {}).items():
        lines += ["", f"## {name}", ""]
        for k, v in extra.items():
            lines.append(f"- {k}: {v}")
    lines += ["", "## Against the previous run", ""]
    sections = data.get("comparison_sections") or []
    if not comparison and not sections:
        lines.append("No previous run to compare with.")
    if comparison:
        lines += ["| case | previous p50 ms | p50 ms | change ms | |", "|---|---|---|---|---|"]
        for r in comparison:
            flag = "**REGRESSION**" if r["regression"] else ""
            lines.append(f"| {r['case']} | {r['previous_p50_ms']:.2f} | {r['p50_ms']:.2f} | "
                         f"{r['delta_ms']:+.2f} | {flag} |")
    if sections:
        if comparison:
            lines.append("")
        lines += ["| case | metric | previous | now | change | |", "|---|---|---|---|---|---|"]
        for r in sections:
            flag = "**REGRESSION**" if r["regression"] else ""
            fmt = _pct if r["metric"].endswith("/ floor") else "{:.2f}".format
            lines.append(f"| {r['case']} | {r['metric']} | {fmt(r['previous'])} | "
                         f"{fmt(r['current'])} | {100 * r['change']:+.0f} % | {flag} |")
    elif comparison and (data.get("throughput") or data.get("live")):
        lines += ["", "The previous run has no overlay, batch or live figures to compare with."]
    return "\n".join(lines) + "\n"


def _svg_chart(data: dict) -> str:
    frames = data["frames"]
    bar_h, gap, left, right_pad = 22, 10, 290, 190
    width = 1000
    top = 30
    height = top + len(frames) * (bar_h + gap) + 40
    vmax = max([data["budget_ms"]] + [f["p50_ms"] + (f.get("overlay_p50_ms") or 0)
                                       for f in frames]) * 1.1
    scale = (width - left - right_pad) / vmax
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">')]
    for i, f in enumerate(frames):
        y = top + i * (bar_h + gap)
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{html.escape(case_key(f))}</text>')
        x = left
        for stage, ms in _stage_rows(f):
            w = max(ms * scale, 0.5)
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{STAGE_COLORS.get(stage, "#ccc")}"><title>{stage}: {ms:.2f} ms</title></rect>')
            x += w
        label = f"{f['p50_ms']:.2f} ms"
        ov = f.get("overlay_p50_ms")
        if ov is not None:       # drawn after the frame, outlined: not part of its time
            wo = max(ov * scale, 0.5)
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{wo:.1f}" height="{bar_h - 6}" '
                         f'fill="{STAGE_COLORS["overlay"]}" stroke="#636e72" stroke-dasharray="3,2">'
                         f'<title>overlay (not in the frame): {ov:.2f} ms</title></rect>')
            x += wo
            label += f" (+ overlay {ov:.2f})"
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{label}</text>')
    bx = left + data["budget_ms"] * scale
    parts.append(f'<line x1="{bx:.1f}" y1="{top - 10}" x2="{bx:.1f}" y2="{height - 30}" stroke="#d63031" '
                 f'stroke-width="2" stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{bx + 4:.1f}" y="{top - 14}" fill="#d63031">budget {data["budget_ms"]:g} ms</text>')
    lx = left
    legend = list(STAGE_ORDER) + ["other"]
    if any(f.get("overlay_p50_ms") is not None for f in frames):
        legend.append("overlay")
    for stage in legend:
        parts.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{STAGE_COLORS[stage]}"/>')
        parts.append(f'<text x="{lx + 16}" y="{height - 12}">{stage}</text>')
        lx += 76
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
    while t.count("`") >= 2:
        t = t.replace("`", "<code>", 1).replace("`", "</code>", 1)
    return t
