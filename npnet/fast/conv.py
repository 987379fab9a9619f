"""Convolutions that compute what :mod:`npnet.conv` computes, with fewer passes over memory.

The core's :class:`~npnet.conv.Conv2D` and :class:`~npnet.conv.ConvTranspose2D` are matrix
products between copies: ``np.pad`` copies the input into a larger array, :func:`im2col`
copies it again into patches (one strided slice per kernel offset, which is slow when a pixel
has a single channel), and :func:`col2im` adds the patches back one offset at a time, each
time reading and writing the whole image. The subclasses here keep every matrix product
exactly as the core calls it (the same ``np.matmul`` on operands of the same shape, layout
and values: OpenBLAS then does the same sums in the same order) and change the copies around
them:

* **im2col reads the unpadded input.** One compiled loop writes each patch row straight from
  x, writing 0 where the core's patch would read the padding (which ``np.pad`` fills with
  0): the same patch matrix, without the padded copy.
* **col2im gathers instead of scattering.** The core starts each output pixel at 0 and adds
  the kernel offsets (i, j) that reach it, in row-major order of (i, j), one pass over the
  image per offset. The compiled loop visits each output pixel once, starts at 0 and adds
  the same values in the same order of (i, j): every floating-point addition of the core, in
  the core's order, so the same bits (signed zeros included: the first addition is
  ``0 + value`` in both). It writes only the pixels the core keeps after cropping the
  padding, and for the transposed convolution adds the bias to each sum as it goes, the
  core's ``crop(...) + b``.
* **Buffers live as long as the layer.** The patch matrices are written into arrays kept
  from the last step (rebuilt when the batch's shape changes), the bias is added in place
  to the product, and the gradients go into the layer's own ``grads`` arrays
  (``np.matmul(..., out=)``), which :func:`npnet.fast.enable` places beside their parameters.
  What a layer returns (its output, dL/dx) is a new array every call, as in the core.
* **The first layer skips dL/dx** (``input_grad = False``, set by :func:`npnet.fast.enable`
  on the layer that sees the data): training never uses the gradient with respect to the
  data, and for a convolution it costs a matrix product and a col2im.

The compiled loops need numba (https://numba.pydata.org, optional: ``pip install
npnet[fast]``); without it, for a dtype numba has no arithmetic for (long double), and for
images of fewer than :data:`LOOP_MIN_CHANNELS` channels (where NumPy's copies were faster),
the layers take the core's :func:`~npnet.conv.im2col` (writing into the patch buffer) and
:func:`~npnet.conv.col2im`, with the other changes kept.

``tests/test_fast_conv.py`` checks on drawn shapes, hyperparameters and values that outputs,
gradients and dL/dx are the core's bit for bit, with and without the compiled loops, and that
whole convolutional models trained through :func:`npnet.fast.enable` end with the core's
parameters.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..conv import Conv2D, ConvTranspose2D, Flatten, Reshape
from ..patches import col2im, crop, pad
from .optim import numba_available

__all__ = ["FastConv2D", "FastConvTranspose2D", "FastReshape", "FastFlatten", "conv_kernels"]


def _im2col_loop(x, channels, stride, padding, cols):
    """``cols[n, r, c, i, j, :] = xp[n, r s + i, c s + j, :]``, xp being x padded with
    ``padding`` zeros, read from x itself: 0 where the patch reaches into the padding.

    x is (N, H, W C) and cols (N, Ho, Wo, kh, kw C): x and the patches with each row's
    pixels and channels as one axis, so that row i of patch (r, c) is one run of kw C
    numbers, copied from row r s + i of x (and 0 for the columns in the padding).
    Only copies: any order gives the same array; this one writes cols front to back.
    """
    n, h, wc = x.shape
    width = wc // channels
    _, ho, wo, kh, kwc = cols.shape
    kw = kwc // channels
    for b in range(n):
        for r in range(ho):
            for c in range(wo):
                left = c * stride - padding  # the column of x under j = 0
                lo = max(0, -left) * channels  # the run's entries inside x: [lo, hi)
                hi = max(lo, min(kw, width - left) * channels)
                for i in range(kh):
                    row = r * stride + i - padding
                    if row < 0 or row >= h:
                        for e in range(kwc):
                            cols[b, r, c, i, e] = 0
                        continue
                    for e in range(lo):
                        cols[b, r, c, i, e] = 0
                    for e in range(lo, hi):
                        cols[b, r, c, i, e] = x[b, row, left * channels + e]
                    for e in range(hi, kwc):
                        cols[b, r, c, i, e] = 0


def _col2im_loop(cols, channels, stride, padding, bias, out):
    """``out = crop(col2im(cols)) + bias``, each output pixel summed in the core's order.

    cols is (N, Ho, Wo, kh, kw C) and out (N, H, W C) (channels merged with the column, as
    in :func:`_im2col_loop`); out[:, y, x] is the padded image's pixel (y + p, x + p).
    :func:`npnet.conv.col2im` starts from zeros and adds the slice of each kernel offset
    (i, j), in row-major order of (i, j); each pixel receives at most one value per offset:
    from patch (r, c) with r s + i = y + p and c s + j = x + p. This loop does the same
    additions, one output row at a time: the row starts at 0, then for each (i, j) in the
    same order, each pixel of the row that offset reaches gets its value added. So every
    pixel's sum has the core's terms in the core's order. ``bias`` (empty: none) is then
    added to each finished sum, as the core's ``crop(...) + b`` does.
    """
    n, h, wc = out.shape
    width = wc // channels
    _, ho, wo, kh, kwc = cols.shape
    kw = kwc // channels
    for b in range(n):
        for y in range(h):
            for e in range(wc):
                out[b, y, e] = 0
            for i in range(kh):
                dy = y + padding - i  # = r * stride for the patch row r that reaches y
                if dy < 0 or dy % stride != 0 or dy // stride >= ho:
                    continue
                r = dy // stride
                for j in range(kw):
                    # the patches c whose offset j lands in the row: 0 <= c s + j - p < W
                    first = padding - j
                    c_lo = 0 if first <= 0 else (first + stride - 1) // stride
                    last = width - 1 + padding - j
                    c_hi = 0 if last < 0 else min(wo, last // stride + 1)
                    for c in range(c_lo, c_hi):
                        at = (c * stride + j - padding) * channels
                        for ch in range(channels):
                            out[b, y, at + ch] += cols[b, r, c, i, j * channels + ch]
            if bias.shape[0] > 0:
                for x in range(width):
                    for ch in range(channels):
                        out[b, y, x * channels + ch] += bias[ch]


@cache
def conv_kernels():
    """``(im2col, col2im)``: the two loops above compiled by numba on first use, or None
    without numba.

    numba keeps each variable in the arrays' dtype (``out[...] += v`` on float32 arrays is a
    float32 addition, rounded as NumPy rounds it) and reorders no floating-point operation
    unless asked (``fastmath``), so the loops add what the core adds, in its order.
    ``cache=True`` keeps the machine code on disk between runs.
    """
    if not numba_available():
        return None
    import numba

    compile_ = numba.njit(cache=True, error_model="numpy")
    return compile_(_im2col_loop), compile_(_col2im_loop)


# The dtypes the loops are compiled for: numba has no long double (nor float16) arithmetic.
_LOOP_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# Images with fewer channels take the core's functions: with one channel (MNIST's pixels,
# and the last decoder layer's output) NumPy's strided slice copies measured about twice as
# fast as the loops, whose runs of kw C numbers are then only 3 long; with 32 channels the
# loops measured 2 to 2.6 times as fast as NumPy (benchmarks at batch 128; counts in between
# were not measured, and this bound is a guess between the two).
LOOP_MIN_CHANNELS = 8


def _kernels_for(dtype, channels: int):
    """The compiled loops, if there are any for ``dtype`` and they pay for ``channels``;
    None: take the core's functions."""
    if np.dtype(dtype) not in _LOOP_DTYPES or channels < LOOP_MIN_CHANNELS:
        return None
    return conv_kernels()


