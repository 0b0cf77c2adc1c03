"""The recipe: what the bead should look like and where (DESIGN §4), and its validating loader.

Parsing is strict: an unknown key is an error naming the key and, where one is close, the key
that was probably meant; every error names the file and the dotted field.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any

import numpy as np
import yaml

__all__ = ["Recipe", "RecipeError", "load_recipe", "recipe_from_dict", "save_recipe"]


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and the dotted field."""


@dataclass(frozen=True, eq=False)
class Recipe:
    """A validated recipe. Lengths in mm except ``points_xy`` and ``image_size_wh`` (px)."""

    name: str
    image_size_wh: tuple[int, int]
    mm_per_px: float
    polarity: str
    closed: bool
    points_xy: np.ndarray
    width_mm: float
    width_tol_mm: float
    max_offset_mm: float
    min_defect_mm: float
    search_mm: float
    align: bool = False
    interpolation: str = "spline"
    # Optional: the alignment reference a taught recipe may store (issue: alignment).
    reference: dict | None = None
    source: str = field(default="<recipe>", compare=False)

    @property
    def width_min_mm(self) -> float:
        return self.width_mm - self.width_tol_mm

    @property
    def width_max_mm(self) -> float:
        return self.width_mm + self.width_tol_mm

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed, validated again."""
        return recipe_from_dict(recipe_to_dict(replace(self, **changes)), source=self.source)


_TOP = {"name", "image_size", "mm_per_px", "polarity", "path", "bead", "align", "reference"}
_PATH = {"closed", "points", "interpolation"}
_BEAD = {"width_mm", "width_tol_mm", "max_offset_mm", "min_defect_mm", "search_mm"}


def _fail(source: str, dotted: str, msg: str) -> RecipeError:
    return RecipeError(f"{source}: {dotted}: {msg}")


def _check_keys(d: dict, allowed: set[str], required: set[str], prefix: str, source: str):
    for key in d:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; known keys: {sorted(allowed)}"
            raise _fail(source, f"{prefix}{key}", f"unknown key{hint}")
    for key in sorted(required - set(d)):
        raise _fail(source, f"{prefix}{key}", "missing (required)")


def _number(value: Any, dotted: str, source: str, *, positive=False, non_negative=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, dotted, f"must be a number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise _fail(source, dotted, f"must be finite; got {value!r}")
    if positive and v <= 0:
        raise _fail(source, dotted, f"must be > 0; got {value!r}")
    if non_negative and v < 0:
        raise _fail(source, dotted, f"must be >= 0; got {value!r}")
    return v


def _bool(value: Any, dotted: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, dotted, f"must be true or false; got {value!r}")
    return value


def recipe_from_dict(data: Any, *, source: str = "<recipe>") -> Recipe:
    """Validate a parsed recipe mapping and build a :class:`Recipe`.

    Raises
    ------
    RecipeError
        With the source, the dotted field, the value and what would be right.
    """
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: the recipe must be a mapping of keys; got {type(data).__name__}")
    _check_keys(data, _TOP, _TOP - {"align", "reference", "name"}, "", source)

    name = data.get("name", "")
    if not isinstance(name, str):
        raise _fail(source, "name", f"must be text; got {name!r}")

    size = data["image_size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise _fail(source, "image_size", f"must be [width, height] in px, two positive integers; got {size!r}")

    mm_per_px = _number(data["mm_per_px"], "mm_per_px", source, positive=True)
    polarity = data["polarity"]
    if polarity not in ("bright", "dark"):
        raise _fail(source, "polarity", f"must be 'bright' or 'dark'; got {polarity!r}")

    path = data["path"]
    if not isinstance(path, dict):
        raise _fail(source, "path", f"must be a mapping with 'closed' and 'points'; got {path!r}")
    _check_keys(path, _PATH, {"closed", "points"}, "path.", source)
    closed = _bool(path["closed"], "path.closed", source)
    interpolation = path.get("interpolation", "spline")
    if interpolation not in ("spline", "linear"):
        raise _fail(source, "path.interpolation", f"must be 'spline' or 'linear'; got {interpolation!r}")
    raw = path["points"]
    if not isinstance(raw, (list, tuple)):
        raise _fail(source, "path.points", f"must be a list of [x, y] pairs; got {type(raw).__name__}")
    for i, p in enumerate(raw):
        if (not isinstance(p, (list, tuple)) or len(p) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in p)):
            raise _fail(source, f"path.points[{i}]", f"must be [x, y], two finite numbers; got {p!r}")
    pts = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    distinct = len(np.unique(pts, axis=0))
    need = 3 if closed else 2
    if distinct < need:
        raise _fail(source, "path.points",
                    f"a {'closed' if closed else 'open'} path needs at least {need} distinct points; "
                    f"got {distinct}")

    bead = data["bead"]
    if not isinstance(bead, dict):
        raise _fail(source, "bead", f"must be a mapping; got {bead!r}")
    _check_keys(bead, _BEAD, _BEAD, "bead.", source)
    width = _number(bead["width_mm"], "bead.width_mm", source, positive=True)
    tol = _number(bead["width_tol_mm"], "bead.width_tol_mm", source, non_negative=True)
    if tol >= width:
        raise _fail(source, "bead.width_tol_mm",
                    f"must be smaller than bead.width_mm ({width}); got {tol}")
    max_off = _number(bead["max_offset_mm"], "bead.max_offset_mm", source, non_negative=True)
    min_def = _number(bead["min_defect_mm"], "bead.min_defect_mm", source, non_negative=True)
    search = _number(bead["search_mm"], "bead.search_mm", source, positive=True)
    reach = (width + tol) / 2 + max_off
    if search < reach:
        raise _fail(source, "bead.search_mm",
                    f"must reach past the widest accepted bead at the largest accepted offset "
                    f"((width_mm + width_tol_mm) / 2 + max_offset_mm = {reach:g}); got {search:g}")

    align = _bool(data.get("align", False), "align", source)
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, dict):
        raise _fail(source, "reference", f"must be a mapping; got {reference!r}")

    return Recipe(name=name, image_size_wh=(int(size[0]), int(size[1])), mm_per_px=mm_per_px,
                  polarity=polarity, closed=closed, points_xy=pts, width_mm=width,
                  width_tol_mm=tol, max_offset_mm=max_off, min_defect_mm=min_def,
                  search_mm=search, align=align, interpolation=interpolation,
                  reference=reference, source=source)


def load_recipe(path: str | FsPath) -> Recipe:
    """Read and validate a YAML (or JSON) recipe file."""
    source = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{source}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{source}: cannot read the recipe: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from None
    return recipe_from_dict(data, source=source)


def recipe_to_dict(recipe: Recipe) -> dict:
    """The recipe as plain data in the contract layout (DESIGN §4)."""
    d = {
        "name": recipe.name,
        "image_size": [int(recipe.image_size_wh[0]), int(recipe.image_size_wh[1])],
        "mm_per_px": float(recipe.mm_per_px),
        "polarity": recipe.polarity,
        "path": {"closed": bool(recipe.closed),
                 "points": [[round(float(x), 3), round(float(y), 3)] for x, y in recipe.points_xy]},
        "bead": {"width_mm": float(recipe.width_mm), "width_tol_mm": float(recipe.width_tol_mm),
                 "max_offset_mm": float(recipe.max_offset_mm),
                 "min_defect_mm": float(recipe.min_defect_mm), "search_mm": float(recipe.search_mm)},
        "align": bool(recipe.align),
    }
    if recipe.interpolation != "spline":
        d["path"]["interpolation"] = recipe.interpolation
    if recipe.reference is not None:
        d["reference"] = recipe.reference
    return d


class _FlowListDumper(yaml.SafeDumper):
    pass


def _represent_list(dumper, data):
    # Short numeric lists ([x, y], image_size) read best on one line.
    flow = len(data) <= 4 and all(isinstance(v, (int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _represent_list)


def save_recipe(recipe: Recipe, path: str | FsPath) -> None:
    """Write the recipe as YAML in the contract layout."""
    text = yaml.dump(recipe_to_dict(recipe), Dumper=_FlowListDumper, sort_keys=False, width=100)
    FsPath(path).write_text(text, encoding="utf-8")
