"""Optional compiled kernels: one loop over memory where NumPy makes one pass per operation.

NumPy evaluates ``m *= beta1`` and ``m += (1 - beta1) * g`` as separate passes, each
reading and writing every element, so Adam's update rule (:class:`npnet.optim.Adam`) is
12 passes over every parameter: a quarter of a DAE training step at batch 128. The same
rule written as one loop, and compiled by numba (https://numba.pydata.org), reads each
element once, does all the arithmetic in registers and writes it once: in a DAE training
step at batch 128 it takes 0.7-0.8 ms where the NumPy passes take 1.6-1.8 ms.

numba is optional (``pip install npnet[fast]``). Without it, npnet runs the NumPy version,
which stays the reference: ``tests/test_optim.py`` checks that both produce the same bits.
"""

from __future__ import annotations

import importlib.util
from functools import cache

import numpy as np

__all__ = ["numba_available", "adam_kernel"]


def numba_available() -> bool:
    """Whether numba is installed (without importing it, which takes a moment)."""
    return importlib.util.find_spec("numba") is not None


def _adam_loop(w, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, eps):
    """Adam's update of 1-D arrays, in place, one element at a time.

    The same operations in the same order as the NumPy passes in ``Adam._update``, so the
    results are identical (the scalars come in with the arrays' dtype)::

        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        w <- w - step_size m / (sqrt(v) + eps)
    """
    for i in range(w.size):
        m[i] = m[i] * beta1 + g[i] * one_minus_beta1
        v[i] = v[i] * beta2 + g[i] * g[i] * one_minus_beta2
        w[i] -= m[i] / (np.sqrt(v[i]) + eps) * step_size


@cache
def adam_kernel():
    """``_adam_loop`` compiled by numba, on first use (None without numba).

    ``error_model="numpy"`` gives IEEE division (no zero check, which would stop the loop
    from being vectorised); ``cache=True`` keeps the machine code on disk between runs.
    """
    if not numba_available():
        return None
    import numba

    return numba.njit(cache=True, error_model="numpy")(_adam_loop)
