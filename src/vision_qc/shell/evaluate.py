"""``vision-qc eval DIR``: score inspection results against the generator's ground truth.

DIR is either an output folder of ``vision-qc inspect`` (holding ``results.jsonl``; truth is
looked up beside each image, or in ``--truth``), or a generated folder (images, their truth
JSON files and ``recipe.yaml``), which is then inspected here first. Inspecting here also
gives per-station width and offset errors, which the result records alone do not carry.
With ``--recipe`` another recipe than the folder's own (a taught one) is inspected, and its
arcs and stations are read along the folder's recipe's path, along which the truth is given
(:class:`~vision_qc.evaluation.PathMap`). The records of an inspect output folder are scored
as they are: their arcs must be along the truth's path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..cli import UsageError
from ..evaluation import PathMap, score
from ..inspector import FrameError, Inspector
from ..recipe import RecipeError, load_recipe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def add_arguments(parser) -> None:
    parser.add_argument("dir", metavar="DIR", help="an inspect output folder (results.jsonl) or a generated folder")
    parser.add_argument("--truth", metavar="TDIR", help="folder of the truth JSON files (default: beside each image)")
    parser.add_argument("--recipe", metavar="R", help="recipe for a generated folder (default: DIR/recipe.yaml)")
    parser.add_argument("--out", metavar="FILE", help="write the figures as JSON here (default: DIR/eval.json)")
    parser.add_argument("--tol-mm", type=float, default=2.0,
                        help="a found defect matches a truth defect of its type within this distance (mm)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _truth_for(file: str, truth_dir: Path | None) -> Path:
    """The truth file of a record's image: in ``truth_dir`` by stem, else beside the image."""
    p = Path(file)
    return truth_dir / (p.stem + ".json") if truth_dir is not None else p.with_suffix(".json")


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no truth file {path} (give --truth TDIR)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read truth file {path}: {exc}") from None


