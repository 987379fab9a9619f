"""Chapter 2, exercise 3: the layer sums over the batch, the loss takes the mean.

The loss is a mean over the batch, L = (1/N) sum_n l_n (npnet's mse_loss), so its gradient
dout = dL/dy already carries a factor 1/N in every row:

    dout_n = (1/N) dl_n/dy_n                                       (N, D_out)

Dense then sums over the rows,

    dL/dW = x^T dout = sum_n x_n^T dout_n = (1/N) sum_n x_n^T dl_n/dy_n,

which is the MEAN of the per-example gradients: exactly the gradient of L. Two consequences
the script checks:

* Feed the same batch twice (x stacked on itself, N -> 2N). A mean is unchanged by repeating
  its terms, so L, dL/dW and dL/db are unchanged; each row of dout halves and twice as many
  rows add up.
* A layer that averages as well (dW = x^T dout / N) divides by N twice: its dW is no longer
  the gradient of L (a gradient check on the whole loss fails) and it halves when the batch is
  repeated. A loss that sums instead of averaging (L' = N L) makes dW double with the batch.
  Either way the step size of plain SGD would depend on the batch size.

Run from anywhere: ``python docs/solutions/02_batch_sum_vs_mean.py``.
"""

import numpy as np

from npnet.gradcheck import check_gradients
from npnet.layers import Dense
from npnet.losses import mse_loss


class AveragingDense(Dense):
    """The mistake: dW and db divided by N in the layer, on top of the loss's 1/N."""

    def backward(self, dout):
        dx = super().backward(dout)
        n = dout.shape[0]
        self.grads["W"] = self.grads["W"] / n
        self.grads["b"] = self.grads["b"] / n
        return dx


def loss_and_grads(layer, x, t, summed=False):
    """L = mse_loss(layer(x), t) (a mean over the batch), or N times it if ``summed``;
    returns (L, {"W": dL/dW, "b": dL/db})."""
    loss, dout = mse_loss(layer.forward(x), t)
    if summed:
        loss, dout = loss * len(x), dout * len(x)
    layer.backward(dout)
    return loss, {name: g.copy() for name, g in layer.grads.items()}


rng = np.random.default_rng(0)
N = 8
x = rng.standard_normal((N, 4))
t = rng.standard_normal((N, 3))
x2, t2 = np.vstack([x, x]), np.vstack([t, t])  # the same batch twice: 2N rows

dense = Dense(4, 3, rng=0, dtype=np.float64)
dense.params["b"][:] = rng.standard_normal(3)

# CHECK 1: with the mean loss, the batch twice gives the same loss and the same gradients.
loss1, grads1 = loss_and_grads(dense, x, t)
loss2, grads2 = loss_and_grads(dense, x2, t2)
np.testing.assert_allclose(loss2, loss1, rtol=1e-12)
for name in ("W", "b"):
    np.testing.assert_allclose(grads2[name], grads1[name], rtol=1e-12)
print(f"Dense + mean loss: L {loss1:.4f} for N, {loss2:.4f} for 2N; dW, db unchanged")

# CHECK 2: ...and they are the gradients of L (numeric check on the whole loss, float64).
errors = check_gradients(lambda: loss_and_grads(dense, x, t), dense.params)
print(f"Dense + mean loss, relative errors: W {errors['W']:.1e}, b {errors['b']:.1e}")
assert max(errors.values()) < 1e-6, errors

# CHECK 3: a layer that averages too is wrong by a factor N, and halves with the batch twice.
averaging = AveragingDense(4, 3, rng=0, dtype=np.float64)
averaging.params["b"][:] = dense.params["b"]
_, avg1 = loss_and_grads(averaging, x, t)
_, avg2 = loss_and_grads(averaging, x2, t2)
np.testing.assert_allclose(avg1["W"], grads1["W"] / N, rtol=1e-12)
np.testing.assert_allclose(avg2["W"], avg1["W"] / 2, rtol=1e-12)
errors = check_gradients(lambda: loss_and_grads(averaging, x, t), averaging.params)
print(f"AveragingDense, relative error of dW: {errors['W']:.2f} "
      f"(= (1 - 1/N) / (1 + 1/N) = {(N - 1) / (N + 1):.2f})")
assert errors["W"] > 1e-2
np.testing.assert_allclose(errors["W"], (N - 1) / (N + 1), rtol=1e-6)

# CHECK 4: a loss that sums over the batch makes dW grow with the batch: twice the batch,
# twice the gradient (the step size of SGD would have to shrink as N grows).
_, sum1 = loss_and_grads(dense, x, t, summed=True)
_, sum2 = loss_and_grads(dense, x2, t2, summed=True)
np.testing.assert_allclose(sum2["W"], 2 * sum1["W"], rtol=1e-12)
print("summed loss: dW doubles when the batch is repeated; mean loss: dW stays the same")
