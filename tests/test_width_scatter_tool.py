"""tools/width_scatter.py, the source of the longer width window's noise constant, runs on a
generated folder and prints what the README quotes."""

import re
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "width_scatter.py"


def test_width_scatter_prints_the_split_and_the_noise_constant(tmp_path):
    subprocess.run([sys.executable, "-m", "vision_qc", "generate", str(tmp_path), "--n", "3",
                    "--seed", "5", "--preset", "normal", "--ng-fraction", "0", "--polarity",
                    "dark"], check=True, capture_output=True)
    out = subprocess.run([sys.executable, str(TOOL), str(tmp_path), "--workers", "1"],
                         check=True, capture_output=True, text=True).stdout
    assert re.search(r": 3 OK parts, width error", out), out
    p95 = [float(x) for x in re.findall(r"(?:stations|bias|median) (\d+\.\d+)", out)[:3]]
    # less the part's bias, less the slow trend: never larger
    assert len(p95) == 3 and p95[0] >= p95[1] - 1e-9 and p95[0] > 0, out
    ratios = [float(x) for x in out.strip().splitlines()[-1].split(":")[-1].split(",")]
    # the constant the window takes (ICI_NOISE 3.5) within what five sets gave (3.1-3.7)
    assert all(2.5 < r < 4.5 for r in ratios), out
