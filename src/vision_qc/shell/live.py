"""`vision-qc live`: not built yet (its issue is open)."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.description = (parser.description or "") + " (not available yet in this version)"


def run(args) -> int:
    print("vision-qc live: not available yet in this version of vision-qc", file=sys.stderr)
    return 2
