"""edges_near: the edges at the usual smoothing round a few stations (the gap ends' caps) equal
the whole frame's find_edges there, bit for bit, from the frame-wide steps of a whole-frame
run; and the speck step's scan, run on windows, is only trusted where it is seen to be in
step with the whole frame's."""

from __future__ import annotations

import numpy as np
import pytest
from test_edges import STEP, M, _rows, analytic_bead

from vision_qc.engine import edges as E
from vision_qc.engine.edges import edges_near, find_edges
from vision_qc.engine.gap_ends import END_STATIONS


def _faint_dark(seed, n, gaps, height=8.0):
    """A dark bead ~4-6× the noise of one sample (averaged over more stations by find_edges),
    wandering across the path and in width, with dark specks beside it and gaps."""
    rng = np.random.default_rng(seed)
    prof = np.empty((M, n), np.float32)
    off = 2.0 * np.sin(np.arange(n) / 37.0)
    half = 6.0 + 0.8 * np.sin(np.arange(n) / 23.0)
    for i in range(n):
        prof[:, i] = analytic_bead(off[i] - half[i], off[i] + half[i], sigma=1.2, bg=50.0,
                                   height=height, bright=False)
    for a, b in gaps:
        prof[:, a:b] = 50.0
    for _ in range(n // 40):                   # dark specks on and beside the flanks
        i, k = int(rng.integers(n)), int(rng.integers(1, 8))
        r = int(rng.integers(M // 2 + 8, M // 2 + 22)) * int(rng.choice([-1, 1]))
        prof[max(r - 4, 0):r + 4, i:i + k] -= rng.uniform(4, 15)
    prof += rng.normal(0.0, 2.0, (M, n)).astype(np.float32)
    return prof


@pytest.mark.parametrize("closed", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_edges_near_equal_the_whole_frame_s_at_the_stations_asked(seed, closed, monkeypatch):
    n = 1600
    prof = _faint_dark(seed, n, [(300, 340), (900, 960)])
    kw = {"step_px": STEP, "bright": False, "width_px": 12.0, "smooth_stations": 3,
          "closed": closed}
    first = find_edges(prof, max_smooth_stations=31, **kw)
    assert first.smooth_stations > 3 and first.usual is not None
    whole = find_edges(prof, **kw)
    # the gaps' ends, the path's ends (round its start on a loop), and a crowd of centres
    for centres in ([300, 339, 900, 959], [0, 5, n - 3], [200, 230, 260, 1200, 1210]):
        c = np.asarray(centres)
        idx = c[:, None] + np.arange(-END_STATIONS, END_STATIONS + 1)[None, :]
        idx = idx % n if closed else np.clip(idx, 0, n - 1)
        for margins in (E._NEAR_MARGINS, (30, 40, 60)):
            # (narrow margins: the scan's stop is sought in a few stations, and often not
            # seen: a wider window, or the whole frame, then)
            monkeypatch.setattr(E, "_NEAR_MARGINS", margins)
            near = edges_near(first.usual, c, END_STATIONS)
            assert near.left_px[idx].tobytes() == whole.left_px[idx].tobytes()
            assert near.right_px[idx].tobytes() == whole.right_px[idx].tobytes()
            assert (near.found[idx] == whole.found[idx]).all()


def test_edges_near_runs_round_the_stations_only():
    """The steps after the blur's choice leave the rest of the path alone (NaN edges)."""
    n = 1600
    prof = _faint_dark(7, n, [(700, 760)])
    kw = {"step_px": STEP, "bright": False, "width_px": 12.0, "smooth_stations": 3,
          "closed": True}
    first = find_edges(prof, max_smooth_stations=31, **kw)
    near = edges_near(first.usual, np.array([700, 759]), END_STATIONS)
    far = np.r_[0:400, 1100:n]
    assert np.isnan(near.left_px[far]).all() and not near.found[far].any()
    assert near.found[680:700].any()


def test_clear_frames_keep_no_usual_steps():
    clear = _rows(analytic_bead(-6.0, 6.0, bright=False), 64)
    e = find_edges(clear, step_px=STEP, bright=False, width_px=12.0, smooth_stations=3,
                   max_smooth_stations=15)
    assert e.smooth_stations == 3 and e.usual is None


def _speck_side(rng, n):
    """Edges (2, N) px with dense specks (runs out of the side's line, 1-9 stations)."""
    side = np.stack([np.full(n, -6.0), np.full(n, 6.0)]) + rng.normal(0, 0.3, (2, n))
    for _ in range(int(rng.integers(n // 12, n // 4))):
        s, i, k = int(rng.integers(2)), int(rng.integers(n)), int(rng.integers(1, 10))
        side[s, np.arange(i, i + k) % n] += (1 if s else -1) * rng.uniform(-1, 6)
    return side


@pytest.mark.parametrize("seed", range(12))
def test_windowed_speck_and_repair_equal_the_whole_path_where_synced(seed):
    """The speck and repair steps on windows (edges NaN and not ok outside) give the whole
    path's edges at every centre whose scan is seen to be in step (_near_synced); dense
    specks make the scan's stops crowd, so some centres are not."""
    rng = np.random.default_rng(seed)
    m = 99
    n_synced = n_not = 0
    for closed in (False, True):
        n = int(rng.integers(2500, 4000))
        rows = (m - 1) / 2.0 + _speck_side(rng, n) / STEP
        rows[:, rng.random(n) < 0.02] = np.nan
        ok = rng.random((2, n)) < 0.95
        suspect = rng.random((2, n)) < 0.1
        contrast = rng.normal(20, 5, n).astype(np.float32)
        sigma = np.ones((2, n), np.float32)
        args = (contrast, sigma, (m - 1) / 2.0, STEP, closed, E._REPAIR_HALF,
                np.float32(E._REPAIR_PX), E._SPECK_STATIONS)
        whole = E._finish_kernel(rows, suspect, ok, *args)
        centres = rng.integers(0, n, 4)
        reach = END_STATIONS
        for h in (30, 40, 64):
            margin = np.full(len(centres), h)
            at = E._near_stations(centres, reach + margin, n, closed)
            assert at is not None
            rows_at = np.full((2, n), np.nan)
            rows_at[:, at] = rows[:, at]
            ok_at = np.zeros_like(ok)
            ok_at[:, at] = ok[:, at]
            synced = E._near_synced(rows_at, ok_at, m, STEP, closed, (centres, reach), margin,
                                    at)
            part = E._finish_kernel(rows_at, suspect, ok_at, *args)
            for c, good in zip(centres.tolist(), synced.tolist()):
                idx = np.arange(c - reach, c + reach + 1)
                idx = idx % n if closed else np.clip(idx, 0, n - 1)
                if good:
                    n_synced += 1
                    for g, w in zip(part[:3], whole[:3]):
                        assert g[idx].tobytes() == w[idx].tobytes()
                else:
                    n_not += 1
    assert n_synced > 0 and n_not > 0


@pytest.mark.parametrize("seed", range(2))
def test_low_contrast_call_runs_no_fit_and_finds_the_edges_the_fitting_call_finds(seed,
                                                                                  monkeypatch):
    """On a frame short of contrast the edges are the walk's: the call that runs no Gaussian
    fit (and no median blur) gives the edges, presence and contrast bit for bit of the same
    steps with the fits run, and NaN blurs."""
    prof = _faint_dark(seed, 1200, [(300, 340)])
    kw = {"step_px": STEP, "bright": False, "width_px": 12.0, "smooth_stations": 3,
          "closed": bool(seed), "max_smooth_stations": 31}
    got = find_edges(prof, **kw)
    assert got.usual is not None and np.isnan(got.sigma_px).all()
    kernel = E._walk_fit_kernel
    monkeypatch.setattr(E, "_walk_fit_kernel", lambda *a: kernel(*a[:-1], True))
    want = find_edges(prof, **kw)
    assert not np.isnan(want.sigma_px).all()
    for name in ("left_px", "right_px", "found", "contrast", "flank_step"):
        assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), name


def test_columns_by_runs_equal_the_gather_by_index():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(7, 300)).astype(np.float32)
    for at in (np.array([0]), np.array([299]), np.arange(300), np.array([3, 4, 5, 9, 20, 21, 299]),
               np.unique(rng.integers(0, 300, 40))):
        got = E._columns(a, E._runs(at))
        assert got.flags.c_contiguous and got.tobytes() == np.ascontiguousarray(a[:, at]).tobytes()
