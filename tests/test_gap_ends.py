"""Gap ends: measured where the bead's rounded end meets the surface, not where its contrast
crosses the presence threshold."""

import cv2
import numpy as np
import pytest

from vision_qc import inspector
from vision_qc.engine import gap_ends
from vision_qc.engine.edges import find_edges
from vision_qc.engine.gap_ends import _frame_block, _median_finite, gap_end_tips
from vision_qc.geometry import build_stations
from vision_qc.inspector import Inspector
from vision_qc.recipe import recipe_from_dict
from vision_qc.results import Defect
from vision_qc.synth import SceneRenderer, sample_scene


def _gap_end_errors_px(scene):
    """Signed error (found - truth, px along the path) of every matched gap end."""
    res = Inspector(scene.recipe).inspect(scene.image)
    mm = scene.truth["mm_per_px"]
    out = []
    for t in scene.truth["defects"]:
        if t["type"] != "gap":
            continue
        f = min((d for d in res.defects if d.type == "gap"),
                key=lambda d: abs(d.start_mm - t["start_mm"]))
        out += [(f.start_mm - t["start_mm"]) / mm, (f.end_mm - t["end_mm"]) / mm]
    return out


@pytest.fixture(scope="module")
def gap_scenes():
    out = {}
    for pol in ("bright", "dark"):
        scenes = []
        for seed in (11, 12):
            spec = sample_scene(seed, preset="clean", ng_fraction=1.0, polarity=pol,
                                defect_kinds=("gap",), max_defects=2)
            scenes.append(SceneRenderer(spec).render())
        out[pol] = scenes
    return out


@pytest.mark.parametrize("polarity", ["bright", "dark"])
def test_gap_ends_on_clean_scenes_within_a_third_of_a_pixel(gap_scenes, polarity):
    # where presence alone put them: a bright bead's gaps ~0.4 px too long at each end (its
    # dim rim fades below the threshold inside the tip), a dark bead's 0.1-0.2 px too short,
    # and ±0.5 px of station grid on top (clean sets: up to 1.07 px)
    errs = [e for sc in gap_scenes[polarity] for e in _gap_end_errors_px(sc)]
    assert len(errs) >= 4
    assert np.max(np.abs(errs)) <= 1 / 3


def _straight_bead_image(tips_x, *, y=60.0, half_px=6.0, size_wh=(240, 120), bead=150.0,
                         ground=40.0, blur_px=0.8, scale=8):
    """A flat bead along y = ``y`` from x = 10 to 230 with a gap between ``tips_x``, its ends
    rounded (radius ``half_px``); each pixel the part of it the bead covers (``scale``² points
    per pixel), then blurred. Coordinates: pixel (i, j) covers [j, j + 1) × [i, i + 1)."""
    w, h = size_wh
    x0, x1 = tips_x
    sub = (np.arange(w * scale) + 0.5) / scale
    rows = (np.arange(h * scale) + 0.5) / scale
    xx, yy = np.meshgrid(sub, rows[np.abs(rows - y) <= half_px + 1], sparse=True)
    dy = np.abs(yy - y)
    inside = (dy <= half_px) & (((xx >= 10) & (xx <= x0 - half_px))
                                | ((xx >= x1 + half_px) & (xx <= 230)))
    inside |= np.hypot(xx - (x0 - half_px), dy) <= half_px
    inside |= np.hypot(xx - (x1 + half_px), dy) <= half_px
    big = np.zeros((h * scale, w * scale), np.float32)
    big[np.abs(rows - y) <= half_px + 1] = inside
    cover = big.reshape(h, scale, w, scale).mean(axis=(1, 3))
    img = cv2.GaussianBlur(ground + (bead - ground) * cover, (0, 0), blur_px)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("tips", [(100.3, 112.8), (97.0, 118.5), (140.55, 150.2)])
