"""Compiled per-frame kernels.

The per-frame stages walk every station's profile once, in machine code compiled by Numba
(``@kernel``), instead of a dozen whole-array numpy passes over (stations × samples): the
interpreter never runs per station or per sample (DESIGN §2), and each kernel has a slow,
obvious reference in the tests that it must equal.

``cache=True`` keeps the compiled code beside the module (or in Numba's user cache when that
folder is read-only), so only the first process on a machine pays the compilation; ``nogil``
lets threads (the live loop's reader) run while a frame is inspected. No ``fastmath``: the
kernels must give the same floats as their references.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["kernel", "finite"]


def kernel(fn):
    """Compile ``fn`` with Numba in nopython mode (cached, GIL released)."""
    return numba.njit(cache=True, nogil=True)(fn)


@kernel
def finite(x, big):
    """``np.nan_to_num`` of one value: NaN becomes 0 and ±inf ±``big`` (the dtype's largest
    finite value)."""
    if np.isnan(x):
        return 0.0
    if x == np.inf:
        return big
    if x == -np.inf:
        return -big
    return x
