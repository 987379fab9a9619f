"""Chapter 3, exercise 4: softplus as a layer, in a stable form, with its backward pass.

Forward, elementwise on x (N, D)::

    softplus(x) = log(1 + e^x)

Written literally, e^x overflows for x above about 709.8 (float64) or 88.7 (float32). For
x > 0 take e^x out of the logarithm: log(1 + e^x) = x + log(e^{-x} + 1). For x <= 0 nothing
changes. Both cases in one formula, the same log-sum-exp form as chapter 3's BCE:

    softplus(x) = max(x, 0) + log(1 + e^{-|x|})     (computed with log1p)

The exponent -|x| is never positive, so nothing overflows; log1p keeps the digits of a tiny
e^{-|x|}, which 1 + e^{-|x|} would round away (for x < -37 in float64, 1 + e^x == 1).

Backward: d/dx log(1 + e^x) = e^x / (1 + e^x) = sigma(x), so

    dL/dx = dout * sigma(x)                          (N, D)

computed with npnet's stable sigmoid. (It is also a function of the output,
sigma(x) = 1 - e^{-y}, but caching x and calling the one sigmoid is simpler.) That sigmoid is
accurate to the dtype's absolute precision, not its relative one: far in the left tail it
rounds to 0 (sigmoid(-40) is 0 in float64, where e^-40 = 4.2e-18), so there the backward
returns 0 while the forward keeps softplus(-40) = 4.2e-18. Where relative accuracy matters,
exp(x - softplus(x)) gives sigma(x) to full relative precision.

The BCE of chapter 3 is built from it: ell(a, x) = softplus(a) - a x, so its derivative
sigma(a) - x is softplus's derivative minus x.

Run from anywhere: ``python docs/solutions/03_softplus.py``.
"""

import numpy as np

from npnet.gradcheck import check_layer
from npnet.layers import Layer, sigmoid
from npnet.losses import bce_with_logits_per_example


def softplus(x):
    """log(1 + e^x), elementwise, finite for every x (the dtype of x is kept)."""
    x = np.asarray(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class Softplus(Layer):
    """y = log(1 + e^x) elementwise; dL/dx = dout * sigmoid(x). Shapes: all (N, D)."""

    def forward(self, x):
        x = np.asarray(x)
        self.cache = x
        return softplus(x)

    def backward(self, dout):
        x = self.cache
        return dout * sigmoid(x)


# CHECK 1: the backward pass against numeric gradients (softplus has no kink: any x will do).
x = 3 * np.random.default_rng(0).standard_normal((4, 6))
errors = check_layer(Softplus(), x, rng=1)
print(f"Softplus dx relative error {errors['x']:.1e}")
assert errors["x"] < 1e-6, errors

# CHECK 2: where the naive form breaks, and the stable one does not.
with np.errstate(over="ignore"):
    naive64 = np.log(1 + np.exp(np.array([700.0, 710.0, 1000.0])))
    naive32 = np.log(1 + np.exp(np.array([88.0, 89.0], dtype=np.float32)))
print("naive float64 at 700, 710, 1000:", naive64)  # [700. inf inf]
print("naive float32 at 88, 89:", naive32)  # [88. inf]
assert np.isfinite(naive64[0]) and np.all(np.isinf(naive64[1:]))
assert np.isfinite(naive32[0]) and np.isinf(naive32[1])
with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow, not in float32
    # (e^{-1000} underflows to 0, which is harmless: softplus(-1000) is 0 to every digit)
    stable64 = softplus(np.array([700.0, 710.0, 1000.0, -1000.0]))
    stable32 = softplus(np.array([88.0, 89.0, 1000.0], dtype=np.float32))
np.testing.assert_array_equal(stable64, [700.0, 710.0, 1000.0, 0.0])
np.testing.assert_array_equal(stable32, np.array([88.0, 89.0, 1000.0], dtype=np.float32))
assert stable32.dtype == np.float32

# CHECK 3: at the other end the naive form loses every digit, log1p keeps them:
# softplus(-40) = log(1 + e^{-40}) = e^{-40} (1 - e^{-40}/2 + ...), about 4.25e-18.
naive_small = np.log(1 + np.exp(-40.0))
print(f"softplus(-40): naive {naive_small}, stable {softplus(-40.0):.6e}")
assert naive_small == 0.0
np.testing.assert_allclose(softplus(-40.0), np.exp(-40.0), rtol=1e-15)

# CHECK 4: chapter 3's BCE on logits is softplus(a) - a x, summed over the pixels.
a = 5 * np.random.default_rng(2).standard_normal((3, 8))      # logits
target = np.random.default_rng(3).random((3, 8))                # gray targets x
np.testing.assert_allclose(
    bce_with_logits_per_example(a, target), (softplus(a) - a * target).sum(axis=1), rtol=1e-12
)
print("Softplus: stable forward, backward = sigmoid, and BCE = softplus(a) - a x: checked")
