"""How well a recipe taught from one good part matches the truth: each part taught from its
own image, then inspected with the recipe taught from it.

usage: teach_accuracy.py [--preset P] [--seed S] [--n N] [--size WxH] [--workers W]
                         [--json FILE]

Parts ``sample_scene(seed, preset=P, polarity=..., ng_fraction=0, open_path=seed odd)`` for
seeds S to S + N - 1, each bright and dark (2N parts; the generator's default 2048×1536
windshield). Each is taught with ``teach_recipe`` as ``vision-qc teach`` does without
``--width-mm``: the path, the width and the tolerances all come from the image. Per part it
records the taught width minus the truth's mean width (mm), the taught path's RMS distance
from the true centre line (px: the generator's path moved by the truth's offsets, each of
its stations to the nearest point of the taught path), the taught length minus the
generator's (mm), and the verdict the taught recipe gives the part it was taught from (a
good part: anything but OK is the teach's fault). A part where teaching fails is listed with
the reason.

It prints, per polarity and for all: how many parts were taught, how many have the width
within 0.1 mm (issue #5's aim) and the median and largest width error, the path RMS (median,
largest, how many over 0.3 px: #5's aim), the parts whose length is off by more than 5 mm,
and those their own recipe does not call OK.
"""
import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.spatial import cKDTree

from vision_qc.geometry import build_stations
from vision_qc.inspector import Inspector
from vision_qc.synth import SceneRenderer, sample_scene
from vision_qc.teach import TeachError, teach_recipe


def _part(seed: int, polarity: str, preset: str, size_wh) -> dict:
    open_path = seed % 2 == 1
    spec = sample_scene(seed, preset=preset, ng_fraction=0.0, polarity=polarity,
                        open_path=open_path, **({"size_wh": size_wh} if size_wh else {}))
    scene = SceneRenderer(spec).render()
    gen = scene.recipe
    row = {"seed": seed, "polarity": polarity, "open": open_path}
    st = build_stations(gen.points_xy, closed=gen.closed, spacing_px=1.0)
    spacing_mm = scene.truth["stations"]["spacing_mm"]
    offset = np.asarray(scene.truth["stations"]["offset_mm"], float) / gen.mm_per_px
    width = np.asarray(scene.truth["stations"]["width_mm"], float)
    # the truth's stations, spacing_mm apart along the generator's path, moved by its offsets
    at = build_stations(gen.points_xy, closed=gen.closed,
                        spacing_px=spacing_mm / gen.mm_per_px)
    k = min(len(at), len(offset))
    true_xy = at.xy[:k] + offset[:k, None] * at.normal_xy[:k]
    try:
        recipe, info = teach_recipe([scene.image], mm_per_px=gen.mm_per_px)
    except TeachError as exc:
        row["error"] = str(exc)
        return row
    dense = build_stations(recipe.points_xy, closed=recipe.closed, spacing_px=0.25).xy
    dist, _ = cKDTree(dense).query(true_xy)
    row.update(width_error_mm=recipe.width_mm - float(width[width > 0].mean()),
               path_rms_px=float(np.sqrt(np.mean(dist ** 2))),
               length_error_mm=info["length_mm"] - st.length_px * gen.mm_per_px,
               closed=recipe.closed, verdict=Inspector(recipe).inspect(scene.image).verdict)
    return row


def summary(rows: list[dict]) -> str:
    lines = []
    for pol in ("bright", "dark", None):
        rs = [r for r in rows if pol is None or r["polarity"] == pol]
        ok = [r for r in rs if "error" not in r]
        name = pol or "all"
        if not ok:
            lines.append(f"{name}: none of {len(rs)} taught")
            continue
        err = np.abs([r["width_error_mm"] for r in ok])
        rms = np.array([r["path_rms_px"] for r in ok])
        lines.append(
            f"{name}: taught {len(ok)} of {len(rs)}; width within 0.1 mm {int((err <= 0.1).sum())}"
            f" (median error {np.median(err):.3f} mm, largest {err.max():.3f}); path RMS median "
            f"{np.median(rms):.3f} px, largest {rms.max():.3f}, over 0.3 px {int((rms > 0.3).sum())}")
    off = [f"{r['seed']} {r['polarity']} {r['length_error_mm']:+.1f} mm" for r in rows
           if "error" not in r and abs(r["length_error_mm"]) > 5.0]
    ng = [f"{r['seed']} {r['polarity']}" for r in rows if r.get("verdict", "OK") != "OK"]
    failed = [f"{r['seed']} {r['polarity']}: {r['error']}" for r in rows if "error" in r]
    lines.append("length off by more than 5 mm: " + (", ".join(off) or "none"))
    lines.append("not OK with their own recipe: " + (", ".join(ng) or "none"))
    lines.append("not taught: " + ("; ".join(failed) or "none"))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="normal", choices=("clean", "normal", "hard"))
    ap.add_argument("--seed", type=int, default=40, help="first part's seed (default 40)")
    ap.add_argument("--n", type=int, default=16, help="seeds (default 16: 32 parts)")
    ap.add_argument("--size", help="WxH (default: the generator's 2048x1536)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="also write every part's result here")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    jobs = [(s, p) for s in range(args.seed, args.seed + args.n) for p in ("bright", "dark")]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_part, [j[0] for j in jobs], [j[1] for j in jobs],
                             [args.preset] * len(jobs), [size] * len(jobs)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    print(f"{args.preset}, seeds {args.seed}-{args.seed + args.n - 1}, bright and dark "
          f"(open on odd seeds), each taught from its own image")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
