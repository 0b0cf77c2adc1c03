"""Scene generation time: building a scene's layers and rendering it, and one clip frame.

Run: ``pytest benchmarks/bench_synth.py --benchmark-enable``. The spec is drawn outside the
timed call; each round times ``SceneRenderer(spec)`` (part, frit, bead coverage and shading)
plus ``render()`` (compose, optics and sensor, truth) of one 2048×1536 scene.
"""

import numpy as np
import pytest

from vision_qc.synth import PRESETS, DispensingClip, SceneRenderer, sample_scene

SIZE_WH = (2048, 1536)


@pytest.mark.parametrize("preset", PRESETS)
def test_scene_build_and_render(benchmark, preset):
    spec = sample_scene(7, preset=preset, size_wh=SIZE_WH, ng_fraction=1.0)

    def build_and_render():
        return SceneRenderer(spec).render()

    scene = benchmark.pedantic(build_and_render, rounds=5, iterations=1, warmup_rounds=1)
    assert scene.image.shape == SIZE_WH[::-1] and scene.image.dtype == np.uint8
    assert scene.truth["verdict"] == "NG"


@pytest.mark.parametrize("preset", PRESETS)
def test_clip_frame(benchmark, preset):
    """One dispensing-clip frame: compose the bead laid so far, draw the nozzle, sensor."""
    clip = DispensingClip(sample_scene(7, preset=preset, size_wh=SIZE_WH), rng=0)
    middle = clip.dispensing_frames // 2
    clip.frame(middle)          # builds the layers that every frame reuses
    frame = benchmark(clip.frame, middle)
    assert frame.shape == SIZE_WH[::-1]
