"""Chapter 4, exercise 2: a per-row standardisation layer, and a bug only a random dout finds.

Forward, for a batch x of shape (N, D), each row on its own (layer normalisation without
the learned scale and shift)::

    mu_n  = (1/D) sum_j x_nj                          (N, 1)
    xc    = x - mu                                    (N, D)
    var_n = (1/D) sum_j xc_nj^2                       (N, 1)
    s_n   = sqrt(var_n + eps)                         (N, 1)
    y     = xc / s                                    (N, D)

Backward, given dout = dL/dy of shape (N, D). Within one row (drop n), the chain rule:

* d xc_j / d x_i = delta_ij - 1/D.
* d s / d x_i = (1 / (2 s)) d var / d x_i = (1 / (2 s)) (2/D) sum_j xc_j (delta_ij - 1/D)
  = xc_i / (D s), because sum_j xc_j = 0.
* d y_j / d x_i = (delta_ij - 1/D) / s - (xc_j / s^2) xc_i / (D s)
  = (delta_ij - 1/D - y_i y_j / D) / s.

Summed against dout::

    dL/dx_i = sum_j dout_j dy_j/dx_i
            = (dout_i - mean_j(dout_j) - y_i mean_j(dout_j y_j)) / s        (N, D)

The plausible bug: forget that s depends on x, and drop the last term. With dout = ones
that term is y_i mean_j(y_j) = 0, since every row of y has mean 0: the bug is invisible.
(With dout = ones the whole true gradient is 0, as for the chapter's centring layer: the
sum of a row of y never changes.) A random dout makes mean_j(dout_j y_j) non-zero.

Run from anywhere: ``python docs/solutions/04_standardise_layer.py``.
"""

import numpy as np

from npnet.gradcheck import check_gradients, check_layer
from npnet.layers import Layer


class Standardise(Layer):
    """y = (x - mean(x)) / sqrt(var(x) + eps), per row; no parameters. Shapes: all (N, D)."""

    def __init__(self, eps=1e-5, forget_the_std_term=False, name=None):
        super().__init__(name)
        self.eps = eps
        self.forget_the_std_term = forget_the_std_term  # the bug, on purpose

    def forward(self, x):
        xc = x - x.mean(axis=1, keepdims=True)
        s = np.sqrt(np.mean(xc * xc, axis=1, keepdims=True) + self.eps)
        y = xc / s
        self.cache = (y, s)
        return y

    def backward(self, dout):
        y, s = self._cached(dout)
        dx = dout - dout.mean(axis=1, keepdims=True)
        if not self.forget_the_std_term:
            dx = dx - y * np.mean(dout * y, axis=1, keepdims=True)
        return dx / s


def error_with(layer, x, dout):
    """Relative error of dL/dx for f = sum(layer(x) * dout), dout held fixed."""

    def loss_and_grads():
        out = layer.forward(x)
        return float(np.sum(out * dout)), {"x": layer.backward(dout)}

    return check_gradients(loss_and_grads, {"x": x})["x"]


rng = np.random.default_rng(0)
x = rng.standard_normal((4, 6)) * 2.0 + 1.0  # rows with a non-zero mean and spread

# The correct backward passes the library's check (a random dout).
errors = check_layer(Standardise(), x, rng=1)
print("check_layer, correct backward:", errors)
assert errors["x"] < 1e-6

# ones versus random, for the correct and the buggy backward.
ones = np.ones_like(x)
random_dout = np.random.default_rng(2).standard_normal(x.shape)
results = {}
for dout_name, dout in (("ones", ones), ("random", random_dout)):
    for bug in (False, True):
        results[dout_name, bug] = error_with(Standardise(forget_the_std_term=bug), x, dout)
        print(f"dout = {dout_name:6s} buggy: {bug!s:5s} relative error "
              f"{results[dout_name, bug]:.1e}")

# With ones, the two backward passes return the same array up to rounding (both about 0:
# J^T 1 = 0), so the check cannot tell them apart: it compares rounding noise with rounding
# noise, and reports the same (meaningless) number for both.
layer, buggy = Standardise(), Standardise(forget_the_std_term=True)
layer.forward(x)
buggy.forward(x)
np.testing.assert_allclose(layer.backward(ones), 0.0, atol=1e-12)
np.testing.assert_allclose(buggy.backward(ones), layer.backward(ones), atol=1e-12)
assert np.isclose(results["ones", True], results["ones", False], rtol=1e-3)
# With a random dout, the correct one passes and the bug fails by far.
assert results["random", False] < 1e-6
assert results["random", True] > 1e-2
print("a random dout separates them; ones does not")
