"""Hypothesis strategies shared by the gradient-check tests."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

# Entries of test batches: magnitudes in [0.1, 3] with either sign. The upper bound keeps
# activations out of saturation; the lower bound keeps gradients such as dW = x^T dout from
# being so tiny that the numeric estimate (rounding error ~ 1e-16 |f| / h) swamps them.
values = st.tuples(st.floats(0.1, 3.0), st.booleans()).map(lambda v: -v[0] if v[1] else v[0])
sizes = st.integers(min_value=1, max_value=6)
seeds = st.integers(min_value=0, max_value=2**32 - 1)

# Gradient checks with h = 1e-5 step across ReLU's kink only for inputs within 1e-5 of 0.
# Inputs drawn for kinked layers are pushed at least KINK_MARGIN away from 0.
KINK_MARGIN = 1e-3


def batches(n=sizes, d=sizes):
    """A float64 batch of shape (N, D) with N, D and the values drawn by hypothesis."""
    return st.tuples(n, d).flatmap(lambda shape: arrays(np.float64, shape, elements=values))


def away_from_zero(x, margin=KINK_MARGIN):
    """Move every entry at least ``margin`` away from 0, keeping its sign."""
    return np.where(x >= 0, x + margin, x - margin)


def he_or_glorot(W: np.ndarray, fan_in: float, fan_out: float) -> str:
    """Which initialisation drew W: He's std sqrt(2 / fan_in), or Glorot's uniform limit
    sqrt(6 / (fan_in + fan_out)) (std limit / sqrt(3)), to within 3%."""
    limit = np.sqrt(6 / (fan_in + fan_out))
    if np.abs(W).max() <= limit and abs(W.std() - limit / np.sqrt(3)) < 0.03 * limit:
        return "glorot"
    assert abs(W.std() - np.sqrt(2 / fan_in)) < 0.03 * np.sqrt(2 / fan_in), W.std()
    return "he"