def test_gap_ends_of_a_drawn_rounded_end_land_on_its_tips(tips):
    r = recipe_from_dict({
        "image_size": [240, 120], "mm_per_px": 1.0, "polarity": "bright",
        # the frame's pixel (i, j) has its centre at (j, i), the drawing's at (j + 0.5, i + 0.5)
        "path": {"closed": False, "points": [[0.0, 59.5], [239.0, 59.5]]},
        "bead": {"width_mm": 12.0, "width_tol_mm": 3.0, "max_offset_mm": 4.0,
                 "min_defect_mm": 3.0, "search_mm": 16.0}})
    img = _straight_bead_image(tips)
    res = Inspector(r).inspect(img)
    gaps = [d for d in res.defects if d.type == "gap" and 50 < d.start_mm < 200]
    assert len(gaps) == 1
    # arc length a lies at the drawing's x = a + 0.5
    start, end = gaps[0].start_mm + 0.5, gaps[0].end_mm + 0.5
    assert start == pytest.approx(tips[0], abs=0.25)
    assert end == pytest.approx(tips[1], abs=0.25)
    assert gaps[0].length_mm == pytest.approx(gaps[0].end_mm - gaps[0].start_mm)


def test_a_gap_over_the_whole_path_keeps_its_ends():
    r = recipe_from_dict({
        "image_size": [200, 120], "mm_per_px": 0.5, "polarity": "bright",
        "path": {"closed": True, "points": [[40, 30], [160, 30], [160, 90], [40, 90]]},
        "bead": {"width_mm": 4.0, "width_tol_mm": 1.0, "max_offset_mm": 2.0,
                 "min_defect_mm": 2.0, "search_mm": 8.0}})
    insp = Inspector(r)
    res = insp.inspect(np.full((120, 200), 40, np.uint8))
    assert [(d.type, d.start_mm, d.end_mm) for d in res.defects] == [("gap", 0.0, insp.length_mm)]


@pytest.mark.parametrize("values, expected", [
    ([1.0, 2.0, 3.0], 2.0),
    ([], np.nan),
    ([4.0, 1.0, 2.0, 3.0], 2.5),
    ([5.0], 5.0),
    ([3.0, 3.0, -1.0, 7.5, 0.25], 3.0),
])
def test_median_finite_is_np_median(values, expected):
    buf = np.array(values + [99.0])
    np.testing.assert_array_equal(_median_finite(buf, len(values)), expected)


