"""A Dense layer that computes what :class:`npnet.layers.Dense` computes, with less memory traffic.

Three differences, none in the arithmetic:

* the bias is added in place to the product (``y = x W; y += b``): one (N, D_out) array
  less per step;
* the gradients are written into arrays that live as long as the layer
  (``np.matmul(..., out=)``), which :func:`npnet.fast.enable` places in memory beside
  their parameters (:mod:`npnet.fast.placement`);
* with ``input_grad = False`` the layer skips dL/dx and returns None. Training never needs
  the gradient with respect to the data, the first layer's input, and that product,
  ``dout W^T``, is half of a Dense layer's backward arithmetic (``x^T dout`` is the other).

``tests/test_fast.py::test_fast_dense_gives_the_core_dense_bits`` checks on drawn shapes
and values that the outputs and gradients are the core's, bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..layers import Dense

__all__ = ["FastDense"]


class FastDense(Dense):
    """:class:`npnet.layers.Dense`, computed in place; see the module docstring.

    Attributes
    ----------
    input_grad : bool
        Whether ``backward`` returns dL/dx (True) or skips it and returns None.
    """

    input_grad = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        self.cache = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        x = self._cached(dout)
        dout = self._check_dout(dout, (x.shape[0], self.out_features))
        dout = dout.astype(self.dtype, copy=False)
        np.matmul(x.T, dout, out=self.grads["W"])
        np.sum(dout, axis=0, out=self.grads["b"])
        if not self.input_grad:
            return None
        return dout @ self.params["W"].T
