"""Synthetic windshield scenes with exact ground truth, and dispensing clips."""

from .scene import (PRESETS, DefectSpec, Nuisances, Scene, SceneRenderer, SceneSpec,
                    render_scene, sample_scene, windshield_path)

__all__ = ["PRESETS", "DefectSpec", "Nuisances", "Scene", "SceneRenderer", "SceneSpec",
           "render_scene", "sample_scene", "windshield_path"]
