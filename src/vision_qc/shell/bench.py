"""``vision-qc bench [--quick] [--out DIR]``: time the inspection per frame and per stage at
several frame sizes, station densities and thread counts, beside the naive per-station loop
and the floor (touching the pixels the inspection needs); the overlay drawing per frame; batch
throughput on all cores against the decode-only floor with the same number of processes (whole
runs of two lengths, and the steady state: what one more image costs); and
the live loop's frame rate and latency, headless. Writes ``DIR/bench.json``, ``DIR/report.md``
and ``DIR/report.html``.

The previous ``DIR/bench.json`` (if any) is kept in ``DIR/history/`` and compared with; a case
whose median grew by more than 10 % and 0.2 ms is flagged as a regression, and so are a batch
or live rate that fell by more than 10 % and a live latency that grew by 10 % and 1 ms.

Exit status (full mode): 1 when a whole-frame median exceeds the budget
(:mod:`vision_qc.budget`), 0 otherwise. ``--quick`` never fails on time (exit 0): it is the
smoke run CI does on shared machines. Ctrl-C or SIGTERM: 130, with the batch rounds' image
folder and worker processes gone; folders that killed runs (SIGKILL) left are removed by
the next run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..benchmark import (
    FRAME_AIM_MS,
    FRAME_BUDGET_MS,
    FRAME_SIZES_WH,
    STATION_SPACINGS_PX,
    ReplayCapture,
    floor_ms,
    frame_case,
    image_set_pngs,
    live_clip,
    machine_info,
    naive_profile_ms,
    overlay_ms,
    time_calls,
)
from ..benchreport import compare, compare_sections, render_html, render_markdown
from .interrupt import sigterm_as_interrupt

# DESIGN §7's case: 2448×2048, ~7,500 stations, alignment included, one core
ALIGNED_SIZE_WH = (2448, 2048)
ALIGNED_SPACING_PX = 0.83

# batch throughput: (size, images per run, images per longer run) per mode; each round starts
# its own pool, as a user's run does. The runs of both lengths give the steady state (images/s
# once a run is going) apart from what a run costs whatever its length (batch_throughput).
THROUGHPUT_QUICK = (((1280, 1024), 16, 48),)
THROUGHPUT_FULL = (((1280, 1024), 32, 128), ((2448, 2048), 32, 128))
# live loop: sizes, frames per part, parts played (quick, full); paced like a 30 fps camera
LIVE_QUICK = (((1280, 1024),), 30, 2)
LIVE_FULL = (((1280, 1024), (2448, 2048)), 40, 4)
LIVE_CAMERA_FPS = 30.0
# the batch throughput's image files live in a temporary folder named after the process that
# made it: a run stopped by Ctrl-C or SIGTERM removes its own, and the next run removes those
# of runs that could not (killed with SIGKILL, the machine restarted): 128 images of 5 MP are
# 330 MB a run, and a shared machine's /tmp fills up with them
TMP_PREFIX = "vision_qc_bench_"


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and cases: finishes in well under a minute")
    parser.add_argument("--out", metavar="DIR", default="bench-out", help="where to write the report (default: bench-out)")
    parser.add_argument("--rounds", type=int, help="timed calls per case (default 100, quick 15)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but the summary line")
    parser.add_argument("--no-throughput", action="store_true",
                        help="skip the batch throughput section")
    parser.add_argument("--no-live", action="store_true", help="skip the live loop section")


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
        floor = floor_ms(case, rounds=max(rounds // 2, 5))
        overlay = overlay_ms(case, rounds=max(rounds // 2, 5))
    finally:
        cv2.setNumThreads(before)
    p50 = float(np.percentile(total, 50))
    out = {"size": list(case.size_wh), "stations": case.stations,
           "spacing_px": float(case.inspector.stations.spacing_px),
           "threads": "1 thread" if threads == 1 else "OpenCV default threads",
           "p50_ms": p50, "p99_ms": float(np.percentile(total, 99)), "mean_ms": float(total.mean()),
           "rounds": rounds, "budget_ms": FRAME_BUDGET_MS, "aim_ms": FRAME_AIM_MS,
           "stages_p50_ms": stages, "floor_ms": floor,
           "samples_per_station": len(insp.maps.t_px), "overlay_p50_ms": overlay}
    if naive:
        n_ms = naive_profile_ms(case)
        out["naive_ms"] = n_ms
        out["naive_ratio"] = n_ms / p50
    return out


def run_cpu_s() -> float | None:
    """CPU seconds (user + system) used so far by this process, all its threads, and by the
    worker processes its forkserver has started and reaped (Linux: read from /proc); None where
    that cannot be read (no forkserver yet, no /proc). The difference over a run of
    :func:`~vision_qc.shell.batch.run_batch` is what the run cost the machine's cores, whatever
    else ran on them; the kernel's own threads (writeback, journal) are not counted."""
    import resource
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    # after the command's name: state, ppid, ... utime (12th), stime, cutime (14th), cstime
    children = (int(fields[13]) + int(fields[14])) / ticks
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + children


