"""The command line: every command has --help; eval scores a generated folder in-process."""

import dataclasses
import json

import cv2
import numpy as np
import pytest

from vision_qc.cli import COMMANDS, main
from vision_qc.recipe import load_recipe, save_recipe
from vision_qc.synth import SceneRenderer, sample_scene


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    base = sample_scene(100, preset="clean", size_wh=(1280, 1024))
    for i in range(3):
        s = sample_scene(i + 1, preset="clean", size_wh=(1280, 1024), ng_fraction=0.5)
        s = dataclasses.replace(s, shape=base.shape, mm_per_px=base.mm_per_px)
        sc = SceneRenderer(s).render()
        cv2.imwrite(str(folder / f"ws_{i}.png"), sc.image)
        (folder / f"ws_{i}.json").write_text(json.dumps(sc.truth))
    save_recipe(sc.recipe, folder / "recipe.yaml")
    return folder


def test_eval_inspects_a_generated_folder_and_writes_figures(generated, capsys):
    assert main(["eval", str(generated)]) == 0
    out = capsys.readouterr().out
    assert "escapes" in out and "width error per station" in out
    figures = json.loads((generated / "eval.json").read_text())
    g = figures["overall"]
    assert g["images"] == 3
    assert sum(g["confusion"].values()) == 3
    assert g["width_error_px"]["stations"] > 1000


def test_eval_refuses_a_missing_folder(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_eval_names_a_bad_recipe(generated, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nimage_size: [10, 10]\nmm_per_px: 1\npolarity: shiny\npath: {closed: true, points: [[1,1],[2,2],[3,1]]}\n"
                   "bead: {width_mm: 1, width_tol_mm: 0.1, max_offset_mm: 1, min_defect_mm: 1, search_mm: 3}\n")
    empty = tmp_path / "imgs"
    empty.mkdir()
    (empty / "a.png").write_bytes(b"")
    (empty / "a.json").write_text("{}")
    assert main(["eval", str(empty), "--recipe", str(bad)]) == 2
    assert "polarity" in capsys.readouterr().err


def test_eval_reads_another_recipes_path_along_the_truths(tmp_path, capsys):
    # a recipe with its own path (as a taught one: another start, other points on the same
    # loop) is scored along the generator's path: the same gap ends and per-station figures
    # as the generator's own recipe, within the stations' resampling
    gen = tmp_path / "gen"
    assert main(["generate", str(gen), "--n", "2", "--seed", "5", "--preset", "clean",
                 "--size", "1280x1024", "--defects", "gap", "--ng-fraction", "1"]) == 0
    assert main(["eval", str(gen), "--out", str(tmp_path / "own.json")]) == 0
    own = json.loads((tmp_path / "own.json").read_text())["overall"]
    recipe = load_recipe(gen / "recipe.yaml")
    other = recipe.replace(points_xy=np.roll(recipe.points_xy, -len(recipe.points_xy) // 3, axis=0))
    save_recipe(other, tmp_path / "other.yaml")
    assert main(["eval", str(gen), "--recipe", str(tmp_path / "other.yaml"),
                 "--out", str(tmp_path / "other.json")]) == 0
    capsys.readouterr()
    got = json.loads((tmp_path / "other.json").read_text())["overall"]
    assert own["gap_end_error"]["ends"] >= 2
    for g in (own, got):
        assert g["confusion"]["ng_called_ng"] == 2 and g["recall"]["gap"] == 1.0
        assert g["false_alarms"] == 0
        assert g["gap_end_error"]["px_max"] < 1.0
    assert got["gap_end_error"]["ends"] == own["gap_end_error"]["ends"]
    gw, ow = got["width_error_px"], own["width_error_px"]
    assert gw["stations"] == pytest.approx(ow["stations"], rel=0.01)
    # a bright bead's widths follow the blur read on the glass edge, whose 96 profiles lie
    # elsewhere along a path with another start: 0.78 / 0.83 px against 0.80 / 0.80 on these
    # two parts (truth 0.81), ~0.1 mm of mean width each since the cap's curvature (README)
    assert gw["median_abs"] == pytest.approx(ow["median_abs"], abs=0.06)
    go, oo = got["offset_error_px"], own["offset_error_px"]
    assert go["median_abs"] == pytest.approx(oo["median_abs"], abs=0.02)
