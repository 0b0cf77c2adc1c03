"""Live mode: the pure parts on hand-made arrays, then the loop end to end on real sources: a
synthetic dispensing clip, an mp4 file written from one, a real OpenCV window under Xvfb, a
camera index with no camera, and a real video capture that stops delivering and comes back."""

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc

import cv2
import numpy as np
import pytest

from vision_qc.cli import main
from vision_qc.live import (LatencyStats, NozzleTracker, RateMeter, defects_changed,
                            leading_end_mm, noise_sigma)
from vision_qc.recipe import load_recipe, save_recipe
from vision_qc.results import Defect
from vision_qc.shell.capture import Grabber
from vision_qc.shell.live import LiveOptions, LiveSource, run_loop, status_line
from vision_qc.synth import DispensingClip, sample_scene
from vision_qc.synth.scene import DefectSpec

SIZE_WH = (1280, 1024)
FRAMES_TO_LAY = 70          # the clip lays its path in this many frames


# ----------------------------------------------------------------------------------------
# The leading end of the bead


def _leading_end_reference(present, arc, *, bridge_mm, confirm_mm, max_gap_mm):
    """Obvious per-station loop: the specification of leading_end_mm."""
    runs, start = [], None
    for i, p in enumerate(present):
        if p and start is None:
            start = i
        if not p and start is not None:
            runs.append([arc[start], arc[i - 1]])
            start = None
    if start is not None:
        runs.append([arc[start], arc[len(present) - 1]])
    joined = []
    for a, b in runs:
        if joined and a - joined[-1][1] <= bridge_mm:
            joined[-1][1] = b
        else:
            joined.append([a, b])
    end, prev = 0.0, arc[0]
    for a, b in joined:
        if b - a < confirm_mm:
            continue
        if a - prev > max_gap_mm:
            break
        end, prev = b, b
    return end


def _mask(n, *spans):
    m = np.zeros(n, bool)
    for a, b in spans:
        m[a:b] = True
    return m


KW = dict(bridge_mm=3.0, confirm_mm=10.0, max_gap_mm=40.0)


@pytest.mark.parametrize("present, expected", [
    (np.zeros(200, bool), 0.0),                              # nothing laid
    (np.ones(200, bool), 199.0),                             # all laid
    (_mask(200, (0, 50)), 49.0),                             # laid up to 49
    (_mask(200, (0, 50), (52, 80)), 79.0),                   # a 2-station hole is bridged
    (_mask(200, (0, 50), (60, 80)), 79.0),                   # a gap, bead resumed long enough
    (_mask(200, (0, 50), (60, 65)), 49.0),                   # resumed, too short to count yet
    (_mask(200, (0, 50), (60, 65), (120, 130)), 49.0),       # noise far ahead
    (_mask(200, (0, 50), (100, 150)), 49.0),                 # a hole longer than max_gap
    (_mask(200, (0, 5)), 0.0),                               # too little to be bead
    (_mask(200, (20, 60)), 59.0),                            # a gap at the path's start
    (_mask(200, (0, 50), (60, 65), (80, 120)), 119.0),       # short run passed over
], ids=["empty", "all", "prefix", "bridged", "gap-then-bead", "gap-then-short", "noise-ahead",
        "long-hole", "tiny", "gap-at-start", "skip-short"])
def test_leading_end_table(present, expected):
    arc = np.arange(len(present), dtype=float)
    assert leading_end_mm(present, arc, **KW) == expected
    assert _leading_end_reference(present, arc, **KW) == expected


def test_leading_end_matches_the_reference_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 300))
        # runs of random length: bead-like masks, not salt and pepper
        lengths = rng.integers(1, 30, size=n)
        values = rng.random(n) < 0.6
        present = np.repeat(values, lengths)[:n]
        arc = np.cumsum(rng.uniform(0.5, 1.5, n))
        assert leading_end_mm(present, arc, **KW) == pytest.approx(
            _leading_end_reference(present, arc, **KW))


def test_leading_end_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match="equal length"):
        leading_end_mm(np.ones(3, bool), np.arange(4.0), **KW)


# ----------------------------------------------------------------------------------------
# The nozzle tracker