def _row_medians(values: np.ndarray) -> np.ndarray:
    """Median of the finite values in each row of ``values`` (K, R); NaN where none is."""
    ok = np.isfinite(values)
    count = ok.sum(1)
    srt = np.sort(np.where(ok, values, np.inf), axis=1)
    rows = np.arange(len(values))
    lo = srt[rows, np.maximum(count - 1, 0) // 2]
    hi = srt[rows, np.maximum(count, 1) // 2 - (count == 0)]
    return np.where(count > 0, 0.5 * (lo + hi), np.nan)


def _reference_gap_end_tips(gray, prof, *, stations, t_px, present, left_px, right_px, tips_px,
                            into, far_px, bright, width_px, smooth_stations, blur_px=None):
    """gap_end_tips in whole-array numpy, as it was before its kernels."""
    k = len(tips_px)
    n = len(stations)
    if k == 0 or n == 0:
        return np.full(k, np.nan)
    i0 = np.rint(tips_px / stations.spacing_px).astype(np.int64)
    steps = np.arange(gap_ends._INNER_FROM, gap_ends._INNER_TO)
    inner = i0[:, None] - into[:, None].astype(np.int64) * steps[None, :]
    if stations.closed:
        inner %= n
        usable = np.ones(k, bool)
    else:
        usable = (inner >= 0).all(1) & (inner < n).all(1)
        inner = np.clip(inner, 0, n - 1)
    lo = left_px[inner].astype(np.float64)
    hi = right_px[inner].astype(np.float64)
    usable &= (np.isfinite(lo) & np.isfinite(hi)).sum(1) >= len(steps) // 2
    radius = 0.5 * _row_medians(hi - lo)
    centre = 0.5 * _row_medians(hi + lo)
    usable &= np.isfinite(radius) & (radius > 0)
    out = np.full(k, np.nan)
    if not usable.any():
        return out
    tips, into_u, far = tips_px[usable], into[usable].astype(np.float64), far_px[usable]
    radius, centre = radius[usable], centre[usable]
    rows_px = gap_ends._ROWS_PX
    ku, r_n, m = len(tips), len(rows_px), len(t_px)
    cap = tips - into_u * radius
    reach = radius + far
    arc = cap[None, :] + into_u[None, :] * np.minimum(np.abs(t_px)[:, None], reach[None, :])
    # Stations' own numpy interpolation (np.mod + np.interp), which the kernel must equal
    x, y = np.moveaxis(stations.at_arc(arc), -1, 0)
    nx, ny = np.moveaxis(stations.normal_at_arc(arc), -1, 0)
    rows = np.broadcast_to(rows_px, (ku, r_n))
    off = (centre[:, None] + rows)[None, :, :]
    map_x = (x[:, :, None] + off * nx[:, :, None]).reshape(m, ku * r_n).astype(np.float32)
    map_y = (y[:, :, None] + off * ny[:, :, None]).reshape(m, ku * r_n).astype(np.float32)
    ends = cv2.remap(gray, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    block = prof[:, _frame_block(np.asarray(present, bool), gap_ends._FRAME_STATIONS)]
    nb = block.shape[1]
    both = np.concatenate([block, ends.astype(block.dtype, copy=False)], axis=1)
    edges = find_edges(both, step_px=float(t_px[1] - t_px[0]), bright=bright, width_px=width_px,
                       smooth_stations=smooth_stations, closed=False, blur_px=blur_px)
    half = 0.5 * (edges.right_px[nb:] - edges.left_px[nb:]).astype(np.float64)
    inset = radius[:, None] - np.sqrt(np.maximum(radius[:, None] ** 2 - rows ** 2, 0.0))
    half = np.where(np.abs(rows) <= gap_ends._ROWS_REACH * radius[:, None],
                    half.reshape(ku, r_n), np.nan)
    tip = cap + into_u * _row_medians(half + inset)
    tip = np.where(np.abs(tip - tips) <= radius, tip, np.nan)
    if stations.closed:
        tip = np.mod(tip, stations.length_px)
    out[usable] = tip
    return out


def _gap_end_calls(monkeypatch, inspector_and_images):
    """The arguments of every gap_end_tips call the inspector makes on these frames."""
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return gap_end_tips(*args, **kwargs)

    monkeypatch.setattr(inspector, "gap_end_tips", record)
    for insp, img in inspector_and_images:
        insp.inspect(img)
    return calls


def test_gap_end_tips_equal_their_numpy_reference(monkeypatch, gap_scenes):
    # the kernels must give the reference's floats bit for bit: on the ends the judge found,
    # and on ends anywhere along the path, either way, beyond an open path's ends too
    straight = recipe_from_dict({
        "image_size": [240, 120], "mm_per_px": 1.0, "polarity": "bright",
        "path": {"closed": False, "points": [[0.0, 59.5], [239.0, 59.5]]},
        "bead": {"width_mm": 12.0, "width_tol_mm": 3.0, "max_offset_mm": 4.0,
                 "min_defect_mm": 3.0, "search_mm": 16.0}})
    frames = [(Inspector(sc.recipe), sc.image) for pol in ("bright", "dark")
              for sc in gap_scenes[pol]]
    frames += [(Inspector(straight), _straight_bead_image(t)) for t in ((100.3, 112.8),
                                                                       (20.0, 31.0))]
    calls = _gap_end_calls(monkeypatch, frames)
    assert len(calls) >= 6
    rng = np.random.default_rng(3)
    n_finite = 0
    for args, kw in calls:
        length = kw["stations"].length_px
        tries = [kw]
        for _ in range(3):
            tips = np.concatenate([kw["tips_px"], rng.uniform(-15.0, length + 15.0, 6)])
            tries.append(dict(kw, tips_px=tips, into=rng.choice([1.0, -1.0], len(tips)),
                              far_px=rng.uniform(0.0, 30.0, len(tips))))
        for t in tries:
            got = gap_end_tips(*args, **t)
            ref = _reference_gap_end_tips(*args, **t)
            np.testing.assert_array_equal(got, ref)
            assert np.array_equal(np.signbit(got), np.signbit(ref))
            n_finite += int(np.isfinite(ref).sum())
    assert n_finite >= 20


def test_gap_end_tips_on_a_padded_frame_and_by_remap(monkeypatch, gap_scenes):
    # the sampling kernel reads a frame whose rows are padded, and frames or profiles that
    # are not uint8 take the maps and cv2.remap: both as the reference
    frames = [(Inspector(sc.recipe), sc.image) for sc in gap_scenes["dark"]]
    calls = _gap_end_calls(monkeypatch, frames)
    assert calls
    for args, kw in calls:
        gray, prof = args
        padded = np.zeros((gray.shape[0], gray.shape[1] + 13), np.uint8)
        padded[:, 5:5 + gray.shape[1]] = gray
        view = padded[:, 5:5 + gray.shape[1]]
        np.testing.assert_array_equal(gap_end_tips(view, prof, **kw),
                                      _reference_gap_end_tips(gray, prof, **kw))
        as_float = prof.astype(np.float32)
        np.testing.assert_array_equal(gap_end_tips(gray, as_float, **kw),
                                      _reference_gap_end_tips(gray, as_float, **kw))


@pytest.mark.parametrize("h, w", [(2, 2), (3, 17), (40, 2), (61, 90)])
def test_bilinear_is_cv2_remap(h, w):
    # the ends' samples must be the bytes cv2.remap gives on float32 maps, inside the frame,
    # on its border, at whole pixels and beyond it (replicated)
    rng = np.random.default_rng(h * w)
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    n = 1500
    mx = rng.uniform(-3.0, w + 2.0, n).astype(np.float32)
    my = rng.uniform(-3.0, h + 2.0, n).astype(np.float32)
    mx[:300] = np.round(mx[:300])
    my[:300] = np.round(my[:300])
    mx[300:330], my[330:360] = w - 1, h - 1
    mx[360:370], my[370:380] = 1e9, -1e9
    ref = cv2.remap(gray, mx.reshape(1, -1), my.reshape(1, -1), interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)[0]
    g = gray.ravel()
    got = np.array([gap_ends._bilinear(g, w, h, w, x, y) for x, y in zip(mx, my)], np.uint8)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("present, size, expected", [
    ([1, 1, 0, 1, 1, 1, 0], 3, slice(3, 6)),
    ([0, 0, 0, 0], 2, slice(0, 2)),
    ([1, 1], 4, slice(0, 2)),
    ([1, 1, 1], 3, slice(0, 3)),
])
def test_frame_block_is_the_first_run_with_bead(present, size, expected):
    assert _frame_block(np.array(present, bool), size) == expected


def _judged_gaps(runs_mm):
    return tuple(Defect(type="gap", start_mm=a, end_mm=b, length_mm=g, center_px=(0.0, 0.0),
                        worst_mm=0.0, limit_mm=7.5) for a, b, g in runs_mm)


@pytest.mark.parametrize("closed, judged, tips, expected", [
    # ends measured: moved; one not measured (NaN): stays
    (False, [(10.0, 20.0, 10.0)], [9.6, 20.3], [(9.6, 20.3, 10.7)]),
    (False, [(10.0, 20.0, 10.0)], [np.nan, 20.3], [(10.0, 20.3, 10.3)]),
    # two gaps whose ends cross: no bead between them, one gap
    (False, [(10.0, 20.0, 10.0), (22.0, 30.0, 8.0)], [10.0, 22.5, 21.5, 30.0],
     [(10.0, 30.0, 20.0)]),
    # ... and whose ends do not: two
    (False, [(10.0, 20.0, 10.0), (22.0, 30.0, 8.0)], [10.0, 20.5, 21.5, 30.0],
     [(10.0, 20.5, 10.5), (21.5, 30.0, 8.5)]),
    # shorter than min_defect_mm (3) once measured: dropped
    (False, [(10.0, 13.5, 3.5)], [10.4, 13.2], []),
    # on a loop (length 100): an end moved across the start
    (True, [(0.5, 8.0, 7.5)], [99.7, 8.0], [(99.7, 8.0, 8.3)]),
    # ... and a gap running on through the start into the first one
    (True, [(2.0, 10.0, 8.0), (90.0, 1.5, 11.5)], [1.0, 10.0, 90.0, 2.5],
     [(90.0, 10.0, 20.0)]),
])
def test_measured_gap_ends_move_merge_and_drop(monkeypatch, closed, judged, tips, expected):
    pts = ([[0, 0], [25, 0], [25, 25], [0, 25]] if closed else [[0, 0], [100, 0]])
    stations = build_stations(np.array(pts, float), closed=closed, spacing_px=0.5,
                              interpolation="linear")
    assert stations.length_px == pytest.approx(100.0)
    monkeypatch.setattr(inspector, "gap_end_tips", lambda *a, **k: np.array(tips, float))
    out = inspector._measured_gap_ends(_judged_gaps(judged), None, None, stations=stations,
                                       t_px=None, edges=type("E", (), {"left_px": None,
                                                                       "right_px": None}),
                                       present=None, bright=True, width_px=12.0,
                                       mm_per_px=1.0, min_defect_mm=3.0)
    got = [(d.start_mm, d.end_mm, d.length_mm) for d in out]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == pytest.approx(e)


def _reference_measured_gap_ends(gap_end_tips, defects, gray, prof, *, stations, t_px, edges, present, bright,
                       width_px, mm_per_px, min_defect_mm) -> tuple:
    """_measured_gap_ends on numpy arrays, as it was before its Python floats: ``defects`` with each gap's ends moved to where the bead's rounded ends meet the
    surface, measured on the image along the path (:func:`~.engine.gap_ends.gap_end_tips`);
    an end that cannot be measured stays where presence put it. Gaps whose measured ends
    meet or cross have no bead between them and become one; a gap that comes out shorter
    than ``min_defect_mm`` is dropped, as the judge drops a short run."""
    gaps = [d for d in defects if d.type == "gap"]
    if not gaps:
        return defects
    length_px = stations.length_px
    closed = stations.closed
    old = np.array([(d.start_mm, d.end_mm) for d in gaps]) / mm_per_px
    seg = np.array([d.length_mm for d in gaps]) / mm_per_px
    tips = gap_end_tips(gray, prof, stations=stations, t_px=t_px, present=present,
                        left_px=edges.left_px, right_px=edges.right_px, tips_px=old.ravel(),
                        into=np.tile([1.0, -1.0], len(gaps)), far_px=np.repeat(0.5 * seg, 2),
                        bright=bright, width_px=width_px,
                        smooth_stations=inspector.SMOOTH_STATIONS).reshape(-1, 2)
    new = np.where(np.isfinite(tips), tips, old)
    if not closed:
        new = np.clip(new, 0.0, length_px)
    # each end's move along the path (wrapped on a loop): the gap gains what its start moves
    # back and its end moves on
    move = new - old
    if closed:
        move = (move + 0.5 * length_px) % length_px - 0.5 * length_px
    # (start, length, worst) along the path, the start in [0, length) on a loop
    runs = sorted(zip(new[:, 0].tolist(), (seg - move[:, 0] + move[:, 1]).tolist(),
                      [d.worst_mm for d in gaps]))
    merged = [list(runs[0])]
    for a0, sg, worst in runs[1:]:
        last = merged[-1]
        if a0 <= last[0] + last[1]:
            last[1] = max(last[1], a0 + sg - last[0])
            last[2] = min(last[2], worst)
        else:
            merged.append([a0, sg, worst])
    if closed and len(merged) > 1 and merged[0][0] + length_px <= merged[-1][0] + merged[-1][1]:
        # the last runs on through the start into the first
        last = merged.pop()
        first = merged[0]
        merged[0] = [last[0], max(last[1], first[0] + length_px + first[1] - last[0]),
                     min(last[2], first[2])]
    spacing = stations.spacing_px
    n = len(stations)
    limit = gaps[0].limit_mm
    out = [d for d in defects if d.type != "gap"]
    for a0, sg, worst in merged:
        if sg * mm_per_px < min_defect_mm:
            continue
        if closed and sg >= length_px:
            a0, sg = 0.0, length_px
        a1 = (a0 + sg) % length_px if closed and sg < length_px else a0 + sg
        mid = np.rint((a0 + 0.5 * sg) / spacing)
        mid_i = int(mid) % n if closed else int(min(max(mid, 0.0), n - 1.0))
        out.append(Defect(type="gap", start_mm=float(a0 * mm_per_px), end_mm=float(a1 * mm_per_px),
                          length_mm=float(sg * mm_per_px),
                          center_px=(float(stations.xy[mid_i, 0]), float(stations.xy[mid_i, 1])),
                          worst_mm=worst, limit_mm=limit))
    out.sort(key=lambda d: d.start_mm)
    return tuple(out)


@pytest.mark.parametrize("closed", [False, True])
def test_measured_gap_ends_equal_their_numpy_reference(monkeypatch, closed):
    # the ends' arithmetic on Python floats must give numpy's floats: random gaps, ends moved
    # either way, beyond an open path's ends, across a loop's start, some not measured
    pts = ([[0, 0], [25, 0], [25, 25], [0, 25]] if closed else [[0, 0], [100, 0]])
    stations = build_stations(np.array(pts, float), closed=closed, spacing_px=0.5,
                              interpolation="linear")
    rng = np.random.default_rng(7)
    edges = type("E", (), {"left_px": None, "right_px": None})
    n_gaps = 0
    for _ in range(300):
        k = int(rng.integers(1, 4))
        starts = np.sort(rng.uniform(0.0, 95.0, k))
        lengths = rng.uniform(0.5, 12.0, k)
        ends = (starts + lengths) % 100.0 if closed else np.minimum(starts + lengths, 100.0)
        judged = _judged_gaps(zip(starts.tolist(), ends.tolist(), lengths.tolist()))
        tips = (np.column_stack([starts, ends]).ravel() / 0.7
                + rng.normal(0.0, 2.0, 2 * k) * rng.choice([0.0, 1.0, 5.0], 2 * k))
        tips[rng.random(2 * k) < 0.2] = np.nan
        tips[rng.random(2 * k) < 0.1] = rng.choice([-0.0, -3.0, 150.0])

        def fake(*a, _t=tips, **kw):
            return _t.copy()

        monkeypatch.setattr(inspector, "gap_end_tips", fake)
        kw = {"stations": stations, "t_px": None, "edges": edges, "present": None,
              "bright": True, "width_px": 12.0, "mm_per_px": 0.7, "min_defect_mm": 2.0}
        got = inspector._measured_gap_ends(judged, None, None, **kw)
        ref = _reference_measured_gap_ends(fake, judged, None, None, **kw)
        assert got == ref
        n_gaps += len(ref)
    assert n_gaps > 200
