"""Shared benchmark inputs: generated frames and their recipes, built once per session."""

import cv2
import pytest

from vision_qc.synth import SceneRenderer, sample_scene

SIZES_WH = [(2048, 1536), (2448, 2048)]


@pytest.fixture(scope="session", params=SIZES_WH, ids=lambda s: f"{s[0]}x{s[1]}")
def scene(request):
    spec = sample_scene(11, preset="normal", size_wh=request.param, ng_fraction=1.0)
    return SceneRenderer(spec).render()


@pytest.fixture(params=[1, 0], ids=["1thread", "cvthreads"])
def cv_threads(request):
    """One OpenCV thread (the budget's case) or OpenCV's default."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(request.param if request.param else -1)
    yield request.param
    cv2.setNumThreads(before)


def pytest_addoption(parser):
    parser.addoption("--budget-check", action="store_true",
                     help="fail when the whole-frame median exceeds vision_qc.budget.FRAME_BUDGET_MS")
