"""Edge finder, dark beads: a narrow terrace of the substrate between the bead and a step
beyond it (a bead laid off its path near the frit's edge) is the bead's background."""

from __future__ import annotations

import numpy as np
import pytest
from test_edges import STEP, analytic_bead

from vision_qc.engine.edges import find_edges


def _frame(terrace_px: float, *, fixture: float = 110.0, n: int = 64, seed: int = 0):
    """(M, n) uint8-like float32 profiles: a dark bead (26) from -6 to +6 px on the frit
    (66), the frit ending ``terrace_px`` beyond the bead's left edge at a step up to
    ``fixture`` (the glass edge), blurred by σ 0.8 px, with noise σ 0.7."""
    A = analytic_bead
    y = (66.0 + A(-6.0, 6.0, bg=0.0, height=-40.0)
         + A(-60.0, -6.0 - terrace_px, bg=0.0, height=fixture - 66.0))
    rng = np.random.default_rng(seed)
    return (y[:, None] + rng.normal(0.0, 0.7, (len(y), n))).astype(np.float32)


@pytest.mark.parametrize("terrace_px", [2.5, 3.0, 4.0])
def test_frit_terrace_beside_a_dark_bead_is_its_background(terrace_px):
    # the walk ran down the terrace (too short to be flat) and on over the glass edge to the
    # fixture, the level it found flat: the left edge landed on the glass edge, 2.5-4 px out
    # (a "wide" call on an offset stretch). The frit's level, the background on the right,
    # is the left edge's background too
    e = find_edges(_frame(terrace_px), step_px=STEP, bright=False, width_px=12.0,
                   smooth_stations=3)
    assert e.found.all()
    assert np.median(np.abs(e.left_px + 6.0)) <= 0.3
    assert np.median(np.abs(e.right_px - 6.0)) <= 0.3


@pytest.mark.parametrize("fixture", [80.0, 110.0])
def test_dark_bead_on_the_glass_edge_keeps_its_edge(fixture):
    # no terrace: the bead's left flank falls straight to the fixture, past the frit's level
    # on the right; the crossing moves along the same flank and the edge stays
    e = find_edges(_frame(0.0, fixture=fixture), step_px=STEP, bright=False, width_px=12.0,
                   smooth_stations=3)
    assert e.found.all()
    assert np.median(np.abs(e.left_px + 6.0)) <= 0.3
    assert np.median(np.abs(e.right_px - 6.0)) <= 0.3
