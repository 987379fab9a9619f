"""Numeric gradients, to check hand-written backward passes (used by the tests and by students).

The recipe (CS231n's ``gradient_check.py``, made careful):

* **Central differences**: ``df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h)``. The error is
  O(h^2), against O(h) for one-sided differences.
* **Step size** h = 1e-5. The central difference errs by O(h^2) from truncation and by
  O(eps |f| / h) from rounding (eps = 2.2e-16 in float64); the sum is smallest near
  h = eps^(1/3), about 6e-6. A smaller h lets rounding swamp gradients that are small
  next to the loss (seen with h = 1e-6 through three layers of width 1).
* **float64**: with h = 1e-5, a float32 difference of two losses keeps only one or two
  significant digits. Build the layer with ``dtype=np.float64`` to check it.
* **A random upstream gradient**: a layer is checked through the scalar
  ``f(x) = sum(layer(x) * dout)`` with ``dout`` drawn at random. Using ``dout = 1``
  would hide mistakes in layers whose outputs' gradients sum to zero.
* **Relative error** ``max|g - g_hat| / max(1e-8, max(|g| + |g_hat|))`` of the analytic
  gradient g and the numeric one g_hat: scale-free, and the 1e-8 floor keeps an all-zero
  gradient from dividing by zero. In float64 a correct backward gives about 1e-8 or less; a
  wrong one usually gives 1e-2 or more.
* **Kinks**: ReLU is not differentiable at 0; if an input lies within h of 0, the numeric
  derivative straddles the kink and disagrees for a correct backward. Tests keep inputs
  away from kinks by a stated margin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from . import checks

__all__ = ["numerical_gradient", "relative_error", "check_gradients", "check_layer"]


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``f`` takes no arguments and reads ``x``, which is perturbed **in place**, one entry at
    a time, and restored exactly afterwards. Returns an array of ``x``'s shape.

    Tested by: tests/test_gradcheck.py::test_numerical_gradient_of_a_known_function,
    tests/test_gradcheck.py::test_numerical_gradient_through_a_strided_view
    """
    if x.dtype != np.float64:
        raise TypeError(
            f"numerical gradients need float64 arrays (got {x.dtype}): a float32 loss "
            "difference over a step of 1e-5 keeps almost no significant digits"
        )
    if not x.flags.writeable:
        raise ValueError(
            "numerical_gradient perturbs x in place, but this array is read-only; pass the "
            "array that f() reads, made writeable"
        )
    grad = np.zeros(x.shape, dtype=np.float64)
    # Index x itself, entry by entry: x may be a view with any strides (W.T of tied
    # weights, say), and x.reshape(-1) would then be a copy that f() never reads.
    for i in np.ndindex(x.shape):
        original = x[i]
        x[i] = original + h
        f_plus = f()
        x[i] = original - h
        f_minus = f()
        x[i] = original
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max|g - g_hat| / max(1e-8, max(|g| + |g_hat|))`` for the analytic gradient g and the
    numeric one g_hat: 0 if equal, about 1 if unrelated.

    Tested by: tests/test_gradcheck.py::test_relative_error_scale_and_floor
    """
    g, g_hat = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if g.shape != g_hat.shape:
        raise ValueError(f"cannot compare gradients of shapes {g.shape} and {g_hat.shape}")
    if g.size == 0:
        return 0.0
    return float(np.max(np.abs(g - g_hat)) / max(1e-8, float(np.max(np.abs(g) + np.abs(g_hat)))))


def _check_every_array_has_a_gradient(arrays: Mapping, analytic: Mapping) -> None:
    missing = [name for name in arrays if name not in analytic]
    if missing:
        raise KeyError(
            f"loss_and_grads() returned no gradient for {', '.join(map(repr, missing))}; "
            f"it returned gradients for {sorted(analytic)}, and must return one for each "
            f"array checked ({sorted(arrays)})"
        )


def check_gradients(
    loss_and_grads: Callable[[], tuple[float, Mapping[str, np.ndarray]]],
    arrays: Mapping[str, np.ndarray],
    h: float = 1e-5,
) -> dict[str, float]:
    """Relative error between analytic and numeric gradients of a scalar loss.

    Parameters
    ----------
    loss_and_grads : callable
        Runs the forward and backward passes on the current values of ``arrays`` and
        returns ``(loss, {name: dloss/d(array)})``.
    arrays : dict[str, ndarray]
        The float64 arrays to differentiate with respect to (inputs and parameters). They
        are perturbed in place and restored.

    Returns
    -------
    dict[str, float]
        ``{name: relative_error}`` for every name in ``arrays``.

    Tested by: tests/test_layers.py::test_gradient_check_catches_a_wrong_backward,
    tests/test_gradcheck.py::test_check_gradients_names_a_missing_gradient
    """
    _, analytic = loss_and_grads()
    _check_every_array_has_a_gradient(arrays, analytic)
    analytic = {name: np.array(analytic[name], dtype=np.float64) for name in arrays}
    errors = {}
    for name, array in arrays.items():
        numeric = numerical_gradient(lambda: float(loss_and_grads()[0]), array, h)
        errors[name] = relative_error(analytic[name], numeric)
    return errors


def check_layer(
    layer, x: np.ndarray, rng: np.random.Generator | int | None = None, h: float = 1e-5
) -> dict[str, float]:
    """Check a layer's (or model's) backward pass against numeric gradients.

    The scalar is ``f = sum(layer.forward(x) * dout)`` for a random ``dout`` of the output's
    shape, so dF/d(output) = dout and ``layer.backward(dout)`` must return dF/dx and fill
    dF/d(param) for every parameter.

    Parameters
    ----------
    layer : object with ``forward``, ``backward``, ``params`` and ``grads``
        Built with float64 parameters.
    x : ndarray, float64
        Input batch; checked too, under the name ``"x"``.

    Returns
    -------
    dict[str, float]
        Relative error for ``"x"`` and every parameter name.

    Tested by: tests/test_layers.py::test_gradient_check_catches_a_wrong_backward
    """
    x = np.array(x, dtype=np.float64)
    dout = checks.generator(rng).standard_normal(layer.forward(x).shape)

    def loss_and_grads():
        out = layer.forward(x)
        dx = layer.backward(dout)
        if dx is None:
            raise TypeError(
                f"{type(layer).__name__}.backward returned None instead of dL/dx; a layer "
                "switched to the fast path for training (npnet.fast.enable) skips it. Check "
                "a layer built afresh."
            )
        grads = {name: g.copy() for name, g in layer.grads.items()}
        grads["x"] = dx
        return float(np.sum(out * dout)), grads

    return check_gradients(loss_and_grads, {"x": x, **layer.params}, h)
