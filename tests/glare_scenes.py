"""Scenes shared by tests: a straight bead's recipe, a bead under a glare ramp (imported by name, not a conftest: the
benchmarks' conftest takes that module name when both folders run in one session)."""

import cv2
import numpy as np

from vision_qc.recipe import recipe_from_dict


def straight_recipe():
    """The recipe of a dark bead 5 mm (10 px) wide along y = 80 px from x = 20 to 280 px of a
    300×160 frame, 0.5 mm/px: width 3.75-6.25 mm, offset within 2 mm, defects from 2 mm."""
    return recipe_from_dict({
        "image_size": [300, 160], "mm_per_px": 0.5, "polarity": "dark",
        "path": {"closed": False, "points": [[20, 80], [280, 80]]},
        "bead": {"width_mm": 5.0, "width_tol_mm": 1.25, "max_offset_mm": 2.0,
                 "min_defect_mm": 2.0, "search_mm": 10.0}})


def glare_ramp_scene(*, gap=True, wide=False, seed=1, slope=0.8):
    """(frame, recipe): a dark bead 10 px wide along y = 80 on a background that falls
    ``slope`` grey levels per px across it (a glare ramp), noise σ 2; with a gap from x = 130
    to 170 px (55-75 mm along the path), or with ``wide`` a stretch 16 px wide there instead
    (a wide defect, both sides)."""
    h, w = 160, 300
    y = np.arange(h, dtype=np.float32)[:, None]
    img = np.repeat(130.0 - slope * (y - 80.0), w, axis=1).astype(np.float32)
    bead = np.zeros((h, w), np.float32)
    bead[75:85, 20:281] = 1.0
    if gap:
        bead[:, 130:170] = 0.0
    elif wide:
        bead[72:88, 130:170] = 1.0
    img -= 16.0 * cv2.GaussianBlur(bead, (0, 0), 1.0)
    img += np.random.default_rng(seed).normal(0.0, 2.0, img.shape).astype(np.float32)
    recipe = straight_recipe()
    return np.clip(np.round(img), 0, 255).astype(np.uint8), recipe
