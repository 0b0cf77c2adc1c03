"""Where a generated set's false calls sit, and whether the bead was there to be seen.

usage: false_call_census.py DIR --seed S --preset P --polarity bright|dark [--list]

DIR is a folder made by ``vision-qc generate DIR --n N --seed S --preset P --polarity ...``
(the same seed, preset and polarity; default size, no pose). Each part is inspected with
DIR/recipe.yaml; a found defect that matches no truth defect of its type (``vision-qc eval``'s
matching) is a false call. Each part is then rendered again from the generator's own spec
without noise or compression, with and without its bead, and:

- per false call, at its middle station: the background without the bead just beyond the
  bead's edges on either side (half the nominal width plus 3 px from the true centre line)
  against the bead's own contrast there (with minus without the bead, at the centre). "ramp" when the background
  differs from one flank to the other by more than the bead's contrast, "half-ramp" by more
  than half of it, else "flat"; the same for 100 stations per part taken at random (the base
  rate);
- per OK part: the bead's contrast over the sensor noise (read noise and shot noise at the
  noise-free level) over the middle half of its width, summed over a ``min_defect_mm``
  stretch against a flank patch of the same area: the SNR of an ideal detector of a gap of
  the shortest length the recipe judges; the weakest stretch of the part is printed.

Prints counts per defect type and class, the base rate, the SNR summary and, with --list,
every false call and every OK part's weakest SNR.
"""
import argparse
import collections
import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from vision_qc.evaluation import match_defects
from vision_qc.inspector import Inspector
from vision_qc.recipe import load_recipe
from vision_qc.shell import generate
from vision_qc.synth.scene import SceneRenderer, sample_scene


def _sample(img, st, j, ts):
    xs = (st.xy[j, 0][..., None] + st.normal_xy[j, 0][..., None] * ts).astype(np.float32)
    ys = (st.xy[j, 1][..., None] + st.normal_xy[j, 1][..., None] * ts).astype(np.float32)
    return cv2.remap(img, np.atleast_2d(xs), np.atleast_2d(ys), cv2.INTER_LINEAR)


