"""`vision-qc inspect` in batch: inputs, records on disk, bad files, resume after kill -9 and
Ctrl-C, exit status, progress. End-to-end tests use the real inspector on generated scenes."""

import csv
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from full_disk import filling_after
from vision_qc.cli import main
from vision_qc.recipe import load_recipe, save_recipe
from vision_qc.shell import batch
from vision_qc.shell.batch import Progress, expand_inputs, run_batch
from vision_qc.shell.records import (DEFECT_COLUMNS, RESULT_COLUMNS, JsonlWriter, artifact_stem,
                                     load_records, order_records, write_defects_csv,
                                     write_results_csv)
from vision_qc.synth import SceneRenderer, sample_scene

SIZE_WH = (1280, 1024)


def render_scenes(n_ok: int, n_ng: int, *, seed0: int = 0):
    """Clean scenes sharing one recipe (one part shape and scale): (images, truths, recipe)."""
    base = sample_scene(1000 + seed0, size_wh=SIZE_WH, preset="clean", polarity="bright")
    images, truths, recipe = [], [], None
    for i in range(n_ok + n_ng):
        spec = sample_scene(seed0 + i, size_wh=SIZE_WH, preset="clean", polarity="bright",
                            ng_fraction=0.0 if i < n_ok else 1.0,
                            defect_kinds=("gap", "thin", "wide", "offset"))
        spec = dataclasses.replace(spec, shape=base.shape, mm_per_px=base.mm_per_px)
        scene = SceneRenderer(spec).render()
        images.append(scene.image)
        truths.append(scene.truth["verdict"])
        recipe = scene.recipe
    return images, truths, recipe


@pytest.fixture(scope="module")
def scenes():
    return render_scenes(2, 2)


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, scenes):
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    save_recipe(scenes[2], path)
    return str(path)


@pytest.fixture(scope="module")
def loose_recipe_file(tmp_path_factory, scenes):
    """The scenes' recipe with tolerances so wide that any bead laid without a gap passes:
    the all-OK exit status does not hang on the inspector's measurement accuracy."""
    path = tmp_path_factory.mktemp("recipe") / "loose.yaml"
    save_recipe(scenes[2].replace(width_tol_mm=6.0, max_offset_mm=6.0), path)
    return str(path)


def write_images(folder, scenes, names=None):
    os.makedirs(folder, exist_ok=True)
    images, truths, _ = scenes
    names = names or [f"{'ok' if t == 'OK' else 'ng'}_{i}.png" for i, t in enumerate(truths)]
    paths = []
    for name, img in zip(names, images):
        p = os.path.join(folder, name)
        cv2.imwrite(p, img)
        paths.append(p)
    return paths


def read_jsonl(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# ---------------------------------------------------------------------------------------
# Inputs


def _touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_expand_inputs_folders_files_globs(tmp_path):
    d = tmp_path / "parts"
    for name in ("b.png", "a.PNG", "c.jpg", "notes.txt", "truth.json", ".hidden.png", "sub/d.png",
                 "sub/deeper/e.tif"):
        _touch(str(d / name))
    files, missing, notes = expand_inputs([str(d)])
    assert [os.path.basename(f) for f in files] == ["a.PNG", "b.png", "c.jpg"]
    assert files[0] == os.path.join(str(d), "a.PNG")          # the path as found
    assert missing == [] and notes == []

    files, _, _ = expand_inputs([str(d)], recursive=True)
    assert [os.path.relpath(f, d) for f in files] == ["a.PNG", "b.png", "c.jpg", "sub/d.png",
                                                      "sub/deeper/e.tif"]
    # explicit files are taken whatever their suffix; repeats are dropped; command-line order
    files, _, _ = expand_inputs([str(d / "notes.txt"), str(d), str(d / "b.png")])
    assert [os.path.basename(f) for f in files] == ["notes.txt", "a.PNG", "b.png", "c.jpg"]
    # globs, sorted; ** crosses folders
    files, _, _ = expand_inputs([str(d / "*.png")])
    assert [os.path.basename(f) for f in files] == ["b.png"]
    files, _, _ = expand_inputs([str(d / "**" / "*.png")])
    assert sorted(os.path.basename(f) for f in files) == ["b.png", "d.png"]


def test_expand_inputs_missing_empty_and_excluded(tmp_path):
    (tmp_path / "empty").mkdir()
    _touch(str(tmp_path / "in" / "a.png"))
    _touch(str(tmp_path / "in" / "out" / "overlays" / "a_1234.jpg"))
    files, missing, notes = expand_inputs([str(tmp_path / "nope.png"), str(tmp_path / "x*.png"),
                                           str(tmp_path / "empty")])
    assert files == []
    assert missing == [f"no such file or folder: {tmp_path / 'nope.png'}",
                       f"no files match {tmp_path / 'x*.png'}"]
    assert len(notes) == 1 and "no image files" in notes[0]
    files, _, _ = expand_inputs([str(tmp_path / "in")], recursive=True,
                                exclude=str(tmp_path / "in" / "out"))
    assert [os.path.basename(f) for f in files] == ["a.png"]


# ---------------------------------------------------------------------------------------
# Records on disk


def _rec(file, verdict="OK", defects=(), **stats):
    return {"file": file, "verdict": verdict, "error": None if verdict != "ERROR" else "bad",
            "defects": list(defects), "stats": stats, "timing_ms": {"total": 1.5}}


def test_jsonl_writer_one_line_per_record_strict_json(tmp_path):
    path = tmp_path / "results.jsonl"
    with JsonlWriter(path) as w:
        w.write(_rec("a.png", width_mean_mm=float("nan")))
        w.write(_rec("b.png", "NG"))
    with JsonlWriter(path) as w:             # appends
        w.write(_rec("c.png", "ERROR"))
    recs = read_jsonl(path)
    assert [r["file"] for r in recs] == ["a.png", "b.png", "c.png"]
    assert recs[0]["stats"]["width_mean_mm"] is None          # NaN is not JSON


def test_jsonl_writer_lines_are_in_the_file_at_once_and_fsynced_behind(tmp_path, monkeypatch):
    """Each record is in the file as soon as write returns (a killed process loses nothing
    written); fsyncs follow in a background thread, which sync waits for."""
    path = tmp_path / "results.jsonl"
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (real_fsync(fd), synced.append(fd)))
    with JsonlWriter(path) as w:
        for name in ("a.png", "b.png", "c.png"):
            w.write(_rec(name))
            assert read_jsonl(path)[-1]["file"] == name
        w.sync()
        n_synced = len(synced)
        assert n_synced >= 1
        w.sync()                                # nothing new written: no new fsync
        assert len(synced) == n_synced
    assert [r["file"] for r in read_jsonl(path)] == ["a.png", "b.png", "c.png"]


