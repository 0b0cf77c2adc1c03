"""Alignment time per frame: locating a shifted and turned part, on the bead alone and on a
taught reference edge, and the whole aligned inspection.

Run: ``pytest benchmarks/bench_align.py --benchmark-enable``. Inputs are built once per
session; correctness (the pose against the generator's truth) is checked outside the timed
calls; the median is compared with :data:`vision_qc.engine.align.ALIGN_AIM_MS` only with
``--budget-check``.
"""

import dataclasses

import cv2
import numpy as np
import pytest

from vision_qc.engine.align import ALIGN_AIM_MS, Aligner
from vision_qc.geometry import build_stations
from vision_qc.inspector import Inspector
from vision_qc.synth import SceneRenderer, sample_scene

SIZES_WH = [(2048, 1536), (2448, 2048)]
POSE = (31.0, -24.0, 2.2)      # dx_px, dy_px, angle_deg: well inside ±40 px, ±3°


@pytest.fixture(scope="session", params=SIZES_WH, ids=lambda s: f"{s[0]}x{s[1]}")
def posed_scene(request):
    spec = sample_scene(12, preset="normal", size_wh=request.param, ng_fraction=1.0)
    return spec, SceneRenderer(dataclasses.replace(spec, pose=POSE)).render()


def _reference(spec, recipe):
    st = build_stations(recipe.points_xy, closed=recipe.closed, spacing_px=1.0)
    pts = st.xy[::8] - spec.inset_mm / spec.mm_per_px * st.normal_xy[::8]
    return {"edge": {"points": pts.tolist(), "closed": True, "polarity": "falling"}}


@pytest.mark.parametrize("track", ["bead", "edge"])
def test_align(benchmark, posed_scene, track, cv_threads, request):
    spec, sc = posed_scene
    r = sc.recipe
    st = build_stations(r.points_xy, closed=r.closed, spacing_px=1.0)
    al = Aligner(st, size_wh=r.image_size_wh, bright=r.polarity == "bright",
                 width_px=r.width_mm / r.mm_per_px,
                 reference=_reference(spec, r) if track == "edge" else None)
    pose = al.estimate(sc.image)
    tol_px = 0.2 if track == "edge" else 0.6
    assert abs(pose.dx_px - POSE[0]) <= tol_px and abs(pose.dy_px - POSE[1]) <= tol_px
    assert abs(pose.angle_deg - POSE[2]) <= (0.02 if track == "edge" else 0.05)
    benchmark.extra_info.update(size=list(r.image_size_wh), aim_ms=ALIGN_AIM_MS, track=track,
                                error_px=[pose.dx_px - POSE[0], pose.dy_px - POSE[1]],
                                error_deg=pose.angle_deg - POSE[2])
    benchmark(al.estimate, sc.image)
    if request.config.getoption("--budget-check") and benchmark.stats is not None:
        median_ms = benchmark.stats.stats.median * 1e3
        assert median_ms <= ALIGN_AIM_MS, f"median {median_ms:.2f} ms over the {ALIGN_AIM_MS} ms aim"


@pytest.mark.parametrize("track", ["bead", "edge"])
def test_align_after_a_frame(benchmark, posed_scene, track):
    """The pose as the inspection pays for it: each timed call follows a whole aligned
    inspection (untimed), so the frame's pixels and the aligner's templates are no longer in
    the nearer caches (compare with ``test_align``, called back to back)."""
    spec, sc = posed_scene
    recipe = sc.recipe.replace(align=True,
                               reference=_reference(spec, sc.recipe) if track == "edge" else None)
    insp = Inspector(recipe)
    pose = insp.aligner.estimate(sc.image)
    assert abs(pose.angle_deg - POSE[2]) <= (0.02 if track == "edge" else 0.05)
    benchmark.extra_info.update(size=list(sc.recipe.image_size_wh), track=track)

    def after_a_frame():
        insp.inspect(sc.image)          # returns nothing: pedantic would take it for the args

    benchmark.pedantic(insp.aligner.estimate, args=(sc.image,), setup=after_a_frame,
                       rounds=100, warmup_rounds=2)


def test_inspect_aligned_whole_frame(benchmark, posed_scene):
    """The whole inspection with ``align: true`` (alignment, sampling at the moved stations, edges,
    judging): compare with bench_inspect's unaligned whole frame."""
    spec, sc = posed_scene
    insp = Inspector(sc.recipe.replace(align=True, reference=_reference(spec, sc.recipe)))
    res = insp.inspect(sc.image)
    assert res.pose is not None and abs(res.pose["angle_deg"] - POSE[2]) <= 0.02
    benchmark.extra_info.update(size=list(sc.recipe.image_size_wh), stations=len(insp),
                                verdict=res.verdict, truth=sc.truth["verdict"])
    benchmark(insp.inspect, sc.image)


def test_sample_posed(benchmark, posed_scene):
    """Sampling every profile at the stations moved by the pose (the inspector's compiled
    sampler), checked outside the timed call against one cv2.remap of the moved maps."""
    from vision_qc.engine.align import move_maps, pose_matrix
    from vision_qc.engine.sampling import sample_profiles, sample_stations

    _, sc = posed_scene
    insp = Inspector(sc.recipe)
    m = pose_matrix(*POSE, center_xy=np.array(sc.recipe.image_size_wh) / 2.0)
    gray = sc.image if sc.image.ndim == 2 else cv2.cvtColor(sc.image, cv2.COLOR_BGR2GRAY)
    prof = benchmark(sample_stations, gray, insp.sampler, m)
    assert (prof == sample_profiles(gray, move_maps(insp.maps, m))).all()


def test_bead_step_fit(benchmark, posed_scene):
    """The bead track's final step: both edges of every fine profile fitted as blurred steps
    (the blur chosen, then the coarse and fine candidate searches), on the fine profiles at
    the found pose."""
    from vision_qc.engine.align import _sample_moved, _step_centres

    _, sc = posed_scene
    r = sc.recipe
    st = build_stations(r.points_xy, closed=r.closed, spacing_px=1.0)
    al = Aligner(st, size_wh=r.image_size_wh, bright=r.polarity == "bright",
                 width_px=r.width_mm / r.mm_per_px)
    fi = al.fine
    prof = _sample_moved(sc.image, fi.st, fi.t_px, fi.strip_px, al.estimate(sc.image).matrix)
    keep = np.ones(len(prof), bool)
    centres, _ = benchmark(_step_centres, prof, fi.sign, *fi.step, keep)
    assert np.count_nonzero(np.isfinite(centres)) >= 0.85 * len(prof)
    benchmark.extra_info.update(size=list(r.image_size_wh), profiles=len(prof))
