"""Losses: each returns the scalar value and its gradient with respect to the prediction.

Both follow the course's convention: **sum over the pixels of an image, mean over the
batch**. For a batch of N images of D pixels, prediction ``p`` and target ``t`` are (N, D),
the value is a Python float, and the gradient has the prediction's shape and dtype.
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

    .. math::  L = \frac{1}{N} \sum_{i=1}^{N} \lVert p_i - t_i \rVert^2,
               \qquad \frac{\partial L}{\partial p} = \frac{2}{N} (p - t)

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

    Tested by: tests/test_losses.py::test_squared_error_per_image
    """
    x, x_hat = np.asarray(x), np.asarray(x_hat)
    if x.shape != x_hat.shape or x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"squared_error_per_image: got shapes {x.shape} and {x_hat.shape}; both must be "
            "the same non-empty batch of images, (N, D) or (N, H, W)"
        )
    r = (x - x_hat).astype(np.float64)
    return float(np.sum(r**2)) / len(r)


def _bce_per_pixel(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """ell(s, t) of :func:`bce_with_logits_per_example`, for every pixel: (N, D)."""
    s, t = logits, target
    return np.maximum(s, 0) - s * t + np.log1p(np.exp(-np.abs(s)))


def bce_with_logits_per_example(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    r"""Binary cross-entropy of each example, from logits, summed over pixels: shape (N,).

    With ``p = sigmoid(s)``, the per-pixel loss is ``-t log p - (1 - t) log(1 - p)``.
    Substituting ``log p = -log(1 + e^{-s})`` and ``log(1 - p) = -s - log(1 + e^{-s})`` gives
    ``s - s t + log(1 + e^{-s})``, which overflows for s << 0. Adding and subtracting
    ``max(s, 0)`` gives the log-sum-exp form used here, finite for every s:

    .. math::  \ell(s, t) = \max(s, 0) - s\,t + \log\left(1 + e^{-|s|}\right)

    (the last term is computed as ``log1p(exp(-|s|))``; its exponent is never positive).

    Tested by: tests/test_losses.py::test_bce_is_finite_at_extreme_logits
    """
    logits, target = checks.prediction_and_target(logits, target, "bce_with_logits")
    checks.probabilities(target, "bce_with_logits")
    return _bce_per_pixel(logits, target).sum(axis=1)


def bce_with_logits(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    r"""Binary cross-entropy on logits, summed over pixels, averaged over the batch.

    .. math::  L = \frac{1}{N} \sum_i \sum_d \ell(s_{id}, t_{id}),
               \qquad \frac{\partial L}{\partial s} = \frac{1}{N} (\sigma(s) - t)

    where ``ell`` is the stable per-pixel form in :func:`bce_with_logits_per_example`.
    Targets may be gray values in [0, 1] (not only 0 or 1); then the minimum of each term,
    reached at sigma(s) = t, is the entropy ``-t log t - (1-t) log(1-t)``, not zero.

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
    loss = float(np.sum(_bce_per_pixel(logits, target))) / n
    return loss, (sigmoid(logits) - target) / n
