"""Chapter 9, exercise 4: average pooling, its backward pass by hand, and as a convolution.

2 x 2 windows, stride 2, on x (N, H, W, C) with H and W even::

    y[n, r, c, d] = 1/4 sum_{i, j < 2} x[n, 2r + i, 2c + j, d]       y : (N, H/2, W/2, C)

Each pixel (a, b) is in exactly one window, (a // 2, b // 2), with weight 1/4, so

    dL/dx[n, a, b, d] = dout[n, a // 2, b // 2, d] / 4

every gradient copied to the four pixels of its window and divided by 4:
np.repeat along the rows and the columns. There are no parameters, and channels do not mix.

As a convolution: Conv2D(C, C, kernel_size=2, stride=2) with W[i, j, d, e] = 1/4 if d = e
else 0 (each filter averages its own channel) and b = 0. Its dL/dx is the adjoint, so the
backward pass of average pooling is ConvTranspose2D(C, C, 2, stride=2) with the same weights:
nearest-neighbour upsampling, divided by 4.

3 x 3 windows at stride 2 with padding 1 (zeros counted, so always divide by 9): windows
overlap (for H = 6, rows 2 and 4 of the padded image are in two windows each), and a pixel
where two windows meet, in its row or its column, lies in two or four of them. Its gradient
is the sum over all the windows it is in, which np.repeat, giving each pixel one window's
share, does not compute. What does is col2im: the backward pass of any
patches-then-reduce layer is col2im of the patches' gradients, here dout / 9 in every entry
of every patch (or ConvTranspose2D with W = 1/9 on the channel diagonal).

Run from anywhere: ``python docs/solutions/09_average_pooling.py``.
"""

import numpy as np

from npnet.conv import Conv2D, ConvTranspose2D, col2im, conv_output_size, im2col
from npnet.gradcheck import check_layer, relative_error
from npnet.layers import Layer


class AvgPool2D(Layer):
    """2 x 2 average pooling, stride 2, NHWC, for even H and W."""

    def forward(self, x):
        x = np.asarray(x, dtype=np.float64)
        n, height, width, channels = x.shape
        self.cache = x.shape
        return x.reshape(n, height // 2, 2, width // 2, 2, channels).mean(axis=(2, 4))

    def backward(self, dout):
        x_shape = self._cached(dout)
        dout = self._check_dout(dout, (x_shape[0], x_shape[1] // 2, x_shape[2] // 2,
                                       x_shape[3]))
        return np.repeat(np.repeat(dout, 2, axis=1), 2, axis=2) / 4


class AvgPool3x3(Layer):
    """3 x 3 average pooling, stride 2, padding 1 (zeros counted): im2col, mean; col2im."""

    def forward(self, x):
        x = np.asarray(x, dtype=np.float64)
        self.cache = x.shape
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return im2col(xp, 3, 2).mean(axis=(3, 4))  # (N, Ho, Wo, 3, 3, C) -> (N, Ho, Wo, C)

    def backward(self, dout):
        n, height, width, channels = self._cached(dout)
        patches = np.broadcast_to(dout[:, :, :, None, None, :] / 9,
                                  (*dout.shape[:3], 3, 3, channels))
        return col2im(patches, (height + 2, width + 2), 2)[:, 1:-1, 1:-1, :]


def channel_diagonal(k, channels, value):
    """W (k, k, C, C) that averages each channel on its own: value on the diagonal d = e."""
    W = np.zeros((k, k, channels, channels))
    W[:, :, range(channels), range(channels)] = value
    return W


rng = np.random.default_rng(0)
C = 3
x = rng.standard_normal((2, 6, 4, C))

# CHECK 1: 2 x 2 pooling: the backward by hand against numeric gradients.
pool = AvgPool2D()
errors = check_layer(pool, x, rng=1)
print(f"AvgPool2D: relative error {errors['x']:.1e}")
assert set(errors) == {"x"} and errors["x"] < 1e-7

# CHECK 2: it is a Conv2D with fixed weights, and its backward is the ConvTranspose2D.
as_conv = Conv2D(C, C, kernel_size=2, stride=2, dtype=np.float64)
as_conv.params["W"][:] = channel_diagonal(2, C, 0.25)  # b = 0
as_transpose = ConvTranspose2D(C, C, kernel_size=2, stride=2, dtype=np.float64)
as_transpose.params["W"][:] = as_conv.params["W"]
y = pool.forward(x)
np.testing.assert_allclose(as_conv.forward(x), y)
dout = rng.standard_normal(y.shape)
dx = pool.backward(dout)
np.testing.assert_allclose(as_conv.backward(dout), dx)
np.testing.assert_allclose(as_transpose.forward(dout), dx)
print("2 x 2 average pooling = Conv2D with W = 1/4 on the channel diagonal; its backward "
      "= ConvTranspose2D with the same W: checked")

# CHECK 3: overlapping 3 x 3 windows: col2im is right, np.repeat is not.
x = rng.standard_normal((2, 6, 6, C))
pool3 = AvgPool3x3()
assert pool3.forward(x).shape == (2, conv_output_size(6, 3, 2, 1), 3, C)
errors = check_layer(pool3, x, rng=2)
print(f"AvgPool3x3 with col2im: relative error {errors['x']:.1e}")
assert errors["x"] < 1e-7
as_conv3 = Conv2D(C, C, kernel_size=3, stride=2, padding=1, dtype=np.float64)
as_conv3.params["W"][:] = channel_diagonal(3, C, 1 / 9)
np.testing.assert_allclose(as_conv3.forward(x), pool3.forward(x))
dout = rng.standard_normal((2, 3, 3, C))
np.testing.assert_allclose(as_conv3.backward(dout), pool3.backward(dout))
repeat_guess = np.repeat(np.repeat(dout, 2, axis=1), 2, axis=2) / 9  # one window per pixel
wrong = relative_error(repeat_guess, pool3.backward(dout))
print(f"np.repeat for overlapping windows: relative error {wrong:.2f}")
assert wrong > 0.1
