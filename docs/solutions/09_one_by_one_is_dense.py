"""Chapter 9, exercise 3: a 1 x 1 convolution is a Dense layer on every pixel, and a Dense
layer after Flatten is a convolution whose kernel covers the whole feature map.

k = 1. A patch is one pixel's C channels, so cols is x itself seen as (N H W, C) rows (im2col
copies it, in k^2 = 1 strided slice), W (1, 1, C, F) is a (C, F) matrix, and y = cols W + b is
Dense(C, F) on N H W "examples". The gradients are the Dense layer's: dL/dW = cols^T D sums
over all N H W pixels in both (the Dense layer sees them as its batch), dL/db sums D's rows,
and col2im, with nothing overlapping, is a reshape back.

k = 1, s = 2: the kernel lands on rows and columns 0, 2, 4, ... only; the pixels in odd rows
or odd columns are read by no patch, change no output, and get a zero gradient.

The other extreme. Conv2D(64, 16, kernel_size=7) on a 7 x 7 x 64 map, no padding, has a single
output pixel, and its single patch is the whole map in (i, j, d) order: row, column,
channel. Flatten of an NHWC map lists the same numbers in the same order, so Dense(3136, 16)
after Flatten is that convolution with W.reshape(7, 7, 64, 16), no transpose. In NCHW, Flatten
would list them channel first, and the kernel would need its axes moved.

Run from anywhere: ``python docs/solutions/09_one_by_one_is_dense.py``.
"""

import numpy as np

from npnet.autoencoder import DenoisingAutoencoder
from npnet.conv import Conv2D, Flatten, col2im, im2col
from npnet.layers import Dense

rng = np.random.default_rng(0)
n, height, width, C, F = 2, 4, 5, 3, 6
x = rng.standard_normal((n, height, width, C))

conv = Conv2D(C, F, kernel_size=1, rng=0, dtype=np.float64)
conv.params["b"][:] = rng.standard_normal(F)
dense = Dense(C, F, dtype=np.float64)
dense.params["W"][:] = conv.params["W"][0, 0]  # (C, F)
dense.params["b"][:] = conv.params["b"]

# CHECK 1: the same output, and the same three gradients, on the pixels as rows.
rows = x.reshape(-1, C)  # (N H W, C)
np.testing.assert_allclose(conv.forward(x).reshape(-1, F), dense.forward(rows))
dout = rng.standard_normal((n, height, width, F))
dx = conv.backward(dout)
np.testing.assert_allclose(dx.reshape(-1, C), dense.backward(dout.reshape(-1, F)))
np.testing.assert_allclose(conv.grads["W"][0, 0], dense.grads["W"])  # both sum N H W rows
np.testing.assert_allclose(conv.grads["b"], dense.grads["b"])
print("Conv2D(C, F, 1) = Dense(C, F) on the N H W pixels: outputs and gradients checked")

# CHECK 2: for k = 1, s = 1, cols is x as rows (a copy), and col2im a reshape back.
cols = im2col(x, 1, 1)
assert cols.shape == (n, height, width, 1, 1, C) and not np.shares_memory(cols, x)
np.testing.assert_array_equal(cols.reshape(-1, C), rows)
np.testing.assert_array_equal(col2im(cols, (height, width), 1), x)

# CHECK 3: k = 1, s = 2: the odd rows and columns are never read; their gradient is 0.
strided = Conv2D(C, F, kernel_size=1, stride=2, rng=1, dtype=np.float64)
y = strided.forward(x)
assert y.shape == (n, 2, 3, F)  # (4 - 1) // 2 + 1 = 2, (5 - 1) // 2 + 1 = 3
dx = strided.backward(rng.standard_normal(y.shape))
read = np.zeros((height, width), bool)
read[::2, ::2] = True
assert (dx[:, ~read] == 0).all() and (dx[:, read] != 0).all()
print(f"stride 2: {int((~read).sum())} of {read.size} pixels unread, zero gradient: checked")

# CHECK 4: the convolutional encoder's Dense(3136, 16) is a Conv2D(64, 16, 7) on the map.
model = DenoisingAutoencoder(arch="conv", rng=0, dtype=np.float64)
*to_map, flatten, code_layer = model.encoder.layers
assert isinstance(flatten, Flatten) and isinstance(code_layer, Dense)
feature_map = rng.random((3, 784))
for layer in to_map:
    feature_map = layer.forward(feature_map)
assert feature_map.shape == (3, 7, 7, 64)
whole = Conv2D(64, 16, kernel_size=7, dtype=np.float64)
whole.params["W"][:] = code_layer.params["W"].reshape(7, 7, 64, 16)  # a view, no transpose
whole.params["b"][:] = code_layer.params["b"]
codes = code_layer.forward(flatten.forward(feature_map))
np.testing.assert_allclose(whole.forward(feature_map).reshape(3, 16), codes, atol=1e-12)
dcodes = rng.standard_normal((3, 16))
np.testing.assert_allclose(whole.backward(dcodes.reshape(3, 1, 1, 16)),
                           flatten.backward(code_layer.backward(dcodes)), atol=1e-12)
np.testing.assert_allclose(whole.grads["W"].reshape(3136, 16), code_layer.grads["W"],
                           atol=1e-12)
print("Flatten + Dense(3136, 16) = Conv2D(64, 16, kernel_size=7) in NHWC: checked")
