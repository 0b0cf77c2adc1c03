"""`vision-qc generate`: synthetic windshield images, their ground truth and the recipe they share.

Writes ``OUT/<prefix>0000.png`` … (or ``.jpg``), a truth JSON beside each image (same stem,
``.json``), and ``OUT/recipe.yaml``. Every image of a run shows the same part (outline, image
size, scale, bead width, polarity, closed or open path), so one recipe fits them all; what
varies per image is the bead's wobble, the defects, the part's pose, the lighting levels and
the nuisances of the preset. Runs with the same ``--seed``, ``--size``, ``--polarity`` and
``--open-path`` show the same part and write the same recipe, so several runs (with other
presets, say) can fill one folder; a run refuses to overwrite a ``recipe.yaml`` that differs.

Randomness: the part is drawn from ``numpy.random.default_rng([seed, 0])``, image ``i`` from
``default_rng([seed, 1, i])`` and the clip from ``default_rng([seed, 2])``: the same
arguments give the same files, and image ``i`` does not depend on ``--n``.

``--video CLIP.mp4`` also writes a dispensing clip of one more part of the run (mp4v) and
``CLIP.truth.jsonl``: one truth line per frame (the truth record without the per-station
arrays and the scene spec, plus ``frame``, ``nozzle_mm`` and ``nozzle_px``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from ..cli import UsageError
from ..recipe import RecipeError, load_recipe, recipe_to_dict, save_recipe
from ..synth.clip import DispensingClip
from ..synth.scene import DEFECT_KINDS, PRESETS, SceneRenderer, sample_scene, sample_shape

__all__ = ["add_arguments", "run"]

MIN_SIZE_WH = (320, 240)
MAX_SIZE_WH = (8192, 8192)
DEFAULT_SPEED_MM_S = 400.0
DEFAULT_FPS = 30.0
JPEG_QUALITY = 95
PNG_COMPRESSION = 6      # with zlib's "filtered" strategy: ~9 % smaller noisy mono8 files


def add_arguments(parser) -> None:
    parser.add_argument("out", metavar="OUT", help="folder to write into (created if missing)")
    parser.add_argument("--n", type=int, default=10, metavar="N", help="number of images (default 10)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed, >= 0; the same arguments give the same files (default 0)")
    parser.add_argument("--preset", default="normal", choices=PRESETS,
                        help="difficulty: noise, blur, glare, dust, compression, contrast (default normal)")
    parser.add_argument("--size", default="2048x1536", metavar="WxH",
                        help="image width x height in px (default 2048x1536)")
    parser.add_argument("--ng-fraction", type=float, default=0.6, metavar="F",
                        help="probability that a part carries defects, 0..1 (default 0.6)")
    parser.add_argument("--defects", default=",".join(DEFECT_KINDS), metavar="KINDS",
                        help="comma-separated defect kinds to draw from: " + ", ".join(DEFECT_KINDS)
                             + " (default all; overlap_gap is a gap across the start of a closed path)")
    parser.add_argument("--max-defects", type=int, default=2, metavar="K",
                        help="an NG part carries 1 to K defects (default 2)")
    parser.add_argument("--pose", action="store_true",
                        help="shift (up to 40 px) and turn (up to 3 deg) each part on its fixture; "
                             "the same arguments without --pose give the same parts unmoved")
    parser.add_argument("--polarity", default="random", choices=("bright", "dark", "random"),
                        help="bead brighter or darker than the frit; random: drawn once per run, "
                             "since the recipe holds one (default random)")
    parser.add_argument("--color", action="store_true", help="write BGR colour images instead of mono8")
    parser.add_argument("--open-path", action="store_true",
                        help="lay the bead along an open stretch (bottom edge and corners) "
                             "instead of round the whole part")
    parser.add_argument("--format", default="png", choices=("png", "jpg"),
                        help=f"image file format (default png; jpg at quality {JPEG_QUALITY})")
    parser.add_argument("--prefix", default="ws_", help="image file name prefix (default ws_)")
    parser.add_argument("--start-index", type=int, default=0, metavar="I",
                        help="number of the first image, to add images to a folder (default 0)")
    parser.add_argument("--video", metavar="CLIP.mp4",
                        help="also write a dispensing clip of one more part (mp4v) and CLIP.truth.jsonl")
    parser.add_argument("--speed-mm-s", type=float, default=None, metavar="V",
                        help=f"dispensing speed for --video, mm/s (default {DEFAULT_SPEED_MM_S:g})")
    parser.add_argument("--fps", type=float, default=None, metavar="F",
                        help=f"frame rate for --video, frames/s (default {DEFAULT_FPS:g})")


def _parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--size must look like 2048x1536 (width x height in px); got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (MIN_SIZE_WH[0] <= w <= MAX_SIZE_WH[0] and MIN_SIZE_WH[1] <= h <= MAX_SIZE_WH[1]):
        raise UsageError(f"--size must be between {MIN_SIZE_WH[0]}x{MIN_SIZE_WH[1]} and "
                         f"{MAX_SIZE_WH[0]}x{MAX_SIZE_WH[1]}; got {w}x{h}")
    return w, h


def _parse_defects(text: str, open_path: bool) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in DEFECT_KINDS]
    if unknown:
        raise UsageError(f"--defects: unknown kind {unknown[0]!r}; choose from {', '.join(DEFECT_KINDS)}")
    if open_path:
        kinds = tuple(k for k in kinds if k != "overlap_gap")
    if not kinds:
        raise UsageError("--defects names no kind that fits "
                         + ("an open path (overlap_gap needs a closed one)" if open_path else "the part"))
    return kinds


def _check_args(args) -> dict:
    """Validate the arguments; the keyword arguments of :func:`sample_scene` shared by the run."""
    if args.n < 0:
        raise UsageError(f"--n must be >= 0; got {args.n}")
    if args.n == 0 and not args.video:
        raise UsageError("nothing to write: --n 0 and no --video")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0; got {args.seed}")
    if args.start_index < 0:
        raise UsageError(f"--start-index must be >= 0; got {args.start_index}")
    if not 0.0 <= args.ng_fraction <= 1.0:
        raise UsageError(f"--ng-fraction must be between 0 and 1; got {args.ng_fraction:g}")
    if args.max_defects < 1:
        raise UsageError(f"--max-defects must be >= 1; got {args.max_defects}")
    if not re.fullmatch(r"[A-Za-z0-9._-]*", args.prefix):
        raise UsageError(f"--prefix may hold letters, digits, '.', '_' and '-' only; got {args.prefix!r}")
    if not args.video and (args.speed_mm_s is not None or args.fps is not None):
        raise UsageError("--speed-mm-s and --fps only apply with --video")
    for name, value in (("--speed-mm-s", args.speed_mm_s), ("--fps", args.fps)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise UsageError(f"{name} must be > 0; got {value:g}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT must be a folder; {str(out)!r} is a file")
    size_wh = _parse_size(args.size)
    part_rng = np.random.default_rng([args.seed, 0])
    shape = sample_shape(part_rng)
    polarity = args.polarity if args.polarity != "random" else str(part_rng.choice(["bright", "dark"]))
    return dict(preset=args.preset, size_wh=size_wh, ng_fraction=float(args.ng_fraction),
                defect_kinds=_parse_defects(args.defects, args.open_path),
                max_defects=int(args.max_defects), pose=bool(args.pose), polarity=polarity,
                color=bool(args.color), open_path=bool(args.open_path), shape=shape)


# A JSON list of numbers spread over several lines by json.dumps(indent=...).
_NUMBER_LIST = re.compile(r"\[\s+(-?[\d.eE+-]+(?:,\s+-?[\d.eE+-]+)*)\s+\]")


def _truth_text(truth: dict) -> str:
    """Indented JSON with every list of numbers (points, per-station truth) on one line."""
    text = json.dumps(truth, indent=2)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
                            text) + "\n"


def _write_recipe(recipe, path: Path) -> None:
    if path.exists():
        try:
            same = recipe_to_dict(load_recipe(path)) == recipe_to_dict(recipe)
        except RecipeError:
            same = False
        if not same:
            raise UsageError(f"{path} holds another recipe (another part, size, polarity or path); "
                             "write into another folder, or use the --seed, --size, --polarity and "
                             "--open-path of the run that made it")
        return
    save_recipe(recipe, path)


def _write_clip(clip: DispensingClip, video: Path) -> Path:
    """Write every frame of ``clip`` to ``video`` (mp4v) and its truth lines; the truth's path."""
    truth_path = video.with_name(video.stem + ".truth.jsonl")
    video.parent.mkdir(parents=True, exist_ok=True)
    w, h = clip.renderer.spec.size_wh
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (w, h), True)
    if not writer.isOpened():
        raise OSError(f"cannot write a video to {video} (mp4v)")
    try:
        with truth_path.open("w", encoding="utf-8") as lines:
            for i in range(clip.frame_count):
                frame = clip.frame(i)
                writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
                truth = clip.truth(i)
                truth.pop("stations")
                truth.pop("spec")
                truth["file"] = video.name
                lines.write(json.dumps(truth) + "\n")
    finally:
        writer.release()
    return truth_path


