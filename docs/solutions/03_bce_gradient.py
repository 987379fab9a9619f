"""Chapter 3, exercise 3: d ell / da of the BCE per pixel, from its stable form.

The per-pixel loss on a logit a with target x in [0, 1], in the form npnet computes::

    ell(a, x) = max(a, 0) - a x + log(1 + e^{-|a|})

max(a, 0) and |a| both have a kink at a = 0, so differentiate each side separately.

* a > 0:  ell = a - a x + log(1 + e^{-a})
          d ell/da = 1 - x - e^{-a} / (1 + e^{-a}) = 1 - x - (1 - sigma(a)) = sigma(a) - x
* a < 0:  ell = -a x + log(1 + e^{a})
          d ell/da = -x + e^{a} / (1 + e^{a}) = sigma(a) - x

Both sides give sigma(a) - x, and both tend to 1/2 - x at a = 0: the two kinks cancel, and
ell is smooth everywhere (it is softplus(a) - a x). For the loss of a batch,
L = (1/N) sum_i sum_d ell(a_id, x_id), each logit appears in one term, so

    dL/da = (sigma(a) - x) / N                       (N, D), like a

which is what npnet.losses.bce_with_logits returns.

Run from anywhere: ``python docs/solutions/03_bce_gradient.py``.
"""

import numpy as np

from npnet.gradcheck import check_gradients, numerical_gradient
from npnet.layers import sigmoid
from npnet.losses import bce_with_logits


def dell_da(a, x):
    """The derivative derived above, per pixel: sigma(a) - x."""
    return sigmoid(a) - x


rng = np.random.default_rng(0)
N, D = 4, 6
a = 4 * rng.standard_normal((N, D))
a[0, :3] = [0.0, 1e-7, -1e-7]  # at and around the kinks of max(a, 0) and |a|
x = rng.random((N, D))
x[1, :2] = [0.0, 1.0]  # black and white pixels too, not only gray ones

# CHECK 1: the library'a gradient is the derivation'a, divided by N.
loss, grad = bce_with_logits(a, x)
np.testing.assert_allclose(grad, dell_da(a, x) / N, rtol=1e-12, atol=1e-15)


# CHECK 2: and it is the gradient of the loss the library computes (central differences,
# float64), including at a = 0, where a true kink would show up as a large error.
def loss_and_grads():
    value, dlogits = bce_with_logits(a, x)
    return value, {"a": dlogits}


errors = check_gradients(loss_and_grads, {"a": a})
print(f"BCE on logits: loss {loss:.4f}, relative error of dL/da {errors['a']:.1e}")
assert errors["a"] < 1e-6, errors
numeric = numerical_gradient(lambda: bce_with_logits(a, x)[0], a)
np.testing.assert_allclose(numeric[0, :3], dell_da(a[0, :3], x[0, :3]) / N, atol=1e-9)

# CHECK 3: one pixel, three logits: the gradient is bounded by 1 in size (sigma(a) - x lies
# in (-1, 1)) and keeps its full size where the prediction is confidently wrong.
t1 = np.ones((1, 3))
_, g = bce_with_logits(np.array([[-1000.0, 0.0, 1000.0]]), t1)
print("dL/da for x = 1 at a = -1000, 0, 1000:", g[0])  # [-1.  -0.5  0. ]
np.testing.assert_allclose(g[0], [-1.0, -0.5, 0.0])
print("d ell/da = sigma(a) - x on both sides of a = 0: checked")
