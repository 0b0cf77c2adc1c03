"""Live mode's per-frame loop step, at a 720p camera's size and at the cell camera's.

Run: ``pytest benchmarks/bench_live.py --benchmark-enable``. Each case times one frame of the
loop on a frame taken mid-dispense (a gap already laid): the progressive inspection with the
nozzle from the source (one inspection) or estimated from the bead's leading end (two), the
overlay with the status line, and encoding the annotated frame for ``--record``. The correct
verdict is checked outside the timed calls. The sustained frame rate of the whole loop
(threads, recording) is measured by running ``vision-qc live``: see ``docs`` and the issue.
"""

import dataclasses

import cv2
import pytest

from vision_qc.inspector import Inspector
from vision_qc.live import LiveInspector
from vision_qc.overlay import draw_overlay
from vision_qc.synth import DispensingClip, sample_scene
from vision_qc.synth.scene import DefectSpec

SIZES_WH = [(1280, 720), (2448, 2048)]
STATUS = "29.9 fps | latency 12 ms (p99 20) | frame 123 | dropped 0 | NG frames 4 | parts 1 OK 0 NG"


@pytest.fixture(scope="module", params=SIZES_WH, ids=lambda s: f"{s[0]}x{s[1]}")
def mid_dispense(request):
    """A clean part with one gap; the frame where the nozzle is 60 % along the path."""
    spec = sample_scene(11, preset="clean", size_wh=request.param, ng_fraction=0.0,
                        polarity="bright")
    length = DispensingClip(spec).length_mm
    spec = dataclasses.replace(spec, defects=(DefectSpec("gap", 0.3 * length, 20.0),))
    clip = DispensingClip(spec, speed_mm_s=length * 30.0 / 80, fps=30.0, rng=0)
    i = int(0.6 * clip.dispensing_frames)
    return clip, clip.frame(i), clip.dispensed_mm(i)


def _ready(clip, frame, nozzle_mm, known):
    live = LiveInspector(Inspector(clip.renderer.recipe))
    for _ in range(3):       # a few frames, as the loop would have seen: the estimate settles
        step = live.step(frame, nozzle_mm=nozzle_mm, nozzle_known=known)
    assert [d.type for d in step.result.defects] == ["gap"]
    assert step.progress.judged_mm < nozzle_mm
    return live


def test_step_nozzle_from_source(benchmark, mid_dispense):
    clip, frame, nozzle = mid_dispense
    live = _ready(clip, frame, nozzle, True)
    benchmark.extra_info.update(size=list(frame.shape[::-1]), stations=len(live.inspector))
    benchmark(live.step, frame, nozzle_mm=nozzle, nozzle_known=True)


def test_step_nozzle_estimated(benchmark, mid_dispense):
    clip, frame, nozzle = mid_dispense
    live = _ready(clip, frame, nozzle, False)
    benchmark(live.step, frame, nozzle_known=False)


def test_loop_step_with_overlay(benchmark, mid_dispense):
    """What the window and the recording show per frame: judge, then draw."""
    clip, frame, nozzle = mid_dispense
    live = _ready(clip, frame, nozzle, True)
    recipe = clip.renderer.recipe

    def one_frame():
        step = live.step(frame, nozzle_mm=nozzle, nozzle_known=True)
        return draw_overlay(frame, step.result, recipe, judged=step.judged, status_text=STATUS)

    img = benchmark(one_frame)
    assert img.shape == (*frame.shape[:2], 3)


def test_record_encode(benchmark, mid_dispense, tmp_path):
    """``--record``: one annotated frame into the mp4v writer (done in its own thread)."""
    clip, frame, nozzle = mid_dispense
    live = _ready(clip, frame, nozzle, True)
    step = live.step(frame, nozzle_mm=nozzle, nozzle_known=True)
    img = draw_overlay(frame, step.result, clip.renderer.recipe, judged=step.judged,
                       status_text=STATUS)
    h, w = img.shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    writer = cv2.VideoWriter(str(tmp_path / "rec.mp4"), fourcc, 30.0, (w, h))
    assert writer.isOpened()
    try:
        benchmark(writer.write, img)
    finally:
        writer.release()
