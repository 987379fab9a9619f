"""Chapter 3, exercise 3: d ell / ds of the BCE per pixel, from its stable form.

The per-pixel loss on a logit s with target t in [0, 1], in the form npnet computes::

    ell(s, t) = max(s, 0) - s t + log(1 + e^{-|s|})

max(s, 0) and |s| both have a kink at s = 0, so differentiate each side separately.

* s > 0:  ell = s - s t + log(1 + e^{-s})
          d ell/ds = 1 - t - e^{-s} / (1 + e^{-s}) = 1 - t - (1 - sigma(s)) = sigma(s) - t
* s < 0:  ell = -s t + log(1 + e^{s})
          d ell/ds = -t + e^{s} / (1 + e^{s}) = sigma(s) - t

Both sides give sigma(s) - t, and both tend to 1/2 - t at s = 0: the two kinks cancel, and
ell is smooth everywhere (it is softplus(s) - s t). For the loss of a batch,
L = (1/N) sum_i sum_d ell(s_id, t_id), each logit appears in one term, so

    dL/ds = (sigma(s) - t) / N                       (N, D), like s

which is what npnet.losses.bce_with_logits returns.

Run from anywhere: ``python docs/solutions/03_bce_gradient.py``.
"""

import numpy as np

from npnet.gradcheck import check_gradients, numerical_gradient
from npnet.layers import sigmoid
from npnet.losses import bce_with_logits


def dell_ds(s, t):
    """The derivative derived above, per pixel: sigma(s) - t."""
    return sigmoid(s) - t


rng = np.random.default_rng(0)
N, D = 4, 6
s = 4 * rng.standard_normal((N, D))
s[0, :3] = [0.0, 1e-7, -1e-7]  # at and around the kinks of max(s, 0) and |s|
t = rng.random((N, D))
t[1, :2] = [0.0, 1.0]  # black and white pixels too, not only gray ones

# CHECK 1: the library's gradient is the derivation's, divided by N.
loss, grad = bce_with_logits(s, t)
np.testing.assert_allclose(grad, dell_ds(s, t) / N, rtol=1e-12, atol=1e-15)


# CHECK 2: and it is the gradient of the loss the library computes (central differences,
# float64), including at s = 0, where a true kink would show up as a large error.
def loss_and_grads():
    value, dlogits = bce_with_logits(s, t)
    return value, {"s": dlogits}


errors = check_gradients(loss_and_grads, {"s": s})
print(f"BCE on logits: loss {loss:.4f}, relative error of dL/ds {errors['s']:.1e}")
assert errors["s"] < 1e-6, errors
numeric = numerical_gradient(lambda: bce_with_logits(s, t)[0], s)
np.testing.assert_allclose(numeric[0, :3], dell_ds(s[0, :3], t[0, :3]) / N, atol=1e-9)

# CHECK 3: one pixel, three logits: the gradient is bounded by 1 in size (sigma(s) - t lies
# in (-1, 1)) and keeps its full size where the prediction is confidently wrong.
t1 = np.ones((1, 3))
_, g = bce_with_logits(np.array([[-1000.0, 0.0, 1000.0]]), t1)
print("dL/ds for t = 1 at s = -1000, 0, 1000:", g[0])  # [-1.  -0.5  0. ]
np.testing.assert_allclose(g[0], [-1.0, -0.5, 0.0])
print("d ell/ds = sigma(s) - t on both sides of s = 0: checked")
