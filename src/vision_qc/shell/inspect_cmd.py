"""`vision-qc inspect`: check image files, folders and globs against a recipe (DESIGN §3).

Writes into ``--out DIR``: ``results.jsonl`` (one record per input, appended as each finishes,
once that input's other outputs are fsync'd; fsync'd itself in groups a few ms behind),
``results.csv`` and ``defects.csv``,
``overlays/`` (annotated images; frames wider than 1600 px are drawn reduced by a whole factor
unless ``--full-size-overlays``), ``report.html`` (self-contained), ``run.json`` (recipe,
software, runs) and ``report_data/`` (thumbnails and width profiles the report is built from).

Exit status: 0 every part OK, 1 at least one NG or ERROR record, 2 usage or recipe error,
130 interrupted (Ctrl-C; rerun with ``--resume`` to finish).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import time

from .. import __version__
from ..cli import UsageError
from ..recipe import RecipeError, load_recipe, recipe_to_dict
from .batch import (DATA_DIR, OVERLAY_DIR, OVERLAY_MAX_WIDTH, OVERLAY_MODES, BatchAbort,
                    Progress, expand_inputs, run_batch, start_workers_early)
from .interrupt import sigterm_as_interrupt
from .records import (DEFECTS_CSV, RESULTS_CSV, RESULTS_JSONL, JsonlWriter, file_key, load_records,
                      order_records, write_atomic, write_defects_csv, write_results_csv)

__all__ = ["add_arguments", "run", "DEFAULT_OUT", "RUN_JSON", "REPORT_HTML"]

DEFAULT_OUT = "vision-qc-results"
RUN_JSON = "run.json"
REPORT_HTML = "report.html"


def add_arguments(parser) -> None:
    parser.description = (
        "Check image files, folders and glob patterns against a recipe. Writes results.jsonl "
        "(one record per image, appended as each finishes), results.csv, defects.csv, "
        "overlays/ and a self-contained report.html into --out. Exit status: 0 all OK, "
        "1 at least one NG or unreadable image, 2 usage or recipe error, 130 interrupted.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (their image files) or glob patterns "
                             "(quote them; ** matches across folders)")
    parser.add_argument("--recipe", "-r", required=True, metavar="R",
                        help="the recipe file (YAML or JSON)")
    parser.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder; must be new or empty unless --resume "
                             f"(default: ./{DEFAULT_OUT})")
    parser.add_argument("--workers", "-j", type=int, default=None, metavar="N",
                        help="worker processes (default: the number of CPUs); 1 runs in this "
                             "process")
    parser.add_argument("--recursive", action="store_true",
                        help="also look in the subfolders of folder inputs")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run into the same --out: inputs already "
                             "recorded are skipped, a half-written last record is repaired")
    parser.add_argument("--overlays", choices=OVERLAY_MODES, default="ng",
                        help="which parts get an annotated image in DIR/overlays/ (default: ng)")
    parser.add_argument("--full-size-overlays", action="store_true",
                        help=f"draw overlays at the camera's full resolution; by default a frame "
                             f"wider than {OVERLAY_MAX_WIDTH} px is reduced by a whole factor "
                             f"first (2448 px wide: 1224), which makes an NG part's outputs "
                             f"about 5x cheaper")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress and no summary (errors still go to stderr)")
    from .dask_batch import add_arguments as add_dask_arguments

    add_dask_arguments(parser)


def software_info() -> dict:
    import cv2
    import numpy as np

    return {"vision_qc": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "opencv": cv2.__version__, "platform": platform.platform()}


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z")


def _recipe_digest(recipe_dict: dict) -> str:
    return hashlib.sha256(json.dumps(recipe_dict, sort_keys=True).encode()).hexdigest()


def _command_line() -> list[str]:
    argv = list(sys.argv)
    if not argv or not argv[0] or "inspect" not in argv:
        return ["vision-qc", "inspect", "..."]     # called in-process (tests, API)
    if argv[0].endswith("__main__.py"):
        argv[0:1] = ["python", "-m", "vision_qc"]
    else:
        argv[0] = os.path.basename(argv[0])
    return argv


def _write_run_info(out: str, info: dict) -> None:
    write_atomic(os.path.join(out, RUN_JSON), (json.dumps(info, indent=1) + "\n").encode("utf-8"))


def _read_run_info(out: str) -> dict | None:
    try:
        with open(os.path.join(out, RUN_JSON), encoding="utf-8") as f:
            info = json.load(f)
        return info if isinstance(info, dict) else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{os.path.join(out, RUN_JSON)} cannot be read ({exc}); "
                         f"use another --out") from None


def _check_out_dir(out: str, resume: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file, not a folder")
    if os.path.isdir(out) and not resume:
        try:
            entries = os.listdir(out)
        except OSError as exc:
            raise UsageError(f"cannot read the output folder {out}: {exc.strerror}") from None
        if entries:
            raise UsageError(f"the output folder {out} is not empty; use --resume to continue the "
                             f"run recorded there, or choose another --out")


def _clean_temporaries(out: str) -> None:
    # a kill between writing and renaming an overlay or thumbnail leaves "<name>.tmp-<pid>"
    for sub in (OVERLAY_DIR, DATA_DIR, ""):
        folder = os.path.join(out, sub)
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                if ".tmp-" in name:
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(folder, name))


def run(args) -> int:
    with contextlib.ExitStack() as stack:       # holds a Dask client (--dask) until the end
        return _run(args, stack)


def _run(args, stack: contextlib.ExitStack) -> int:
    quiet = args.quiet

    def say(msg: str) -> None:
        if not quiet:
            print(f"vision-qc inspect: {msg}", file=sys.stderr, flush=True)

    # 1. the recipe, before anything else is looked at
    try:
        recipe = load_recipe(args.recipe)
    except RecipeError as exc:
        raise UsageError(str(exc)) from None
    from ..inspector import Inspector

    try:
        inspector = Inspector(recipe)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{args.recipe}: the recipe cannot be used: {exc}") from None
    for warning in getattr(inspector, "warnings", ()):
        say(f"{args.recipe}: {warning}")
    workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    if workers < 1:
        raise UsageError(f"--workers must be 1 or more; got {args.workers}")

    # 2. the inputs and the output folder
    out = args.out
    _check_out_dir(out, args.resume)
    files, missing, notes = expand_inputs(args.inputs, recursive=args.recursive, exclude=out)
    if missing:
        raise UsageError("; ".join(missing))
    for n in notes:
        say(n)
    if not files:
        raise UsageError("no image files to inspect in " + ", ".join(args.inputs))
    if workers > 1 and len(files) > 1 and args.dask is None and not args.dask_send_bytes:
        # the workers' forkserver loads vision_qc and its kernels (~1 s of one core) while
        # this process reads what an earlier run recorded and writes run.json
        start_workers_early()

    recipe_dict = recipe_to_dict(recipe)
    digest = _recipe_digest(recipe_dict)
    info = _read_run_info(out) if args.resume else None
    if info is not None and info.get("recipe_sha256") not in (None, digest):
        name = (info.get("recipe") or {}).get("name", "")
        raise UsageError(f"the results in {out} were made with a different recipe "
                         f"({info.get('recipe_file')}, '{name}'); "
                         f"resume with that recipe, or choose another --out")
    runner = run_batch
    extra = {}
    if getattr(args, "full_size_overlays", False):
        if args.dask is not None or args.dask_send_bytes:
            raise UsageError("--full-size-overlays is not available with --dask (Dask workers "
                             "draw reduced overlays)")
        extra["overlay_width"] = None
    if args.dask is not None or args.dask_send_bytes:
        from .dask_batch import open_runner     # joins the cluster now: exit 2 if it cannot

        runner = stack.enter_context(open_runner(args, say=say))
        workers = runner.workers
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {out}: {exc.strerror}") from None
    jsonl = os.path.join(out, RESULTS_JSONL)
    loaded = load_records(jsonl, repair=True)
    for n in loaded.notes(jsonl):
        say(n)
    if args.resume:
        _clean_temporaries(out)
    done_keys = {file_key(r["file"]) for r in loaded.records}
    todo = [f for f in files if file_key(f) not in done_keys]
    already = len(files) - len(todo)

    if info is None:
        info = {"recipe_file": os.path.abspath(args.recipe), "recipe_sha256": digest,
                "recipe": recipe_dict, "software": software_info(), "sessions": []}
    info["command"] = _command_line()
    info["cwd"] = os.getcwd()
    info["software"] = software_info()
    session = {"started": _now(), "workers": min(workers, max(len(todo), 1)), "inputs": len(files),
               "already_recorded": already, "inspected": 0, "elapsed_s": 0.0, "interrupted": False}
    if runner is not run_batch:
        session["dask"] = runner.address
    info.setdefault("sessions", []).append(session)
    _write_run_info(out, info)

    # 3. the batch
    counts = {"OK": 0, "NG": 0, "ERROR": 0}
    current = {file_key(f) for f in files}
    for r in loaded.records:
        if file_key(r["file"]) in current:
            counts[r["verdict"]] += 1
    if args.resume and already:
        say(f"resuming: {already} of {len(files)} inputs already recorded in {jsonl}")
    mode = "none" if quiet else "auto"
    progress = Progress(len(files), done=already, counts=counts, mode=mode)
    if todo:
        progress.line(f"vision-qc inspect: {len(todo)} images, {session['workers']} worker(s), "
                      f"results in {out}")
    interrupted = False
    t0 = time.perf_counter()
    try:
        with sigterm_as_interrupt(), JsonlWriter(jsonl) as writer:
            def on_record(rec: dict) -> None:
                writer.write(rec)
                session["inspected"] += 1
                progress.update(rec["verdict"])

            runner(todo, recipe, out_dir=out, on_record=on_record, workers=workers,
                   overlays=args.overlays, inspector=inspector, **extra)
    except KeyboardInterrupt:
        interrupted = True
    except BatchAbort as exc:
        progress.close()
        session["stopped"] = str(exc)
        print(f"vision-qc inspect: {exc}", file=sys.stderr)
        if already + session["inspected"]:
            print(f"vision-qc inspect: stopped; {already + session['inspected']} of {len(files)} "
                  f"inputs are recorded in {jsonl}; once the cause is fixed, run the same "
                  f"command with --resume to finish", file=sys.stderr)
        return 2
    except OSError as exc:          # results.jsonl cannot be opened or written
        progress.close()
        print(f"vision-qc inspect: cannot write the results in {out}: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.close()
        session["elapsed_s"] = round(time.perf_counter() - t0, 3)
        session["interrupted"] = interrupted
        session["finished"] = _now()
        info["finished"] = session["finished"]
        with contextlib.suppress(OSError):
            _write_run_info(out, info)
    if interrupted:
        print(f"vision-qc inspect: interrupted; {already + session['inspected']} of {len(files)} "
              f"inputs are recorded in {jsonl}; run the same command with --resume to finish",
              file=sys.stderr)
        return 130

    # 4. tables and report, rebuilt from results.jsonl
    from .report import build_report

    records = order_records(load_records(jsonl).records, files)
    write_results_csv(records, os.path.join(out, RESULTS_CSV))
    write_defects_csv(records, os.path.join(out, DEFECTS_CSV))
    report = build_report(out, records, run_info=info, generated=session["finished"])

    totals = {"OK": 0, "NG": 0, "ERROR": 0}
    for r in records:
        totals[r["verdict"]] = totals.get(r["verdict"], 0) + 1
    if not quiet:
        judged = totals["OK"] + totals["NG"]
        yield_txt = f"{100.0 * totals['OK'] / judged:.1f}%" if judged else "–"
        rate = (f" ({session['inspected'] / session['elapsed_s']:.1f} images/s)"
                if session["elapsed_s"] > 0 and session["inspected"] else "")
        print(f"{len(records)} images: OK {totals['OK']}, NG {totals['NG']}, "
              f"ERROR {totals['ERROR']}; yield {yield_txt}; {session['inspected']} inspected "
              f"in {session['elapsed_s']:.1f} s{rate}\nreport: {report}")
    return 0 if totals["NG"] == 0 and totals["ERROR"] == 0 else 1