def _ramp_class(bead, bare, st, j, offset_px, width_px):
    edge = width_px / 2 + 3.0
    ts = np.array([-edge, 0.0, edge]) + offset_px
    bg = _sample(bare, st, j, ts)[0]
    contrast = abs(float(_sample(bead, st, j, ts)[0][1] - bg[1]))
    step = abs(float(bg[2] - bg[0]))
    return "ramp" if step > contrast else ("half-ramp" if step > contrast / 2 else "flat"), contrast


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--polarity", required=True, choices=("bright", "dark"))
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args(argv)
    folder = Path(a.dir)
    gp = argparse.ArgumentParser()
    generate.add_arguments(gp)
    scene_kw = generate._check_args(gp.parse_args([str(folder), "--seed", str(a.seed), "--preset",
                                                   a.preset, "--polarity", a.polarity]))
    recipe = load_recipe(folder / "recipe.yaml")
    ins = Inspector(recipe)
    st, mm = ins.stations, recipe.mm_per_px
    width_px = recipe.width_mm / mm
    length = ins.length_mm if recipe.closed else None
    spacing_px = st.length_px / len(st)
    stretch = max(int(round(recipe.min_defect_mm / mm / spacing_px)), 1)
    counts, base = collections.Counter(), collections.Counter()
    weakest, false_rejects, lines = [], set(), []
    images = sorted(folder.glob("ws_*.png"))
    for path in images:
        i = int(path.stem.split("_")[1])
        truth = json.loads(path.with_suffix(".json").read_text())
        frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        rec = ins.inspect(frame).to_record(str(path))
        pairs = match_defects(rec["defects"], truth["defects"], length_mm=length)
        matched = {f for f, _ in pairs}
        false = [d for k, d in enumerate(rec["defects"]) if k not in matched]
        if rec["verdict"] == "NG" and truth["verdict"] == "OK":
            false_rejects.add(path.name)
        if not false and truth["verdict"] != "OK":
            continue
        spec = sample_scene(np.random.default_rng([a.seed, 1, i]), **scene_kw)
        if not np.array_equal(SceneRenderer(spec).render().image, frame):
            print(f"{path.name}: not the scene seed {a.seed} draws (other size, pose or "
                  "arguments?)", file=sys.stderr)
            return 2
        quiet = dataclasses.replace(spec.nuisances, noise_sigma=0.0, shot_gain=0.0, jpeg_quality=0)
        r0 = SceneRenderer(dataclasses.replace(spec, nuisances=quiet))
        bead = r0.sensor(r0.compose()).astype(np.float32)
        bare = r0.sensor(r0.compose(0.0)).astype(np.float32)
        offset_px = np.asarray(truth["stations"]["offset_mm"], float) / mm
        for d in false:
            mid = d["start_mm"] + ((d["end_mm"] - d["start_mm"]) % length if length
                                   else d["end_mm"] - d["start_mm"]) / 2
            j = int(np.argmin(np.abs(ins.arc_mm - (mid % length if length else mid))))
            cls, c = _ramp_class(bead, bare, st, j, offset_px[j], width_px)
            counts[(d["type"], cls)] += 1
            lines.append(f"{path.name} {d['type']} {d['start_mm']:.1f}-{d['end_mm']:.1f} mm "
                         f"{cls} (bead {c:.1f} grey levels)")
        rng = np.random.default_rng(i)
        for j in rng.choice(len(st), min(100, len(st)), replace=False):
            cls, c = _ramp_class(bead, bare, st, j, offset_px[j], width_px)
            if c >= 1.0:
                base[cls] += 1
        if truth["verdict"] == "OK":
            ts = np.linspace(-width_px / 4, width_px / 4, 7)
            xs = st.xy[:, 0][:, None] + st.normal_xy[:, 0][:, None] * (ts[None] + offset_px[:, None])
            ys = st.xy[:, 1][:, None] + st.normal_xy[:, 1][:, None] * (ts[None] + offset_px[:, None])
            xs, ys = xs.astype(np.float32), ys.astype(np.float32)
            c = np.abs(cv2.remap(bead - bare, xs, ys, cv2.INTER_LINEAR)).mean(1)
            level = cv2.remap(bead, xs, ys, cv2.INTER_LINEAR).mean(1)
            nz = spec.nuisances
            sigma = np.sqrt(nz.noise_sigma ** 2 + nz.shot_gain * np.maximum(level, 0.0))
            per = c / sigma * np.sqrt(width_px / 2) / np.sqrt(2)     # per px along the path
            padded = np.r_[per[-stretch:], per, per[:stretch]] if recipe.closed else per
            run = np.convolve(padded, np.ones(stretch), "valid") / np.sqrt(stretch)
            weakest.append((float(run.min()), path.name))
    total = sum(counts.values())
    print(f"{folder}: {len(images)} parts, {len(false_rejects)} false rejects, {total} false calls")
    for kind in ("gap", "thin", "wide", "offset", "blob"):
        row = {cls: counts[(kind, cls)] for cls in ("ramp", "half-ramp", "flat")}
        if sum(row.values()):
            print(f"  {kind:6s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    all_row = {cls: sum(v for (k, c), v in counts.items() if c == cls)
               for cls in ("ramp", "half-ramp", "flat")}
    print("  all    " + "  ".join(f"{k} {v}" for k, v in all_row.items()))
    nb = sum(base.values())
    if nb:
        print("  random stations: " + "  ".join(f"{k} {100 * base[k] / nb:.1f} %"
                                               for k in ("ramp", "half-ramp", "flat")))
    if weakest:
        snr = np.array([w for w, _ in weakest])
        print(f"  OK parts' weakest {recipe.min_defect_mm:g} mm stretch, ideal detector SNR: "
              f"min {snr.min():.1f}, median {np.median(snr):.1f} ({len(snr)} parts)")
    if a.list:
        lines += [f"{name} weakest SNR {w:.1f}{'  false reject' if name in false_rejects else ''}"
                  for w, name in sorted(weakest)]
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
