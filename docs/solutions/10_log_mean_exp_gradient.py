r"""Chapter 10, exercise 4: the gradient of log-mean-exp, and why the maximum is a constant.

For f(a) = log (1/k) sum_j e^{a_j} (the 1/k only adds -log k, which has no derivative),

    df/da_i = e^{a_i} / sum_j e^{a_j} = softmax(a)_i,

the normalised weights w~ of the IWAE, which sum to 1 whatever k.

The stable form is g(a, m) = m + log (1/k) sum_j e^{a_j - m} with m = max_j a_j. As a
function of m alone,

    dg/dm = 1 - sum_j e^{a_j - m} / sum_j e^{a_j - m} = 1 - 1 = 0:

g does not depend on m at all (it is f for every m), so the backward pass may treat m as a
constant, and the points where the maximum switches from one a_i to another, where max has no
derivative, do not matter. The gradient is then computed as e^{a_i - m} / sum_j e^{a_j - m}:
every exponent <= 0 and the denominator >= 1, so it is finite where the naive
e^{a_i} / sum_j e^{a_j} is 0 / 0.

For an (N, k) array and a loss L whose gradient with respect to f_n is dout_n:

    dL/da_ni = dout_n * softmax(a_n)_i.
"""

import numpy as np

from npnet.gradcheck import check_gradients
from npnet.vae import log_mean_exp


def log_mean_exp_backward(a: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """dL/da (N, k) of L through f = log_mean_exp(a, axis=1), given dout = dL/df (N,)."""
    e = np.exp(a - a.max(axis=1, keepdims=True))  # every exponent <= 0
    return dout[:, None] * e / e.sum(axis=1, keepdims=True)


rng = np.random.default_rng(0)
a = -1000.0 + 5 * rng.standard_normal((4, 6))  # log-weights near -1000
a[0, 1] = a[0, 4] = a[0].max() + 1.0  # two log-weights tie for the maximum: no matter
dout = rng.standard_normal(4)

with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
    naive = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
print("naive softmax at -1000:", naive[0, :3])  # nan: 0 / 0
assert np.isnan(naive).all()

grad = log_mean_exp_backward(a, dout)
np.testing.assert_allclose(grad.sum(axis=1), dout)  # the softmax sums to 1, whatever k


def loss_and_grads():
    return float(np.sum(log_mean_exp(a, axis=1) * dout)), {"a": log_mean_exp_backward(a, dout)}


errors = check_gradients(loss_and_grads, {"a": a})
print("relative error against central differences:", errors)
assert errors["a"] < 1e-6

# g(a, m) is the same number for every m: its derivative in m is 0.
row = a[0]
for m in (row.max(), row.max() - 3.0, row.max() + 7.5, row.mean()):
    g = m + np.log(np.mean(np.exp(row - m)))
    np.testing.assert_allclose(g, log_mean_exp(row), rtol=1e-13)