def _items_from_results(folder: Path, truth_dir: Path | None) -> list[dict]:
    items = []
    with open(folder / "results.jsonl", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                print(f"vision-qc eval: {folder / 'results.jsonl'} line {n} is not valid JSON; skipped",
                      file=sys.stderr)
                continue
            truth = _load_json(_truth_for(rec["file"], truth_dir))
            items.append({"record": rec, "truth": truth})
    return items


def _path_map(folder: Path, recipe_path: Path, inspector: Inspector) -> PathMap | None:
    """How to read ``recipe_path``'s arcs and stations along the path of the generator's own
    recipe (``folder/recipe.yaml``), along which the truth is given; None when they are the
    same path (or the folder holds no recipe of its own)."""
    own = folder / "recipe.yaml"
    if not own.exists() or own.resolve() == recipe_path.resolve():
        return None
    gen = load_recipe(own)
    mine = inspector.recipe
    if (gen.closed == mine.closed and gen.interpolation == mine.interpolation
            and gen.points_xy.shape == mine.points_xy.shape
            and np.array_equal(gen.points_xy, mine.points_xy)):
        return None
    if abs(gen.mm_per_px - mine.mm_per_px) > 1e-9 * gen.mm_per_px:
        raise UsageError(f"{recipe_path} has {mine.mm_per_px} mm/px, the generator's "
                         f"{own} {gen.mm_per_px}: its arcs cannot be read along the truth's path")
    return PathMap(inspector.stations, Inspector(gen).stations, gen.mm_per_px)


def _items_by_inspecting(folder: Path, recipe_path: Path, truth_dir: Path | None) -> list[dict]:
    recipe = load_recipe(recipe_path)
    inspector = Inspector(recipe)
    for warning in inspector.warnings:
        print(f"vision-qc eval: {recipe_path}: {warning}", file=sys.stderr)
    pmap = _path_map(folder, recipe_path, inspector)
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UsageError(f"{folder} holds no results.jsonl and no images to inspect")
    items = []
    for img_path in images:
        truth_path = (truth_dir / (img_path.stem + ".json")) if truth_dir else img_path.with_suffix(".json")
        if not truth_path.exists():
            continue
        truth = _load_json(truth_path)
        frame = cv2.imread(str(img_path), cv2.IMREAD_UNCHANGED)
        if frame is None:
            items.append({"record": {"file": str(img_path), "verdict": "ERROR",
                                     "error": "cannot decode the image"}, "truth": truth})
            continue
        try:
            res = inspector.inspect(frame)
        except FrameError as exc:
            items.append({"record": {"file": str(img_path), "verdict": "ERROR", "error": str(exc)},
                          "truth": truth})
            continue
        if pmap is None:
            items.append({"record": res.to_record(str(img_path)), "truth": truth,
                          "length_mm": inspector.length_mm, "closed": recipe.closed,
                          "width_mm": res.width_mm, "offset_mm": res.offset_mm})
        else:
            # another path than the truth's (a taught recipe): its arcs and stations read
            # along the generator's
            width_mm, offset_mm = pmap.per_station(res.width_mm, res.offset_mm)
            items.append({"record": pmap.record(res.to_record(str(img_path))), "truth": truth,
                          "length_mm": pmap.dst_length_mm, "closed": pmap.closed,
                          "width_mm": width_mm, "offset_mm": offset_mm})
    return items


def _fmt(v, nd=3):
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def print_summary(figures: dict, file=None) -> None:
    file = file or sys.stdout
    for name, g in [("overall", figures["overall"])] + list(figures["by_preset"].items()):
        c = g["confusion"]
        print(f"[{name}] images {g['images']}: NG→NG {c['ng_called_ng']}, escapes (NG called OK) "
              f"{c['escapes']}, false rejects (OK called NG) {c['false_rejects']}, OK→OK "
              f"{c['ok_called_ok']}, errors {c['errors']}", file=file)
        rec = ", ".join(f"{t} {_fmt(v, 3)}" for t, v in g["recall"].items())
        prec = ", ".join(f"{t} {_fmt(v, 3)}" for t, v in g["precision"].items())
        print(f"  recall: {rec}", file=file)
        print(f"  precision: {prec}", file=file)
        print(f"  false alarms per image: {g['false_alarms_per_image']:.3f}", file=file)
        we, wm = g["width_error_px"], g["width_error_mm"]
        print(f"  width error per station: bias {_fmt(we['bias'])} px, median {_fmt(we['median_abs'])} px "
              f"({_fmt(wm['median_abs'])} mm), p95 {_fmt(we['p95_abs'])} px ({_fmt(wm['p95_abs'])} mm) "
              f"over {we['stations']} stations", file=file)
        oe = g["offset_error_px"]
        print(f"  offset error per station: median {_fmt(oe['median_abs'])} px, p95 {_fmt(oe['p95_abs'])} px",
              file=file)
        mw = g["mean_width_error_mm"]
        print(f"  mean-width error: median {_fmt(mw['median_abs'])} mm, max {_fmt(mw['max_abs'])} mm", file=file)
        ge = g["gap_end_error"]
        print(f"  gap end error: max {_fmt(ge['px_max'])} px ({_fmt(ge['mm_max'])} mm), median "
              f"{_fmt(ge['px_median'])} px over {ge['ends']} ends", file=file)


def run(args) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    truth_dir = Path(args.truth) if args.truth else None
    if truth_dir is not None and not truth_dir.is_dir():
        raise UsageError(f"--truth {truth_dir} is not a folder")
    if (folder / "results.jsonl").exists():
        items = _items_from_results(folder, truth_dir)
    else:
        recipe_path = Path(args.recipe) if args.recipe else folder / "recipe.yaml"
        try:
            items = _items_by_inspecting(folder, recipe_path, truth_dir)
        except RecipeError as exc:
            raise UsageError(str(exc)) from None
    if not items:
        raise UsageError(f"nothing to score in {folder}: no record has a truth file")
    figures = score(items, tol_mm=args.tol_mm)
    out = Path(args.out) if args.out else folder / "eval.json"
    out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    if not args.quiet:
        print_summary(figures)
        print(f"figures written to {out}")
    return 0
