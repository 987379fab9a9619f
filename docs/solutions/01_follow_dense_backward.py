"""Chapter 1, exercise 3: follow dL/dx = dout W^T from the docs to the code to the test.

The three places the formula lives:

* docs/02-dense-backprop.md, "Backward": dL/dx_ni = sum_k dout_nk W_ik, that is
  dL/dx = dout W^T, (N, D_out) (D_out, D_in) -> (N, D_in).
* npnet/layers.py, Dense.backward, its last line: ``return dout @ self.params["W"].T``.
* tests/test_layers.py::test_dense_gradients (the test the class docstring's "Tested by:"
  line names): hypothesis draws a batch and the layer's widths, and check_layer compares
  every gradient, "x" among them, with central differences, to a relative error of 1e-6.

Breaking the code: drop the transpose, ``return dout @ W``. Where D_in != D_out, the product
(N, D_out) (D_in, D_out) does not exist and NumPy raises at once. Where D_in == D_out it runs,
returns an array of the right shape, and is wrong: only the numeric check sees it. The break
is done on a subclass, as the chapter's snippets do, so npnet itself is never edited.

Run from anywhere: ``python docs/solutions/01_follow_dense_backward.py``.
"""

import numpy as np

from npnet.gradcheck import check_layer
from npnet.layers import Dense

TOLERANCE = 1e-6  # the one tests/test_layers.py uses


class ForgetsTheTranspose(Dense):
    """Dense whose dL/dx is dout W instead of dout W^T; dW and db stay right."""

    def backward(self, dout):
        super().backward(dout)  # fills grads["W"] and grads["b"] correctly
        return dout @ self.params["W"]  # wrong: W, not W^T


def dense_with_bias(layer_class, d_in, d_out, seed):
    layer = layer_class(d_in, d_out, rng=seed, dtype=np.float64)
    layer.params["b"][:] = np.random.default_rng(seed).standard_normal(d_out)
    return layer


rng = np.random.default_rng(0)
x = rng.standard_normal((5, 4))

# CHECK 1: what test_dense_gradients checks, on one draw: the real Dense passes.
errors = check_layer(dense_with_bias(Dense, 4, 4, seed=1), x, rng=2)
print("Dense:               ", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < TOLERANCE, errors

# CHECK 2: the broken square layer runs, and its dx has the right shape...
square = dense_with_bias(ForgetsTheTranspose, 4, 4, seed=1)
square.forward(x)
dx = square.backward(rng.standard_normal((5, 4)))
assert dx.shape == x.shape

# ...but the gradient check catches it, on dx only.
errors = check_layer(square, x, rng=2)
print("ForgetsTheTranspose: ", {k: f"{v:.1e}" for k, v in errors.items()})
assert errors["x"] > 1e-2, errors
assert errors["W"] < TOLERANCE and errors["b"] < TOLERANCE, errors

# CHECK 3: with D_in != D_out the same mistake cannot even run.
rectangular = dense_with_bias(ForgetsTheTranspose, 4, 3, seed=1)
rectangular.forward(x)
try:
    rectangular.backward(rng.standard_normal((5, 3)))
except ValueError as error:  # matmul: (5, 3) @ (4, 3)
    print(f"4 -> 3 layer: {type(error).__name__}: {error}")
else:
    raise AssertionError("dout @ W should not exist for a 4 -> 3 layer")
print("a missing transpose: a shape error when D_in != D_out, a failed check when square")
