"""The dispensing clip: a VideoCapture-like source whose frames lay the bead along its path."""

import dataclasses
import math

import cv2
import numpy as np
import pytest

from vision_qc.synth import DefectSpec, DispensingClip, Nuisances, SceneRenderer, sample_scene

SIZE_WH = (640, 480)
SPEED_MM_S = 4000.0
FPS = 25.0          # 160 mm per frame


@pytest.fixture(scope="module")
def spec():
    """A noise-free OK part (so frames can be compared pixel for pixel)."""
    s = sample_scene(8, preset="clean", size_wh=SIZE_WH, ng_fraction=0.0, polarity="bright")
    return dataclasses.replace(s, nuisances=Nuisances())


def make(spec, **kw):
    kw = {"speed_mm_s": SPEED_MM_S, "fps": FPS, "rng": 0, **kw}
    return DispensingClip(spec, **kw)


def test_frame_count_and_properties(spec):
    clip = make(spec, finished_frames=4)
    length_mm = clip.renderer.stations.length_px * spec.mm_per_px
    assert clip.length_mm == pytest.approx(length_mm)
    assert clip.dispensing_frames == math.ceil(length_mm / 160.0) + 1
    assert clip.frame_count == clip.dispensing_frames + 4
    assert clip.get(cv2.CAP_PROP_FRAME_COUNT) == clip.frame_count
    assert clip.get(cv2.CAP_PROP_FPS) == FPS
    assert (clip.get(cv2.CAP_PROP_FRAME_WIDTH), clip.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640.0, 480.0)
    assert clip.get(cv2.CAP_PROP_BRIGHTNESS) == 0.0          # unsupported, as VideoCapture answers
    assert clip.isOpened()


def test_reading_every_frame_then_the_end(spec):
    clip = make(spec, finished_frames=2)
    frames, nozzles = 0, []
    while True:
        assert clip.get(cv2.CAP_PROP_POS_FRAMES) == frames
        ok, frame = clip.read()
        if not ok:
            break
        assert frame.shape == (480, 640) and frame.dtype == np.uint8
        assert clip.last_frame == frames
        nozzles.append(clip.nozzle_mm)
        frames += 1
    assert frames == clip.frame_count
    assert clip.read() == (False, None)
    assert clip.read() == (False, None)
    n = clip.dispensing_frames
    # the nozzle moves speed / fps per frame, reaches the end of the path, then is gone
    np.testing.assert_allclose(np.diff(nozzles[: n - 1]), 160.0)
    assert nozzles[n - 1] == pytest.approx(clip.length_mm)
    assert nozzles[n:] == [None, None]


def test_dispensed_length_grows_and_the_truth_follows(spec):
    clip = make(spec)
    truths = [clip.truth(i) for i in range(clip.frame_count)]
    dispensed = [t["dispensed_mm"] for t in truths[: clip.dispensing_frames]]
    assert dispensed[0] == 0.0 and np.all(np.diff(dispensed) > 0)
    assert dispensed[-1] == pytest.approx(clip.length_mm)
    arc_mm = clip.renderer.stations.arc_px * spec.mm_per_px
    for i, t in enumerate(truths):
        assert t["frame"] == i
        width = np.asarray(t["stations"]["width_mm"])
        if t["dispensed_mm"] is None:                         # finished part, nozzle gone
            assert t["nozzle_mm"] is None and t["nozzle_px"] is None
            assert np.all(width > 0)
            continue
        assert t["nozzle_mm"] == pytest.approx(t["dispensed_mm"])
        np.testing.assert_allclose(t["nozzle_px"], clip.renderer.posed.at_arc(t["dispensed_mm"] / spec.mm_per_px),
                                   atol=1e-3)
        assert np.all(width[arc_mm > t["dispensed_mm"]] == 0)
        assert np.all(width[arc_mm <= t["dispensed_mm"]] > 0)
        assert t["verdict"] == "OK"


def test_frames_show_the_bead_laid_so_far_and_the_nozzle_at_its_front(spec):
    clip = make(spec)
    r = clip.renderer
    mm = spec.mm_per_px
    whole = r.sensor(r.compose(), 0)
    empty = r.sensor(r.base, 0)
    nozzle_r_px = 1.25 * spec.width_mm / mm
    i = clip.dispensing_frames // 2
    frame = clip.frame(i)
    front_px = clip.dispensed_mm(i) / mm
    # pixels of the bead well behind the nozzle are laid, those well ahead are not
    behind = r.bead_idx[r.bead_s < front_px - nozzle_r_px - 2]
    ahead = r.bead_idx[r.bead_s > front_px + nozzle_r_px + 2]
    np.testing.assert_array_equal(frame.reshape(-1)[behind], whole.reshape(-1)[behind])
    np.testing.assert_array_equal(frame.reshape(-1)[ahead], empty.reshape(-1)[ahead])
    assert np.any(whole.reshape(-1)[ahead] != empty.reshape(-1)[ahead])
    # a dark bore ringed by a lighter rim, centred on the path at the bead's front
    x, y = np.round(clip.truth(i)["nozzle_px"]).astype(int)
    bore = frame[y - 1:y + 2, x - 1:x + 2].astype(float).mean()
    rim_r = int(round(0.85 * nozzle_r_px))
    rim = np.mean([frame[y, x + rim_r], frame[y, x - rim_r], frame[y + rim_r, x], frame[y - rim_r, x]])
    assert bore < 20 and rim > bore + 60
    # the finished frames are the whole scene, nozzle gone
    np.testing.assert_array_equal(clip.frame(clip.frame_count - 1), whole)


