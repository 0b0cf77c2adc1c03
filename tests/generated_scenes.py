"""Scenes of the generated sets, drawn again for a test: scene ``k`` of ``vision-qc generate
DIR --seed S --preset P --polarity B [more...]``."""

from __future__ import annotations

import argparse

import numpy as np


def generated_scene(seed, preset, polarity, k, *more):
    """Scene ``k`` (0-based) of ``vision-qc generate DIR --seed SEED --preset PRESET
    --polarity POLARITY [more]``, rendered: the same image and truth as ``ws_{k:04d}``."""
    from vision_qc.shell import generate
    from vision_qc.synth import SceneRenderer, sample_scene

    ap = argparse.ArgumentParser()
    generate.add_arguments(ap)
    kw = generate._check_args(ap.parse_args(["unused", "--seed", str(seed), "--preset", preset,
                                             "--polarity", polarity, *more]))
    return SceneRenderer(sample_scene(np.random.default_rng([seed, 1, k]), **kw)).render()
