r"""Images as matrices of patches, and back: the bookkeeping under every convolution.

A convolution reads, for each output pixel, the kappa x kappa patch of the (zero-padded) input
under the kernel. :func:`im2col` copies those patches into the rows of one matrix::

    xp   : (N, Hp, Wp, C)              the padded batch, NHWC
    cols : (N * Ho * Wo, kappa^2 C)  one row per output pixel, one column per weight

so that a convolution becomes a matrix product (:mod:`npnet.conv`). :func:`col2im` goes back:
it adds each row's values to the pixels the patch came from. It is im2col's adjoint,
``<im2col(x), c> = <x, col2im(c)>``, which is what makes it the backward pass of im2col:
a pixel copied into several patches receives the sum of their gradients.

How many patches fit, :func:`conv_output_size`, and the size a transposed convolution
gives back, :func:`conv_transpose_output_size`, are here too. Both loops below run over the
kappa^2 offsets within a kernel (9 for a 3 x 3 kernel), never over pixels or examples.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv_output_size", "conv_transpose_output_size", "im2col", "col2im", "pad", "crop"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Rows (or columns) of a convolution's output: ``(size + 2 padding - kernel) // stride + 1``.

    The kernel is placed at rows 0, stride, 2 stride, ... of the padded input, as long as it
    fits. When ``stride`` does not divide ``size + 2 padding - kernel``, the last
    ``(size + 2 padding - kernel) % stride`` rows are never read (their gradient is 0).
    For 28 rows, a 3 x 3 kernel, stride 2 and padding 1: (28 + 2 - 3) // 2 + 1 = 14.

    Tested by: tests/test_conv.py::test_conv2d_matches_a_loop_over_pixels
    """
    if size + 2 * padding < kernel:
        raise ValueError(
            f"an image of {size} pixels, padded by {padding} on each side, is smaller than "
            f"the {kernel} x {kernel} kernel; use a smaller kernel_size or more padding"
        )
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(
    size: int, kernel: int, stride: int, padding: int, output_padding: int = 0
) -> int:
    """Rows of a transposed convolution's output: ``(size - 1) stride + kernel - 2 padding
    + output_padding``.

    It is the size of the input of the convolution (same kernel, stride and padding) whose
    output has ``size`` rows. Several input sizes give the same output size when the stride
    is above 1 (13 and 14 both give 7 for kernel 3, stride 2, padding 1); ``output_padding``,
    in [0, stride), picks one: 7 -> 13 with 0, 7 -> 14 with 1.

    Tested by: tests/test_conv.py::test_conv_transpose_is_the_adjoint_of_conv
    """
    out = (size - 1) * stride + kernel - 2 * padding + output_padding
    if out < 1:
        raise ValueError(
            f"a transposed convolution of {size} pixels with kernel {kernel}, stride {stride}, "
            f"padding {padding} and output_padding {output_padding} has {out} output pixels; "
            "use less padding"
        )
    return out


def im2col(xp: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """The kernel-sized patches of a padded batch, one output pixel's patch per row.

    ``xp`` (N, Hp, Wp, C) -> ``cols`` (N, Ho, Wo, kappa, kappa, C), where
    ``cols[n, r, c, i, j, :] = xp[n, r * stride + i, c * stride + j, :]``; reshaped to
    (N * Ho * Wo, kappa^2 C) it is the matrix of the module docstring. For each of the
    kappa^2 offsets (i, j) within the kernel, one strided slice of ``xp`` is copied.

    Tested by: tests/test_conv.py::test_col2im_is_the_adjoint_of_im2col
    """
    n, hp, wp, channels = xp.shape
    ho = conv_output_size(hp, kernel, stride, 0)
    wo = conv_output_size(wp, kernel, stride, 0)
    cols = np.empty((n, ho, wo, kernel, kernel, channels), dtype=xp.dtype)
    for i in range(kernel):
        for j in range(kernel):
            cols[:, :, :, i, j, :] = xp[:, i : i + stride * ho : stride,
                                           j : j + stride * wo : stride, :]
    return cols


def col2im(cols: np.ndarray, padded_shape: tuple, stride: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: each patch's values added back where the patch came from.

    ``cols`` (N, Ho, Wo, kappa, kappa, C) -> (N, Hp, Wp, C), zeros where no patch reaches. Patches
    overlap when stride < kernel, and a pixel in several patches receives the sum of their
    values: exactly what the chain rule asks of dL/dx when x was copied into several rows.

    Tested by: tests/test_conv.py::test_col2im_is_the_adjoint_of_im2col
    """
    n, ho, wo, kernel, _, channels = cols.shape
    xp = np.zeros((n, *padded_shape, channels), dtype=cols.dtype)
    for i in range(kernel):
        for j in range(kernel):
            xp[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :] += (
                cols[:, :, :, i, j, :])
    return xp


def pad(x: np.ndarray, padding: int) -> np.ndarray:
    """x (N, H, W, C) with ``padding`` rows and columns of zeros on every side.

    Tested by: tests/test_conv.py::test_conv2d_matches_a_loop_over_pixels
    """
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))


def crop(xp: np.ndarray, padding: int) -> np.ndarray:
    """The inverse of :func:`pad` for the shape (and the adjoint for the values).

    Tested by: tests/test_conv.py::test_conv2d_gradients
    """
    if padding == 0:
        return xp
    return xp[:, padding:-padding, padding:-padding, :]