def test_jsonl_writer_reports_a_failed_fsync(tmp_path, monkeypatch):
    import errno

    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    path = tmp_path / "results.jsonl"
    w = JsonlWriter(path)
    monkeypatch.setattr(os, "fsync", broken)
    w.write(_rec("a.png"))
    with pytest.raises(OSError, match="cannot fsync"):
        w.sync()
    with pytest.raises(OSError, match="cannot fsync"):
        w.write(_rec("b.png"))
    with pytest.raises(OSError, match="cannot fsync"):
        w.close()
    assert [r["file"] for r in read_jsonl(path)] == ["a.png"]


def test_load_records_repairs_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    with JsonlWriter(path) as w:
        w.write(_rec("a.png"))
        w.write(_rec("b.png"))
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"file": "c.png", "verdict": "O')
    untouched = load_records(path)                  # reading alone changes nothing
    assert [r["file"] for r in untouched.records] == ["a.png", "b.png"]
    assert untouched.torn_bytes > 0 and path.read_bytes() != good
    loaded = load_records(path, repair=True)
    assert [r["file"] for r in loaded.records] == ["a.png", "b.png"]
    assert path.read_bytes() == good
    assert "half-written" in loaded.notes(str(path))[0]
    assert load_records(path, repair=True).torn_bytes == 0


def test_load_records_drops_bad_lines_and_repeats(tmp_path):
    path = tmp_path / "results.jsonl"
    lines = [json.dumps(_rec("a.png")), "not json", json.dumps({"no": "file"}),
             json.dumps(_rec("./a.png", "NG")), json.dumps(_rec("b.png"))]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_records(path, repair=True)
    assert [r["file"] for r in loaded.records] == ["a.png", "b.png"]
    assert loaded.bad_lines == [2, 3] and loaded.duplicates == 1 and loaded.rewritten
    assert [r["file"] for r in read_jsonl(path)] == ["a.png", "b.png"]
    assert load_records(tmp_path / "missing.jsonl").records == []


def test_csv_tables(tmp_path):
    gap = {"type": "gap", "start_mm": 10.0, "end_mm": 17.5, "length_mm": 7.5,
           "center_px": [100.5, 200.25], "worst_mm": 0.0, "limit_mm": 7.5}
    thin = dict(gap, type="thin", worst_mm=6.1)
    recs = [_rec("b.png", "NG", [gap, thin, dict(gap)], width_mean_mm=9.9, width_min_mm=0.0,
                 width_max_mm=11.0, offset_max_mm=1.2, coverage=0.99),
            _rec("a.png"), _rec("c.png", "ERROR")]
    recs = order_records(recs, ["a.png", "b.png"])
    assert [r["file"] for r in recs] == ["a.png", "b.png", "c.png"]
    write_results_csv(recs, tmp_path / "results.csv")
    write_defects_csv(recs, tmp_path / "defects.csv")
    rows = read_csv(tmp_path / "results.csv")
    assert tuple(rows[0]) == RESULT_COLUMNS
    b = dict(zip(rows[0], rows[2]))
    assert b["n_defects"] == "3" and b["defect_types"] == "gap;thin"
    assert b["width_mean_mm"] == "9.9" and b["total_ms"] == "1.5" and b["error"] == ""
    assert dict(zip(rows[0], rows[3]))["error"] == "bad"
    rows = read_csv(tmp_path / "defects.csv")
    assert tuple(rows[0]) == DEFECT_COLUMNS and len(rows) == 4
    assert rows[1] == ["b.png", "gap", "10.0", "17.5", "7.5", "100.5", "200.25", "0.0", "7.5"]


