"""``vision-qc bench [--quick] [--out DIR]``: time the inspection per frame and per stage at
several frame sizes, station densities and thread counts, beside the naive per-station loop,
and write ``DIR/bench.json``, ``DIR/report.md`` and ``DIR/report.html``.

The previous ``DIR/bench.json`` (if any) is kept in ``DIR/history/`` and compared with; a case
whose median grew by more than 10 % and 0.2 ms is flagged as a regression. Exit status 1 when a
whole-frame median exceeds the budget (:mod:`vision_qc.budget`), 0 otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..benchmark import (FRAME_AIM_MS, FRAME_BUDGET_MS, FRAME_SIZES_WH, STATION_SPACINGS_PX,
                         frame_case, machine_info, naive_profile_ms, time_calls)
from ..benchreport import compare, render_html, render_markdown
from ..inspector import to_gray

# DESIGN §7's case: 2448×2048, ~7,500 stations, alignment included, one core
ALIGNED_SIZE_WH = (2448, 2048)
ALIGNED_SPACING_PX = 0.83


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and cases: finishes in well under a minute")
    parser.add_argument("--out", metavar="DIR", default="bench-out", help="where to write the report (default: bench-out)")
    parser.add_argument("--rounds", type=int, help="timed calls per case (default 100, quick 15)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the summary line")


def _floor_ms(case, rounds: int) -> float:
    """Touching the pixels the inspection needs, no more: a nearest-neighbour remap of the
    same N × M sample positions."""
    insp = case.inspector
    st = insp.stations
    m = int(np.ceil(insp.search_px / 0.5))
    t = (np.arange(-m, m + 1) * 0.5).astype(np.float32)
    mapx = (st.xy[:, 0:1] + st.normal_xy[:, 0:1] * t).astype(np.float32)
    mapy = (st.xy[:, 1:2] + st.normal_xy[:, 1:2] * t).astype(np.float32)
    gray = to_gray(case.frame)
    return float(np.median(time_calls(lambda: cv2.remap(gray, mapx, mapy, cv2.INTER_NEAREST),
                                      rounds=rounds)))


def _run_case(case, *, threads: int, rounds: int, naive: bool) -> dict:
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads if threads > 0 else -1)
    try:
        insp = case.inspector
        stage_log: list[dict] = []

        def call():
            stage_log.append(insp.inspect(case.frame).timing_ms)

        total = time_calls(call, rounds=rounds)
        stage_log = stage_log[-rounds:]
        stages = {k: float(np.median([t[k] for t in stage_log])) for k in stage_log[0] if k != "total"}
        floor = _floor_ms(case, max(rounds // 2, 5))
    finally:
        cv2.setNumThreads(before)
    p50 = float(np.percentile(total, 50))
    out = {"size": list(case.size_wh), "stations": case.stations,
           "spacing_px": float(case.inspector.stations.spacing_px),
           "threads": "1 thread" if threads == 1 else "OpenCV default threads",
           "p50_ms": p50, "p99_ms": float(np.percentile(total, 99)), "mean_ms": float(total.mean()),
           "rounds": rounds, "budget_ms": FRAME_BUDGET_MS, "aim_ms": FRAME_AIM_MS,
           "stages_p50_ms": stages, "floor_ms": floor}
    if naive:
        n_ms = naive_profile_ms(case)
        out["naive_ms"] = n_ms
        out["naive_ratio"] = n_ms / p50
    return out


def run(args) -> int:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rounds = args.rounds or (15 if args.quick else 100)
    if rounds < 2:
        from ..cli import UsageError
        raise UsageError(f"--rounds must be at least 2; got {rounds}")
    sizes = ((1280, 1024), (2448, 2048)) if args.quick else FRAME_SIZES_WH
    spacings = (0.83,) if args.quick else STATION_SPACINGS_PX
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    frames = []
    for size in sizes:
        for spacing in spacings:
            say(f"bench: building a {size[0]}×{size[1]} frame, stations every {spacing:g} px")
            case = frame_case(size, spacing_px=spacing)
            for threads in (1, 0):
                if threads == 0 and (args.quick or spacing != STATION_SPACINGS_PX[0]):
                    continue
                f = _run_case(case, threads=threads, rounds=rounds, naive=threads == 1)
                say(f"bench: {size[0]}×{size[1]} {f['stations']} stations {f['threads']}: "
                    f"p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms")
                frames.append(f)
            if spacing == ALIGNED_SPACING_PX and size == ALIGNED_SIZE_WH:
                # the budget's own case: the part located first, alignment included
                case = frame_case(size, spacing_px=spacing, align=True)
                f = _run_case(case, threads=1, rounds=rounds, naive=True)
                f["aligned"] = True
                say(f"bench: {size[0]}×{size[1]} {f['stations']} stations aligned {f['threads']}: "
                    f"p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms")
                frames.append(f)
    data = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": bool(args.quick),
            "budget_ms": FRAME_BUDGET_MS, "aim_ms": FRAME_AIM_MS, "machine": machine_info(),
            "frames": frames}
    previous = None
    latest = out_dir / "bench.json"
    if latest.exists():
        try:
            previous = json.loads(latest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            say(f"bench: the previous {latest} is unreadable; not compared")
        else:
            hist = out_dir / "history"
            hist.mkdir(exist_ok=True)
            stamp = previous.get("created", "previous").replace(":", "").replace(" ", "-")
            (hist / f"bench-{stamp}.json").write_text(json.dumps(previous, indent=2), encoding="utf-8")
    comparison = compare(data, previous)
    data["comparison"] = comparison
    latest.write_text(json.dumps(data, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(data, comparison), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(data, comparison), encoding="utf-8")
    over = [f for f in frames if f["p50_ms"] > f["budget_ms"]]
    regressions = [r for r in comparison if r["regression"]]
    print(f"bench: {len(frames)} cases, {len(over)} over the {FRAME_BUDGET_MS:g} ms budget, "
          f"{len(regressions)} regressions; report in {out_dir / 'report.html'}")
    return 1 if over else 0
