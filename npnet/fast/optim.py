"""Optimizers whose state is placed in memory, and Adam's update as one compiled loop.

NumPy evaluates Adam's rule (:class:`npnet.optim.Adam`) one operation at a time: each of
``beta1 * m``, ``(1 - beta1) * g``, their sum, ``m / (1 - beta1^t)``, ... is a pass that reads
and writes every element of the parameter, a dozen passes in all. The same rule written as
one loop over the elements and compiled by numba (https://numba.pydata.org) reads each
element once, does all the arithmetic in registers and writes it once.

The loop does the core's operations in the core's order, in the parameters' dtype, so it
gives the same bits: ``tests/test_fast.py::test_fast_adam_gives_the_core_adams_bits``
checks it on arrays that hypothesis draws. numba is optional (``pip install npnet[fast]``);
without it :class:`FastAdam` runs the core's NumPy passes, with its state still placed.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache

import numpy as np

from ..optim import SGD, Adam
from .placement import zeros_alongside

__all__ = ["numba_available", "adam_kernel", "placed_state", "FastSGD", "FastAdam"]


def numba_available() -> bool:
    """Whether numba is installed (without importing it, which takes a moment)."""
    return importlib.util.find_spec("numba") is not None


def _adam_loop(w, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2,
               correction1, correction2, lr, eps):
    """Adam's update of 1-D arrays, in place, one element at a time: ``Adam._update``'s
    expressions in their order (the scalars come in with the arrays' dtype)."""
    for i in range(w.size):
        m[i] = beta1 * m[i] + one_minus_beta1 * g[i]
        v[i] = beta2 * v[i] + one_minus_beta2 * (g[i] * g[i])
        m_hat = m[i] / correction1
        v_hat = v[i] / correction2
        w[i] -= lr * m_hat / (np.sqrt(v_hat) + eps)


@cache
def adam_kernel():
    """``_adam_loop`` compiled by numba, on first use (None without numba).

    ``error_model="numpy"`` gives IEEE division (no zero check, which would stop the loop
    from being vectorised); ``cache=True`` keeps the machine code on disk between runs.
    numba does not contract a multiply and an add into one fused operation unless asked
    (``fastmath``), so every operation rounds as NumPy's does.

    Where numba finds no writable folder for its cache (a read-only installation and a home
    that is not writable, as in some containers), the loop is compiled for this process
    only, and one line says so.
    """
    if not numba_available():
        return None
    import numba

    try:
        return numba.njit(cache=True, error_model="numpy")(_adam_loop)
    except RuntimeError as error:  # "cannot cache function ...: no locator available"
        if "cache" not in str(error):
            raise
        print("npnet: numba has no writable folder to cache Adam's compiled loop in (set "
              "NUMBA_CACHE_DIR to one); compiling it for this run only", file=sys.stderr)
        return numba.njit(cache=False, error_model="numpy")(_adam_loop)


# The dtypes the loop is compiled for: numba has no long double (nor float16) arithmetic.
_LOOP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _loopable(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray) -> bool:
    """Whether the compiled loop can update these arrays: flat memory, and one dtype that it
    is compiled for (NumPy would mix dtypes otherwise). The others take the core's passes."""
    return (
        param.dtype in _LOOP_DTYPES
        and grad.dtype == param.dtype
        and all(a.flags.c_contiguous for a in (param, grad, m, v))
    )


def placed_state(optimizer, name: str) -> dict[str, np.ndarray]:
    """``optimizer``'s state of parameter ``name``, created beside the parameter in memory.

    The update reads each state array in the same loop as the parameter (stream 0) and its
    gradient (stream 1), so the state's arrays are streams 2, 3, ...
    (:func:`npnet.fast.placement.zeros_alongside`). The replacement for the core's
    ``Optimizer._state_of``.
    """
    if name not in optimizer.state:
        param = optimizer.params[name]
        optimizer.state[name] = {
            slot: zeros_alongside(param, stream=2 + i)
            for i, slot in enumerate(optimizer.state_slots)
        }
    return optimizer.state[name]


class FastSGD(SGD):
    """:class:`npnet.optim.SGD` with its velocities placed beside their parameters.

    The same update (it is inherited); only where the arrays sit changes.
    """

    _state_of = placed_state


class FastAdam(Adam):
    """:class:`npnet.optim.Adam` as one compiled loop per parameter, state placed.

    The same numbers as the core's NumPy passes, bit for bit. Arrays the loop cannot walk
    as flat memory (views with strides), dtypes it is not compiled for (float16, long
    double; :func:`_loopable`) and machines without numba take the core's passes.
    """

    _state_of = placed_state

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:
        kernel, grad = adam_kernel(), np.asarray(grad)
        state = self._state_of(name)
        m, v = state["m"], state["v"]
        if kernel is None or not _loopable(param, grad, m, v):
            super()._update(name, param, grad)
            return
        if self.weight_decay:
            grad = grad + self.weight_decay * param  # as the core does, before the rule
        t = self.steps
        scalars = (self.beta1, 1 - self.beta1, self.beta2, 1 - self.beta2,
                   1 - self.beta1**t, 1 - self.beta2**t, self.lr, self.eps)
        to_dtype = param.dtype.type  # what NumPy makes of a Python float beside these arrays
        flat = (array.reshape(-1) for array in (param, grad, m, v))
        kernel(*flat, *map(to_dtype, scalars))