def test_defects_appear_only_once_dispensed(spec):
    mm = spec.mm_per_px
    length_mm = SceneRenderer(spec).stations.length_px * mm
    start, end = 0.5 * length_mm - 10.0, 0.5 * length_mm + 10.0
    clip = make(dataclasses.replace(spec, defects=(DefectSpec("gap", 0.5 * length_mm, 20.0),)),
                speed_mm_s=FPS * 7.0)            # 7 mm per frame: several frames inside the gap
    inside = 0
    for i in range(clip.frame_count):
        t = clip.truth(i)
        d = t["dispensed_mm"]
        if d is not None and d <= start:
            assert t["defects"] == [] and t["verdict"] == "OK"
            continue
        (gap,) = t["defects"]
        assert gap["type"] == "gap" and gap["start_mm"] == pytest.approx(start, abs=1e-3)
        if d is not None and d < end:
            inside += 1
            assert gap["end_mm"] == pytest.approx(d, abs=1e-3)
            assert gap["length_mm"] == pytest.approx(d - start, abs=2e-3)
            mid = clip.renderer.posed.at_arc((start + d) / 2 / mm)
            np.testing.assert_allclose(gap["center_px"], mid, atol=0.01)
        else:
            assert gap["end_mm"] == pytest.approx(end, abs=1e-3)
    assert inside >= 2


def test_a_gap_across_the_start_shows_its_head_first_and_all_of_it_when_done(spec):
    clip = make(dataclasses.replace(spec, defects=(DefectSpec("overlap_gap", 0.0, 12.0),)))
    first = clip.truth(1)["defects"]
    assert [(d["start_mm"], d["end_mm"]) for d in first] == [(0.0, pytest.approx(6.0, abs=1e-3))]
    last = clip.truth(clip.dispensing_frames - 1)["defects"]
    finished = clip.truth(clip.frame_count - 1)["defects"]
    assert last == finished
    (d,) = finished
    assert d["start_mm"] == pytest.approx(clip.length_mm - 6.0, abs=1e-3) and d["end_mm"] == pytest.approx(6.0, abs=1e-3)
    # just before the loop closes: the head, and the tail laid so far
    near_end = clip.renderer.truth(dispensed_mm=clip.length_mm - 2.0)["defects"]
    assert [(d["start_mm"], d["end_mm"]) for d in near_end] == [
        (0.0, pytest.approx(6.0, abs=1e-3)),
        (pytest.approx(clip.length_mm - 6.0, abs=1e-3), pytest.approx(clip.length_mm - 2.0, abs=1e-3))]


def test_loop_restarts_and_release_stops(spec):
    clip = make(spec, loop=True, finished_frames=1)
    for _ in range(clip.frame_count):
        assert clip.read()[0]
    ok, _ = clip.read()
    assert ok and clip.last_frame == 0 and clip.nozzle_mm == 0.0
    clip.release()
    assert not clip.isOpened()
    assert clip.read() == (False, None)


def test_context_manager_releases(spec):
    with make(spec) as clip:
        assert clip.read()[0]
    assert not clip.isOpened()


def test_same_rng_same_frames_and_fresh_noise_per_frame():
    noisy = sample_scene(8, preset="normal", size_wh=SIZE_WH, ng_fraction=0.0)
    a, b = make(noisy, rng=5), make(noisy, rng=5)
    fa, fb = [a.read()[1] for _ in range(3)], [b.read()[1] for _ in range(3)]
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x, y)
    # the finished part in two frames: same scene, other noise
    last = a.frame_count - 1
    assert not np.array_equal(a.frame(last), a.frame(last))


def test_colour_clip_frames_are_bgr():
    clip = make(sample_scene(8, preset="clean", size_wh=SIZE_WH, color=True))
    ok, frame = clip.read()
    assert ok and frame.shape == (480, 640, 3)


def test_open_path_clip_starts_at_the_path_start():
    spec = sample_scene(3, preset="clean", size_wh=SIZE_WH, ng_fraction=0.0, open_path=True)
    clip = make(spec)
    np.testing.assert_allclose(clip.truth(0)["nozzle_px"], clip.renderer.posed.xy[0], atol=1e-3)
    last = clip.truth(clip.dispensing_frames - 1)
    np.testing.assert_allclose(last["nozzle_px"], clip.renderer.posed.xy[-1], atol=1e-3)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"speed_mm_s": 0.0}, ValueError, "speed_mm_s"),
    ({"fps": -1.0}, ValueError, "fps"),
    ({"fps": float("inf")}, ValueError, "fps"),
    ({"finished_frames": -1}, ValueError, "finished_frames"),
])
def test_bad_arguments_are_refused(spec, kwargs, error, match):
    with pytest.raises(error, match=match):
        make(spec, **kwargs)


def test_bad_spec_and_frame_index_are_refused(spec):
    with pytest.raises(TypeError, match="SceneSpec"):
        DispensingClip({"size_wh": (640, 480)})
    clip = make(spec)
    with pytest.raises(IndexError, match="frame index"):
        clip.truth(clip.frame_count)
    with pytest.raises(IndexError, match="frame index"):
        clip.frame(-1)
