"""Where a set's per-station width (or offset) error comes from, and the noise model of the
longer window along the path (``inspector.WIDTH_WINDOWS``, ``ICI_NOISE``).

usage: width_scatter.py DIR [--offset] [--workers N]

DIR is a generated folder (images, their truth JSON, recipe.yaml). Each OK part (no defect
in its truth, a bead at every station) is inspected with the longer window switched off, so
that every station reads its 5-station median. Per part, against the truth:

- the error's p95 as it is, less the part's own median (its bias), and less a 101-station
  running median as well (what changes slowly round the path): what is left is the scatter
  from one station to the next;
- s, the robust σ of the step from one station's raw reading to the next
  (``inspector._step_sigma_of``), and the error's robust σ (less a 151-station running
  median) of the 5-station medians and of their means over each of ``WIDTH_WINDOWS``
  stations (11, 25, 51): times √k
  over s, the constant the window's rule takes as ICI_NOISE (3.5).

Prints the p95s over all the parts' stations, the p90 of the parts' own biases, and the
ratios' medians over the parts.
"""
import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from vision_qc.inspector import MEDIAN_STATIONS, WIDTH_WINDOWS

_STATE: dict = {}


def _running(x: np.ndarray, k: int, closed: bool, fn) -> np.ndarray:
    h = k // 2
    pad = np.concatenate([x[-h:], x, x[:h]]) if closed else np.pad(x, h, mode="edge")
    return fn(np.lib.stride_tricks.sliding_window_view(pad, k), axis=1)


def _part(args):
    path, offset = args
    import vision_qc.inspector as inspector_module
    from vision_qc.recipe import load_recipe

    if "insp" not in _STATE:
        inspector_module._ici_along = lambda values, *rest: values     # 5-station medians
        recipe = load_recipe(Path(path).parent / "recipe.yaml")
        _STATE["insp"] = inspector_module.Inspector(recipe)
        _STATE["closed"] = recipe.closed
        _STATE["sigma"] = inspector_module._step_sigma_of
    truth = json.loads(Path(path).with_suffix(".json").read_text())
    if truth["defects"]:
        return None
    res = _STATE["insp"].inspect(cv2.imread(path, cv2.IMREAD_UNCHANGED))
    if not res.present.all():
        return None
    mm = truth["spec"]["mm_per_px"]
    key = "offset_mm" if offset else "width_mm"
    true = np.asarray(truth["stations"][key], float) / mm
    m5 = np.asarray(getattr(res, key), float) / mm
    raw = (res.left_px + res.right_px) * np.float32(0.5) if offset else res.right_px - res.left_px
    closed = _STATE["closed"]
    err = m5 - true
    bias = float(np.median(err))
    slow = _running(err, 101, closed, np.median)
    s = float(_STATE["sigma"](raw.astype(np.float32), res.present))
    ratios = []
    for k in (MEDIAN_STATIONS, *WIDTH_WINDOWS):
        est = m5 if k == MEDIAN_STATIONS else _running(m5, k, closed, np.mean)
        e = est - true
        e = e - _running(e, 151, closed, np.median)
        ratios.append(1.4826 * np.median(np.abs(e)) * np.sqrt(k) / s if s > 0 else np.nan)
    return {"err": err, "less_bias": err - bias, "less_slow": err - slow, "bias": bias,
            "ratios": ratios}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--offset", action="store_true", help="the offset instead of the width")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    files = sorted(str(p) for p in Path(a.dir).glob("*.png"))
    with ProcessPoolExecutor(a.workers) as pool:
        parts = [p for p in pool.map(_part, [(f, a.offset) for f in files]) if p]
    if not parts:
        print("no OK part with a bead at every station", file=sys.stderr)
        return 1
    pooled = lambda key: float(np.percentile(np.abs(np.concatenate([p[key] for p in parts])),
                                             95))                      # noqa: E731
    ratios = np.nanmedian(np.array([p["ratios"] for p in parts]), axis=0)
    what = "offset" if a.offset else "width"
    print(f"{a.dir}: {len(parts)} OK parts, {what} error per station (px, 5-station medians)")
    print(f"  p95 over all their stations {pooled('err'):.3f}; less each part's bias "
          f"{pooled('less_bias'):.3f}; less a 101-station running median "
          f"{pooled('less_slow'):.3f}")
    print(f"  parts' own bias: p90 of |bias| "
          f"{np.percentile(np.abs([p['bias'] for p in parts]), 90):.3f}")
    windows = ", ".join(map(str, WIDTH_WINDOWS))
    print(f"  robust σ × √k / s of the 5-station median and of its means over {windows} "
          "stations: " + ", ".join(f"{r:.2f}" for r in ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