def _patches_into(layer, x: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """The core's ``im2col(pad(x, p), k, s).reshape(M, K)`` for x (N, H, W, C), written into
    the layer's patch buffer (N Ho Wo, kh kw C), which is returned."""
    n, _, _, channels = x.shape
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    cols = _buffer(layer, "_fast_cols", (n * out_rows * out_cols, k * k * channels), x.dtype)
    patches = cols.reshape(n, out_rows, out_cols, k, k, channels)
    kernels = _kernels_for(x.dtype, channels)
    if kernels is None:  # the core's im2col, writing into the buffer
        xp = pad(x, p)
        for i in range(k):
            for j in range(k):
                patches[:, :, :, i, j, :] = xp[:, i : i + s * out_rows : s,
                                               j : j + s * out_cols : s, :]
    else:  # (a view of x when x is contiguous, else a copy: the same numbers)
        rows = x.reshape(n, x.shape[1], x.shape[2] * channels)
        kernels[0](rows, channels, s, p, patches.reshape(n, out_rows, out_cols, k, k * channels))
    return cols


def _image_from(layer, cols: np.ndarray, out_shape: tuple, bias: np.ndarray | None) -> np.ndarray:
    """The core's ``crop(col2im(cols), p)`` (``+ bias`` if given) as a new array of
    ``out_shape`` (N, H, W, C); cols is (N, Ho, Wo, kh, kw, C)."""
    n, h, w, channels = out_shape
    s, p = layer.stride, layer.padding
    kernels = _kernels_for(cols.dtype, channels)
    if kernels is None:
        image = crop(col2im(cols, (h + 2 * p, w + 2 * p), s), p)
        return image + bias if bias is not None else image
    out = np.empty(out_shape, dtype=cols.dtype)
    k = layer.kernel_size
    kernels[1](cols.reshape(*cols.shape[:4], k * channels), channels, s, p,
               np.empty(0, cols.dtype) if bias is None else bias,
               out.reshape(n, h, w * channels))
    return out


def _buffer(layer, attribute: str, shape: tuple, dtype) -> np.ndarray:
    """The layer's array ``attribute`` of ``shape`` and ``dtype``, made anew if it has none
    of that shape: scratch space kept between steps, which nothing outside the layer sees
    (it is not a parameter and is rebuilt whenever it is missing)."""
    array = layer.__dict__.get(attribute)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = np.empty(shape, dtype=dtype)
        setattr(layer, attribute, array)
    return array


def _grad_matrix(layer) -> np.ndarray:
    """The layer's ``grads["W"]`` as the (K, F) matrix that the product writes (a view).

    The gradients are written into the arrays the layer holds; one of another shape, dtype
    or layout (which a reshape would copy, so the product would write into the copy) is
    replaced by a new array first."""
    for key, param in layer.params.items():
        grad = layer.grads.get(key)
        if (grad is None or grad.shape != param.shape or grad.dtype != param.dtype
                or not grad.flags.c_contiguous):
            layer.grads[key] = np.empty_like(param)
    return layer.grads["W"].reshape(layer._matrix().shape)


class FastConv2D(Conv2D):
    """:class:`npnet.conv.Conv2D`, with its copies compiled and its buffers kept; see the
    module docstring.

    The same products as the core: ``cols @ W`` (then ``+= b`` in place), ``cols^T D`` into
    ``grads["W"]`` and ``D W^T``, each with the core's operands.

    Attributes
    ----------
    input_grad : bool
        Whether ``backward`` returns dL/dx (True) or skips it and returns None.
    """

    input_grad = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        try:
            ho, wo, f = self.output_shape(x.shape[1], x.shape[2])
        except ValueError as error:
            raise ValueError(f"{self.describe()}: {error}") from None
        cols = _patches_into(self, x, ho, wo)  # (M, K)
        self.cache = (cols, x.shape)
        y = np.empty((cols.shape[0], f), dtype=self.dtype)
        np.matmul(cols, self._matrix(), out=y)  # the core's cols @ W
        y += self.params["b"]
        return y.reshape(x.shape[0], ho, wo, f)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        cols, x_shape = self._cached(dout)
        n, h, w, c = x_shape
        k = self.kernel_size
        ho, wo, f = self.output_shape(h, w)
        dout = self._check_dout(dout, (n, ho, wo, f))
        d = dout.astype(self.dtype, copy=False).reshape(-1, f)  # (M, F), as the core's
        np.matmul(cols.T, d, out=_grad_matrix(self))  # (K, M) @ (M, F)
        np.sum(d, axis=0, out=self.grads["b"])
        if not self.input_grad:
            return None
        dcols = _buffer(self, "_fast_dcols", (d.shape[0], k * k * c), self.dtype)
        np.matmul(d, self._matrix().T, out=dcols)  # (M, F) @ (F, K)
        return _image_from(self, dcols.reshape(n, ho, wo, k, k, c), x_shape, None)


class FastConvTranspose2D(ConvTranspose2D):
    """:class:`npnet.conv.ConvTranspose2D`, with its copies compiled and its buffers kept;
    see the module docstring.

    The same products as the core: ``u W^T``, ``dcols^T u`` into ``grads["W"]`` and
    ``dcols W``, each with the core's operands.

    Attributes
    ----------
    input_grad : bool
        Whether ``backward`` returns dL/du (True) or skips it and returns None.
    """

    input_grad = True

    def forward(self, u: np.ndarray) -> np.ndarray:
        u = self._check_input(u)
        n, hi, wi, f = u.shape
        try:
            ho, wo, c = self.output_shape(hi, wi)
        except ValueError as error:
            raise ValueError(f"{self.describe()}: {error}") from None
        k = self.kernel_size
        self.cache = u
        # The patch buffer is free here: backward's im2col writes its dcols, of this shape,
        # into it again (the forward pass keeps only u).
        cols = _buffer(self, "_fast_cols", (n * hi * wi, k * k * c), self.dtype)
        np.matmul(u.reshape(-1, f), self._matrix().T, out=cols)  # (M, F) @ (F, K)
        return _image_from(self, cols.reshape(n, hi, wi, k, k, c), (n, ho, wo, c),
                           self.params["b"])

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        u = self._cached(dout)
        n, hi, wi, f = u.shape
        dout = self._check_dout(dout, (n, *self.output_shape(hi, wi)))
        dout = dout.astype(self.dtype, copy=False)
        dcols = _patches_into(self, dout, hi, wi)  # (M, K), the core's im2col(pad(dout))
        np.matmul(dcols.T, u.reshape(-1, f), out=_grad_matrix(self))  # (K, M) @ (M, F)
        np.sum(dout, axis=(0, 1, 2), out=self.grads["b"])
        if not self.input_grad:
            return None
        return np.matmul(dcols, self._matrix()).reshape(n, hi, wi, f)  # (M, K) @ (K, F)


class FastReshape(Reshape):
    """:class:`npnet.conv.Reshape` that passes on a skipped gradient: ``backward(None)`` is
    None. :func:`npnet.fast.enable` uses it for the layers in front of the model's first
    layer with parameters (a conv model starts with ``Reshape((28, 28, 1))``), whose
    dL/d(data) training never uses."""

    def backward(self, dout):
        return None if dout is None else super().backward(dout)


class FastFlatten(Flatten):
    """:class:`npnet.conv.Flatten` that passes on a skipped gradient, as :class:`FastReshape`."""

    def backward(self, dout):
        return None if dout is None else super().backward(dout)
