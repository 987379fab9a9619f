"""Chapter 2, exercise 4: the chain rule through two Dense layers, by hand.

The model is Sequential(Dense(D_in, H), Dense(H, D_out)) with no activation between:

    h = x W1 + b1          x : (N, D_in),  W1 : (D_in, H),   h : (N, H)
    y = h W2 + b2          W2 : (H, D_out),                  y : (N, D_out)

Backward, given dout = dL/dy (N, D_out), read right to left. The second layer is a Dense
layer whose input is h:

    dL/dW2 = h^T dout                (H, N) (N, D_out) -> (H, D_out)
    dL/db2 = sum_n dout_n            (D_out,)
    dL/dh  = dout W2^T               (N, D_out) (D_out, H) -> (N, H)

dL/dh is the first layer's dout, so with d1 = dout W2^T:

    dL/dW1 = x^T d1 = x^T dout W2^T  (D_in, N) (N, D_out) (D_out, H) -> (D_in, H)
    dL/db1 = sum_n d1_n = (sum_n dout_n) W2^T                        (H,)
    dL/dx  = d1 W1^T = dout W2^T W1^T = dout (W1 W2)^T               (N, D_in)

The last line is Dense's dL/dx for the single matrix W1 W2: without an activation between
them, two Dense layers compute one affine map, x (W1 W2) + (b1 W2 + b2).

Run from anywhere: ``python docs/solutions/02_two_dense_chain.py``.
"""

import numpy as np

from npnet.gradcheck import check_layer
from npnet.layers import Dense, Sequential

N, D_IN, H, D_OUT = 6, 5, 4, 3
rng = np.random.default_rng(0)
model = Sequential(Dense(D_IN, H, rng=1, dtype=np.float64),
                   Dense(H, D_OUT, rng=2, dtype=np.float64))
for layer in model.layers:
    layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)
W1, b1 = model.layers[0].params["W"], model.layers[0].params["b"]
W2, b2 = model.layers[1].params["W"], model.layers[1].params["b"]
x = rng.standard_normal((N, D_IN))
dout = rng.standard_normal((N, D_OUT))

# The formulas above, written out.
h = x @ W1 + b1
by_hand = {
    "0.W": x.T @ dout @ W2.T,
    "0.b": dout.sum(axis=0) @ W2.T,
    "1.W": h.T @ dout,
    "1.b": dout.sum(axis=0),
}
dx_by_hand = dout @ (W1 @ W2).T

# What Sequential.backward computes, layer by layer, right to left.
y = model.forward(x)
dx = model.backward(dout)

# CHECK 1: the forward pass is one affine map, and every gradient matches the hand formulas.
np.testing.assert_allclose(y, x @ (W1 @ W2) + (b1 @ W2 + b2), rtol=1e-12)
assert {name: g.shape for name, g in model.grads.items()} == {
    "0.W": (D_IN, H), "0.b": (H,), "1.W": (H, D_OUT), "1.b": (D_OUT,)}
for name, expected in by_hand.items():
    np.testing.assert_allclose(model.grads[name], expected, rtol=1e-12)
np.testing.assert_allclose(dx, dx_by_hand, rtol=1e-12)

# CHECK 2: and all five against numeric gradients.
errors = check_layer(model, x, rng=3)
print({name: f"{error:.1e}" for name, error in errors.items()})
assert set(errors) == {"x", "0.W", "0.b", "1.W", "1.b"}
assert max(errors.values()) < 1e-6, errors
print("dL/dW1 = x^T dout W2^T, dL/db1 = (sum_n dout_n) W2^T: checked")
