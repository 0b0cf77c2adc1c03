"""tools/teach_accuracy.py, the source of the README's teaching figures (issue #5), runs and
prints them: each part taught from its own image, scored against the generator's truth."""

import json
import re
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "teach_accuracy.py"


def test_teach_accuracy_scores_parts_taught_from_their_own_image(tmp_path):
    # seed 45: the open dark bead whose line ran on along the frit (taught 3.0 m for 1.5 m)
    out = subprocess.run([sys.executable, str(TOOL), "--seed", "45", "--n", "1", "--workers",
                          "1", "--json", str(tmp_path / "rows.json")],
                         check=True, capture_output=True, text=True).stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [(r["seed"], r["polarity"], r["open"]) for r in rows] == [
        (45, "bright", True), (45, "dark", True)]
    for r in rows:
        assert "error" not in r, r
        assert r["verdict"] == "OK" and abs(r["length_error_mm"]) < 5.0, r
        assert 0.0 < r["path_rms_px"] < 0.5 and abs(r["width_error_mm"]) < 0.5, r
    assert re.search(r"^all: taught 2 of 2; width within 0\.1 mm \d", out, re.M), out
    assert "not OK with their own recipe: none" in out and "not taught: none" in out, out
