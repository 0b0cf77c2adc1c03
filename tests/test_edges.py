"""Edge finder: analytic beads, the vectorised stages against slow per-row references, no
bead, and random profiles never raising."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vision_qc.engine import edges as E
from vision_qc.engine.edges import find_edges

STEP = 0.5
M = 81                                      # samples across the path: ±20 px
T = (np.arange(M) - (M - 1) / 2) * STEP     # px along the normal
_erf = np.vectorize(math.erf)


def _phi_cdf(z):
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))


def analytic_bead(left, right, *, sigma=0.8, bg=40.0, height=80.0, slope=0.0, bright=True):
    """A box ``[left, right]`` of ``height`` over ``bg`` with an inner linear shading of
    ``slope`` grey levels per px (zero at the bead's centre), blurred by a Gaussian of
    ``sigma`` px, integrated exactly: box·ramp ⊗ Gaussian in closed form."""
    c = 0.5 * (left + right)
    za, zb = (T - left) / sigma, (T - right) / sigma
    box = _phi_cdf(za) - _phi_cdf(zb)
    # ∫_left^right slope·(u - c) φσ(t - u) du
    gauss = lambda z: np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    ramp = slope * ((T - c) * box - sigma * (gauss(zb) - gauss(za)))
    p = bg + height * box + ramp
    if not bright:
        p = 2 * bg - p + 0.0
    return p.astype(np.float32)


def _rows(p, n=3):
    return np.repeat(p[None, :], n, axis=0)


@pytest.mark.parametrize("bright", [True, False])
@pytest.mark.parametrize("slope", [0.0, 3.0, -3.0])
@pytest.mark.parametrize("left,right", [(-6.0, 6.0), (-5.3, 6.2), (-4.1, 7.35)])
def test_analytic_bead_width(bright, slope, left, right):
    bg = 60.0 if bright else 120.0
    p = analytic_bead(left, right, sigma=0.8, bg=bg, height=80.0, slope=slope, bright=bright)
    e = find_edges(_rows(p), step_px=STEP, bright=bright, width_px=12.0, smooth_stations=3)
    assert e.found.all()
    w = e.right_px - e.left_px
    assert np.all(np.abs(w - (right - left)) <= 0.05), (w, right - left)
    assert np.all(np.abs(e.left_px - left) <= 0.05)
    assert np.all(np.abs(e.right_px - right) <= 0.05)


def test_dark_bead_split_by_a_bright_ridge_is_one_bead():
    # the specular ridge of a dark bead, nearly as bright as the background, off the crest
    p = analytic_bead(-6.0, 6.0, sigma=0.8, bg=120.0, height=80.0, bright=False)
    p = p + (75.0 * np.exp(-0.5 * ((T - 1.0) / 0.6) ** 2)).astype(np.float32)
    e = find_edges(_rows(p), step_px=STEP, bright=False, width_px=12.0, smooth_stations=3)
    assert e.found.all()
    assert np.all(np.abs(e.left_px + 6.0) <= 0.1) and np.all(np.abs(e.right_px - 6.0) <= 0.1)


def test_wider_bead_measures_wider():
    ws = []
    for half in (4.0, 5.0, 6.0, 7.0):
        e = find_edges(_rows(analytic_bead(-half, half)), step_px=STEP, bright=True, width_px=12.0)
        ws.append(float(e.right_px[0] - e.left_px[0]))
    assert np.all(np.diff(ws) > 0.9)


def test_no_bead_not_found():
    flat = np.full((4, M), 70.0, np.float32)
    assert not find_edges(flat, step_px=STEP, bright=True, width_px=12.0).found.any()
    # a single step (the glass edge) is not a bead
    step = np.where(T < 3.0, 40.0, 110.0).astype(np.float32)
    assert not find_edges(_rows(step), step_px=STEP, bright=True, width_px=12.0).found.any()
    assert not find_edges(np.zeros((0, M), np.float32), step_px=STEP, bright=True, width_px=12.0).found.any()


# ---------------------------------------------------------------------------------------
# slow, obvious references, one row at a time


def ref_locate(p, width_px, step_px):
    """Per row and scale and position: inner box mean minus the brighter flank."""
    n, m = p.shape
    flank = max(int(round(2.0 / step_px)), 1)
    margin = max(int(round(1.5 / step_px)), 1)
    out = []
    for r in range(n):
        row = p[r].astype(np.float64)
        best, where, bgl, bgr, width = -np.inf, m // 2, 0.0, 0.0, 0.0
        for scale in E._SCALES:
            w = scale * width_px / step_px
            h = max(int(round(0.35 * w)), 1)
            o = int(round(0.5 * w)) + margin
            cand = []
            for j in range(o + flank, m - o - flank):
                inner = row[j - h:j + h + 1].mean()
                left = row[j - o - flank:j - o].mean()
                right = row[j + o + 1:j + o + flank + 1].mean()
                cand.append((inner - max(left, right), j, left, right))
            if not cand:
                continue
            resp, j, left, right = max(cand, key=lambda c: c[0])   # first of equal maxima
            need = best + E._WIDER_MARGIN * abs(best) if scale > 1.0 else best
            if resp > need:
                best, where, bgl, bgr, width = resp, j, left, right, w
        out.append((where, best, bgl, bgr, width))
    return out


def ref_crossing(row, center, w_cols, bg_flank, d, tol, kmax):
    """Walk outwards from a quarter width inside. The local background: the first sample
    where the profile is flat over 2 px and has come down half way from the highest point
    so far; the edge: the first sample at or below 30 % of the bead's departure from it,
    interpolated linearly between the two samples."""
    m = len(row)
    f = int(round(2.0 / STEP))
    q = min(max(center + d * int(np.round(0.25 * w_cols)), 0), m - 1)
    v = [row[min(max(q + d * k, 0), m - 1)] for k in range(kmax)]
    sgn0 = 1.0 if v[0] >= bg_flank else -1.0
    bg, top = bg_flank, -np.inf
    for k in range(kmax - f):
        rel = sgn0 * (v[k] - bg_flank)
        top = max(top, rel)
        if abs(v[k] - v[k + f]) <= tol and rel <= 0.5 * top:
            bg = (v[k] + v[k + f // 2] + v[k + f]) / 3.0
            break
    body = v[0] - bg
    sgn = 1.0 if body >= 0 else -1.0
    delta = E._DEPART * abs(body)
    prev = None
    for k in range(kmax):
        rel = sgn * (v[k] - bg)
        if rel <= delta:
            if k == 0:
                return None
            frac = min(max((prev - delta) / max(prev - rel, 1e-6), 0.0), 1.0)
            return q + d * (k - 1 + frac)
        prev = rel
    return None


def _random_bead_profiles(rng, n):
    rows = []
    for _ in range(n):
        left = rng.uniform(-8, -3)
        right = rng.uniform(3, 8) + rng.uniform(-1, 1)
        p = analytic_bead(left, right, sigma=rng.uniform(0.5, 1.6), bg=rng.uniform(30, 90),
                          height=rng.uniform(15, 100), slope=rng.uniform(-4, 4),
                          bright=bool(rng.integers(2)))
        rows.append(p + rng.normal(0, 2, M).astype(np.float32))
    return np.array(rows, np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_locate_and_crossing_equal_reference(seed):
    rng = np.random.default_rng(seed)
    p = _random_bead_profiles(rng, 40)
    width = 12.0
    center, contrast, _, bg_l, bg_r, w_cols, cs = E._locate(E._row_cumsum(p), width, STEP)
    ref = ref_locate(p, width, STEP)
    for r, (j, best, bl, br, w) in enumerate(ref):
        assert center[r] == j
        assert contrast[r] == pytest.approx(best, abs=1e-3)
        assert bg_l[r] == pytest.approx(bl, abs=1e-3)
        assert bg_r[r] == pytest.approx(br, abs=1e-3)
        assert w_cols[r] == pytest.approx(w)
    tol = np.full(len(p), 6.0)
    f = int(round(2.0 / STEP))
    kmax = int(np.ceil(0.3 * w_cols.max() + 6.0 / STEP)) + f + 1
    for d, bg in ((-1, bg_l), (1, bg_r)):
        xc, ok = E._side_edge(p, center, w_cols, bg, d, STEP, tol)
        for r in range(len(p)):
            x = ref_crossing(p[r].astype(np.float64), int(center[r]), float(w_cols[r]), float(bg[r]), d,
                             float(tol[r]), kmax)
            assert ok[r] == (x is not None)
            if x is not None:
                assert xc[r] == pytest.approx(x, abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(0, 6), st.integers(8, 60)),
              elements=st.floats(-1e4, 1e4, width=32, allow_nan=False)),
       st.booleans(), st.floats(2.0, 30.0))
def test_random_profiles_never_raise(prof, bright, width):
    with np.errstate(all="ignore"):
        e = find_edges(prof, step_px=STEP, bright=bright, width_px=width)
    n = prof.shape[0]
    assert e.left_px.shape == e.right_px.shape == e.found.shape == (n,)
    assert np.all(np.isnan(e.left_px[~e.found]))
    assert np.all(e.right_px[e.found] > e.left_px[e.found])
