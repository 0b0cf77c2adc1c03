"""How many false calls would a part's width bias alone explain? (an oracle, not a method)

usage: width_bias_oracle.py DIR [--along]

DIR is a generated folder (images, their truth JSON, recipe.yaml). Each part is inspected
once; its width error against the truth, per station, gives the bias: the part's median
(default) or, with --along, a running median over ±100 stations (a bias that changes slowly
round the path). The part is then inspected again with both edges of every station moved
inwards by half that bias, and judged as usual. Prints the false rejects, false calls and
escapes before and after: what is left after is what the station-to-station scatter does.
The truth is read by the second inspection, so this bounds what removing the bias could
give; it is not a way to measure.
"""
import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

import vision_qc.inspector as inspector_module
from vision_qc.evaluation import match_defects
from vision_qc.recipe import load_recipe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--along", action="store_true")
    a = ap.parse_args(argv)
    folder = Path(a.dir)
    recipe = load_recipe(folder / "recipe.yaml")
    ins = inspector_module.Inspector(recipe)
    length = ins.length_mm if recipe.closed else None
    find_edges = inspector_module.find_edges
    shift = {"px": None}

    def biased_out(*args, **kw):
        e = find_edges(*args, **kw)
        d = shift["px"]
        if d is None:
            return e
        return dataclasses.replace(e, left_px=(e.left_px + d / 2).astype(e.left_px.dtype),
                                   right_px=(e.right_px - d / 2).astype(e.right_px.dtype))

    inspector_module.find_edges = biased_out
    stats = {k: [0, 0] for k in ("false_rejects", "false_calls", "escapes")}
    try:
        for path in sorted(folder.glob("ws_*.png")):
            truth = json.loads(path.with_suffix(".json").read_text())
            frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            shift["px"] = None
            res = ins.inspect(frame)
            true_w = np.asarray(truth["stations"]["width_mm"], float)
            w = np.asarray(res.width_mm, float)
            ok = np.isfinite(w) & (true_w > 0)
            err = np.where(ok, (w - true_w) / recipe.mm_per_px, np.nan)
            if a.along:
                n = len(err)
                idx = (np.arange(n)[:, None] + np.arange(-100, 101)[None]) % n
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)     # a window with no bead
                    bias = np.nan_to_num(np.nanmedian(err[idx], axis=1))
            else:
                bias = float(np.nanmedian(err)) if ok.any() else 0.0
            for k, d in enumerate((None, bias)):
                shift["px"] = d
                rec = ins.inspect(frame).to_record(str(path))
                pairs = match_defects(rec["defects"], truth["defects"], length_mm=length)
                stats["false_calls"][k] += len(rec["defects"]) - len(pairs)
                stats["false_rejects"][k] += rec["verdict"] == "NG" and truth["verdict"] == "OK"
                stats["escapes"][k] += rec["verdict"] == "OK" and truth["verdict"] == "NG"
    finally:
        inspector_module.find_edges = find_edges
    mode = "running median over ±100 stations" if a.along else "each part's median"
    print(f"{folder}: bias removed as {mode}")
    for k, (before, after) in stats.items():
        print(f"  {k}: {before} -> {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
