"""Shared benchmark inputs, built once per session from :mod:`vision_qc.benchmark` (the same
cases ``vision-qc bench`` times)."""

import cv2
import pytest

from vision_qc.benchmark import frame_case

SIZES_WH = [(2048, 1536), (2448, 2048)]


@pytest.fixture(scope="session", params=SIZES_WH, ids=lambda s: f"{s[0]}x{s[1]}")
def case(request):
    return frame_case(request.param)


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
