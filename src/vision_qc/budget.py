"""The per-frame time budget, defined once (DESIGN §7). Benchmarks and reports read it here."""

FRAME_BUDGET_MS = 10.0   # what the cell allows per frame, alignment included
FRAME_AIM_MS = 3.0       # what we aim for: 2448×2048, ~7,500 stations, one core