def test_ok_thumbnail_picks_before_grey_same_bytes():
    # _thumbnail(frame, to_gray) converts only the picked pixels of a uint8 colour frame: the
    # same JPEG bytes as the thumbnail of the whole frame's grey; uint16 converts it whole
    from vision_qc.inspector import to_gray

    def reference(frame):
        g = to_gray(frame)
        h, w = g.shape
        tw = min(batch.THUMB_WIDTH, w)
        th = max(round(h * tw / w), 1)
        if w >= 4 * tw:
            g = cv2.resize(g, (2 * tw, 2 * th), interpolation=cv2.INTER_NEAREST)
        small = cv2.resize(g, (tw, th), interpolation=cv2.INTER_AREA)
        return batch._encode(".jpg", small, (cv2.IMWRITE_JPEG_QUALITY, 80))

    rng = np.random.default_rng(5)
    for w, h in [(2448, 2048), (1280, 1024), (801, 5), (799, 3), (200, 1), (3, 3), (4000, 30)]:
        for ch in (None, 1, 3, 4):
            for dtype, top in ((np.uint8, 256), (np.uint16, 4096)):
                shape = (h, w) if ch is None else (h, w, ch)
                frame = rng.integers(0, top, shape).astype(dtype)
                assert batch._thumbnail(frame, to_gray) == reference(frame), (w, h, ch, dtype)


def test_artifact_stem_unique_and_safe():
    a, b = artifact_stem("x/1.png"), artifact_stem("y/1.png")
    assert a != b and a.startswith("1_") and b.startswith("1_")
    assert "/" not in artifact_stem("a b/<weird>:name.png")


# ---------------------------------------------------------------------------------------
# Progress


def test_progress_lines_bar_and_quiet():
    out = io.StringIO()
    p = Progress(3, done=1, counts={"OK": 1}, mode="lines", stream=out, every_s=0)
    p.update("NG")
    p.update("ERROR")
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("inspect: 3/3 (100%)")
    assert "OK 1  NG 1  ERROR 1" in lines[-1] and "img/s" in lines[-1]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    p = Progress(2, mode="auto", stream=term)
    assert p.mode == "bar"
    p.update("OK")
    p.update("NG")
    p.close()
    text = term.getvalue()
    assert "2/2" in text and "NG 1" in text and "img/s" in text

    silent = io.StringIO()
    p = Progress(1, mode="none", stream=silent)
    p.update("OK")
    p.line("hello")
    p.close()
    assert silent.getvalue() == ""


