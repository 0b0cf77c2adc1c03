"""Alignment's speed-ups give the same floats as the plain computation they replace: the
step model's coarse search over all windows at once equals it one window at a time, and the
bead's step centres equal a search window by window, candidate by candidate."""

import dataclasses

import numpy as np
import pytest

from vision_qc.engine.align import (
    _STEP_COARSE,
    _STEP_FINE,
    _STEP_SIGMA_EVERY,
    Aligner,
    _sample,
    _step_centres,
    _step_rss,
    _step_rss_coarse,
    _upper_median,
    pose_matrix,
)
from vision_qc.geometry import build_stations
from vision_qc.synth import SceneRenderer, sample_scene

SIZE = (1280, 1024)
POSE = (23.0, -31.0, 1.7)


@pytest.fixture(scope="module", params=["bright", "dark"])
def fine_case(request):
    """(fine stage, fine profiles at the true pose) of a posed frame."""
    spec = dataclasses.replace(sample_scene(103, preset="normal", size_wh=SIZE,
                                            polarity=request.param), pose=POSE)
    sc = SceneRenderer(spec).render()
    r = sc.recipe
    st = build_stations(r.points_xy, closed=r.closed, spacing_px=1.0)
    al = Aligner(st, size_wh=r.image_size_wh, bright=r.polarity == "bright",
                 width_px=r.width_mm / r.mm_per_px)
    m = pose_matrix(*POSE, center_xy=(SIZE[0] / 2, SIZE[1] / 2))
    return al.fine, _sample(sc.image, al.fine.tpl, m)


def _windows(prof, sign):
    """The step fit's windows (left ones, then right ones reversed: all inwards), a row per
    window, and their running sums of samples and squares, a row per sample."""
    m = prof.shape[1] // 2
    win = np.concatenate([prof[:, :m], prof[:, ::-1][:, :m]]).astype(np.float64) * sign
    p1 = np.zeros((m + 1, len(win)))
    p2 = np.zeros((m + 1, len(win)))
    for j in range(m):
        p1[j + 1] = p1[j] + win[:, j]
        p2[j + 1] = p2[j] + win[:, j] * win[:, j]
    return np.ascontiguousarray(win), p1, p2


def test_coarse_search_over_all_windows_equals_one_window_at_a_time(fine_case):
    fi, prof = fine_case
    deltas, lo, hi, phi, gg, ginv = fi.step
    win, p1, p2 = _windows(prof, fi.sign)
    n_e = len(deltas)
    n_c = (n_e - 1) // _STEP_COARSE + 1
    one = np.empty(n_e)
    for s in range(phi.shape[0]):
        every = np.empty((n_c, len(win)))
        _step_rss_coarse(np.ascontiguousarray(win.T), p1, p2, phi, gg, ginv, lo, hi, s, every)
        for r in range(len(win)):
            _step_rss(win, p1, p2, r, phi, gg, ginv, lo, hi, s, 0, n_e, _STEP_COARSE, one)
            np.testing.assert_array_equal(every[:, r], one[::_STEP_COARSE])


def _parabola(ra, rb, rc):
    den = ra - 2.0 * rb + rc
    if ra < np.inf and rc < np.inf and den > 0:
        return min(max(0.5 * (ra - rc) / den, -0.5), 0.5)
    return 0.0


def _search(win, p1, p2, r, tables, s, fine):
    """The step search on one window, as it was before the coarse search ran over all
    windows at once: every candidate's residual from :func:`_step_rss` on this window."""
    deltas, lo, hi, phi, gg, ginv = tables
    n_e, c = len(deltas), _STEP_COARSE
    rss = np.empty(n_e)
    _step_rss(win, p1, p2, r, phi, gg, ginv, lo, hi, s, 0, n_e, c, rss)
    kb = -1
    best = np.inf
    for k in range(0, n_e, c):
        if rss[k] < best:
            best, kb = rss[k], k
    if kb <= 0 or kb >= n_e - 1:
        return np.nan, best
    if not fine:
        return float(kb), best
    v = kb + c * _parabola(rss[kb - c], best, rss[kb + c])
    f = _STEP_FINE
    k0 = min(max(int(np.floor(v + 0.5)) - f, 0), n_e - 2 * f - 1)
    _step_rss(win, p1, p2, r, phi, gg, ginv, lo, hi, s, k0, k0 + 2 * f + 1, 1, rss)
    kb = k0 + int(np.argmin(rss[k0:k0 + 2 * f + 1]))
    best = rss[kb]
    if not best < np.inf:
        return np.nan, best
    d = _parabola(rss[kb - 1], best, rss[kb + 1]) if k0 < kb < k0 + 2 * f else 0.0
    return kb + d, best


def test_step_centres_equal_the_search_window_by_window(fine_case):
    fi, prof = fine_case
    n = len(prof)
    ok = np.ones(n, bool)
    ok[3::5] = False
    got, s_got = _step_centres(prof, fi.sign, *fi.step, ok)
    win, p1, p2 = _windows(prof, fi.sign)
    best_s, best_med = 0, np.inf
    for s in range(fi.step[3].shape[0]):
        sel = [rss for i in range(0, n, _STEP_SIGMA_EVERY) if ok[i] for r in (i, n + i)
               for k, rss in [_search(win, p1, p2, r, fi.step, s, False)] if np.isfinite(k)]
        if sel:
            med = _upper_median(np.array(sel))
            if med < best_med:
                best_med, best_s = med, s
    assert s_got == best_s
    want = np.full(n, np.nan)
    de = fi.step[0][1] - fi.step[0][0]
    for i in np.flatnonzero(ok):
        kl = _search(win, p1, p2, i, fi.step, best_s, True)[0]
        kr = _search(win, p1, p2, n + i, fi.step, best_s, True)[0]
        if np.isfinite(kl) and np.isfinite(kr):
            want[i] = 0.5 * (kl - kr) * de
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(got).sum() > 0.8 * ok.sum()
