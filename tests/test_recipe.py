"""The recipe file (DESIGN §4): round trip, and every refusal names the file and the field."""

import copy
import json

import numpy as np
import pytest
import yaml

from vision_qc.recipe import (Recipe, RecipeError, load_recipe, recipe_from_dict, recipe_to_dict,
                              save_recipe)
from vision_qc.synth import sample_scene

GOOD = {
    "name": "windshield-A",
    "image_size": [2048, 1536],
    "mm_per_px": 0.8,
    "polarity": "bright",
    "path": {"closed": True, "points": [[100, 100], [900, 100], [900, 700], [100, 700]]},
    "bead": {"width_mm": 10.0, "width_tol_mm": 2.5, "max_offset_mm": 4.0, "min_defect_mm": 3.0,
             "search_mm": 22.0},
    "align": False,
}


def with_change(dotted, value):
    """GOOD with one dotted field set (value ``...`` deletes it)."""
    d = copy.deepcopy(GOOD)
    *parents, last = dotted.split(".")
    node = d
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return d


def write(tmp_path, data, name="r.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_contract_example_loads(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert isinstance(r, Recipe)
    assert r.image_size_wh == (2048, 1536) and r.closed and r.polarity == "bright"
    assert r.points_xy.shape == (4, 2)
    assert (r.width_min_mm, r.width_max_mm) == (7.5, 12.5)
    assert r.source == str(tmp_path / "r.yaml")


@pytest.mark.parametrize("open_path", [False, True])
def test_generated_recipe_round_trips_through_a_file(tmp_path, open_path):
    recipe = sample_scene(3, size_wh=(800, 600), open_path=open_path).recipe()
    save_recipe(recipe, tmp_path / "recipe.yaml")
    back = load_recipe(tmp_path / "recipe.yaml")
    assert recipe_to_dict(back) == recipe_to_dict(recipe)
    np.testing.assert_array_equal(back.points_xy, recipe.points_xy)
    assert back.closed is (not open_path)
    for field in ("name", "image_size_wh", "mm_per_px", "polarity", "width_mm", "width_tol_mm",
                  "max_offset_mm", "min_defect_mm", "search_mm", "align", "interpolation"):
        assert getattr(back, field) == getattr(recipe, field), field
    # saving what was loaded writes the same text
    save_recipe(back, tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_text() == (tmp_path / "recipe.yaml").read_text()


def test_json_is_accepted(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    assert recipe_to_dict(load_recipe(path)) == recipe_to_dict(recipe_from_dict(GOOD))


def test_optional_keys_default():
    d = copy.deepcopy(GOOD)
    del d["align"], d["name"]
    r = recipe_from_dict(d)
    assert r.align is False and r.name == "" and r.interpolation == "spline"


@pytest.mark.parametrize("dotted, value, field, words", [
    # unknown keys name the key and, when one is close, the key meant
    ("bead.widht_mm", 10.0, "bead.widht_mm", "did you mean 'width_mm'"),
    ("polarty", "bright", "polarty", "did you mean 'polarity'"),
    ("path.clsoed", True, "path.clsoed", "did you mean 'closed'"),
    ("zzz", 1, "zzz", "unknown key"),
    # missing required fields
    ("bead.search_mm", ..., "bead.search_mm", "missing"),
    ("mm_per_px", ..., "mm_per_px", "missing"),
    ("path.points", ..., "path.points", "missing"),
    # wrong types
    ("mm_per_px", "0.8", "mm_per_px", "must be a number"),
    ("bead.width_mm", True, "bead.width_mm", "must be a number"),
    ("path.closed", "yes", "path.closed", "true or false"),
    ("image_size", [2048.0, 1536], "image_size", "two positive integers"),
    ("path.points", [[1, 2], [3, "4"], [5, 6]], "path.points[1]", "two finite numbers"),
    ("bead", [1, 2], "bead", "mapping"),
    # wrong values
    ("polarity", "shiny", "polarity", "'bright' or 'dark'"),
    ("mm_per_px", 0, "mm_per_px", "> 0"),
    ("bead.width_mm", float("nan"), "bead.width_mm", "finite"),
    ("bead.min_defect_mm", -1.0, "bead.min_defect_mm", ">= 0"),
    ("bead.width_tol_mm", 10.0, "bead.width_tol_mm", "smaller than bead.width_mm"),
    ("bead.width_tol_mm", 12.0, "bead.width_tol_mm", "smaller than bead.width_mm"),
    ("bead.search_mm", 10.24, "bead.search_mm", "must reach past the widest accepted bead"),
    ("path.points", [[1, 1], [2, 2], [1, 1]], "path.points", "at least 3 distinct"),
    ("path.interpolation", "cubic", "path.interpolation", "'spline' or 'linear'"),
])
def test_bad_recipes_name_the_file_and_the_dotted_field(tmp_path, dotted, value, field, words):
    path = write(tmp_path, with_change(dotted, value))
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {field}: "), msg
    assert words in msg


def test_search_exactly_at_the_reach_passes_and_just_below_fails():
    # (width + tol) / 2 + max_offset = (10 + 2.5) / 2 + 4 = 10.25
    assert recipe_from_dict(with_change("bead.search_mm", 10.25)).search_mm == 10.25
    with pytest.raises(RecipeError, match="bead.search_mm"):
        recipe_from_dict(with_change("bead.search_mm", 10.2499))


def test_tolerance_just_below_the_width_passes():
    assert recipe_from_dict(with_change("bead.width_tol_mm", 9.99)).width_min_mm == pytest.approx(0.01)


def test_a_recipe_is_a_recipe_error_and_a_value_error():
    assert issubclass(RecipeError, ValueError)


@pytest.mark.parametrize("text, words", [
    ("", "must be a mapping"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_unparseable_files_name_the_file(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert str(exc.value).startswith(str(path)) and words in str(exc.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_replace_validates_again():
    r = recipe_from_dict(GOOD)
    assert r.replace(width_tol_mm=1.0).width_min_mm == 9.0
    with pytest.raises(RecipeError, match="bead.width_tol_mm"):
        r.replace(width_tol_mm=11.0)