def batch_throughput(size, *, n_images: int, workers: int, rounds: int,
                     steady_images: int | None = None) -> dict:
    """Images/s of a batch on ``workers`` processes against the decode-only floor with the same
    processes and pool machinery (:func:`vision_qc.shell.batch.run_batch`, ``task=decode_file``),
    in alternating rounds (floor, read + inspect, full batch, floor, ...) so a load that drifts
    on a shared machine hits all three alike. The full batch writes what ``vision-qc inspect``
    writes per file (NG overlays, report thumbnails, NG width profiles, each fsync'd before its
    record is appended to ``results.jsonl``, which is fsync'd in groups).
    Each round starts its own pool, as a user's run does; the forkserver is started before.

    Two measures, the floor and the batch each measured the same way:

    - whole run: ``n_images`` / the median time of a run of ``n_images`` (and the same at
      ``steady_images``): what a user waits for, the pool's start, each worker's first image
      and the tail of the run (one worker done, the other not) included;
    - steady state: each round also runs ``steady_images`` images (the two sizes in
      alternating order), and :func:`~vision_qc.benchmark.steady_state` splits the time into
      a fixed part per run and a part per image. Images/s at steady state is the inverse of
      the part per image: the throughput of a batch of thousands of images, where the fixed
      part is spread thin. ``steady_images=None`` skips it.

    Beside the wall time, each run's CPU time over all its processes (:func:`run_cpu_s`):
    ``cpu_ms_per_image`` per kind (steady state when measured, else whole run) and
    ``batch_vs_floor_cpu``, the floor's CPU per image over the batch's. On a machine shared
    with other work the wall-time ratio depends on how the scheduler shares the cores out (a
    kind with more threads gets a larger share); the CPU ratio does not, and on cores of their
    own the two agree once both keep every core busy.
    """
    from ..benchmark import steady_state
    from .batch import decode_file, run_batch
    from .records import JsonlWriter, load_records

    counts = (n_images,) if not steady_images else (n_images, steady_images)
    if steady_images and steady_images <= n_images:
        raise ValueError(f"steady_images must exceed n_images; got {steady_images} and {n_images}")
    pngs, recipe = image_set_pngs(size)
    folder = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}_")
    kinds = ("floor", "inspect", "batch")
    try:
        files = []
        for i in range(max(counts)):
            path = os.path.join(folder, f"part_{i:03d}.png")
            with open(path, "wb") as fh:
                fh.write(pngs[i % len(pngs)])
            files.append(path)
        run_batch(files[:max(workers, 2)], recipe, out_dir=None, on_record=lambda r: None,
                  workers=workers, task=decode_file)            # warm-up: the forkserver starts
        secs = {(k, n): [] for k in kinds for n in counts}
        cpu = {(k, n): [] for k in kinds for n in counts}
        got: dict[tuple[str, int], list[dict]] = {}
        for r in range(rounds):
            for n in (counts if r % 2 == 0 else counts[::-1]):
                run_files = files[:n]
                for kind in kinds:
                    got[kind, n] = []
                    out = os.path.join(folder, f"out_{r}_{n}") if kind == "batch" else None
                    if out is not None:
                        os.makedirs(out)
                    c0 = run_cpu_s()
                    t0 = time.perf_counter()
                    if kind == "floor":
                        run_batch(run_files, recipe, out_dir=None, on_record=got[kind, n].append,
                                  workers=workers, task=decode_file)
                    elif kind == "inspect":
                        run_batch(run_files, recipe, out_dir=None, on_record=got[kind, n].append,
                                  workers=workers)
                    else:
                        with JsonlWriter(os.path.join(out, "results.jsonl")) as writer:
                            run_batch(run_files, recipe, out_dir=out, on_record=writer.write,
                                      workers=workers)
                    secs[kind, n].append(time.perf_counter() - t0)
                    c1 = run_cpu_s()
                    cpu[kind, n].append(None if c0 is None or c1 is None else c1 - c0)
                    if out is not None:
                        got[kind, n] = load_records(os.path.join(out, "results.jsonl")).records
                        shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # correctness, outside the timed calls: every file once, no ERROR, the NG scenes found
    for (kind, n), recs in got.items():
        if sorted(rec["file"] for rec in recs) != files[:n]:
            raise RuntimeError(f"bench: the {kind} round of {n} images did not give one record "
                               f"per file")
        errors = [rec["error"] for rec in recs if rec["verdict"] == "ERROR"]
        if errors:
            raise RuntimeError(f"bench: the {kind} round gave errors: {errors[:3]}")
        if kind == "batch" and not any(rec["verdict"] == "NG" for rec in recs):
            raise RuntimeError("bench: the batch found no NG part in a set that has them")

    def rates(n: int) -> dict:
        rate = {k: n / statistics.median(secs[k, n]) for k in kinds}
        return {"floor_images_per_s": rate["floor"], "inspect_images_per_s": rate["inspect"],
                "batch_images_per_s": rate["batch"],
                "inspect_vs_floor": rate["inspect"] / rate["floor"],
                "batch_vs_floor": rate["batch"] / rate["floor"]}

    result = {"size": list(size), "images": n_images, "workers": workers, "rounds": rounds,
              **rates(n_images)}
    if steady_images:
        result["steady_images"] = steady_images
        result["large_run"] = {"images": steady_images, **rates(steady_images)}
        split = {k: steady_state(n_images, steady_images, secs[k, n_images],
                                 secs[k, steady_images]) for k in kinds}
        # a longer run that came out no slower: the load changed under the rounds; no figure
        # rather than a wrong one (the whole-run figures stand)
        ok = all(per_image > 0 for per_image, _ in split.values())
        for k, (per_image, fixed) in split.items():
            result[f"{k}_steady_images_per_s"] = 1.0 / per_image if ok else None
            result[f"{k}_fixed_s"] = fixed if ok else None
        for k in ("inspect", "batch"):
            result[f"{k}_vs_floor_steady"] = (result[f"{k}_steady_images_per_s"]
                                              / result["floor_steady_images_per_s"] if ok
                                              else None)
    if all(c is not None for v in cpu.values() for c in v):
        if steady_images:
            per_cpu = {k: steady_state(n_images, steady_images, cpu[k, n_images],
                                       cpu[k, steady_images])[0] for k in kinds}
        else:
            per_cpu = {k: statistics.median(cpu[k, n_images]) / n_images for k in kinds}
        result["cpu_measure"] = "steady state" if steady_images else f"run of {n_images} images"
        result["cpu_ms_per_image"] = {k: 1e3 * v for k, v in per_cpu.items()}
        result["batch_vs_floor_cpu"] = (per_cpu["floor"] / per_cpu["batch"]
                                        if per_cpu["batch"] > 0 else None)
    return result


