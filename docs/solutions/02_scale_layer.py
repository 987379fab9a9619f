"""Chapter 2, exercise 2: the backward pass of an elementwise scale layer, y = x * a.

Forward, for a batch x of shape (N, D) and a learned vector a of shape (D,), broadcast over
the rows::

    y_nd = x_nd * a_d                        y : (N, D)

Backward, given dout = dL/dy of shape (N, D). The chain rule, entry by entry:

* dy_nd / da_j = x_nd if d = j, else 0. Every row uses the same a, so the rows' terms add
  (the same reason as Dense's db)::

      dL/da_j = sum_n dout_nj * x_nj          dL/da = sum over n of (dout * x)   (D,)

* dy_nd / dx_mj = a_d if (m, d) = (n, j), else 0: one input entry feeds one output entry,
  so nothing sums (the Jacobian is diagonal, as for an activation)::

      dL/dx = dout * a                         (N, D), a broadcast over the rows

Run from anywhere: ``python docs/solutions/02_scale_layer.py``.
"""

import numpy as np

from npnet.gradcheck import check_layer
from npnet.layers import Layer


class Scale(Layer):
    """y = x * a, elementwise, with a learned scale a of shape (D,) (starts at ones)."""

    def __init__(self, features, dtype=np.float64, name=None):
        super().__init__(name)
        self.params = {"a": np.ones(features, dtype=dtype)}
        self.grads = {"a": np.zeros(features, dtype=dtype)}

    def forward(self, x):
        x = np.asarray(x, dtype=self.params["a"].dtype)
        self.cache = x  # dL/da needs x; dL/dx needs only a, which the layer holds
        return x * self.params["a"]

    def backward(self, dout):
        x = self._cached(dout)  # the base class's clear error if forward never ran
        dout = self._check_dout(dout, x.shape)
        self.grads["a"] = np.sum(dout * x, axis=0)  # (N, D) -> (D,): the batch sums
        return dout * self.params["a"]  # (N, D)


rng = np.random.default_rng(0)
layer = Scale(5)
layer.params["a"][:] = rng.standard_normal(5)  # not all ones: a wrong dx = dout would pass
x = rng.standard_normal((7, 5))

# CHECK 1: the gradients against numeric ones, through check_layer's random dout.
errors = check_layer(layer, x, rng=1)
print({name: f"{error:.1e}" for name, error in errors.items()})
assert set(errors) == {"x", "a"}
assert max(errors.values()) < 1e-6, errors

# CHECK 2: the formulas by hand, with their shapes.
dout = rng.standard_normal((7, 5))
y = layer.forward(x)
dx = layer.backward(dout)
assert y.shape == dx.shape == (7, 5) and layer.grads["a"].shape == (5,)
np.testing.assert_allclose(dx, dout * layer.params["a"])
np.testing.assert_allclose(layer.grads["a"], [dout[:, d] @ x[:, d] for d in range(5)])

# CHECK 3: a scale layer is a Dense layer with the diagonal matrix diag(a) and no bias, so its
# da is the diagonal of that Dense layer's dW = x^T dout.
np.testing.assert_allclose(layer.grads["a"], np.diag(x.T @ dout))
print("Scale: dL/da = sum_n dout * x and dL/dx = dout * a, checked")
