"""`vision-qc generate`, called in-process, and the committed samples it made (read, never
regenerated)."""

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_qc.cli import main
from vision_qc.geometry import build_stations
from vision_qc.recipe import load_recipe

SMALL = ["--size", "640x480"]
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def generate(out, *args):
    return main(["generate", str(out), *SMALL, *args])


def images(folder, ext="png"):
    return sorted(p for p in Path(folder).glob(f"*.{ext}"))


@pytest.fixture(scope="module")
def run3(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "set"
    assert generate(out, "--n", "3", "--seed", "7", "--preset", "normal", "--ng-fraction", "0.7") == 0
    return out


def test_writes_images_truth_and_one_recipe(run3, capsys):
    files = images(run3)
    assert [p.name for p in files] == ["ws_0000.png", "ws_0001.png", "ws_0002.png"]
    recipe = load_recipe(run3 / "recipe.yaml")
    assert recipe.image_size_wh == (640, 480) and recipe.closed
    n_stations = len(build_stations(recipe.points_xy, closed=recipe.closed))
    for img_path in files:
        img = cv2.imread(str(img_path), cv2.IMREAD_UNCHANGED)
        assert img.shape == (480, 640) and img.dtype == np.uint8
        truth = json.loads(img_path.with_suffix(".json").read_text())
        assert truth["file"] == img_path.name
        assert truth["verdict"] in ("OK", "NG") and truth["verdict"] == ("NG" if truth["defects"] else "OK")
        # the truth is per station of the shared recipe: the recipe fits every image
        assert len(truth["stations"]["width_mm"]) == n_stations
        assert truth["mm_per_px"] == recipe.mm_per_px
        assert truth["spec"]["polarity"] == recipe.polarity
        assert truth["preset"] == "normal"


def test_same_seed_same_files_other_seed_other_files(run3, tmp_path):
    assert generate(tmp_path / "again", "--n", "3", "--seed", "7", "--preset", "normal",
                    "--ng-fraction", "0.7") == 0
    for a in images(run3):
        b = tmp_path / "again" / a.name
        np.testing.assert_array_equal(cv2.imread(str(a), cv2.IMREAD_UNCHANGED),
                                      cv2.imread(str(b), cv2.IMREAD_UNCHANGED))
        assert a.with_suffix(".json").read_text() == b.with_suffix(".json").read_text()
    assert (run3 / "recipe.yaml").read_text() == (tmp_path / "again" / "recipe.yaml").read_text()
    assert generate(tmp_path / "other", "--n", "1", "--seed", "8") == 0
    assert not np.array_equal(cv2.imread(str(run3 / "ws_0000.png")),
                              cv2.imread(str(tmp_path / "other" / "ws_0000.png")))


def test_runs_with_other_presets_add_to_the_folder_with_the_same_recipe(run3, tmp_path):
    out = tmp_path / "mixed"
    assert generate(out, "--n", "2", "--seed", "7", "--preset", "clean") == 0
    recipe_text = (out / "recipe.yaml").read_text()
    assert generate(out, "--n", "1", "--seed", "7", "--preset", "hard", "--prefix", "hard_",
                    "--start-index", "5", "--pose") == 0
    assert (out / "recipe.yaml").read_text() == recipe_text == (run3 / "recipe.yaml").read_text()
    assert sorted(p.name for p in images(out)) == ["hard_0005.png", "ws_0000.png", "ws_0001.png"]
    truth = json.loads((out / "hard_0005.json").read_text())
    assert truth["preset"] == "hard" and truth["file"] == "hard_0005.png"
    assert truth["pose"]["dx_px"] != 0.0


def test_image_i_does_not_depend_on_n_or_where_the_run_starts(run3, tmp_path):
    assert generate(tmp_path, "--n", "1", "--seed", "7", "--preset", "normal", "--ng-fraction", "0.7",
                    "--start-index", "2") == 0
    assert [p.name for p in images(tmp_path)] == ["ws_0002.png"]
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "ws_0002.png")), cv2.imread(str(run3 / "ws_0002.png")))


def test_another_part_in_the_same_folder_is_refused(run3, capsys):
    before = sorted(p.name for p in run3.iterdir())
    assert generate(run3, "--n", "1", "--seed", "99") == 2
    err = capsys.readouterr().err
    assert "recipe.yaml holds another recipe" in err and "--seed" in err
    assert sorted(p.name for p in run3.iterdir()) == before


def test_options_jpg_colour_dark_open_path_defects(tmp_path):
    assert generate(tmp_path, "--n", "2", "--seed", "3", "--format", "jpg", "--color", "--polarity", "dark",
                    "--open-path", "--ng-fraction", "1", "--defects", "thin, offset", "--max-defects", "1") == 0
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.polarity == "dark" and recipe.closed is False
    for p in images(tmp_path, "jpg"):
        assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape == (480, 640, 3)
        truth = json.loads(p.with_suffix(".json").read_text())
        assert truth["spec"]["color"] is True
        assert [d["type"] for d in truth["defects"]] in (["thin"], ["offset"])


