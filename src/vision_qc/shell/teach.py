"""``vision-qc teach IMAGE... --out RECIPE --mm-per-px S``: a recipe from images of good parts.

Reads the images (the first sets the recipe's frame; later ones are aligned to it and averaged
in), finds the bead's centre line (or takes it from ``--from-points FILE.csv``), decides whether
the path is closed, its polarity and, without ``--width-mm``, its width, looks for a reference
edge for alignment, and writes the recipe in the contract format. What it found is printed;
a failure (no bead, several candidate beads, a path that crosses itself) is a message saying
what to try, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import UsageError

__all__ = ["add_arguments", "run"]


def _point(text: str):
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y in px (two numbers and a comma); got {text!r}")
    return x, y


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0; got {text}")
    return v


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {text}")
    return v


def add_arguments(parser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="images of good parts, one camera; the first sets the recipe's frame")
    parser.add_argument("--out", required=True, metavar="RECIPE", help="recipe file to write (YAML)")
    parser.add_argument("--mm-per-px", required=True, type=_positive, metavar="S",
                        help="scale on the bead's plane, mm per px")
    parser.add_argument("--width-mm", type=_positive, metavar="W",
                        help="nominal bead width (default: measured on the images)")
    parser.add_argument("--width-tol-mm", type=_non_negative, metavar="T",
                        help="accepted width is W ± T (default 25%% of W)")
    parser.add_argument("--max-offset-mm", type=_non_negative, metavar="O",
                        help="largest accepted sideways offset (default 40%% of W)")
    parser.add_argument("--min-defect-mm", type=_non_negative, metavar="M",
                        help="shorter deviations are not reported (default 3)")
    parser.add_argument("--search-mm", type=_positive, metavar="S",
                        help="half-width of the band searched across the path "
                             "(default W/2 + T/2 + 2.6 O)")
    parser.add_argument("--polarity", choices=("auto", "bright", "dark"), default="auto",
                        help="bead brighter or darker than its surroundings (default auto)")
    parser.add_argument("--start", type=_point, metavar="x,y",
                        help="a point on or near the bead: picks it among several, and sets where "
                             "a loop starts or which end of an open path comes first")
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=False,
                        help="write align: true (locate the part in every frame first; "
                             "default --no-align)")
    parser.add_argument("--from-points", metavar="FILE.csv",
                        help="take the path from a robot program or CAD: x,y per line in px "
                             "(header optional); the images still give polarity, width, reference")
    parser.add_argument("--closed", action=argparse.BooleanOptionalAction, default=None,
                        help="with --from-points: the path is a loop (default: decided from its ends)")
    parser.add_argument("--no-reference", action="store_true",
                        help="do not store a reference edge for alignment (align on the bead)")
    parser.add_argument("--name", help="recipe name (default: from the first image's file name)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing recipe file")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args) -> int:
    from ..recipe import save_recipe
    from ..teach import TeachError, points_from_csv_text, teach_recipe
    from .imageio import read_image

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; give --force to overwrite it")
    if not out.parent.exists():
        raise UsageError(f"the folder of --out {out} does not exist")
    points = None
    if args.from_points:
        try:
            text = Path(args.from_points).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --from-points {args.from_points}: {exc}") from None
        try:
            points = points_from_csv_text(text, source=args.from_points)
        except TeachError as exc:
            raise UsageError(str(exc)) from None
    elif args.closed is not None:
        raise UsageError("--closed/--no-closed goes with --from-points (a found path decides itself)")
    frames = []
    for f in args.images:
        frame, message = read_image(f)
        if frame is None:
            raise UsageError(f"{f}: {message}")
        frames.append(frame)
    name = args.name or f"taught-{Path(args.images[0]).stem}"
    try:
        recipe, info = teach_recipe(
            frames, mm_per_px=args.mm_per_px, width_mm=args.width_mm,
            width_tol_mm=args.width_tol_mm, max_offset_mm=args.max_offset_mm,
            min_defect_mm=args.min_defect_mm, search_mm=args.search_mm, polarity=args.polarity,
            start_xy=args.start, align=args.align, points_xy=points, closed=args.closed,
            reference=not args.no_reference, name=name)
    except TeachError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:   # bad frames (dtype, channels) and option values
        raise UsageError(str(exc)) from None
    save_recipe(recipe, out)
    from ..inspector import narrow_bead_warning

    narrow = narrow_bead_warning(recipe)
    if narrow:
        # the recipe's own warning (Inspector.warnings), said when it is made
        print(f"vision-qc teach: warning: {narrow}", file=sys.stderr)
    if not args.quiet:
        kind = "closed loop" if info["closed"] else "open path"
        print(f"taught {out}: {kind} {info['length_mm']:.0f} mm ({info['points']} points), "
              f"{info['polarity']} bead {recipe.width_mm:g} mm wide (measured {info['width_mm']:.2f} "
              f"± {info['width_spread_mm']:.2f} mm), edges found on {100 * info['coverage']:.0f}% of it; "
              f"tolerance ±{recipe.width_tol_mm:g} mm, offset {recipe.max_offset_mm:g} mm, "
              f"align {'on' if recipe.align else 'off'}, reference: "
              f"{'glass/frit edge' if info['reference'] else 'none (aligns on the bead)'}")
        for im in info["images"][1:]:
            p = im["pose"]
            print(f"  image {im['image']}: at ({p['dx_px']:.1f}, {p['dy_px']:.1f}) px, "
                  f"{p['angle_deg']:.2f}° from image 1; edges on {100 * im['coverage']:.0f}%",
                  file=sys.stdout)
    return 0