def test_tracker_from_source_guard_cycles_and_finish():
    t = NozzleTracker(1000.0, width_mm=10.0, guard_mm=15.0)
    p = t.from_source(0.0)
    assert (p.cycle, p.new_cycle, p.judged_mm, p.finished) == (1, True, -15.0, False)
    p = t.from_source(500.0)
    assert (p.cycle, p.new_cycle, p.judged_mm) == (1, False, 485.0)
    p = t.from_source(1000.0)                        # parked at the end: still hides the end
    assert (p.judged_mm, p.finished) == (985.0, False)
    p = t.from_source(None)                          # the nozzle left: judge everything, once
    assert (p.judged_mm, p.finished, p.cycle_ended) == (None, True, True)
    p = t.from_source(None)
    assert (p.finished, p.cycle_ended) == (True, False)
    p = t.from_source(0.0)                           # the next part
    assert (p.cycle, p.new_cycle, p.finished) == (2, True, False)
    p = t.from_source(300.0)
    p = t.from_source(20.0)                          # went back: a new part, cut short before
    assert (p.cycle, p.new_cycle) == (3, True)


def test_tracker_hides_the_start_of_a_closed_path_near_its_end():
    t = NozzleTracker(1000.0, width_mm=10.0, guard_mm=15.0, closed=True)
    assert t.from_source(500.0).hidden_mm == 0.0
    assert t.from_source(995.0).hidden_mm == pytest.approx(10.0)
    assert NozzleTracker(1000.0, width_mm=10.0, guard_mm=15.0).from_source(995.0).hidden_mm == 0.0


def _laid(arc, upto):
    return arc <= upto


def test_tracker_estimate_is_monotone_resets_after_a_few_frames_and_finishes():
    arc = np.arange(0.0, 1000.0, 1.0)
    t = NozzleTracker(1000.0, width_mm=10.0, guard_est_mm=30.0, settle_frames=2, reset_frames=3)
    p = t.from_presence(np.zeros(len(arc), bool), arc)
    assert (p.cycle, p.judged_mm) == (0, -30.0)                     # nothing laid yet
    p = t.from_presence(_laid(arc, 200), arc)
    assert (p.cycle, p.new_cycle, p.dispensed_mm, p.judged_mm) == (1, True, 200.0, 170.0)
    p = t.from_presence(_laid(arc, 190), arc)                       # a little less: keep 200
    assert p.dispensed_mm == 200.0
    p = t.from_presence(_laid(arc, 50), arc)                        # much less: judge less now,
    assert (p.cycle, p.judged_mm) == (1, 20.0)                      # but no new part yet
    p = t.from_presence(_laid(arc, 300), arc)                       # a glitch: back to normal
    assert (p.cycle, p.dispensed_mm) == (1, 300.0)
    for _ in range(2):                                              # at the end: settle first
        p = t.from_presence(_laid(arc, 999), arc)
        assert p.finished is False and p.judged_mm == 969.0
    p = t.from_presence(_laid(arc, 999), arc)
    assert (p.finished, p.cycle_ended, p.judged_mm) == (True, True, None)
    p = t.from_presence(_laid(arc, 999), arc)
    assert (p.finished, p.cycle_ended) == (True, False)
    for _ in range(2):                                              # a new part on the fixture
        p = t.from_presence(_laid(arc, 40), arc)
        assert (p.cycle, p.finished, p.judged_mm) == (1, False, 10.0)
    p = t.from_presence(_laid(arc, 40), arc)
    assert (p.cycle, p.new_cycle, p.dispensed_mm) == (2, True, 40.0)


def test_tracker_waits_at_the_end_until_the_nozzle_can_have_left():
    """The estimate runs ahead of the nozzle; at 10 mm per frame a 30 mm guard takes 3 frames
    to clear and the nozzle a frame more to lift off, so the part is finished on the 5th frame
    at the end, not the 2nd."""
    arc = np.arange(0.0, 1000.0, 1.0)
    t = NozzleTracker(1000.0, width_mm=10.0, guard_est_mm=30.0, settle_frames=2)
    for upto in range(900, 990, 10):
        p = t.from_presence(_laid(arc, upto), arc)
    assert not p.finished
    at_end = [t.from_presence(_laid(arc, 999), arc) for _ in range(6)]
    assert [p.finished for p in at_end] == [False] * 4 + [True] * 2
    assert [p.cycle_ended for p in at_end] == [False] * 4 + [True, False]


def test_tracker_refuses_bad_lengths():
    with pytest.raises(ValueError, match="length_mm"):
        NozzleTracker(0.0, width_mm=10.0)
    with pytest.raises(ValueError, match="guard_mm"):
        NozzleTracker(100.0, width_mm=10.0, guard_mm=-1.0)