def _live(size, *, frames: int, parts: int) -> list[dict]:
    """The live loop (:func:`vision_qc.shell.live.run_loop`, headless, no outputs) on a
    dispensing clip rendered beforehand (so making the frames costs nothing, as with a
    camera), ``parts`` parts one after another: once taking every frame as fast as the loop
    goes (its top frame rate), once paced like a camera at ``LIVE_CAMERA_FPS`` (the newest
    frame taken, the others dropped: the latency a camera user sees)."""
    from ..inspector import Inspector
    from .live import LiveOptions, LiveSource, run_loop

    images, nozzles, recipe = live_clip(size, frames=frames)
    stations = len(Inspector(recipe))
    out = []
    for paced in (False, True):
        cap = ReplayCapture(images, nozzles, fps=LIVE_CAMERA_FPS, repeat=parts)
        recs: list[dict] = []
        stamps: list[float] = []

        def on_record(rec, recs=recs, stamps=stamps):
            stamps.append(time.perf_counter())
            recs.append(rec)

        source = LiveSource(name="bench replay", open=lambda cap=cap: cap, live=paced,
                            fps=LIVE_CAMERA_FPS, pace=paced, recipe=recipe)
        run_loop(source, recipe, LiveOptions(window=False, on_record=on_record,
                                             stdout=io.StringIO(), stderr=io.StringIO()))
        # correctness, outside the timing: every frame judged, and the defective part called NG
        errors = [rec["error"] for rec in recs if rec["verdict"] == "ERROR"]
        if errors or len(recs) < 2:
            raise RuntimeError(f"bench: the live loop gave {len(recs)} records, errors {errors[:3]}")
        if not any(rec["verdict"] == "NG" for rec in recs):
            raise RuntimeError("bench: the live loop never called the defective part NG")
        lat = np.array([rec["latency_ms"] for rec in recs])
        step = np.array([rec["timing_ms"]["step"] for rec in recs])
        out.append({"size": list(size), "stations": stations,
                    "mode": f"paced at {LIVE_CAMERA_FPS:g} fps" if paced else "as fast as it goes",
                    "paced_fps": LIVE_CAMERA_FPS if paced else None,
                    "frames_offered": cap.total, "frames": len(recs),
                    "dropped": cap.total - len(recs),
                    "fps": (len(recs) - 1) / max(stamps[-1] - stamps[0], 1e-9),
                    "latency_p50_ms": float(np.percentile(lat, 50)),
                    "latency_p99_ms": float(np.percentile(lat, 99)),
                    "step_p50_ms": float(np.percentile(step, 50))})
    return out