# ---------------------------------------------------------------------------------------
# End to end, in process, real inspector


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, scenes):
    """Good parts and every kind of bad file in one folder."""
    folder = str(tmp_path_factory.mktemp("mixed") / "parts")
    write_images(folder, scenes)
    ok_image = scenes[0][0]
    with open(os.path.join(folder, "zero_bytes.png"), "wb"):
        pass
    ok, png = cv2.imencode(".png", ok_image)
    with open(os.path.join(folder, "truncated.png"), "wb") as f:
        f.write(png.tobytes()[: len(png) // 3])
    with open(os.path.join(folder, "text_named.png"), "w") as f:
        f.write("this is not an image\n")
    cv2.imwrite(os.path.join(folder, "wrong_size.png"), cv2.resize(ok_image, (640, 512)))
    cv2.imwrite(os.path.join(folder, "sixteen_bit.png"), ok_image.astype(np.uint16) * 257)
    cv2.imwrite(os.path.join(folder, "rgba.png"), cv2.cvtColor(ok_image, cv2.COLOR_GRAY2BGRA))
    with open(os.path.join(folder, "readme.txt"), "w") as f:  # not an image suffix: not picked up
        f.write("notes")
    return folder


@pytest.mark.parametrize("workers", [1, 2])
def test_mixed_folder_right_records_and_exit_status(tmp_path, mixed_folder, recipe_file, scenes,
                                                    workers, capsys):
    out = str(tmp_path / "out")
    rc = main(["inspect", mixed_folder, "--recipe", recipe_file, "--out", out,
               "--workers", str(workers)])
    assert rc == 1
    recs = {os.path.basename(r["file"]): r for r in read_jsonl(os.path.join(out, "results.jsonl"))}
    assert sorted(recs) == sorted(n for n in os.listdir(mixed_folder) if n.endswith(".png"))
    for r in recs.values():
        assert r["file"].startswith(mixed_folder + os.sep)          # the path as found
    expect_error = {"zero_bytes.png": "empty file", "truncated.png": "truncated png",
                    "text_named.png": "not an image", "wrong_size.png": "640×512"}
    for name, words in expect_error.items():
        assert recs[name]["verdict"] == "ERROR", name
        assert words in recs[name]["error"].lower(), recs[name]["error"]
    # 16-bit and RGBA can be inspected: they are, with the verdict of the image they hold
    for name in ("sixteen_bit.png", "rgba.png"):
        assert recs[name]["verdict"] == recs["ok_0.png"]["verdict"], recs[name]
        assert recs[name]["defects"] == recs["ok_0.png"]["defects"]
    for name in ("ok_0.png", "ok_1.png", "ng_2.png", "ng_3.png"):
        assert recs[name]["verdict"] in ("OK", "NG") and recs[name]["error"] is None
        assert set(recs[name]["stats"]) >= {"width_mean_mm", "coverage"}
        assert recs[name]["timing_ms"]["total"] > 0 and recs[name]["timing_ms"]["read"] > 0

    # tables in sorted input order, whatever order the workers finished in
    rows = read_csv(os.path.join(out, "results.csv"))
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert [r[0] for r in rows[1:]] == sorted(r["file"] for r in recs.values())
    drows = read_csv(os.path.join(out, "defects.csv"))
    assert tuple(drows[0]) == DEFECT_COLUMNS
    assert len(drows) - 1 == sum(len(r["defects"]) for r in recs.values())
    # overlays of NG parts only; a report
    ng = sorted(artifact_stem(r["file"]) + ".jpg" for r in recs.values() if r["verdict"] == "NG")
    assert sorted(os.listdir(os.path.join(out, "overlays"))) == ng
    assert os.path.getsize(os.path.join(out, "report.html")) > 10_000
    run_info = read_json(os.path.join(out, "run.json"))
    assert run_info["recipe"]["name"] == load_recipe(recipe_file).name
    captured = capsys.readouterr()
    assert "report:" in captured.out and "ERROR 4" in captured.out


def test_all_ok_exits_zero_quietly(tmp_path, loose_recipe_file, scenes, capsys):
    folder = str(tmp_path / "good")
    paths = write_images(folder, scenes)
    ok_paths = [p for p, t in zip(paths, scenes[1]) if t == "OK"]
    out = str(tmp_path / "out")
    rc = main(["inspect", *ok_paths, "--recipe", loose_recipe_file, "--out", out, "--quiet",
               "--overlays", "none"])
    assert rc == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    verdicts = [r["verdict"] for r in read_jsonl(os.path.join(out, "results.jsonl"))]
    assert verdicts == ["OK"] * len(ok_paths)
    assert os.listdir(os.path.join(out, "overlays")) == []


def test_overlays_all(tmp_path, recipe_file, scenes):
    folder = str(tmp_path / "good")
    write_images(folder, scenes)
    out = str(tmp_path / "out")
    assert main(["inspect", folder, "--recipe", recipe_file, "--out", out, "-q",
                 "--overlays", "all", "--workers", "1"]) == 1
    assert len(os.listdir(os.path.join(out, "overlays"))) == len(scenes[0])


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, recipe_file, scenes, capsys):
    folder = str(tmp_path / "good")
    write_images(folder, scenes)
    assert main(["inspect", folder, "--recipe", recipe_file, "--out", str(tmp_path / "o"),
                 "--workers", "1"]) == 1
    err = capsys.readouterr().err
    n = len(scenes[0])
    assert f"inspect: {n}/{n} (100%)" in err and "img/s" in err
    assert re.search(r"OK (\d+)  NG (\d+)  ERROR 0", err)


# ---------------------------------------------------------------------------------------
# Usage errors: exit 2, nothing read or written


def test_recipe_error_stops_before_any_image(tmp_path, mixed_folder, recipe_file, capsys):
    bad = tmp_path / "bad.yaml"
    text = read_bytes(recipe_file).decode().replace("width_tol_mm:", "width_tolerance_mm:")
    bad.write_text(text)
    out = tmp_path / "out"
    rc = main(["inspect", mixed_folder, "--recipe", str(bad), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "bead.width_tolerance_mm" in err and "width_tol_mm" in err
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], "--workers"),
    (["MISSING"], "no such file or folder"),
])
def test_usage_errors(tmp_path, recipe_file, mixed_folder, args, words, capsys):
    inputs = [mixed_folder]
    if args == ["MISSING"]:
        inputs, args = [str(tmp_path / "missing.png"), mixed_folder], []
    rc = main(["inspect", *inputs, "--recipe", recipe_file, "--out", str(tmp_path / "o"), *args])
    assert rc == 2
    assert words in capsys.readouterr().err