# ----------------------------------------------------------------------------------------
# Defect sets, rates, latency, noise


def _d(t, a, b):
    return Defect(t, a, b, (b - a) % 1000.0, (0.0, 0.0), 0.0, 7.5)


@pytest.mark.parametrize("before, after, changed", [
    ((), (), False),
    ((), (_d("gap", 10, 20),), True),
    ((_d("gap", 10, 20),), (), True),
    ((_d("gap", 10, 20),), (_d("gap", 10, 35),), False),            # grew as more was judged
    ((_d("gap", 10, 20),), (_d("gap", 11, 20),), False),
    ((_d("gap", 10, 20),), (_d("thin", 10, 20),), True),            # another type
    ((_d("gap", 10, 20),), (_d("gap", 10, 20), _d("gap", 50, 60)), True),
    ((_d("gap", 990, 5),), (_d("gap", 992, 8),), False),            # across a closed start
], ids=["empty", "new", "gone", "grew", "moved-a-little", "type", "another", "wraps"])
def test_defects_changed_table(before, after, changed):
    assert defects_changed(before, after, tol_mm=3.0, length_mm=1000.0) is changed


def test_rate_meter_counts_frames_in_its_window():
    r = RateMeter(window_s=1.0)
    assert r.rate() == 0.0
    for i in range(100):
        r.tick(i / 25.0)
    assert r.rate() == pytest.approx(25.0)
    assert len(r._t) <= 26 + 1


def test_latency_stats_are_bounded_and_close_to_numpy():
    rng = np.random.default_rng(1)
    v = rng.lognormal(3.0, 0.5, 20000)
    s = LatencyStats(recent=500)
    for x in v:
        s.add(x)
    assert s.recent(50) == pytest.approx(np.percentile(v[-500:], 50))
    for q in (50, 99):
        assert s.overall(q) == pytest.approx(np.percentile(v, q), rel=0.02)
    assert s._ring.size == 500 and s.count == 20000
    assert np.isnan(LatencyStats().overall(50)) and np.isnan(LatencyStats().recent(50))


def test_noise_sigma_of_gaussian_noise():
    rng = np.random.default_rng(2)
    img = np.clip(100 + rng.normal(0, 4.0, (480, 640)), 0, 255).astype(np.uint8)
    assert noise_sigma(img) == pytest.approx(4.0, rel=0.15)
    assert noise_sigma(np.full((10, 10), 7, np.uint8)) == 0.0


def test_status_line_says_fps_latency_counts_and_progress():
    s = status_line(fps=29.7, latency_p50_ms=12.3, latency_p99_ms=40.0, frame=120, dropped=4,
                    ng_frames=7, parts_ok=2, parts_ng=1, dispensed_mm=1234.0, length_mm=4000.0,
                    nozzle="source")
    for part in ("29.7 fps", "latency 12 ms (p99 40)", "frame 120", "dropped 4", "NG frames 7",
                 "2 OK 1 NG", "laid 1234/4000 mm (source)"):
        assert part in s


# ----------------------------------------------------------------------------------------
# A dispensing clip with two gaps, end to end


@pytest.fixture(scope="module")
def gap_spec():
    """A clean 1280x1024 part with a 25 mm and a 12 mm gap, and the speed that lays it in
    FRAMES_TO_LAY frames at 30 fps."""
    spec = sample_scene(3, preset="clean", size_wh=SIZE_WH, ng_fraction=0.0, polarity="bright")
    length = DispensingClip(spec).length_mm
    spec = dataclasses.replace(spec, defects=(DefectSpec("gap", 0.3 * length, 25.0),
                                              DefectSpec("gap", 0.7 * length, 12.0)))
    return spec, length * 30.0 / FRAMES_TO_LAY


def _clip(gap_spec):
    spec, speed = gap_spec
    return DispensingClip(spec, speed_mm_s=speed, fps=30.0, rng=7)


def _records(path):
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def _truth_defects(clip):
    return clip.truth(clip.frame_count - 1)["defects"]


