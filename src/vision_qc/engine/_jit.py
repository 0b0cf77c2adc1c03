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
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = ["kernel", "ieee_kernel", "inlined", "finite", "fma32", "fma64"]


def kernel(fn):
    """Compile ``fn`` with Numba in nopython mode (cached, GIL released)."""
    return numba.njit(cache=True, nogil=True)(fn)


def ieee_kernel(fn):
    """``@kernel`` whose float division by zero gives IEEE's inf or NaN (NumPy's error model)
    instead of raising ZeroDivisionError: Python's check is a branch round every division
    by a value that may be zero, and a loop with one does not vectorise. Only for kernels
    whose divisors are never zero, or whose quotient by zero is discarded: the floats are
    then the same."""
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)


def inlined(fn):
    """``@kernel``, and compiled into each kernel that calls it (Numba's inlining of its own IR,
    the same operations) instead of called: a call of a per-side helper with a dozen
    arguments and a tuple returned costs as much as the helper's own work (measured on the
    2448×2048 bench frame: the edge walk and fit kernel 1.69 → 1.29 ms)."""
    return numba.njit(cache=True, nogil=True, inline="always")(fn)


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


def _fma_intrinsic(llvm_type, nb_type, doc):
    @intrinsic
    def fma(typingctx, a, b, c):
        def codegen(context, builder, signature, args):
            f = builder.module.declare_intrinsic("llvm.fma", [llvm_type],
                                                 ir.FunctionType(llvm_type, [llvm_type] * 3))
            return builder.call(f, args)

        return nb_type(nb_type, nb_type, nb_type), codegen

    fma.__doc__ = doc
    return fma


# ``a * b + c`` rounded once (LLVM's fma: the FMA instruction), where a kernel must give the
# floats of code that fuses (OpenCV's SIMD paths, OpenBLAS's matmul): Numba has no other way
# to ask for one without fastmath, which would let it fuse everywhere.
fma32 = _fma_intrinsic(ir.FloatType(), types.float32, "``a * b + c`` in float32, rounded once.")
fma64 = _fma_intrinsic(ir.DoubleType(), types.float64, "``a * b + c`` in float64, rounded once.")
