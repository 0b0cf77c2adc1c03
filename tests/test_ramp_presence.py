"""Presence on a glare ramp: a bead the background falls across (inspector.RAMP_STATIONS)."""

import numpy as np
import pytest

from vision_qc.inspector import RAMP_BOX, RAMP_MARGIN_PX, Inspector, _ramp_kernel

from glare_scenes import glare_ramp_scene

STEP = 0.5
T = np.arange(-20.0, 20.0 + STEP / 2, STEP)          # sample offsets across the path, px


def _profiles(background, bead=0.0, half_width=6.0, n=9, noise=0.0, seed=0):
    """(M, n) uint8 profiles: ``background(t)`` plus ``bead`` inside |t| <= half_width (edges
    blurred by 1 px), the same at every station, plus Gaussian noise."""
    inside = 0.5 * (np.tanh((half_width - np.abs(T)) / 1.0) + 1.0)
    col = background(T) + bead * inside
    prof = np.repeat(col[:, None], n, axis=1)
    prof = prof + np.random.default_rng(seed).normal(0.0, noise, prof.shape)
    return np.clip(np.round(prof), 0, 255).astype(np.uint8)


def _ramp(prof, *, bright, min_contrast=6.0, left=-6.0, right=6.0, half=3, closed=False):
    n = prof.shape[1]
    at = np.arange(n, dtype=np.int64)
    lo = np.full(n, left, np.float32)
    hi = np.full(n, right, np.float32)
    return _ramp_kernel(prof, float(T[0]), STEP, at, lo, hi, bright, half, closed, RAMP_MARGIN_PX,
                        RAMP_BOX * 12.0, min_contrast)


def _ramp_ref(prof, i, *, bright, min_contrast, left, right, half, closed):
    """The same test spelt out for station i: column means over the window, box means by
    the sample offsets, two lines and their meeting at the bead's centre."""
    n = prof.shape[1]
    cols = [(i + d) % n if closed else i + d for d in range(-half, half + 1)]
    cols = [j for j in cols if 0 <= j < n]
    p = prof[:, cols].astype(np.float64).mean(axis=1)
    box, m = RAMP_BOX * 12.0, RAMP_MARGIN_PX
    row = (T - T[0]) / STEP
    a0, a1, a2 = (np.floor((x - T[0]) / STEP) for x in (left - m - 2 * box, left - m - box, left - m))
    b0, b1, b2 = (np.ceil((x - T[0]) / STEP) for x in (right + m, right + m + box, right + m + 2 * box))
    c, q = 0.5 * (left + right), 0.25 * (right - left)
    c0, c1 = np.ceil((c - q - T[0]) / STEP), np.floor((c + q - T[0]) / STEP)

    def mean(r0, r1):                      # rows r0 .. r1 - 1
        sel = (row >= r0) & (row < r1)
        return p[sel].mean(), T[sel].mean()

    (lf, xlf), (ln, xln) = mean(a0, a1), mean(a1, a2)
    (rn, xrn), (rf, xrf) = mean(b0, b1), mean(b1, b2)
    bead = mean(c0, c1 + 1)[0]
    el = ln + (ln - lf) / (xln - xlf) * (c - xln)
    er = rn + (rn - rf) / (xrn - xrf) * (c - xrn)
    stand = (bead - 0.5 * (el + er)) * (1 if bright else -1)
    return stand >= min_contrast and abs(el - er) < stand and abs(ln - rn) >= 0.5 * stand


def test_dark_bead_on_a_steep_ramp_stands_out():
    prof = _profiles(lambda t: 100.0 - 2.5 * t, bead=-15.0)
    assert _ramp(prof, bright=False).all()


def test_bright_bead_on_a_steep_ramp_stands_out():
    prof = _profiles(lambda t: 60.0 + 2.5 * t, bead=+15.0)
    assert _ramp(prof, bright=True).all()


def test_a_step_without_bead_is_no_bead():
    # the glass edge: each flank flat, at its own level
    prof = _profiles(lambda t: np.where(t < 0, 120.0, 80.0))
    assert not _ramp(prof, bright=False).any()
    assert not _ramp(prof, bright=True).any()