def _expected(truth_defects, judged_mm, min_defect_mm, margin_mm):
    """The verdict the truth demands for a frame judged up to ``judged_mm`` (None: all):
    "NG", "OK", or None where it is too close to call (a defect's judged part within
    ``margin_mm`` of ``min_defect_mm``, or its start within ``margin_mm`` of the limit)."""
    if judged_mm is None:
        return "NG" if truth_defects else "OK"
    sure_ng = any(min(d["end_mm"], judged_mm - margin_mm) - d["start_mm"]
                  >= min_defect_mm + margin_mm for d in truth_defects)
    maybe_ng = any(d["start_mm"] < judged_mm + margin_mm for d in truth_defects)
    return "NG" if sure_ng else (None if maybe_ng else "OK")


def _first(records, pred):
    return next((r["frame"] for r in records if pred(r)), None)


def _check_gaps_flagged_in_time(records, clip, min_defect_mm):
    """Each gap flagged no later than 2 frames after the nozzle passed its end + min_defect."""
    gaps = [d for d in _truth_defects(clip) if d["type"] == "gap"]
    assert len(gaps) == 2
    for g in gaps:
        def passed(i):
            d = clip.dispensed_mm(i)
            return d is None or d >= g["end_mm"] + min_defect_mm

        passed_at = next(i for i in range(clip.frame_count) if passed(i))
        flagged_at = _first(records, lambda r: any(
            d["type"] == "gap" and d["start_mm"] < g["end_mm"] and d["end_mm"] > g["start_mm"]
            for d in r["defects"]))
        assert flagged_at is not None, f"gap {g} never flagged"
        assert flagged_at <= passed_at + 2, (g, passed_at, flagged_at)
        # and not before the nozzle got there
        reached = clip.dispensed_mm(flagged_at)
        assert reached is None or reached >= g["start_mm"]
        # flagged from then on, in every frame
        assert all(any(d["type"] == "gap" and d["start_mm"] < g["end_mm"]
                       and d["end_mm"] > g["start_mm"] for d in r["defects"])
                   for r in records if r["frame"] >= flagged_at)
    # no gap anywhere else (in particular none at the leading end, under the nozzle)
    for r in records:
        for d in r["defects"]:
            if d["type"] == "gap":
                assert any(d["start_mm"] < g["end_mm"] + 2 and d["end_mm"] > g["start_mm"] - 2
                           for g in gaps), (r["frame"], d)


def _check_verdicts_match_truth(records, clip, recipe, margin_mm, *, borderline_mm=0.0,
                                max_borderline=0):
    """Every frame the truth decides has its verdict; up to ``max_borderline`` frames may be
    NG instead of OK for measured defects within ``borderline_mm`` of their limit (mp4
    compression moves a 7.5 px bead's edges by a fraction of a pixel)."""
    truth = _truth_defects(clip)
    decided, borderline = 0, []
    for r in records:
        want = _expected(truth, r["judged_mm"], recipe.min_defect_mm, margin_mm)
        if want is None:
            continue
        decided += 1
        if r["verdict"] == want:
            continue
        extra = [d for d in r["defects"] if not any(
            d["start_mm"] < t["end_mm"] and d["end_mm"] > t["start_mm"] for t in truth)]
        near = want == "OK" and extra and all(
            d["type"] != "gap" and abs(d["worst_mm"] - d["limit_mm"]) <= borderline_mm
            for d in extra)
        assert near, (r["frame"], r["judged_mm"], want, r["defects"])
        borderline.append(r["frame"])
    assert len(borderline) <= max_borderline, borderline
    assert decided >= 0.85 * len(records)


RECORD_KEYS = {"file", "verdict", "error", "defects", "stats", "timing_ms", "frame", "timestamp",
               "latency_ms", "dispensed_mm", "judged_mm", "nozzle", "part"}


