"""Losses: each returns the scalar value and its gradient with respect to the prediction.

Both follow the course's convention: **sum over the pixels of an image, mean over the
batch**. For a batch of N images of D pixels, the prediction (a reconstruction x_hat, or
the logits a) and the target x are (N, D); an autoencoder's target is its own input. The
value is a Python float, and the gradient has the prediction's shape and dtype.
"""

from __future__ import annotations

import numpy as np

from . import checks
from .layers import sigmoid

__all__ = [
    "check_binary",
    "mse_loss",
    "squared_error_per_image",
    "bce_with_logits",
    "bce_with_logits_per_example",
]


# Binary images, checked: the Bernoulli likelihood's precondition (npnet.checks.binary).
check_binary = checks.binary


def mse_loss(prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Squared error summed over pixels, averaged over the batch.

    .. math::  L = \frac{1}{N} \sum_{n=1}^{N} \lVert x_n - \hat x_n \rVert^2,
               \qquad \frac{\partial L}{\partial \hat x} = \frac{2}{N} (\hat x - x)

    with the prediction x_hat and the target x.

    Parameters
    ----------
    prediction, target : ndarray, (N, D)

    Returns
    -------
    loss : float
    dprediction : ndarray, (N, D)

    Tested by: tests/test_losses.py::test_mse_value_and_gradient
    """
    prediction, target = checks.prediction_and_target(prediction, target, "mse_loss")
    n = prediction.shape[0]
    diff = prediction - target
    loss = float(np.sum(diff**2)) / n
    return loss, (2 / n) * diff


def squared_error_per_image(x: np.ndarray, x_hat: np.ndarray) -> float:
    r"""The value of :func:`mse_loss` on a whole dataset, without its gradient, in float64.

    .. math::  \frac{1}{N} \sum_{i=1}^{N} \lVert x_i - \hat x_i \rVert^2

    Used to evaluate models and baselines (10,000 images of 784 pixels: a float32 sum would
    keep only about 4 significant digits). Image stacks (N, H, W) count as (N, H*W).
    Integer images (0-255) are subtracted in float64, where 0 - 1 is not 255.

    Tested by: tests/test_losses.py::test_squared_error_per_image
    """
    x, x_hat = (checks.real_array(a, "squared_error_per_image") for a in (x, x_hat))
    if x.dtype.kind != "f" or x_hat.dtype.kind != "f":  # 0 - 1 is 255 in uint8: subtract in
        x, x_hat = x.astype(np.float64), x_hat.astype(np.float64)  # float64 instead
    if x.shape != x_hat.shape or x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"squared_error_per_image: got shapes {x.shape} and {x_hat.shape}; both must be "
            "the same non-empty batch of images, (N, D) or (N, H, W)"
        )
    r = (x - x_hat).astype(np.float64)
    return float(np.sum(r**2)) / len(r)


def _bce_sum(logits: np.ndarray, target: np.ndarray, axis: int | None) -> np.ndarray:
    """The sum along ``axis`` of ell(a, x) (:func:`bce_with_logits_per_example`), per pixel."""
    a, x = logits, target
    ell = np.maximum(a, 0) - a * x + np.log1p(np.exp(-np.abs(a)))
    total = np.sum(ell, axis=axis)
    if np.isnan(total).any() and np.isinf(a).any():  # inf - inf: a diverged model's logits
        # ell's limit: a (1 - x) as a -> inf, -a x as a -> -inf; 0 where that factor is 0
        limit = np.where(a > 0, np.where(x < 1, np.inf, 0), np.where(x > 0, np.inf, 0))
        total = np.sum(np.where(np.isinf(a), limit, ell), axis=axis)
    return total


def bce_with_logits_per_example(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    r"""Binary cross-entropy of each example, from logits, summed over pixels: shape (N,).

    With logits a and target x, the per-pixel loss is
    ``-x log sigmoid(a) - (1 - x) log(1 - sigmoid(a))``. Substituting
    ``log sigmoid(a) = -log(1 + e^{-a})`` and ``log(1 - sigmoid(a)) = -a - log(1 + e^{-a})``
    gives ``a - a x + log(1 + e^{-a})``, which overflows for a << 0. Adding and subtracting
    ``max(a, 0)`` gives the log-sum-exp form used here, finite for every finite a:

    .. math::  \ell(a, x) = \max(a, 0) - a\,x + \log\left(1 + e^{-|a|}\right)

    (the last term is computed as ``log1p(exp(-|a|))``; its exponent is never positive).
    At a = +-inf (a diverged model) it is the limit: 0 where the target agrees, inf elsewhere.

    Tested by: tests/test_losses.py::test_bce_is_finite_at_extreme_logits
    """
    logits, target = checks.prediction_and_target(logits, target, "bce_with_logits")
    checks.probabilities(target, "bce_with_logits")
    return _bce_sum(logits, target, axis=1)


def bce_with_logits(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Binary cross-entropy on logits, summed over pixels, averaged over the batch.

    .. math::  L = \frac{1}{N} \sum_n \sum_d \ell(a_{nd}, x_{nd}),
               \qquad \frac{\partial L}{\partial a} = \frac{1}{N} (\sigma(a) - x)

    where ``ell`` is the stable per-pixel form in :func:`bce_with_logits_per_example`.
    Targets may be gray values in [0, 1] (not only 0 or 1); then the minimum of each term,
    reached at sigma(a) = x, is the entropy ``-x log x - (1-x) log(1-x)``, not zero.

    Parameters
    ----------
    logits, target : ndarray, (N, D)

    Returns
    -------
    loss : float
    dlogits : ndarray, (N, D)

    Tested by: tests/test_losses.py::test_bce_value_and_gradient
    """
    logits, target = checks.prediction_and_target(logits, target, "bce_with_logits")
    checks.probabilities(target, "bce_with_logits")
    n = logits.shape[0]
    loss = float(_bce_sum(logits, target, axis=None)) / n
    return loss, (sigmoid(logits) - target) / n