def test_a_ramp_without_bead_is_no_bead():
    prof = _profiles(lambda t: 100.0 - 2.5 * t, noise=3.0)
    assert not _ramp(prof, bright=False).any()
    assert not _ramp(prof, bright=True).any()


def test_on_flat_ground_the_usual_rule_decides():
    # a bead on flat background is the usual presence rule's; this test leaves it alone
    prof = _profiles(lambda t: 100.0 + 0.0 * t, bead=-15.0)
    assert not _ramp(prof, bright=False).any()


def test_the_wrong_polarity_does_not_stand_out():
    prof = _profiles(lambda t: 100.0 - 2.5 * t, bead=-15.0)
    assert not _ramp(prof, bright=True).any()


def test_edges_too_near_the_profile_end_are_not_tested():
    prof = _profiles(lambda t: 100.0 - 2.5 * t, bead=-15.0)
    assert not _ramp(prof, bright=False, left=-16.0, right=6.0).any()


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_kernel_equals_the_spelt_out_test(seed, closed):
    rng = np.random.default_rng(seed)
    slope, bead = rng.uniform(-3, 3), rng.uniform(-20, 20)
    prof = _profiles(lambda t: 110.0 + slope * t, bead=bead, n=12, noise=4.0, seed=seed)
    bright = bead > 0
    left, right = -6.0 + rng.uniform(-1, 1), 6.0 + rng.uniform(-1, 1)
    got = _ramp(prof, bright=bright, left=left, right=right, closed=closed, min_contrast=5.0)
    want = [_ramp_ref(prof, i, bright=bright, min_contrast=5.0, left=left, right=right, half=3,
                      closed=closed) for i in range(prof.shape[1])]
    assert list(got) == want


@pytest.mark.parametrize("seed", [1, 2])
def test_a_gap_on_a_ramp_stays_one_gap(seed):
    # what the ramp test must never do: fill a real gap (x = 130..170 px: 55..75 mm)
    frame, recipe = glare_ramp_scene(gap=True, seed=seed)
    res = Inspector(recipe).inspect(frame)
    assert [d.type for d in res.defects] == ["gap"], res.defects
    assert res.defects[0].start_mm == pytest.approx(55.0, abs=1.0)
    assert res.defects[0].end_mm == pytest.approx(75.0, abs=1.0)


def test_whole_bead_on_a_ramp_is_ok():
    frame, recipe = glare_ramp_scene(gap=False)
    assert Inspector(recipe).inspect(frame).verdict == "OK"


def _without_ramp_test(monkeypatch):
    monkeypatch.setattr(Inspector, "_read_again_where_misread",
                        lambda self, prof, edges, judged, present, w, o, *a:
                        (present, w, o, edges.left_px, edges.right_px))


def test_hard_scene_bead_under_glare_ramp_is_present(monkeypatch):
    # hard dark seed 7 scene 99 (as `vision-qc generate DIR --seed 7 --preset hard --polarity
    # dark` draws it): glare lays a ramp across the bead at 340-385 mm along the path (the
    # background falls from 121 to 77 grey levels across the profile, the bead 15 below its
    # own); the usual rule read false gaps there
    from vision_qc.shell import generate
    from vision_qc.synth import SceneRenderer, sample_scene
    import argparse

    ap = argparse.ArgumentParser()
    generate.add_arguments(ap)
    kw = generate._check_args(ap.parse_args(["unused", "--seed", "7", "--preset", "hard",
                                             "--polarity", "dark"]))
    scene = SceneRenderer(sample_scene(np.random.default_rng([7, 1, 99]), **kw)).render()
    assert scene.truth["verdict"] == "OK"
    ins = Inspector(scene.recipe)
    res = ins.inspect(scene.image)
    _without_ramp_test(monkeypatch)
    usual = Inspector(scene.recipe).inspect(scene.image)
    stretch = (ins.arc_mm >= 340.0) & (ins.arc_mm <= 385.0)
    assert res.present[stretch].sum() >= usual.present[stretch].sum() + 10
    # and nothing that was present is lost
    assert not (usual.present & ~res.present).any()