def test_synthetic_clip_headless_flags_gaps_within_two_frames(gap_spec, tmp_path):
    clip = _clip(gap_spec)
    recipe = clip.renderer.recipe
    source = LiveSource(name="synthetic gaps", open=lambda: clip, fps=30.0, recipe=recipe)
    out, err = io.StringIO(), io.StringIO()
    rc = run_loop(source, recipe, LiveOptions(window=False, out_dir=str(tmp_path), stdout=out,
                                              stderr=err))
    assert rc == 1, err.getvalue()
    records = _records(tmp_path / "frames.jsonl")
    assert [r["frame"] for r in records] == list(range(clip.frame_count))   # none dropped
    for r in records:
        assert set(r) >= RECORD_KEYS
        assert r["nozzle"] == "source" and r["part"] == 1 and r["latency_ms"] > 0
        assert r["verdict"] in ("OK", "NG") and r["error"] is None
    assert [r["dispensed_mm"] for r in records[:3]] == pytest.approx(
        [0.0, clip.step_mm, 2 * clip.step_mm], abs=1e-3)
    assert records[-1]["judged_mm"] is None
    assert records[-1]["dispensed_mm"] == pytest.approx(clip.length_mm)
    _check_gaps_flagged_in_time(records, clip, recipe.min_defect_mm)
    _check_verdicts_match_truth(records, clip, recipe, margin_mm=3.0)

    # NG frames saved when the verdict or the defect set changes, not every NG frame
    ng_files = sorted(os.listdir(tmp_path / "ng"))
    saved = [int(re.fullmatch(r"frame_(\d{6})\.png", f).group(1)) for f in ng_files]
    n_ng = sum(r["verdict"] == "NG" for r in records)
    assert 2 <= len(saved) < n_ng
    first_ng = _first(records, lambda r: r["verdict"] == "NG")
    assert saved[0] == first_ng
    img = cv2.imread(str(tmp_path / "ng" / ng_files[0]))
    assert img.shape == (SIZE_WH[1], SIZE_WH[0], 3)

    # the part's verdict, once, when its cycle ended
    parts = _records(tmp_path / "parts.jsonl")
    assert len(parts) == 1
    assert parts[0]["complete"] and parts[0]["verdict"] == "NG"
    assert sorted(d["type"] for d in parts[0]["defects"]) == ["gap", "gap"]
    assert parts[0]["last_frame"] == clip.dispensing_frames        # the first frame without nozzle
    assert "part 1: NG - gap" in out.getvalue()


def _write_mp4(clip, path):
    w, h = clip.renderer.spec.size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), clip.fps, (w, h), True)
    assert writer.isOpened()
    for i in range(clip.frame_count):
        writer.write(cv2.cvtColor(clip.frame(i), cv2.COLOR_GRAY2BGR))
    writer.release()


