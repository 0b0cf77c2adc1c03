#!/usr/bin/env bash
# Accuracy of the inspection against the generator's exact truth, on both bead polarities.
#
# Usage: bash scripts/accuracy.sh [DIR] [N]
#   DIR  where the generated scenes and the figures go (default out/accuracy)
#   N    scenes per set (default 200)
#
# Generates 12 sets of N 2048x1536 scenes: presets clean, normal and hard, bright and dark
# beads, a development seed (7) and a held-out one (8); scores each with `vision-qc eval`
# (DIR/SET/eval.json) and writes one table, DIR/accuracy.md, which it also prints. Sets that
# are already complete are not generated again. A polarity is drawn once per generated folder
# (one recipe), so a folder left to chance holds one polarity only: both are asked for here.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/accuracy}
n=${2:-200}
if [ ! -x .venv/bin/vision-qc ]; then bash scripts/setup.sh; fi
vqc=.venv/bin/vision-qc
mkdir -p "$out"
sets=()
for seed in 7 8; do
  for polarity in bright dark; do
    for preset in clean normal hard; do
      name="${preset}_${polarity}_s${seed}"
      dir="$out/$name"
      if [ "$(ls "$dir"/ws_*.json 2>/dev/null | wc -l)" -ne "$n" ]; then
        rm -rf "$dir"
        $vqc generate "$dir" --n "$n" --seed "$seed" --preset "$preset" --polarity "$polarity" >/dev/null
      fi
      $vqc eval "$dir" --quiet --out "$dir/eval.json"
      sets+=("$name")
    done
  done
done
.venv/bin/python - "$out" "${sets[@]}" <<'PY'
import json
import sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]
rows = ["| set | escapes (NG called OK) | false rejects | recall gap / thin / wide / offset "
        "| false alarms per image | width error median / p95 | mean-width error median "
        "| gap ends max |",
        "|---|---|---|---|---|---|---|---|"]
for name in names:
    g = json.loads((out / name / "eval.json").read_text())["overall"]
    c, w, ge = g["confusion"], g["width_error_px"], g["gap_end_error"]
    ok = c["false_rejects"] + c["ok_called_ok"]
    ng = c["escapes"] + c["ng_called_ng"]
    recall = " / ".join("-" if g["recall"].get(k) is None else f"{g['recall'][k]:.2f}"
                        for k in ("gap", "thin", "wide", "offset"))
    width = ("-" if w["median_abs"] is None
             else f"{w['median_abs']:.2f} / {w['p95_abs']:.2f} px")
    mean_w = g["mean_width_error_mm"]["median_abs"]
    gap = ge["px_max"]
    rows.append(f"| {name} | {c['escapes']} / {ng} | {c['false_rejects']} / {ok} | {recall} "
                f"| {g['false_alarms_per_image']:.3f} | {width} "
                f"| {'-' if mean_w is None else f'{mean_w:.3f} mm'} "
                f"| {'-' if gap is None else f'{gap:.2f} px'} |")
table = "\n".join(rows) + "\n"
(out / "accuracy.md").write_text(table)
print(table, end="")
PY
