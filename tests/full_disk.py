"""A disk that fills up while a run writes its per-file outputs, for the tests that check a
run stops cleanly and keeps what it finished."""

from __future__ import annotations

import errno
import os


def filling_after(write_atomic, files: int):
    """A ``write_atomic`` that writes the outputs of the first ``files`` input files (told
    apart by their outputs' stem) and fails every later write with ENOSPC, as a full disk
    does. Returns (the replacement, the list of stems in the order first written to)."""
    stems: list[str] = []

    def write(path, data, **kw):
        stem = os.path.basename(path).split(".")[0]
        if stem not in stems:
            stems.append(stem)
        if len(stems) > files:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return write_atomic(path, data, **kw)

    return write, stems
