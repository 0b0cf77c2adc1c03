"""Edge finder, bright beads: a blob's gentle dome joined to the crest is bead material (its
rim is the edge), a bright speck's flat top on the flank is not (the neighbours along the
path tell the two apart)."""

from __future__ import annotations

import numpy as np
import pytest
from test_edges import STEP, analytic_bead

from vision_qc.engine.edges import find_edges


def _frame(add, a: int, b: int, *, n: int = 80, seed: int = 0):
    """(M, n) float32 profiles: a bright bead (120) from -6 to +6 px on the frit (40), blurred
    by σ 0.8 px, with ``add`` (a profile) added at stations ``a .. b - 1``; noise σ 0.7."""
    y = np.repeat((40.0 + analytic_bead(-6.0, 6.0, bg=0.0, height=80.0))[:, None], n, axis=1)
    y[:, a:b] += add[:, None]
    rng = np.random.default_rng(seed)
    return (y + rng.normal(0.0, 0.7, y.shape)).astype(np.float32)


@pytest.mark.parametrize("rim", [-11.0, -12.0])
def test_blob_dome_beside_a_bright_bead_is_read_to_its_rim(rim):
    # a blob on the left flank over 40 stations: a dome half the bead's height at the flank,
    # falling gently (3 grey levels per px, flat by the walk's test) to its rim 5-6 px out.
    # The walk took the dome's gentle slope for the background and read the bead at its
    # nominal width: a wide defect measured narrow (an escape). The dome is there at the
    # neighbours along the path too, so it is bead material and the edge is its rim
    blob = analytic_bead(rim, 2.0, bg=0.0, height=40.0, slope=3.0)
    e = find_edges(_frame(blob, 20, 60), step_px=STEP, bright=True, width_px=12.0,
                   smooth_stations=3)
    assert e.found.all()
    assert np.median(np.abs(e.left_px[25:55] - rim)) <= 0.5
    assert np.median(np.abs(e.left_px[:15] + 6.0)) <= 0.3
    assert np.median(np.abs(e.right_px - 6.0)) <= 0.3


@pytest.mark.parametrize("height,lo,hi,w", [(32.0, -11.0, -6.5, 5), (32.0, -10.5, -7.0, 4),
                                           (40.0, -11.5, -7.0, 5)])
def test_bright_speck_on_a_bright_beads_flank_is_not_bead(height, lo, hi, w):
    # a bright speck touching the flank at 4-5 stations, its top flat: on one profile it is
    # the same terrace as a blob's dome, but a speck is a disc and reaches no farther along
    # the path than across: at the neighbours as far away as it is wide, the profile there
    # is the substrate, and the edge stays on the bead's flank
    speck = analytic_bead(lo, hi, bg=0.0, height=height)
    e = find_edges(_frame(speck, 30 - w // 2, 30 - w // 2 + w), step_px=STEP, bright=True,
                   width_px=12.0, smooth_stations=3)
    assert e.found.all()
    assert np.max(np.abs(e.left_px + 6.0)) <= 0.6