@pytest.fixture(scope="module")
def gap_video(gap_spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    clip = _clip(gap_spec)
    _write_mp4(clip, folder / "clip.mp4")
    save_recipe(clip.renderer.recipe, folder / "recipe.yaml")
    return folder, clip


def test_video_file_every_frame_judged_like_the_truth(gap_video, tmp_path, capsys):
    folder, clip = gap_video
    out = tmp_path / "out"
    rc = main(["live", "--source", str(folder / "clip.mp4"),
               "--recipe", str(folder / "recipe.yaml"), "--no-window", "--out", str(out),
               "--record", str(tmp_path / "annotated.mp4")])
    captured = capsys.readouterr()
    assert rc == 1, captured.err
    records = _records(out / "frames.jsonl")
    assert [r["frame"] for r in records] == list(range(clip.frame_count))   # read to its end
    assert all(r["nozzle"] == "estimate" for r in records)
    recipe = clip.renderer.recipe
    w = recipe.width_mm
    for r in records:
        true_nozzle = clip.dispensed_mm(r["frame"])
        if r["judged_mm"] is not None and true_nozzle is not None:
            # never judged under the nozzle, never far behind it
            assert r["judged_mm"] <= true_nozzle - 1.25 * w
            assert r["judged_mm"] >= true_nozzle - clip.step_mm - 5 * w
    _check_gaps_flagged_in_time(records, clip, recipe.min_defect_mm)
    _check_verdicts_match_truth(records, clip, recipe, margin_mm=3.0, borderline_mm=0.5,
                                max_borderline=4)
    parts = _records(out / "parts.jsonl")
    assert len(parts) == 1 and parts[0]["complete"] and parts[0]["verdict"] == "NG"
    video = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == clip.frame_count
    ok, first = video.read()
    video.release()
    assert ok and first.shape == (SIZE_WH[1], SIZE_WH[0], 3)


def test_synthetic_is_the_clip_generate_writes(tmp_path, capsys):
    from vision_qc.recipe import load_recipe, recipe_to_dict
    from vision_qc.shell.live import synthetic_clip

    assert main(["generate", str(tmp_path), "--n", "0", "--video", str(tmp_path / "c.mp4"),
                 "--size", "640x480", "--seed", "5", "--speed-mm-s", "3000"]) == 0
    clip = synthetic_clip(seed=5, preset="normal", size_wh=(640, 480), speed_mm_s=3000.0)
    written = recipe_to_dict(load_recipe(tmp_path / "recipe.yaml"))
    assert written == recipe_to_dict(clip.renderer.recipe)
    truth = [json.loads(line) for line in (tmp_path / "c.truth.jsonl").read_text().splitlines()]
    assert len(truth) == clip.frame_count
    assert truth[-1]["defects"] == clip.truth(clip.frame_count - 1)["defects"]


def test_cli_synthetic_stops_after_frames(tmp_path, capsys):
    rc = main(["live", "--synthetic", "--size", "640x480", "--preset", "clean",
               "--speed-mm-s", "3000", "--seed", "2", "--no-window", "--frames", "6",
               "--out", str(tmp_path)])
    assert rc in (0, 1)
    records = _records(tmp_path / "frames.jsonl")
    assert [r["frame"] for r in records] == list(range(6))
    assert "6 frames in" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# Usage errors and a missing camera


@pytest.mark.parametrize("argv, words", [
    (["live", "--no-window"], "choose one source"),
    (["live", "--camera", "0", "--synthetic", "--no-window"], "--camera and --synthetic"),
    (["live", "--camera", "0", "--no-window", "--seed", "3"], "only applies with --synthetic"),
    (["live", "--camera", "0", "--no-window"], "--recipe R is required"),
    (["live", "--source", "no/such/clip.mp4", "--recipe", "r.yaml", "--no-window"], "no such file"),
    (["live", "--synthetic", "--size", "12x12", "--no-window"], "--size"),
    (["live", "--synthetic", "--frames", "0", "--no-window"], "--frames"),
    (["live", "--camera", "0", "--realtime", "--recipe", "r.yaml", "--no-window"], "--realtime"),
], ids=["no-source", "two-sources", "synthetic-option", "no-recipe", "no-file", "size", "frames",
        "realtime-camera"])
def test_usage_errors_exit_2(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def test_window_without_a_display_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["live", "--synthetic", "--size", "640x480"]) == 2
    assert "--no-window" in capsys.readouterr().err


def test_missing_camera_says_what_was_tried_and_what_to_do(tmp_path, gap_spec, capsys):
    save_recipe(_clip(gap_spec).renderer.recipe, tmp_path / "r.yaml")
    assert main(["live", "--camera", "7", "--recipe", str(tmp_path / "r.yaml"), "--no-window"]) == 2
    err = capsys.readouterr().err
    assert "camera index 7" in err and "V4L2" in err
    assert "/dev/video7" in err and "--camera INDEX" in err and "connected" in err


# ----------------------------------------------------------------------------------------
# A real capture that stops delivering and comes back


class FlakyCapture:
    """A real ``cv2.VideoCapture`` of a file that, like a camera unplugged and plugged back in,
    stops delivering after ``fail_after`` frames for ``outage_s`` seconds (reads fail, reopening
    fails) and then delivers again from where it stopped. ``state`` is shared by the reopened
    captures."""

    def __init__(self, path, state, *, fail_after, outage_s):
        self.state, self.fail_after, self.outage_s = state, fail_after, outage_s
        self.cap = cv2.VideoCapture(str(path))
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, state["pos"])

    def _down(self):
        until = self.state.get("down_until")
        return until is not None and time.monotonic() < until

    def isOpened(self):  # noqa: N802 (cv2.VideoCapture's name)
        return self.cap.isOpened() and not self._down()

    def read(self):
        if self.state["pos"] == self.fail_after and "down_until" not in self.state:
            self.state["down_until"] = time.monotonic() + self.outage_s
        if self._down():
            return False, None
        ok, img = self.cap.read()
        if ok:
            self.state["pos"] += 1
        return ok, img

    def release(self):
        self.state["releases"] = self.state.get("releases", 0) + 1
        self.cap.release()


