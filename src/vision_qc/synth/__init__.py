"""Synthetic windshield scenes with exact ground truth, and dispensing clips."""

from .clip import DispensingClip
from .scene import (DEFECT_KINDS, PRESETS, DefectSpec, Nuisances, Scene, SceneRenderer, SceneSpec,
                    render_scene, sample_scene, sample_shape, windshield_path)

__all__ = ["DEFECT_KINDS", "PRESETS", "DefectSpec", "DispensingClip", "Nuisances", "Scene",
           "SceneRenderer", "SceneSpec", "render_scene", "sample_scene", "sample_shape",
           "windshield_path"]
