"""Chapter 2, exercise 2: the backward pass of an elementwise scale layer, y = x * c.

Forward, for a batch x of shape (N, D) and a learned vector c of shape (D,), broadcast over
the rows::

    y_nd = x_nd * c_d                        y : (N, D)

Backward, given dout = dL/dy of shape (N, D). The chain rule, entry by entry:

* dy_nd / dc_j = x_nd if d = j, else 0. Every row uses the same c, so the rows' terms add
  (the same reason as Dense's db)::

      dL/dc_j = sum_n dout_nj * x_nj          dL/dc = sum over n of (dout * x)   (D,)

* dy_nd / dx_mj = c_d if (m, d) = (n, j), else 0: one input entry feeds one output entry,
  so nothing sums (the Jacobian is diagonal, as for an activation)::

      dL/dx = dout * c                         (N, D), c broadcast over the rows

Run from anywhere: ``python docs/solutions/02_scale_layer.py``.
"""

import numpy as np

from npnet.gradcheck import check_layer
from npnet.layers import Layer


class Scale(Layer):
    """y = x * c, elementwise, with a learned scale c of shape (D,) (starts at ones)."""

    def __init__(self, features, dtype=np.float64, name=None):
        super().__init__(name)
        self.params = {"c": np.ones(features, dtype=dtype)}
        self.grads = {"c": np.zeros(features, dtype=dtype)}

    def forward(self, x):
        x = np.asarray(x, dtype=self.params["c"].dtype)
        self.cache = x  # dL/dc needs x; dL/dx needs only c, which the layer holds
        return x * self.params["c"]

    def backward(self, dout):
        x = self._cached(dout)  # the base class's clear error if forward never ran
        dout = self._check_dout(dout, x.shape)
        self.grads["c"] = np.sum(dout * x, axis=0)  # (N, D) -> (D,): the batch sums
        return dout * self.params["c"]  # (N, D)


rng = np.random.default_rng(0)
layer = Scale(5)
layer.params["c"][:] = rng.standard_normal(5)  # not all ones: a wrong dx = dout would pass
x = rng.standard_normal((7, 5))

# CHECK 1: the gradients against numeric ones, through check_layer's random dout.
errors = check_layer(layer, x, rng=1)
print({name: f"{error:.1e}" for name, error in errors.items()})
assert set(errors) == {"x", "c"}
assert max(errors.values()) < 1e-6, errors

# CHECK 2: the formulas by hand, with their shapes.
dout = rng.standard_normal((7, 5))
y = layer.forward(x)
dx = layer.backward(dout)
assert y.shape == dx.shape == (7, 5) and layer.grads["c"].shape == (5,)
np.testing.assert_allclose(dx, dout * layer.params["c"])
np.testing.assert_allclose(layer.grads["c"], [dout[:, d] @ x[:, d] for d in range(5)])

# CHECK 3: a scale layer is a Dense layer with the diagonal matrix diag(c) and no bias, so its
# da is the diagonal of that Dense layer's dW = x^T dout.
np.testing.assert_allclose(layer.grads["c"], np.diag(x.T @ dout))
print("Scale: dL/dc = sum_n dout * x and dL/dx = dout * c, checked")