def test_grabber_reports_an_outage_reopens_and_resumes_with_real_frames(gap_video):
    folder, clip = gap_video
    path = folder / "clip.mp4"
    state = {"pos": 0}
    logs = []
    opener = lambda: FlakyCapture(path, state, fail_after=10, outage_s=0.6)  # noqa: E731
    g = Grabber(opener(), reopen=opener, live=True, name="flaky camera", log=logs.append,
                pace_fps=50.0, backoff_s=(0.05, 0.1, 0.2)).start()
    got, saw_no_signal = [], False
    t_end = time.monotonic() + 20
    while len(got) < 30 and time.monotonic() < t_end:
        f = g.get(timeout=0.05)
        if g.state == "stalled" and "NO SIGNAL" in g.message:
            saw_no_signal = True
        if f is not None:
            got.append(f)
            time.sleep(0.01)
    g.stop()
    assert len(got) == 30, logs
    assert saw_no_signal
    assert g.failures == 1 and g.reopens == 1 and state["releases"] >= 2
    assert any("stopped delivering frames after frame 9" in m for m in logs)
    assert any("resumed after" in m for m in logs)
    # the frames after the outage are the file's own frames, in order (nothing made up)
    idx = [f.index for f in got]
    assert idx == sorted(idx) and idx[-1] > 10
    direct = cv2.VideoCapture(str(path))
    frames = [direct.read()[1] for _ in range(idx[-1] + 1)]
    direct.release()
    for f in got:
        assert np.array_equal(f.image, frames[f.index])
        assert not f.nozzle_known


def test_live_loop_logs_the_outage_and_goes_on(gap_video, tmp_path):
    folder, clip = gap_video
    state = {"pos": 0}
    opener = lambda: FlakyCapture(folder / "clip.mp4", state, fail_after=5, outage_s=0.5)  # noqa: E731
    source = LiveSource(name="flaky camera", open=opener, live=True, retry=True, fps=30.0,
                        pace=True)
    err = io.StringIO()
    rc = run_loop(source, clip.renderer.recipe,
                  LiveOptions(window=False, out_dir=str(tmp_path), max_frames=25,
                              stdout=io.StringIO(), stderr=err))
    assert rc in (0, 1)
    log = err.getvalue()
    assert "flaky camera stopped delivering frames after frame 4" in log
    assert "flaky camera resumed after" in log
    assert "source outages 1, reopened 1" in log
    records = _records(tmp_path / "frames.jsonl")
    assert len(records) == 25 and records[-1]["frame"] > 5


# ----------------------------------------------------------------------------------------
# Start-up


_OPENS_WITH_KERNELS = """
import io, sys
from vision_qc.engine import edges
from vision_qc.shell.live import LiveOptions, LiveSource, run_loop
from vision_qc.synth import DispensingClip, sample_scene

clip = DispensingClip(sample_scene(4, preset="clean", size_wh=(320, 240), ng_fraction=1.0),
                      speed_mm_s=4000.0, fps=30.0, rng=0)
loaded = []

def opener():
    loaded.append(len(edges._walk_fit_kernel.signatures))
    return clip

run_loop(LiveSource(name="clip", open=opener, fps=30.0), clip.renderer.recipe,
         LiveOptions(window=False, max_frames=2, stdout=io.StringIO(), stderr=io.StringIO()))
print(loaded)
"""


def test_kernels_are_loaded_before_the_source_is_opened():
    """A camera or a paced clip delivers frames from the moment it is opened: loading the
    compiled kernels on the first frame (~0.3 s) dropped the first 8 frames of a 30 fps clip
    played with --realtime. In a fresh process (this one has loaded them long ago): when the
    source is opened, the edge finder's walk is loaded already."""
    out = subprocess.run([sys.executable, "-c", _OPENS_WITH_KERNELS], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[1]", out.stdout


# ----------------------------------------------------------------------------------------
# Memory stays flat


def test_loop_memory_is_flat_over_many_frames(tmp_path):
    spec = sample_scene(4, preset="clean", size_wh=(320, 240), ng_fraction=1.0)
    clip = DispensingClip(spec, speed_mm_s=4000.0, fps=30.0, rng=0, loop=True)
    recipe = clip.renderer.recipe
    marks = {}

    def on_record(rec):
        if 100 <= rec["frame"] <= 110 or 440 <= rec["frame"] <= 450:
            marks[rec["frame"]] = tracemalloc.get_traced_memory()[0]

    source = LiveSource(name="loop", open=lambda: clip, fps=30.0)
    tracemalloc.start()
    try:
        run_loop(source, recipe, LiveOptions(window=False, out_dir=str(tmp_path), max_frames=451,
                                             stdout=io.StringIO(), stderr=io.StringIO(),
                                             on_record=on_record))
    finally:
        tracemalloc.stop()
    assert set(marks) == set(range(100, 111)) | set(range(440, 451))
    # 340 frames later: no more than a few frames' worth more (a 320x240 frame is 77 kB). The
    # median over 11 frames at each end: the reader thread renders the next frames meanwhile,
    # so a single snapshot can catch its float buffers held (+300 kB) or just released
    # (-300 kB); a leak would raise every frame's figure, and so the median
    early = float(np.median([marks[f] for f in range(100, 111)]))
    late = float(np.median([marks[f] for f in range(440, 451)]))
    assert late - early < 300_000, marks


# ----------------------------------------------------------------------------------------
# A real window under Xvfb


def _need(tool, package):
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: the live window is tested for real under Xvfb. "
                    f"Install it with `apt-get install -y {package}`.")
    return path


