"""Alignment's speed-ups give the same floats as the plain computation they replace: the
step model fitted to many windows at once equals it fitted to one window at a time, term by
term, and the bead's step centres equal a search window by window, candidate by
candidate."""

import dataclasses

import numpy as np
import pytest

from vision_qc.engine.align import (
    _STEP_COARSE,
    _STEP_FINE,
    _STEP_SIGMA_EVERY,
    Aligner,
    _sample_moved,
    _step_centres,
    _step_rss,
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
    fi = al.fine
    return fi, _sample_moved(sc.image, fi.st, fi.t_px, fi.strip_px, m)


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
    return win, p1, p2


def _rss_one(win, p1, p2, r, tables, s, k):
    """The step model's mean squared residual of one candidate on one window, term by term
    in plain floats (the computation the kernels must equal to the bit)."""
    _, lo, hi, phi, gg, ginv = tables
    h = int(hi[s, k])
    b0 = float(p1[h + 1, r])
    b1 = b2 = 0.0
    for j in range(lo[s, k], h + 1):
        v = float(win[r, j])
        b1 += v * float(phi[s, k, j])
        b2 += v * float(gg[s, k, j])
    g = ginv[s, k].tolist()
    c0 = g[0][0] * b0 + g[0][1] * b1 + g[0][2] * b2
    c1 = g[1][0] * b0 + g[1][1] * b1 + g[1][2] * b2
    c2 = g[2][0] * b0 + g[2][1] * b1 + g[2][2] * b2
    return (float(p2[h + 1, r]) - (c0 * b0 + c1 * b1 + c2 * b2)) / (h + 1) if c1 > 0 else np.inf


def test_step_rss_over_many_windows_equals_one_window_at_a_time(fine_case):
    fi, prof = fine_case
    win, p1, p2 = _windows(prof, fi.sign)
    _, lo, hi, phi, gg, ginv = fi.step
    wt = np.ascontiguousarray(win.T)
    for s, k_first, k_step, n_k, r_from, r_to in [(0, 0, _STEP_COARSE, 11, 0, len(win)),
                                                   (2, 37, 1, 9, 5, 61), (4, 92, 1, 9, 60, 61)]:
        out = np.full((n_k, len(win)), -1.0)
        _step_rss(wt, p1, p2, phi, gg, ginv, lo, hi, s, k_first, k_step, r_from, r_to, out)
        for c in range(n_k):
            want = [_rss_one(win, p1, p2, r, fi.step, s, k_first + c * k_step)
                    for r in range(r_from, r_to)]
            np.testing.assert_array_equal(out[c, r_from:r_to], want)
        assert (out[:, :r_from] == -1.0).all() and (out[:, r_to:] == -1.0).all()


def _parabola(ra, rb, rc):
    den = ra - 2.0 * rb + rc
    if ra < np.inf and rc < np.inf and den > 0:
        return min(max(0.5 * (ra - rc) / den, -0.5), 0.5)
    return 0.0


def _search(win, p1, p2, r, tables, s, fine):
    """The step search on one window, candidate by candidate (as before the candidates were
    fitted to many windows at once)."""
    n_e, c = len(tables[0]), _STEP_COARSE
    rss = np.full(n_e, np.inf)
    for k in range(0, n_e, c):
        rss[k] = _rss_one(win, p1, p2, r, tables, s, k)
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
    for k in range(k0, k0 + 2 * f + 1):
        rss[k] = _rss_one(win, p1, p2, r, tables, s, k)
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