def test_non_empty_out_needs_resume(tmp_path, recipe_file, scenes, capsys):
    folder = str(tmp_path / "good")
    write_images(folder, scenes)
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    assert main(["inspect", folder, "--recipe", recipe_file, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--resume" in err and "another --out" in err


def test_resume_with_another_recipe_is_refused(tmp_path, recipe_file, scenes, capsys):
    folder = str(tmp_path / "good")
    paths = write_images(folder, scenes)
    out = str(tmp_path / "out")
    assert main(["inspect", paths[0], "--recipe", recipe_file, "--out", out, "-q"]) in (0, 1)
    other = tmp_path / "other.yaml"
    save_recipe(load_recipe(recipe_file).replace(width_tol_mm=3.0), other)
    assert main(["inspect", folder, "--recipe", str(other), "--out", out, "--resume"]) == 2
    assert "different recipe" in capsys.readouterr().err


def test_resume_of_a_finished_run_inspects_nothing_new(tmp_path, recipe_file, scenes, capsys):
    folder = str(tmp_path / "good")
    write_images(folder, scenes)
    out = str(tmp_path / "out")
    assert main(["inspect", folder, "--recipe", recipe_file, "--out", out, "-q"]) == 1
    before = read_bytes(os.path.join(out, "results.jsonl"))
    assert main(["inspect", folder, "--recipe", recipe_file, "--out", out, "--resume"]) == 1
    assert read_bytes(os.path.join(out, "results.jsonl")) == before
    assert "0 inspected" in capsys.readouterr().out


def test_a_drawing_failure_keeps_the_verdict(tmp_path, recipe_file, scenes):
    from vision_qc.inspector import Inspector

    paths = write_images(str(tmp_path / "parts"), scenes)
    ng = next(p for p, t in zip(paths, scenes[1]) if t == "NG")
    out = tmp_path / "out"
    (out / "overlays").mkdir(parents=True)
    (out / "report_data").mkdir()

    def broken_draw(frame, result, recipe):
        raise RuntimeError("pen ran dry")

    rec = batch.inspect_file(Inspector(load_recipe(recipe_file)), ng, out_dir=str(out),
                             draw=broken_draw)
    assert rec["verdict"] == "NG" and rec["defects"]
    assert "pen ran dry" in rec["warnings"][0]
    assert os.listdir(out / "overlays") == []


def test_overlay_of_a_wide_frame_is_reduced_by_a_whole_factor(tmp_path, recipe_file, scenes):
    from vision_qc.inspector import Inspector
    from vision_qc.overlay import STATUS_COLORS_BGR, overlay_factor
    from vision_qc.results import STATUS_CODES

    assert overlay_factor(2448, 1600) == 2 and overlay_factor(1600, 1600) == 1
    assert overlay_factor(4000, 1600) == 3 and overlay_factor(2448, None) == 1
    paths = write_images(str(tmp_path / "parts"), scenes)
    ng = next(p for p, t in zip(paths, scenes[1]) if t == "NG")
    inspector = Inspector(load_recipe(recipe_file))
    stem = artifact_stem(ng)
    sizes = {}
    for width, sub in ((640, "half"), (None, "full")):
        out = tmp_path / sub
        (out / "overlays").mkdir(parents=True)
        (out / "report_data").mkdir()
        rec = batch.inspect_file(inspector, ng, out_dir=str(out), overlay_width=width)
        assert rec["verdict"] == "NG" and "warnings" not in rec
        img = cv2.imread(str(out / "overlays" / f"{stem}.jpg"))
        sizes[sub] = img.shape
        thumb = cv2.imread(str(out / "report_data" / f"{stem}.jpg"))
        assert thumb.shape[1] == batch.THUMB_WIDTH
        # each defect is marked where it is, in the overlay's own pixels
        k = SIZE_WH[0] // img.shape[1]
        for d in rec["defects"]:
            cx, cy = ((c - (k - 1) / 2) / k for c in d["center_px"])
            x0, y0 = int(cx) - 40 // k, int(cy) - 40 // k
            patch = img[max(y0, 0):y0 + 80 // k, max(x0, 0):x0 + 80 // k].astype(int)
            color = np.array(STATUS_COLORS_BGR[STATUS_CODES[d["type"]]])
            assert (np.abs(patch - color).sum(axis=2) < 90).any(), (sub, d)
    assert sizes == {"half": (512, 640, 3), "full": (1024, 1280, 3)}


def test_outputs_are_fsynced_by_the_parent_before_their_record(tmp_path, recipe_file, scenes,
                                                              monkeypatch):
    """Workers write outputs without waiting for the disk; the process that writes the records
    fsyncs each file's outputs before that file's record goes to on_record."""
    paths = write_images(str(tmp_path / "parts"), scenes)
    out = str(tmp_path / "out")
    events = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append(("fsync", os.path.realpath(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    recs = []

    def on_record(rec):
        events.append(("record", rec["file"]))
        recs.append(rec)

    run_batch(paths, load_recipe(recipe_file), out_dir=out, on_record=on_record, workers=1)
    assert len(recs) == len(paths)
    assert not any(".tmp-" in p for kind, p in events if kind == "fsync")
    for rec in recs:
        where = events.index(("record", rec["file"]))
        synced = {p for kind, p in events[:where] if kind == "fsync"}
        written = [p for p in batch.output_paths(out, rec["file"]) if os.path.exists(p)]
        assert len(written) == (3 if rec["verdict"] == "NG" else 1)
        assert {os.path.realpath(p) for p in written} <= synced, rec["file"]


def test_forkserver_warm_up_inspects_with_and_without_alignment():
    """The workers' forkserver imports batch_warmup, which inspects a small drawn part
    (both ways) so that the workers start with the compiled kernels loaded."""
    from vision_qc.shell.batch_warmup import warm_up

    assert warm_up() == []
    ctx = batch.pool_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        assert "vision_qc.shell.batch_warmup" in forkserver._forkserver._preload_modules


def test_warm_up_part_is_found_and_judged():
    """The drawn warm-up part exercises every stage: alignment finds its pose (3, -2) px and
    0.6°, and the part is NG for the gap left at the path's start, with and without alignment."""
    from vision_qc.inspector import Inspector
    from vision_qc.shell.batch_warmup import WARM_SIZE_WH, warm_part

    frame, recipe = warm_part()
    assert frame.shape == WARM_SIZE_WH[::-1] and frame.dtype == np.uint8
    assert recipe.image_size_wh == WARM_SIZE_WH
    plain = Inspector(recipe).inspect(frame)
    aligned = Inspector(recipe.replace(align=True)).inspect(frame)
    for res in (plain, aligned):
        assert res.verdict == "NG" and "gap" in {d.type for d in res.defects}
    pose = aligned.to_record(file="x")["pose"]
    assert pose["dx_px"] == pytest.approx(3.0, abs=0.1)
    assert pose["dy_px"] == pytest.approx(-2.0, abs=0.1)
    assert pose["angle_deg"] == pytest.approx(0.6, abs=0.05)


_KERNELS_LOADED = """
import importlib, json, pkgutil, sys
from numba.core.registry import CPUDispatcher
import vision_qc.engine
names = [f"vision_qc.engine.{m.name}" for m in pkgutil.iter_modules(vision_qc.engine.__path__)]
mods = [importlib.import_module(n) for n in names + ["vision_qc.inspector", "vision_qc.geometry"]]
def loaded():
    return sorted(f"{m.__name__}.{k}" for m in mods for k, v in vars(m).items()
                  if isinstance(v, CPUDispatcher) and v.signatures)
from vision_qc.shell.batch_warmup import warm_up    # importing it warms up
warm = loaded()
from vision_qc.inspector import Inspector
from vision_qc.synth import SceneRenderer, sample_scene
for seed, size_wh in ((1, (640, 512)), (3, (1280, 1024))):    # what the warm-up once was
    scene = SceneRenderer(sample_scene(seed, size_wh=size_wh, ng_fraction=1.0,
                                       pose=True)).render()
    for align in (False, True):
        Inspector(scene.recipe.replace(align=align)).inspect(scene.image)
print(json.dumps({"warm": warm, "after": loaded()}))
"""


def test_warm_up_loads_every_kernel_an_inspection_uses():
    """In a fresh process: after the warm-up, inspecting generated NG parts (with and without
    alignment) loads no further compiled kernel, so a worker's first file loads none."""
    res = subprocess.run([sys.executable, "-c", _KERNELS_LOADED], capture_output=True,
                         text=True, timeout=300, check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["warm"], "the warm-up loaded no kernel"
    assert set(got["after"]) - set(got["warm"]) == set()


def test_workers_started_early_are_the_ones_the_batch_uses(tmp_path, monkeypatch, recipe_file,
                                                           scenes):
    """``vision-qc inspect`` starts the workers' forkserver before it reads the earlier
    records; the batch then forks its workers from that forkserver, not a new one."""
    if batch.pool_context().get_start_method() != "forkserver":
        assert batch.start_workers_early() is False
        return
    from multiprocessing import forkserver

    calls = []

    def early():
        calls.append(batch.start_workers_early())
        calls.append(forkserver._forkserver._forkserver_pid)
        return calls[0]

    monkeypatch.setattr("vision_qc.shell.inspect_cmd.start_workers_early", early)
    folder = str(tmp_path / "parts")
    write_images(folder, scenes)
    rc = main(["inspect", folder, "--recipe", recipe_file, "--out", str(tmp_path / "o"),
               "--workers", "2", "--quiet"])
    assert rc == 1 and calls[0] is True and calls[1] is not None
    assert forkserver._forkserver._forkserver_pid == calls[1]
    rc = main(["inspect", os.path.join(folder, min(os.listdir(folder))), "--recipe",
               recipe_file, "--out", str(tmp_path / "one"), "--workers", "2", "--quiet"])
    assert len(calls) == 2, "one file is inspected in this process: no workers to start"


def test_workers_keep_their_heap_mapped():
    """The worker initializer sets glibc's malloc thresholds (in a process of its own here, so
    that the test process keeps its own); elsewhere it says it did not."""
    import platform

    code = "from vision_qc.shell import batch; print(batch._keep_heap())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert res.stdout.strip() == str(platform.libc_ver()[0] == "glibc")


def test_full_size_overlays_option_is_refused_with_dask(tmp_path, recipe_file, scenes, capsys):
    folder = str(tmp_path / "parts")
    write_images(folder, scenes)
    assert main(["inspect", folder, "--recipe", recipe_file, "--out", str(tmp_path / "o"),
                 "--full-size-overlays", "--dask", "local:1"]) == 2
    assert "--full-size-overlays" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# A worker that dies on a file: that file is an ERROR, the others go on


def die_on_marked_files(file: str) -> dict:
    """Pool task for the test below: the worker process dies on files named *crash*."""
    if "crash" in os.path.basename(file):
        os._exit(7)
    return batch._work(file)


def test_worker_crash_costs_one_error_record(tmp_path, recipe_file, scenes):
    folder = str(tmp_path / "parts")
    names = ["a.png", "b_crash.png", "c.png", "d.png", "e.png"]
    paths = write_images(folder, (scenes[0] * 2, scenes[1] * 2, scenes[2]), names)
    got = []
    stats = run_batch(paths, load_recipe(recipe_file), out_dir=str(tmp_path / "out"),
                      on_record=got.append, workers=2, task=die_on_marked_files)
    assert sorted(r["file"] for r in got) == sorted(paths)
    by = {os.path.basename(r["file"]): r for r in got}
    assert by["b_crash.png"]["verdict"] == "ERROR"
    assert "worker process died" in by["b_crash.png"]["error"]
    assert all(by[n]["verdict"] != "ERROR" for n in names if n != "b_crash.png")
    assert stats.crashed == [os.path.join(folder, "b_crash.png")]


# ---------------------------------------------------------------------------------------
# Interruptions, with the CLI as a subprocess


@pytest.fixture(scope="module")
def twelve(tmp_path_factory, scenes):
    """Twelve image files (the four scenes three times over)."""
    folder = str(tmp_path_factory.mktemp("twelve") / "parts")
    images, truths, recipe = scenes
    names = [f"part_{i:02d}.png" for i in range(12)]
    write_images(folder, (images * 3, truths * 3, recipe), names)
    return folder


def _cli(*args):
    return [sys.executable, "-m", "vision_qc", "inspect", *args]


def _wait_for_lines(path, n, proc, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if os.path.exists(path):
            with open(path, "rb") as f:
                if f.read().count(b"\n") >= n:
                    return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {n} records: {proc.communicate()}")
        time.sleep(0.005)
    pytest.fail(f"no {n} records in {path} after {timeout} s")


def _children(pid: int) -> set[int]:
    """All live descendants of ``pid`` (from /proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pids):
    """Those of ``pids`` still running (not gone, not zombies)."""
    out = set()
    for p in pids:
        try:
            stat = read_bytes(f"/proc/{p}/stat").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            out.add(p)
    return out


def _check_complete(out, folder):
    recs = read_jsonl(os.path.join(out, "results.jsonl"))       # valid JSON on every line
    files = [r["file"] for r in recs]
    assert sorted(files) == sorted(os.path.join(folder, n) for n in os.listdir(folder))
    assert len(files) == len(set(files))                        # each exactly once
    rows = read_csv(os.path.join(out, "results.csv"))
    assert [r[0] for r in rows[1:]] == sorted(files)
    return recs


def _start_batch(out, folder, recipe_file, **popen):
    """``vision-qc inspect FOLDER`` on two workers, every part with an overlay (slower, so
    that the tests catch it midway), in a process of its own; returns it and its
    results.jsonl."""
    proc = subprocess.Popen(_cli(folder, "--recipe", recipe_file, "--out", out, "--workers", "2",
                                 "--overlays", "all"), **popen)
    return proc, os.path.join(out, "results.jsonl")


def test_kill_9_then_resume_records_every_input_once(tmp_path, twelve, recipe_file):
    out = str(tmp_path / "out")
    proc, jsonl = _start_batch(out, twelve, recipe_file, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_for_lines(jsonl, 3, proc)
        helpers = _children(proc.pid)
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    n_before = read_bytes(jsonl).count(b"\n")
    assert 3 <= n_before < 12, "the run finished before it could be killed"
    # the workers do not outlive the killed batch
    deadline = time.monotonic() + 10
    while _alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(helpers), "worker processes outlived the killed batch"
    # a torn write, as if killed in the middle of a record
    with open(jsonl, "ab") as f:
        f.write(b'{"file": "' + os.path.join(twelve, "part_11.png").encode() + b'", "verdict": "N')

    res = subprocess.run(_cli(twelve, "--recipe", recipe_file, "--out", out, "--workers", "2",
                              "--resume"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "half-written" in res.stderr and "already recorded" in res.stderr
    recs = _check_complete(out, twelve)
    assert all(r["verdict"] in ("OK", "NG") for r in recs)
    run_info = read_json(os.path.join(out, "run.json"))
    assert len(run_info["sessions"]) == 2
    assert run_info["sessions"][1]["already_recorded"] == n_before


def _sigint_default():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly_then_resume_finishes(tmp_path, twelve, recipe_file,
                                                               how):
    """Ctrl-C (SIGINT to the whole group, as from a terminal) or ``kill PID`` (SIGTERM to the
    command alone, as a service manager or a CI timeout sends it): a clean stop, every
    finished record kept, and --resume finishes."""
    # a new session: SIGINT goes to the whole group, as from a terminal; and SIGINT handled as
    # a terminal's job has it, whatever this test inherited (run as a background job, the tests
    # inherit SIGINT ignored, Python leaves it so, and the run never stopped)
    out = str(tmp_path / "out")
    proc, jsonl = _start_batch(out, twelve, recipe_file, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True,
                               preexec_fn=_sigint_default)
    try:
        _wait_for_lines(jsonl, 2, proc)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()          # reaps it and closes its pipes
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"--resume" in err and b"Traceback" not in err
    data = read_bytes(jsonl)
    assert data.endswith(b"\n")
    n = len([json.loads(line) for line in data.splitlines()])
    assert 2 <= n <= 12
    res = subprocess.run(_cli(twelve, "--recipe", recipe_file, "--out", out, "--resume", "-q"),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and res.stderr == ""
    _check_complete(out, twelve)


def test_outputs_that_cannot_be_written_stop_the_run_keeping_the_finished_records(
        tmp_path, twelve, recipe_file, monkeypatch, capsys):
    """The disk fills up while the second file's outputs are written: the run stops (exit 2)
    and says why, how many inputs are recorded and that --resume finishes; the first file's
    record stays (its outputs are on disk); --resume then records every input once."""
    out = str(tmp_path / "out")
    real = batch.write_atomic
    disk_fills, stems = filling_after(real, 1)
    monkeypatch.setattr(batch, "write_atomic", disk_fills)
    rc = main(["inspect", twelve, "--recipe", recipe_file, "--out", out, "--workers", "1",
               "--overlays", "all", "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "No space left on device" in err and "1 of 12 inputs are recorded" in err
    assert "--resume" in err and "Traceback" not in err
    (rec,) = read_jsonl(os.path.join(out, "results.jsonl"))
    assert artifact_stem(rec["file"]) == stems[0]
    assert os.path.exists(os.path.join(out, "overlays", stems[0] + ".jpg"))
    run_info = read_json(os.path.join(out, "run.json"))
    assert "No space left" in run_info["sessions"][0]["stopped"]

    monkeypatch.setattr(batch, "write_atomic", real)
    rc = main(["inspect", twelve, "--recipe", recipe_file, "--out", out, "--workers", "1",
               "--resume", "-q"])
    assert rc == 1
    recs = _check_complete(out, twelve)
    assert [r for r in recs if r["file"] == rec["file"]] == [rec]


def test_outputs_that_cannot_be_made_durable_stop_the_run_and_say_which_file(
        tmp_path, twelve, recipe_file, monkeypatch, capsys):
    """The worker wrote the second file's outputs, then their folder went away before this
    process fsync'd them (NotADirectoryError): the run stops as when a worker's own write
    fails (exit 2, the file named, --resume), not as "cannot write the results" (it once
    did, found when the test below caught the folder in that window on a busy machine);
    the first file's record stays, and --resume records every input once."""
    real = batch.fsync_paths
    calls = []

    def fails_second(paths):
        calls.append(paths)
        if len(calls) == 2:
            raise NotADirectoryError(20, "Not a directory", paths[1])
        real(paths)

    monkeypatch.setattr(batch, "fsync_paths", fails_second)
    out = str(tmp_path / "out")
    rc = main(["inspect", twelve, "--recipe", recipe_file, "--out", out, "--workers", "1",
               "-q"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "cannot write the outputs for" in err and "Not a directory" in err
    assert "--resume" in err and "Traceback" not in err and "cannot write the results" not in err
    # the files whose fsyncs finished are recorded (the fsyncs run a few at a time), the one
    # whose failed is not
    recs = read_jsonl(os.path.join(out, "results.jsonl"))
    failed = os.path.splitext(os.path.basename(calls[1][0]))[0]     # its outputs' stem
    assert 1 <= len(recs) < 12
    assert failed not in {artifact_stem(r["file"]) for r in recs}
    monkeypatch.setattr(batch, "fsync_paths", real)
    rc = main(["inspect", twelve, "--recipe", recipe_file, "--out", out, "--workers", "1",
               "--resume", "-q"])
    assert rc == 1
    _check_complete(out, twelve)


def test_output_folder_gone_mid_run_stops_two_workers_keeping_the_finished_records(
        tmp_path, twelve, recipe_file):
    """With two worker processes: the report data folder replaced by a file mid-run (removed
    by another program); each worker's next write fails: exit 2, a message, the records
    written before stay whole, and --resume finishes once the folder is back."""
    out = str(tmp_path / "out")
    proc, jsonl = _start_batch(out, twelve, recipe_file, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        _wait_for_lines(jsonl, 2, proc)
        data_dir = os.path.join(out, "report_data")
        # moved away in one step: deleting it file by file races the workers, which may add a
        # file between the emptying and the rmdir (ENOTEMPTY on a busy CI machine)
        os.rename(data_dir, os.path.join(str(tmp_path), "report_data_gone"))
        with open(data_dir, "w") as f:
            f.write("not a folder")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()          # reaps it and closes its pipes
    n = read_bytes(jsonl).count(b"\n")
    assert n < 12, "the run finished before its folder was removed"
    assert proc.returncode == 2, err
    assert b"cannot write the outputs" in err and b"--resume" in err and b"Traceback" not in err
    recs = read_jsonl(jsonl)
    assert len(recs) == n >= 2 and len({r["file"] for r in recs}) == n
    os.remove(os.path.join(out, "report_data"))
    res = subprocess.run(_cli(twelve, "--recipe", recipe_file, "--out", out, "--resume", "-q"),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    _check_complete(out, twelve)