@pytest.fixture
def xvfb():
    _need("Xvfb", "xvfb")
    for n in range(140, 200):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            break
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t_end = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{n}"):
        if proc.poll() is not None or time.monotonic() > t_end:
            proc.kill()
            why = proc.communicate()[1].decode(errors="replace")
            pytest.fail(f"Xvfb :{n} did not start: {why}")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stderr.close()


def _window_id(env):
    r = subprocess.run(["xdotool", "search", "--name", "^vision-qc live$"], env=env,
                       capture_output=True, text=True)
    ids = r.stdout.split()
    return ids[0] if ids else None


def test_window_shows_frames_and_quits_on_q(xvfb, tmp_path):
    _need("xdotool", "xdotool")
    _need("xwininfo", "x11-utils")
    env = {**os.environ, "DISPLAY": xvfb, "QT_QPA_PLATFORM": "xcb"}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vision_qc", "live", "--synthetic", "--size",
                             "1280x1024", "--preset", "clean", "--seed", "1", "--speed-mm-s", "300",
                             "--realtime", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t_end = time.monotonic() + 60
        wid = None
        while time.monotonic() < t_end and proc.poll() is None:
            frames = out / "frames.jsonl"
            n = len(frames.read_text().splitlines()) if frames.exists() else 0
            wid = wid or _window_id(env)
            if n >= 10 and wid:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
        assert wid, "no window named 'vision-qc live' appeared"
        info = subprocess.run(["xwininfo", "-id", wid], env=env, capture_output=True,
                              text=True).stdout
        assert "Map State: IsViewable" in info
        width = int(re.search(r"Width: (\d+)", info).group(1))
        height = int(re.search(r"Height: (\d+)", info).group(1))
        assert width >= 600 and height >= 480
        tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True,
                              text=True).stdout
        assert '"vision-qc live"' in tree
        for key in ("s", "t"):
            subprocess.run(["xdotool", "key", "--window", wid, key], env=env, check=True,
                           capture_output=True)
            time.sleep(0.5)
        subprocess.run(["xdotool", "key", "--window", wid, "q"], env=env, check=True,
                       capture_output=True)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 1), stderr
    assert "Traceback" not in stderr
    taught = [f for f in os.listdir(out) if re.fullmatch(r"taught_\d{6}\.yaml", f)]
    if taught:      # the frame on screen had enough bead to teach from
        assert "taught recipe saved" in stderr
        assert load_recipe(out / taught[0]).mm_per_px > 0
    else:
        assert "teach failed:" in stderr
    snaps = [f for f in os.listdir(out) if re.fullmatch(r"snapshot_\d{6}\.png", f)]
    assert len(snaps) == 1 and os.path.exists(out / snaps[0].replace(".png", "_raw.png"))
    n_frames = len((out / "frames.jsonl").read_text().splitlines())
    assert n_frames >= 10
    assert f"{n_frames} frames in" in stderr


def test_teach_key_saves_a_recipe_taught_from_a_good_frame(tmp_path):
    from vision_qc.shell.live import _teach_from_frame
    from vision_qc.synth import SceneRenderer, sample_scene

    sc = SceneRenderer(sample_scene(2, preset="clean", size_wh=(1280, 1024), ng_fraction=0.0,
                                    polarity="bright")).render()
    msg = _teach_from_frame(sc.image, sc.recipe, str(tmp_path), 42)
    assert msg == f"taught recipe saved: {tmp_path / 'taught_000042.yaml'}"
    taught = load_recipe(tmp_path / "taught_000042.yaml")
    assert taught.closed and taught.polarity == "bright"
    assert taught.mm_per_px == sc.recipe.mm_per_px and taught.width_mm == sc.recipe.width_mm
    assert _teach_from_frame(None, sc.recipe, str(tmp_path), 1) == "teach: no frame yet"
    blank = np.full_like(sc.image, 40)
    assert _teach_from_frame(blank, sc.recipe, str(tmp_path), 2).startswith("teach failed:")