def remove_stale_folders(tmp_dir: str | None = None) -> list[str]:
    """Remove the image folders (``TMP_PREFIX<pid>_*`` in ``tmp_dir``, default the system's
    temporary folder) that runs of :func:`batch_throughput` left behind: those whose process
    no longer runs. A folder whose process runs (this one, a bench running beside it, or a
    new process that got the same pid) is left alone. Returns the paths removed."""
    tmp_dir = tmp_dir or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp_dir)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(TMP_PREFIX):
            continue
        pid_text = name[len(TMP_PREFIX):].split("_", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            path = os.path.join(tmp_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except (OverflowError, OSError):
            continue        # another user's process (EPERM), or not a pid: not ours to judge
    return removed


def run(args) -> int:
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C: the batch rounds' image folder and
    # worker processes go (the CLI reports "interrupted", exit 130)
    with sigterm_as_interrupt():
        return _run(args)


def _run(args) -> int:
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
    throughput = []
    if not args.no_throughput:
        stale = remove_stale_folders()
        if stale:
            say(f"bench: removed {len(stale)} image folder(s) left by earlier runs that were "
                f"killed: {', '.join(stale)}")
        workers = os.cpu_count() or 1
        default = 3 if args.quick else 5
        b_rounds = min(default, max(args.rounds, 1)) if args.rounds else default
        for size, n, n_steady in (THROUGHPUT_QUICK if args.quick else THROUGHPUT_FULL):
            say(f"bench: batch throughput, runs of {n} and {n_steady} images at "
                f"{size[0]}×{size[1]}, {workers} processes")
            t = batch_throughput(size, n_images=n, workers=workers, rounds=b_rounds,
                            steady_images=n_steady)
            steady = ("steady state not measurable (the machine's load changed under the "
                      "rounds)" if t["batch_vs_floor_steady"] is None else
                      f"steady state: floor {t['floor_steady_images_per_s']:.1f}, full batch "
                      f"{t['batch_steady_images_per_s']:.1f} "
                      f"({100 * t['batch_vs_floor_steady']:.0f} %)")
            if t.get("batch_vs_floor_cpu") is not None:
                steady += (f"; CPU per image: floor {t['cpu_ms_per_image']['floor']:.1f} ms, "
                           f"full batch {t['cpu_ms_per_image']['batch']:.1f} ms "
                           f"({100 * t['batch_vs_floor_cpu']:.0f} %)")
            say(f"bench: runs of {n}: decode-only floor {t['floor_images_per_s']:.1f} images/s, "
                f"read + inspect {t['inspect_images_per_s']:.1f}, full batch "
                f"{t['batch_images_per_s']:.1f} ({100 * t['batch_vs_floor']:.0f} % of the floor); "
                f"{steady}")
            throughput.append(t)
    live = []
    if not args.no_live:
        sizes_l, n_frames, parts = LIVE_QUICK if args.quick else LIVE_FULL
        for size in sizes_l:
            say(f"bench: live loop at {size[0]}×{size[1]}, {parts} parts of {n_frames} frames")
            for lv in _live(size, frames=n_frames, parts=parts):
                say(f"bench: live {lv['mode']}: {lv['fps']:.1f} fps, latency p50 "
                    f"{lv['latency_p50_ms']:.1f} ms, p99 {lv['latency_p99_ms']:.1f} ms, "
                    f"dropped {lv['dropped']}")
                live.append(lv)
    data = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": bool(args.quick),
            "budget_ms": FRAME_BUDGET_MS, "aim_ms": FRAME_AIM_MS, "machine": machine_info(),
            "frames": frames, "throughput": throughput, "live": live}
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
    data["comparison_sections"] = compare_sections(data, previous)
    latest.write_text(json.dumps(data, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(data, comparison), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(data, comparison), encoding="utf-8")
    over = [f for f in frames if f["p50_ms"] > f["budget_ms"]]
    regressions = [r for r in comparison + data["comparison_sections"] if r["regression"]]
    print(f"bench: {len(frames)} cases, {len(over)} over the {FRAME_BUDGET_MS:g} ms budget"
          f"{' (quick: not failed on time)' if args.quick and over else ''}, "
          f"{len(regressions)} regressions; report in {out_dir / 'report.html'}")
    return 1 if over and not args.quick else 0
