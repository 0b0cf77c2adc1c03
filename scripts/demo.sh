#!/usr/bin/env bash
# Set up vision-qc and run the main job on the shipped samples: inspect every sample image
# against the samples' recipe, write results, overlays and a report to out/, then score them
# against the ground truth.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -rf out/samples
status=0
.venv/bin/vision-qc inspect samples/ --recipe samples/recipe.yaml --out out/samples || status=$?
if [ "$status" -ge 2 ]; then exit "$status"; fi
# eval inspects the samples itself too, so that it can also score every station's width and
# offset (the result records carry only the per-part stats)
.venv/bin/vision-qc eval samples/ --out out/samples/eval.json
echo "results: out/samples/results.jsonl  report: out/samples/report.html"
