"""Accuracy and speed probe on generated scenes.

usage: accuracy_probe.py PRESET N [WIDTH HEIGHT] [--first SEED]

Per scene: width bias / median |error| / p95 |error| (px) at stations away from defects, the
median time per frame over a few calls on one thread, truth defects (T) vs found defects (F),
``<<<<`` where the defect types differ. Summary: escapes (NG part called OK), false rejects
(OK part called NG), false alarms (found defects overlapping no truth defect of the same type)
per image, missed truth defects, gap-end error.
"""
import sys
import time

import cv2
import numpy as np

from vision_qc.inspector import Inspector
from vision_qc.synth import SceneRenderer, sample_scene

cv2.setNumThreads(1)
args = sys.argv[1:]
first = 0
if "--first" in args:
    i = args.index("--first")
    first = int(args[i + 1])
    del args[i:i + 2]
preset = args[0]
n = int(args[1])
size = (int(args[2]), int(args[3])) if len(args) >= 4 else (2048, 1536)


def overlap(a0, a1, b0, b1, length, slack):
    """Arc intervals [a0, a1], [b0, b1] (may wrap) overlap within ``slack`` mm."""
    def segs(x0, x1):
        return [(x0, x1)] if x0 <= x1 else [(x0, length), (0.0, x1)]
    return any(p0 - slack <= q1 and q0 - slack <= p1 for p0, p1 in segs(a0, a1) for q0, q1 in segs(b0, b1))


errs, merr, times = [], [], []
escapes = false_rejects = false_alarms = missed = n_truth = 0
gap_end_err = []
for seed in range(first, first + n):
    spec = sample_scene(seed, preset=preset, ng_fraction=0.7, size_wh=size)
    sc = SceneRenderer(spec).render()
    insp = Inspector(sc.recipe)
    res = insp.inspect(sc.image)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        insp.inspect(sc.image)
        ts.append((time.perf_counter() - t0) * 1e3)
    times.append(np.median(ts))
    tw = np.array(sc.truth["stations"]["width_mm"])
    to = np.array(sc.truth["stations"]["offset_mm"])
    mm = spec.mm_per_px
    length = insp.length_mm
    ok = res.present & (tw > 0)
    # compare only stations far from defects: truth width within tolerance
    good = ok & (np.abs(tw - spec.width_mm) < 2)
    e = (res.width_mm[good] - tw[good]) / mm
    if len(e) == 0:
        e = np.array([np.nan])
    errs.append(e)
    merr.append(np.nanmean(res.width_mm[good]) - tw[good].mean())
    off_e = (res.offset_mm[good] - to[good]) / mm
    tdl = sc.truth["defects"]
    td = [(d["type"], round(d["start_mm"], 1), round(d["end_mm"], 1)) for d in tdl]
    fd = [(d.type, round(d.start_mm, 1), round(d.end_mm, 1)) for d in res.defects]
    fd_show = fd if len(fd) <= 6 else fd[:6] + ["... %d in all" % len(fd)]
    flag = "" if sorted(x[0] for x in td) == sorted(x[0] for x in fd) else "  <<<<"
    if tdl and not res.defects:
        escapes += 1
    if not tdl and res.defects:
        false_rejects += 1
    n_truth += len(tdl)
    for d in res.defects:
        if not any(t["type"] == d.type and overlap(t["start_mm"], t["end_mm"], d.start_mm, d.end_mm, length, 1.0)
                   for t in tdl):
            false_alarms += 1
    for t in tdl:
        hit = [d for d in res.defects
               if d.type == t["type"] and overlap(t["start_mm"], t["end_mm"], d.start_mm, d.end_mm, length, 1.0)]
        if not hit:
            missed += 1
        elif t["type"] == "gap":
            d = hit[0]
            for a, b in ((t["start_mm"], d.start_mm), (t["end_mm"], d.end_mm)):
                gap_end_err.append(abs((a - b + length / 2) % length - length / 2) / mm)
    print(seed, spec.polarity, "bias %.3f px  med|e| %.3f p95 %.3f  off %.3f" % (
        np.median(e), np.median(np.abs(e)), np.percentile(np.abs(e), 95), np.median(off_e)),
        "%.1fms" % times[-1], "T", td, "F", fd_show, flag, flush=True)
e = np.concatenate(errs)
print("ALL %s %dx%d n=%d: bias %.3f med|e| %.3f p95 %.3f px; mean-width err max %.3f mm; "
      "escapes %d, false rejects %d, false alarms %d (%.3f/img), missed %d/%d, gap-end err max %s px; "
      "%.2f ms/frame median" % (
          preset, size[0], size[1], n, np.median(e), np.median(np.abs(e)), np.percentile(np.abs(e), 95),
          np.max(np.abs(merr)), escapes, false_rejects, false_alarms, false_alarms / n, missed, n_truth,
          "%.2f" % max(gap_end_err) if gap_end_err else "-", np.median(times)))