def run(args) -> int:
    scene_kw = _check_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = None
    try:
        for i in range(args.start_index, args.start_index + args.n):
            spec = sample_scene(np.random.default_rng([args.seed, 1, i]), **scene_kw)
            renderer = SceneRenderer(spec)
            if recipe is None:
                recipe = renderer.recipe
                _write_recipe(recipe, out / "recipe.yaml")
            name = f"{args.prefix}{i:04d}.{args.format}"
            scene = renderer.render()
            params = ([cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if args.format == "jpg"
                      else [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION,
                            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_FILTERED])
            if not cv2.imwrite(str(out / name), scene.image, params):
                raise OSError(f"cannot write {out / name}")
            truth = {**scene.truth, "file": name}
            (out / name).with_suffix(".json").write_text(_truth_text(truth), encoding="utf-8")
            kinds = ", ".join(d["type"] for d in truth["defects"])
            print(f"{out / name}: {truth['verdict']}{' (' + kinds + ')' if kinds else ''}")
        if args.video:
            spec = sample_scene(np.random.default_rng([args.seed, 2]), **scene_kw)
            clip = DispensingClip(
                spec, rng=np.random.default_rng([args.seed, 3]),
                speed_mm_s=DEFAULT_SPEED_MM_S if args.speed_mm_s is None else args.speed_mm_s,
                fps=DEFAULT_FPS if args.fps is None else args.fps)
            if recipe is None:
                recipe = clip.renderer.recipe
                _write_recipe(recipe, out / "recipe.yaml")
            truth_path = _write_clip(clip, Path(args.video))
            print(f"{args.video}: {clip.frame_count} frames; truth per frame in {truth_path}")
    except OSError as exc:
        print(f"vision-qc generate: {exc}", file=sys.stderr)
        return 1
    print(f"recipe: {out / 'recipe.yaml'}")
    return 0
