"""`vision-qc bench`: report files, fields, comparison with the previous run, exit status."""

import json

import pytest

from vision_qc.benchreport import compare, render_html, render_markdown
from vision_qc.cli import main


def test_bench_quick_writes_json_and_reports_and_compares(tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(["bench", "--quick", "--rounds", "2", "--out", str(out), "--quiet"])
    data = json.loads((out / "bench.json").read_text())
    assert rc == (1 if any(f["p50_ms"] > f["budget_ms"] for f in data["frames"]) else 0)
    assert data["frames"], "no case was timed"
    for f in data["frames"]:
        assert {"size", "stations", "p50_ms", "p99_ms", "budget_ms", "naive_ratio"} <= set(f)
        assert f["p99_ms"] >= f["p50_ms"] > 0
        assert f["naive_ratio"] > 1
        assert set(f["stages_p50_ms"]) >= {"sample", "edges", "judge"}
    assert {"cpu", "cores", "opencv", "numpy"} <= set(data["machine"])
    assert (out / "report.md").read_text().startswith("# vision-qc benchmark report")
    html = (out / "report.html").read_text()
    assert "<svg" in html and "budget" in html
    main(["bench", "--quick", "--rounds", "2", "--out", str(out), "--quiet"])
    again = json.loads((out / "bench.json").read_text())
    assert len(again["comparison"]) == len(again["frames"])
    assert len(list((out / "history").glob("bench-*.json"))) == 1


def _data(p50):
    return {"created": "t", "quick": True, "budget_ms": 10.0, "aim_ms": 3.0,
            "machine": {"cpu": "x", "cores": 2, "python": "3", "opencv": "4", "numpy": "2",
                        "scikit_image": "0"},
            "frames": [{"size": [100, 80], "stations": 10, "spacing_px": 1.0, "threads": "1 thread",
                        "p50_ms": p50, "p99_ms": p50 + 1, "budget_ms": 10.0,
                        "stages_p50_ms": {"sample": p50 / 2, "edges": p50 / 4}}]}


@pytest.mark.parametrize("before,after,flag", [(5.0, 5.4, False), (5.0, 5.6, True), (1.0, 1.15, False)])
def test_regression_needs_both_ten_percent_and_a_fifth_of_a_ms(before, after, flag):
    (row,) = compare(_data(after), _data(before))
    assert row["regression"] is flag


def test_reports_render_without_a_previous_run():
    d = _data(12.0)
    md = render_markdown(d, [])
    assert "**OVER**" in md and "No previous run" in md
    assert "<table>" in render_html(d, [])
