r"""Chapter 9, exercise 2: a convolution's dL/dx, computed by another convolution.

(a) Stride 1. From the chapter, with G = dout and terms outside G counted as 0::

    dL/dx[n, r', c', d] = sum_{i, j, f} G[n, r' + p - i, c' + p - j, f] W[i, j, d, f]

With i' = kappa - 1 - i, j' = kappa - 1 - j and G~ = G padded by kappa - 1 - p zeros on every
side::

    dL/dx[n, r', c', d] = sum_{i', j', f} G~[n, r' + i', c' + j', f] W~[i', j', f, d],
    W~[i', j', f, d] = W[kappa - 1 - i', kappa - 1 - j', d, f]

the forward formula of a Conv2D(F, C, kappa, stride 1, padding kappa - 1 - p) holding W~: flipped in
both spatial axes (W[::-1, ::-1]), its channel axes swapped (transpose(0, 1, 3, 2)), because
it reads dout's F channels and writes x's C. dL/dx is linear in dout, with no constant term,
so the flipped convolution's bias must be 0: a bias would add b to every pixel of dL/dx.

Forget the swap: with C != F the kernel does not even have the shape a Conv2D(F, C) holds;
with C = F it runs, and multiplies by W[i, j, f, d] where W[i, j, d, f] belongs, the
transpose of each 1 x 1 channel-mixing matrix: a wrong gradient the shapes do not catch.

(b) Stride s. Only the terms where s divides r' + p - i survive, which is the stride-1 formula
on a dout "dilated" with s - 1 zeros between its rows (and between its columns):
dil[n, r s, c s, f] = G[n, r, c, f], of (Ho - 1) s + 1 rows. A stride-1 Conv2D with padding
kappa - 1 - p then gives (Ho - 1) s + 1 + 2 (kappa - 1 - p) - kappa + 1 = (Ho - 1) s + kappa - 2p
rows. The
convolution's input had H = (Ho - 1) s + kappa - 2p + o rows, o = (H + 2p - kappa) % s, the rows it
never read (their gradient is 0). So o extra zero rows at the bottom of the dilated dout (and
(W + 2p - kappa) % s columns at the right) give x's shape: o is exactly the output_padding of the
ConvTranspose2D that mirrors the convolution, whose forward pass is this same dL/dx.

Run from anywhere: ``python docs/solutions/09_flipped_kernel_backward.py``.
"""

import numpy as np

from npnet.conv import Conv2D, ConvTranspose2D
from npnet.gradcheck import relative_error


def flip(W):
    """W (kappa, kappa, C, F) -> W~ (kappa, kappa, F, C): flipped in both spatial axes, channels
    swapped."""
    return W[::-1, ::-1].transpose(0, 1, 3, 2)


def dx_by_flipped_kernel(dout, W, padding, stride=1, input_shape=None):
    """dL/dx of Conv2D(C, F, k, stride, padding) with weights W, from dout (N, Ho, Wo, F).

    For stride > 1, dout is dilated with stride - 1 zeros between rows and columns, and
    input_shape (N, H, W, C) says how many rows and columns the convolution never read."""
    k, _, channels, filters = W.shape
    n, ho, wo, _ = dout.shape
    if stride > 1:
        _, height, width, _ = input_shape
        extra_rows = (height + 2 * padding - k) % stride
        extra_cols = (width + 2 * padding - k) % stride
        dilated = np.zeros((n, (ho - 1) * stride + 1 + extra_rows,
                            (wo - 1) * stride + 1 + extra_cols, filters))
        dilated[:, : (ho - 1) * stride + 1 : stride, : (wo - 1) * stride + 1 : stride] = dout
        dout = dilated
    back = Conv2D(filters, channels, k, stride=1, padding=k - 1 - padding, dtype=np.float64)
    back.params["W"][:] = flip(W)  # its bias stays 0
    return back.forward(dout)


rng = np.random.default_rng(0)

# CHECK 1 (a): stride 1, every kernel from 1 to 4 and every padding below it, C != F.
for k in range(1, 5):
    for p in range(k):
        conv = Conv2D(2, 3, k, stride=1, padding=p, rng=k, dtype=np.float64)
        conv.params["b"][:] = rng.standard_normal(3)  # a bias changes nothing in dL/dx
        x = rng.standard_normal((2, 6, 5, 2))
        dout = rng.standard_normal(conv.forward(x).shape)
        np.testing.assert_allclose(dx_by_flipped_kernel(dout, conv.params["W"], p),
                                   conv.backward(dout), atol=1e-12)
print("stride 1: dL/dx = Conv2D(F, C, k, padding k-1-p) with the flipped kernel, checked")

# CHECK 2 (a): forgetting the channel swap. C != F: the kernel does not fit the layer.
conv = Conv2D(2, 3, 3, stride=1, padding=1, rng=0, dtype=np.float64)
no_swap = Conv2D(3, 2, 3, stride=1, padding=1, dtype=np.float64)
try:
    no_swap.params["W"][:] = conv.params["W"][::-1, ::-1]  # (3, 3, 2, 3) into (3, 3, 3, 2)
except ValueError as error:
    print(f"C != F, no swap: {error}")
else:
    raise AssertionError("a (3, 3, 2, 3) kernel fitted a Conv2D(3, 2)")
# C = F: it runs, and is wrong.
conv = Conv2D(3, 3, 3, stride=1, padding=1, rng=0, dtype=np.float64)
x = rng.standard_normal((2, 5, 5, 3))
dout = rng.standard_normal(conv.forward(x).shape)
no_swap = Conv2D(3, 3, 3, stride=1, padding=1, dtype=np.float64)
no_swap.params["W"][:] = conv.params["W"][::-1, ::-1]
error = relative_error(no_swap.forward(dout), conv.backward(dout))
print(f"C = F, no swap: relative error {error:.2f}")
assert error > 0.05

# CHECK 3 (b): strides 2 and 3, sizes that the stride divides and sizes it does not; the
# extra rows are the output_padding, and ConvTranspose2D's forward is the same dL/dx.
transposes = 0
for k, s, p, height, width in ((3, 2, 1, 14, 13), (3, 2, 1, 14, 14), (3, 2, 1, 13, 13),
                               (4, 3, 2, 10, 9), (2, 2, 0, 6, 7), (3, 3, 0, 11, 11)):
    conv = Conv2D(2, 3, k, stride=s, padding=p, rng=s, dtype=np.float64)
    x = rng.standard_normal((2, height, width, 2))
    dout = rng.standard_normal(conv.forward(x).shape)
    dx = conv.backward(dout)
    np.testing.assert_allclose(dx_by_flipped_kernel(dout, conv.params["W"], p, s, x.shape),
                               dx, atol=1e-12)
    extra = (height + 2 * p - k) % s
    if extra == (width + 2 * p - k) % s:  # one output_padding for both axes
        transpose = ConvTranspose2D(3, 2, k, s, p, output_padding=extra, dtype=np.float64)
        transpose.params["W"][:] = conv.params["W"]
        np.testing.assert_allclose(transpose.forward(dout), dx, atol=1e-12)
        transposes += 1
assert transposes == 3
print("stride > 1: dilate dout, add (H + 2p - k) % s rows (the output_padding): checked")