def test_video_writes_a_clip_and_one_truth_line_per_frame(tmp_path, capsys):
    video = tmp_path / "clips" / "clip.mp4"
    assert generate(tmp_path / "set", "--n", "0", "--seed", "2", "--video", str(video),
                    "--speed-mm-s", "5000", "--fps", "20") == 0
    assert (tmp_path / "set" / "recipe.yaml").is_file()
    lines = (tmp_path / "clips" / "clip.truth.jsonl").read_text().splitlines()
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20.0)
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape[:2] == (480, 640)
        frames += 1
    cap.release()
    assert frames == len(lines) > 5
    truths = [json.loads(line) for line in lines]
    assert [t["frame"] for t in truths] == list(range(frames))
    assert all(t["file"] == "clip.mp4" and "stations" not in t for t in truths)
    dispensed = [t["dispensed_mm"] for t in truths if t["dispensed_mm"] is not None]
    assert dispensed[0] == 0.0 and np.allclose(np.diff(dispensed)[:-1], 250.0)
    assert truths[-1]["nozzle_mm"] is None
    assert "frames" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--size", "640"], "--size must look like"),
    (["--size", "100x100"], "--size must be between"),
    (["--ng-fraction", "1.5"], "--ng-fraction must be between 0 and 1"),
    (["--defects", "gap,holes"], "unknown kind 'holes'"),
    (["--defects", ","], "names no kind"),
    (["--open-path", "--defects", "overlap_gap"], "open path"),
    (["--n", "-1"], "--n must be >= 0"),
    (["--n", "0"], "nothing to write"),
    (["--seed", "-3"], "--seed must be >= 0"),
    (["--max-defects", "0"], "--max-defects"),
    (["--prefix", "a/b"], "--prefix"),
    (["--fps", "10"], "only apply with --video"),
    (["--video", "x.mp4", "--speed-mm-s", "0"], "--speed-mm-s must be > 0"),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, args, words):
    assert generate(tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vision-qc generate: ") and words in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--preset", "extreme"], ["--polarity", "grey"], ["--format", "bmp"],
                                  ["--n", "three"]])
def test_bad_choices_exit_2_from_the_parser(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exc:
        generate(tmp_path / "out", *args)
    assert exc.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_out_must_be_a_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["generate", str(tmp_path / "file"), *SMALL, "--n", "1"]) == 2
    assert "OUT must be a folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# The committed samples (samples/README.md says how they were made)


def sample_sets():
    return [SAMPLES, SAMPLES / "dark"]


def test_samples_are_complete_and_share_their_recipe():
    total = 0
    for folder in sample_sets():
        recipe = load_recipe(folder / "recipe.yaml")
        n_stations = len(build_stations(recipe.points_xy, closed=recipe.closed))
        for img_path in images(folder):
            img = cv2.imread(str(img_path), cv2.IMREAD_UNCHANGED)
            assert img.shape[:2] == recipe.image_size_wh[::-1]
            truth = json.loads(img_path.with_suffix(".json").read_text())
            assert truth["file"] == img_path.name
            assert len(truth["stations"]["width_mm"]) == n_stations
            assert truth["spec"]["polarity"] == recipe.polarity
            total += img_path.stat().st_size
    assert total <= 15e6


def test_samples_cover_every_defect_type_preset_and_look():
    truths = [json.loads(p.with_suffix(".json").read_text()) for f in sample_sets() for p in images(f)]
    assert 8 <= len(truths) <= 14
    kinds = {d["kind"] for t in truths for d in t["spec"]["defects"]}
    assert kinds == {"gap", "thin", "wide", "blob", "offset", "overlap_gap"}
    assert {t["preset"] for t in truths} == {"clean", "normal", "hard"}
    assert any(t["verdict"] == "OK" for t in truths)
    assert any(d["start_mm"] > d["end_mm"] for t in truths for d in t["defects"])
    assert any(t["spec"]["color"] for t in truths)
    dark = json.loads(next(iter(images(SAMPLES / "dark"))).with_suffix(".json").read_text())
    bead_minus_frit = dark["spec"]["levels"][3] - dark["spec"]["levels"][2]
    assert dark["spec"]["polarity"] == "dark" and -25 < bead_minus_frit < 0


def test_samples_readme_describes_every_file():
    readme = (SAMPLES / "README.md").read_text()
    for folder in sample_sets():
        for p in images(folder):
            assert p.name in readme, p.name
    assert re.search(r"vision-qc generate samples ", readme)
