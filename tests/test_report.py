"""The HTML report: plots, structure (parsed with html.parser), self-containedness, and what
headless Chromium actually draws from it."""

import base64
import dataclasses
import os
import shutil
import subprocess
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from vision_qc.cli import main
from vision_qc.recipe import save_recipe
from vision_qc.shell.report import (VERDICT_COLORS, render_report, svg_histogram, svg_pareto,
                                    svg_profile)
from vision_qc.synth import SceneRenderer, sample_scene

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class ReportParser(HTMLParser):
    """Checks that tags nest and close, and collects what the tests look at."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors = [], []
        self.images, self.urls, self.rows, self.sections = [], [], [], {}
        self._section, self._text = None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        if tag == "tr" and "data-verdict" in a:
            self.rows.append(a["data-verdict"])
        if tag == "section" and "id" in a:
            self._section, self._text = a["id"], []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "section" and self._section:
            self.sections[self._section] = " ".join(self._text)
            self._section = None

    def handle_data(self, data):
        if self._section and data.strip():
            self._text.append(data.strip())


def parse(html_text: str) -> ReportParser:
    p = ReportParser()
    p.feed(html_text)
    p.close()
    assert p.errors == [] and p.stack == [], (p.errors, p.stack)
    return p


def _rec(file, verdict, defects=(), **stats):
    return {"file": file, "verdict": verdict, "error": "empty file" if verdict == "ERROR" else None,
            "defects": list(defects), "stats": stats, "timing_ms": {"total": 2.5, "read": 1.0}}


RECIPE = {"name": "windshield-A", "image_size": [1280, 1024], "mm_per_px": 1.0,
          "polarity": "bright", "path": {"closed": True, "points": [[0, 0], [10, 0], [10, 10]]},
          "bead": {"width_mm": 10.0, "width_tol_mm": 2.5, "max_offset_mm": 4.0,
                   "min_defect_mm": 3.0, "search_mm": 20.0}, "align": False}


# ---------------------------------------------------------------------------------------
# Plots


def test_pareto_sorted_with_cumulative_share():
    svg = svg_pareto({"thin": 1, "gap": 5, "wide": 0, "offset": 2})
    assert svg.index(">gap<") < svg.index(">offset<") < svg.index(">thin<")
    assert ">wide<" not in svg and "100%</text>" in svg and "62%" in svg   # 5/8
    assert "no defects" in svg_pareto({})


def test_histogram_skips_missing_values_and_draws_limits():
    svg = svg_histogram([("w", [9.0, 10.0, None, float("nan"), 11.0], "#123456")],
                        xlabel="width", band=(7.5, 12.5), lines=((12.5, "max 12.5", "#00ff00"),))
    parse(svg)
    assert "#123456" in svg and "max 12.5" in svg
    assert "no measurements" in svg_histogram([("w", [None], "#000")], xlabel="width")


def test_profile_breaks_at_gaps_and_wraps_defects():
    arc = np.linspace(0, 99, 100)
    w = np.full(100, 10.0)
    w[40:50] = np.nan                                     # no bead: two runs of envelope
    svg = svg_profile(arc, w - 0.5, w + 0.5, length_mm=100.0, band=(7.5, 12.5), nominal=10.0,
                      defects=[{"type": "gap", "start_mm": 40, "end_mm": 50},
                               {"type": "thin", "start_mm": 95, "end_mm": 3}])   # crosses the start
    parse(svg)
    assert svg.count("<polygon") == 2
    assert svg.count("<title>thin") == 2 and svg.count("<title>gap") == 1


# ---------------------------------------------------------------------------------------
# The page from records alone


def test_report_structure_and_counts():
    gap = {"type": "gap", "start_mm": 1.0, "end_mm": 9.0, "length_mm": 8.0, "center_px": [1, 2],
           "worst_mm": 0.0, "limit_mm": 7.5}
    recs = [_rec("a.png", "OK", width_mean_mm=10.0, width_min_mm=9.0, width_max_mm=11.0,
                 offset_max_mm=0.5, coverage=1.0),
            _rec("b <&> 'q'.png", "NG", [gap, dict(gap, type="thin")], width_mean_mm=9.0,
                 width_min_mm=0.0, width_max_mm=10.5, offset_max_mm=1.0, coverage=0.9),
            _rec("c.png", "ERROR")]
    html_text = render_report(recs, run_info={"recipe": RECIPE, "recipe_file": "r.yaml",
                                              "software": {"vision_qc": "9.9"}})
    p = parse(html_text)
    assert p.rows == ["OK", "NG", "ERROR"]
    summary = p.sections["summary"]
    assert "3 parts" in summary and "1 OK" in summary and "1 NG" in summary and "1 ERROR" in summary
    assert "50.0%" in summary                                  # yield: OK of OK + NG
    assert "b <&> 'q'.png" in p.sections["parts"]              # escaped, read back intact
    assert "empty file" in p.sections["parts"]
    assert "windshield-A" in p.sections["recipe"] and "10.0 ± 2.5" in p.sections["recipe"]
    assert "9.9" in p.sections["software"]
    assert 'data-verdict="NG"' in html_text and VERDICT_COLORS["NG"] in html_text


def test_report_of_nothing_and_all_ok():
    p = parse(render_report([], run_info={}))
    assert "0 parts" in p.sections["summary"]
    html_text = render_report([_rec("a.png", "OK", width_mean_mm=10.0)],
                              run_info={"recipe": RECIPE})
    assert 'data-verdict="OK"' in html_text and "No NG parts" in html_text


# ---------------------------------------------------------------------------------------
# A real run: the page a user opens


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """A batch run over generated scenes (OK and NG) and one truncated file."""
    root = tmp_path_factory.mktemp("report")
    folder = root / "parts"
    folder.mkdir()
    base = sample_scene(7, size_wh=(1280, 1024), preset="clean", polarity="bright")
    for i, ng in enumerate([0.0, 1.0, 1.0, 0.0]):
        spec = sample_scene(50 + i, size_wh=(1280, 1024), preset="clean", polarity="bright",
                            ng_fraction=ng, defect_kinds=("gap", "thin", "wide", "offset"))
        scene = SceneRenderer(dataclasses.replace(spec, shape=base.shape,
                                                  mm_per_px=base.mm_per_px)).render()
        cv2.imwrite(str(folder / f"ws_{i:03d}.png"), scene.image)
    save_recipe(scene.recipe, root / "recipe.yaml")
    data = (folder / "ws_000.png").read_bytes()
    (folder / "ws_999_truncated.png").write_bytes(data[: len(data) // 2])
    out = root / "out"
    assert main(["inspect", str(folder), "--recipe", str(root / "recipe.yaml"), "--out", str(out),
                 "--workers", "2", "-q"]) == 1
    return out


def test_report_is_self_contained(report_dir):
    html_text = (report_dir / "report.html").read_text(encoding="utf-8")
    p = parse(html_text)
    assert p.rows.count("ERROR") == 1 and len(p.rows) == 5
    # every picture is embedded and decodes; nothing is fetched from anywhere
    assert len(p.images) == 4
    for src in p.images:
        assert src.startswith("data:image/jpeg;base64,")
        img = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8),
                           cv2.IMREAD_COLOR)
        assert img is not None and img.shape[1] == 200
    external = [u for u in p.urls if not u.startswith(("data:", "overlays/"))]
    assert external == []
    for u in p.urls:
        if u.startswith("overlays/"):
            assert (report_dir / u).is_file()
    assert "<script" not in html_text and "@import" not in html_text
    # an NG part's width along the path is drawn against the tolerance band
    assert p.sections["profiles"].count("ws_00") >= 1
    assert "width along the path" in html_text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html_path, png_path, profile_dir, *, size=(1280, 2000)) -> np.ndarray:
    """Render ``html_path`` in headless Chromium; the screenshot as a BGR array."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: the report must be checked in a real browser. "
                    "Install it with `apt-get install -y chromium` (scripts/setup.sh test does).")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile_dir}", f"--screenshot={png_path}",
           f"--window-size={size[0]},{size[1]}", f"file://{os.path.abspath(html_path)}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and os.path.exists(png_path), res.stderr[-2000:]
    img = cv2.imread(str(png_path), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (size[1], size[0])
    return img


def _hex_bgr(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (5, 3, 1)])


def test_report_renders_in_chromium(report_dir, tmp_path):
    img = screenshot(report_dir / "report.html", tmp_path / "shot.png", tmp_path / "profile")
    # not blank: a page of plots, thumbnails and text
    assert img.std() > 20
    # ink: pixels that are neither the page background (#f4f6f8) nor a white card
    px = img.astype(int)
    paper = [np.abs(px - np.array(c)).sum(axis=2) for c in ([248, 246, 244], [255, 255, 255])]
    ink = np.minimum(*paper) > 30
    assert ink.mean() > 0.05
    assert ink[1000:].mean() > 0.02                               # not only the top: plots too
    # the summary block is drawn near the top, in the NG colour, across most of the width
    top = img[:400].astype(int)
    red = np.abs(top - _hex_bgr(VERDICT_COLORS["NG"])).sum(axis=2) < 12
    assert red.sum() > 50_000
    rows = np.flatnonzero(red.sum(axis=1) > 0.8 * img.shape[1])
    assert rows.size > 60 and rows[0] < 150
    # and the numbers in it are drawn in white on that colour
    band = img[rows[0]:rows[-1] + 1]
    assert (band.min(axis=2) > 235).sum() > 500
