"""How short a defect the inspection still finds: thin, wide and gap defects of set lengths
near the recipe's ``min_defect_mm``, one at a time in otherwise good generated parts.

usage: short_defects.py [--preset P] [--polarity bright|dark] [--n N] [--seed S]
                        [--lengths 2,3,3.5,4,5,6] [--ramp-mm R] [--workers W] [--json FILE]
       short_defects.py --summary FILE   (the table of a --json file written before)

Each of N good parts (``sample_scene(seed + i, preset=P, polarity=..., ng_fraction=0)``, the
generator's default 2048×1536 windshield, ``min_defect_mm`` 3) is rendered again once per kind
and length with a single defect inserted at a random place along the path (clear of the
path's start, as the generator places its own): a plateau of that length with linear
transitions of ``--ramp-mm`` at each end (1 mm by default: an abrupt pinch or swelling; the
generator's own sets draw 3-15 mm) to half the width (thin), 1.6 × the width (wide), or no
bead at all (gap, no transitions). The generator's sets never hold a thin or wide defect
shorter than 8 mm, so ``vision-qc eval`` on them says nothing of this.

Per kind and plateau length it prints: the truth's length (the stretch beyond the limit,
median over parts; the generator lists a defect however short, the recipe drops those under
``min_defect_mm``), how many parts hold it at least ``min_defect_mm`` long (it must be found),
how many of those had it found (matched by ``vision-qc eval``'s rule, type and place) and how
many were called OK (escapes), how many hold it shorter (it may be dropped) and how many of
those had it found, and the found defects' length minus the truth's (median): the
inspection's length bias at such ends.
"""
import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from vision_qc.evaluation import match_defects
from vision_qc.inspector import Inspector
from vision_qc.synth.scene import DefectSpec, SceneRenderer, sample_scene

KINDS = (("thin", 0.5), ("wide", 1.6), ("gap", 0.0))


def _part(seed: int, preset: str, polarity: str, lengths, ramp_mm: float) -> list[dict]:
    spec = sample_scene(seed, preset=preset, polarity=polarity, ng_fraction=0.0)
    rng = np.random.default_rng(seed + 1000)
    out = []
    length = SceneRenderer(spec).stations.length_px * spec.mm_per_px
    inspector = None            # one per part: the defect changes the image, not the recipe
    for kind, value in KINDS:
        for plateau in lengths:
            ramp = ramp_mm if kind != "gap" else 0.0
            half = plateau / 2 + ramp + spec.width_mm
            center = float(rng.uniform(half + 40, length - half - 40))
            scene = SceneRenderer(dataclasses.replace(
                spec, defects=(DefectSpec(kind, center, float(plateau), ramp, value),))).render()
            if inspector is None:
                inspector = Inspector(scene.recipe)
            rec = inspector.inspect(scene.image).to_record("part")
            truth = scene.truth["defects"]
            pairs = match_defects(rec["defects"], truth, length_mm=inspector.length_mm)
            hit = [(rec["defects"][i], truth[j]) for i, j in pairs
                   if truth[j]["type"] == kind and rec["defects"][i]["type"] == kind]
            out.append({"seed": seed, "kind": kind, "plateau_mm": float(plateau),
                        "min_defect_mm": scene.recipe.min_defect_mm,
                        "truth_mm": [t["length_mm"] for t in truth if t["type"] == kind],
                        "truth_ng": scene.truth["verdict"] == "NG", "verdict": rec["verdict"],
                        "found": bool(hit),
                        "length_error_mm": (hit[0][0]["length_mm"] - hit[0][1]["length_mm"]
                                            if hit else None)})
    return out


def summary(rows: list[dict]) -> str:
    """The table: per kind and plateau length, the parts whose truth holds that defect at
    least ``min_defect_mm`` long (must be found), how many of those had it found and how many
    were called OK (escapes), the parts whose truth holds it shorter (may be dropped) and how
    many of those had it found, and the found lengths minus the truth's (median)."""
    lines = ["kind  plateau mm  truth mm  must be found  found  escapes  shorter  found"
             "  length error mm"]
    for kind, _ in KINDS:
        for plateau in sorted({r["plateau_mm"] for r in rows if r["kind"] == kind}):
            rs = [r for r in rows if r["kind"] == kind and r["plateau_mm"] == plateau]
            truth = [t for r in rs for t in r["truth_mm"]]
            must = [r for r in rs if any(t >= r["min_defect_mm"] for t in r["truth_mm"])]
            short = [r for r in rs if r["truth_mm"] and r not in must]
            errs = [r["length_error_mm"] for r in rs if r["length_error_mm"] is not None]
            lines.append(
                f"{kind:5s} {plateau:10.1f}  {np.median(truth) if truth else float('nan'):8.2f}"
                f"  {len(must):13d}  {sum(r['found'] for r in must):5d}"
                f"  {sum(r['verdict'] == 'OK' for r in must):7d}  {len(short):7d}"
                f"  {sum(r['found'] for r in short):5d}"
                f"  {np.median(errs) if errs else float('nan'):+15.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="normal", choices=("clean", "normal", "hard"))
    ap.add_argument("--polarity", default="dark", choices=("bright", "dark"))
    ap.add_argument("--n", type=int, default=10, help="parts (default 10)")
    ap.add_argument("--seed", type=int, default=100, help="first part's seed (default 100)")
    ap.add_argument("--lengths", default="2,3,3.5,4,5,6",
                    help="plateau lengths, mm (default 2,3,3.5,4,5,6)")
    ap.add_argument("--ramp-mm", type=float, default=1.0,
                    help="each end's transition, mm (default 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="also write every part's result here")
    ap.add_argument("--summary", metavar="JSON",
                    help="only print the table of a --json file written before")
    args = ap.parse_args(argv)
    if args.summary:
        with open(args.summary) as fh:
            print(summary(json.load(fh)))
        return 0
    lengths = [float(x) for x in args.lengths.split(",")]
    seeds = range(args.seed, args.seed + args.n)
    with ProcessPoolExecutor(args.workers) as pool:
        rows = [r for part in pool.map(_part, seeds, [args.preset] * args.n,
                                       [args.polarity] * args.n, [lengths] * args.n,
                                       [args.ramp_mm] * args.n) for r in part]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    print(f"{args.preset} {args.polarity}, {args.n} parts from seed {args.seed}, "
          f"transitions {args.ramp_mm:g} mm (thin/wide)")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
