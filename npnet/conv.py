r"""Convolutions with a hand-written backward pass, and the layers between images and vectors.

**Layout: NHWC.** A batch of images is an array of shape (N, H, W, C): example, row,
column, channel, with the channels of one pixel side by side in memory. The reason is the
matrix product at the heart of every layer here. Cut the input into its kappa x kappa patches and
lay each patch out as a row (:func:`im2col`)::

    cols : (N * Ho * Wo, kappa^2 C)        one row per output pixel

then a convolution *is* a Dense layer applied to every row, ``y = cols @ W + b``, and the
product's (N * Ho * Wo, F) result already *is* the NHWC output: a reshape, no copy. With
NCHW (PyTorch's layout) the same product gives NHWC and needs a transpose, a full copy of the
output, in the forward pass and again, for dout, in the backward pass. MNIST's flat rows of
784 pixels are NHWC images with C = 1 as they are: ``Reshape((28, 28, 1))`` is a view.

**The three gradients** follow from the Dense layer's (``docs/09-convolutions.md`` derives
them). With ``cols`` kept from the forward pass and ``G = dout`` as a (N * Ho * Wo, F)
matrix::

    dL/dW    = cols^T G                      (P, M) @ (M, F) -> (P, F), P = kappa^2 C
    dL/db    = sum of the rows of G          (F,)
    dL/dcols = G W^T                         (M, F) @ (F, P) -> (M, P)
    dL/dx    = col2im(dL/dcols)              every patch's gradient added back where the
                                             patch came from

**The transposed convolution** is the adjoint of the convolution in its input: for the same
weights, ``<conv(x), y> = <x, conv_transpose(y)>`` for all x and y. Its forward pass is the
convolution's dL/dx formula (a product with W^T, then col2im) and its backward pass is the
convolution's forward formula (im2col, then a product with W). A decoder uses it to go from
a small, deep map back to a large, shallow image: 7 x 7 x 64 -> 14 x 14 x 32 -> 28 x 28 x 1.

Computations are matrix products over patches. The only Python loops run over the kappa^2
offsets within a kernel (9 for a 3 x 3 kernel), never over pixels or examples.
"""

from __future__ import annotations

import math

import numpy as np

from . import checks
from .layers import ACTIVATIONS, Dense, Layer, Sequential, dense_stack, init_for, initial_weights
from .patches import col2im, conv_output_size, conv_transpose_output_size, crop, im2col, pad

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "im2col",
    "col2im",
    "Conv2D",
    "ConvTranspose2D",
    "Flatten",
    "Reshape",
    "conv_encoder",
    "conv_decoder",
]


class _ConvBase(Layer):
    """What the two convolutions share: the hyperparameters, W and b, and the input check."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dtype, name):
        super().__init__(name)
        kind = type(self).__name__
        self.in_channels = checks.width(in_channels, f"{kind} in_channels")
        self.out_channels = checks.width(out_channels, f"{kind} out_channels")
        self.kernel_size, self.stride, self.padding = checks.kernel_stride_padding(
            kernel_size, stride, padding, kind)
        self.dtype = checks.floating_dtype(dtype, f"a {kind} layer")

    def _init_params(self, shape: tuple, fan_in: float, fan_out: float, init: str, rng) -> None:
        """W of ``shape`` (kappa, kappa, C, F) by :func:`~npnet.layers.initial_weights`; b = 0."""
        self.params = {"W": initial_weights(shape, fan_in, fan_out, init, rng, self.dtype),
                       "b": np.zeros(self.out_channels, self.dtype)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        """x as an (N, H, W, in_channels) array of the layer's dtype, or a clear error."""
        x = np.asarray(self._real_input(x), dtype=self.dtype)
        return checks.images(x, self.in_channels, self.describe())

    def _matrix(self) -> np.ndarray:
        """W (kappa, kappa, C, F) as the (kappa^2 C, F) matrix that multiplies patches (a view)."""
        k = self.kernel_size
        return self.params["W"].reshape(k * k * self.params["W"].shape[2], -1)

    def describe(self) -> str:
        return (f"{type(self).__name__} layer {self.name!r} ({self.in_channels} -> "
                f"{self.out_channels} channels, {self.kernel_size}x{self.kernel_size} kernel, "
                f"stride {self.stride}, padding {self.padding})")


class Conv2D(_ConvBase):
    r"""2-D convolution (cross-correlation, as in every deep-learning library), NHWC.

    Forward, for x of shape (N, H, W, C), weights W (kappa, kappa, C, F) with kappa =
    ``kernel_size``, bias b (F,), stride s and zero padding p::

        y[n, r, c, f] = b[f] + sum_{i, j, ch} xp[n, r s + i, c s + j, ch] W[i, j, ch, f]

    where xp is x padded with p zeros on each side; y is (N, Ho, Wo, F) with
    Ho = (H + 2p - kappa) // s + 1 (:func:`conv_output_size`). As matrices (module docstring)::

        cols = im2col(xp)                (M, P),  M = N Ho Wo,  P = kappa^2 C
        y    = cols W + b                (M, P) @ (P, F) -> (M, F), viewed as (N, Ho, Wo, F)

    Backward, from dout = dL/dy (N, Ho, Wo, F) viewed as G (M, F); the Dense layer's
    formulas with cols in the place of x::

        dL/dW = cols^T G                 (P, M) @ (M, F) -> (P, F), viewed as (kappa, kappa, C, F)
        dL/db = sum over n, r, c of G    (F,)
        dL/dx = crop(col2im(G W^T))      (M, F) @ (F, P) -> (M, P) -> (N, H, W, C)

    Parameters
    ----------
    in_channels, out_channels : int
        C and F.
    kernel_size, stride, padding : int
        Square kernel of side kappa; stride >= 1; padding >= 0 zeros on each side, below kappa.
    init : {"he", "glorot"}
        As :class:`~npnet.layers.Dense`, with fan_in = kappa^2 C (the terms of each output's
        sum) and fan_out = kappa^2 F.
    rng, dtype, name
        As :class:`~npnet.layers.Dense`.

    Tested by: tests/test_conv.py::test_conv2d_gradients,
    tests/test_conv.py::test_conv2d_matches_a_loop_over_pixels,
    tests/test_conv.py::test_conv_layers_refuse_bad_hyperparameters,
    tests/test_conv.py::test_conv2d_refuses_wrong_channels_and_small_images
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 0, init: str = "he",
                 rng: np.random.Generator | int | None = None, dtype=np.float32,
                 name: str | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dtype, name)
        k, c, f = self.kernel_size, self.in_channels, self.out_channels
        self._init_params((k, k, c, f), fan_in=k * k * c, fan_out=k * k * f, init=init, rng=rng)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(Ho, Wo, F) for an input of height x width pixels."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return conv_output_size(height, k, s, p), conv_output_size(width, k, s, p), \
            self.out_channels

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y (N, Ho, Wo, F) from x (N, H, W, C); caches the patches and x's shape."""
        x = self._check_input(x)
        try:
            ho, wo, f = self.output_shape(x.shape[1], x.shape[2])
        except ValueError as error:
            raise ValueError(f"{self.describe()}: {error}") from None
        cols = im2col(pad(x, self.padding), self.kernel_size, self.stride)
        cols = cols.reshape(-1, self._matrix().shape[0])  # (M, P), M = N Ho Wo
        self.cache = (cols, x.shape)
        y = cols @ self._matrix() + self.params["b"]  # (M, F)
        return y.reshape(x.shape[0], ho, wo, f)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Fill ``grads`` from dout = dL/dy (N, Ho, Wo, F); return dL/dx (N, H, W, C)."""
        cols, x_shape = self._cached(dout)
        n, h, w, c = x_shape
        k, p = self.kernel_size, self.padding
        dout = self._check_dout(dout, (n, *self.output_shape(h, w)))
        d = dout.astype(self.dtype, copy=False).reshape(-1, self.out_channels)  # (M, F)
        self.grads["W"] = (cols.T @ d).reshape(self.params["W"].shape)  # (P, M) @ (M, F)
        self.grads["b"] = d.sum(axis=0)  # (F,)
        dcols = d @ self._matrix().T  # (M, F) @ (F, P)
        ho, wo, _ = self.output_shape(h, w)
        dxp = col2im(dcols.reshape(n, ho, wo, k, k, c), (h + 2 * p, w + 2 * p), self.stride)
        return crop(dxp, p)

    def __repr__(self) -> str:
        return (f"Conv2D({self.in_channels} -> {self.out_channels}, kernel {self.kernel_size}, "
                f"stride {self.stride}, padding {self.padding}, name={self.name!r})")


class ConvTranspose2D(_ConvBase):
    r"""Transposed convolution, NHWC: the adjoint of :class:`Conv2D` in its input.

    ``ConvTranspose2D(F, C, kappa, s, p)`` holds W of shape (kappa, kappa, C, F), the shape of the
    ``Conv2D(C, F, kappa, s, p)`` whose adjoint it is (with the same W, ``<conv(x), u> =
    <x, conv_transpose(u)>``), and a bias b (C,). For u of shape (N, Hi, Wi, F)::

        cols = u W^T                     (M, F) @ (F, P) -> (M, P),  M = N Hi Wi, P = kappa^2 C
        y    = crop(col2im(cols)) + b    (N, Ho, Wo, C)

    Each input pixel paints a kappa x kappa patch of the output, weighted by W, at stride s;
    where patches overlap they add. The output has
    Ho = (Hi - 1) s + kappa - 2p + output_padding rows (:func:`conv_transpose_output_size`),
    the size of the Conv2D input that gives Hi rows.

    Backward, from dout = dL/dy (N, Ho, Wo, C): the Conv2D forward, on dout::

        dcols = im2col(pad(dout))        (M, P)
        dL/du = dcols W                  (M, P) @ (P, F) -> (M, F), viewed as (N, Hi, Wi, F)
        dL/dW = dcols^T u                (P, M) @ (M, F) -> (P, F), viewed as (kappa, kappa, C, F)
        dL/db = sum over n, r, c of dout (C,)

    Parameters
    ----------
    in_channels, out_channels : int
        F and C.
    kernel_size, stride, padding : int
        As the Conv2D it mirrors.
    output_padding : int
        Extra rows and columns at the bottom and right, in [0, stride): which of the input
        sizes that the Conv2D maps to Hi to give back. A decoder mirroring an encoder passes
        ``(H + 2p - kappa) % s`` for each encoder layer of input size H.
    init : {"he", "glorot"}
        fan_in = kappa^2 F / s^2, the average number of terms in each output's sum (each input
        pixel reaches kappa^2 outputs, and there are s^2 outputs per input pixel);
        fan_out = kappa^2 C.

    Tested by: tests/test_conv.py::test_conv_transpose2d_gradients,
    tests/test_conv.py::test_conv_transpose_is_the_adjoint_of_conv,
    tests/test_conv.py::test_conv_layers_refuse_bad_hyperparameters
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 0, output_padding: int = 0,
                 init: str = "he", rng: np.random.Generator | int | None = None,
                 dtype=np.float32, name: str | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dtype, name)
        k, f, c, s = self.kernel_size, self.in_channels, self.out_channels, self.stride
        self._init_params((k, k, c, f), fan_in=k * k * f / s**2, fan_out=k * k * c, init=init,
                          rng=rng)
        self.output_padding = checks.integer(output_padding, "ConvTranspose2D output_padding")
        if self.output_padding >= self.stride:
            raise ValueError(f"ConvTranspose2D output_padding must be smaller than the stride "
                             f"({self.stride}), got {self.output_padding}")

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(Ho, Wo, C) for an input of height x width pixels."""
        args = (self.kernel_size, self.stride, self.padding, self.output_padding)
        return (conv_transpose_output_size(height, *args),
                conv_transpose_output_size(width, *args), self.out_channels)

    def forward(self, u: np.ndarray) -> np.ndarray:
        """y (N, Ho, Wo, C) from u (N, Hi, Wi, F); caches u."""
        u = self._check_input(u)
        n, hi, wi, f = u.shape
        try:
            ho, wo, c = self.output_shape(hi, wi)
        except ValueError as error:
            raise ValueError(f"{self.describe()}: {error}") from None
        k, p = self.kernel_size, self.padding
        self.cache = u
        cols = u.reshape(-1, f) @ self._matrix().T  # (M, F) @ (F, P)
        yp = col2im(cols.reshape(n, hi, wi, k, k, c), (ho + 2 * p, wo + 2 * p), self.stride)
        return crop(yp, p) + self.params["b"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Fill ``grads`` from dout = dL/dy (N, Ho, Wo, C); return dL/du (N, Hi, Wi, F)."""
        u = self._cached(dout)
        n, hi, wi, f = u.shape
        dout = self._check_dout(dout, (n, *self.output_shape(hi, wi)))
        dout = dout.astype(self.dtype, copy=False)
        dcols = im2col(pad(dout, self.padding), self.kernel_size, self.stride)
        dcols = dcols.reshape(n * hi * wi, -1)  # (M, P): Hi x Wi patches, as in Conv2D
        self.grads["W"] = (dcols.T @ u.reshape(-1, f)).reshape(self.params["W"].shape)
        self.grads["b"] = dout.sum(axis=(0, 1, 2))  # (C,)
        return (dcols @ self._matrix()).reshape(n, hi, wi, f)  # (M, P) @ (P, F)

    def __repr__(self) -> str:
        return (f"ConvTranspose2D({self.in_channels} -> {self.out_channels}, kernel "
                f"{self.kernel_size}, stride {self.stride}, padding {self.padding}, "
                f"output_padding {self.output_padding}, name={self.name!r})")


class Reshape(Layer):
    """Give each example a new shape: (N, *in) -> (N, *shape), the same numbers in order.

    Forward ``y = x.reshape(N, *shape)`` (a view); backward ``dL/dx = dout.reshape(x.shape)``,
    since a reshape only renames the entries. ``Reshape((28, 28, 1))`` turns MNIST's flat
    rows into NHWC images; a decoder's ``Reshape((7, 7, 64))`` turns a Dense output into
    feature maps.

    Tested by: tests/test_conv.py::test_reshape_and_flatten_gradients,
    tests/test_conv.py::test_reshape_refuses_a_size_that_does_not_match
    """

    def __init__(self, shape: tuple[int, ...], name: str | None = None):
        super().__init__(name)
        if isinstance(shape, int | np.integer):
            shape = (shape,)
        self.shape = tuple(checks.width(s, "Reshape shape entry") for s in shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._real_input(x)
        size = math.prod(self.shape)
        if x.ndim < 1 or math.prod(x.shape[1:]) != size:
            raise ValueError(
                f"{self.describe()} makes each example of shape {self.shape} ({size} numbers), "
                f"but got a batch of shape {x.shape}"
            )
        self.cache = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x_shape = self._cached(dout)
        dout = self._check_dout(dout, (x_shape[0], *self.shape))
        return dout.reshape(x_shape)

    def __repr__(self) -> str:
        return f"Reshape({self.shape}, name={self.name!r})"


class Flatten(Layer):
    """Each example as one row: (N, H, W, C) -> (N, H W C), in NHWC order; backward the reverse.

    Tested by: tests/test_conv.py::test_reshape_and_flatten_gradients
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._real_input(x)
        if x.ndim < 2:
            raise ValueError(f"{self.describe()} needs a batch (N, ...), got shape {x.shape}")
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        x_shape = self._cached(dout)
        dout = self._check_dout(dout, (x_shape[0], math.prod(x_shape[1:])))
        return dout.reshape(x_shape)


def _feature_sizes(pixels: int, what: str, channels, kernel: int, stride: int,
                   padding: int) -> tuple[list[int], list[int]]:
    """The checked channel counts, and the side of the image before and after each
    convolution (28, 14, 7 for two stride-2 layers on 784 pixels)."""
    sizes = [checks.square_side(pixels, what)]
    channels = checks.widths(channels, "channels")
    if not channels:
        raise ValueError("a convolutional encoder or decoder needs at least one channel "
                         "count, such as channels=(32, 64)")
    for _ in channels:
        sizes.append(conv_output_size(sizes[-1], kernel, stride, padding))
    return channels, sizes


def conv_encoder(
    input_dim: int,
    channels: tuple[int, ...],
    hidden: tuple[int, ...],
    out_features: int,
    activation: str = "relu",
    kernel_size: int = 3,
    stride: int = 2,
    padding: int = 1,
    rng: np.random.Generator | int | None = None,
    dtype=np.float32,
    name: str | None = None,
) -> Sequential:
    """A convolutional encoder of flat square images: convolutions, then Dense layers.

    ``conv_encoder(784, (32, 64), (), 16)`` is::

        Reshape((28, 28, 1))                 (N, 784)        -> (N, 28, 28, 1)
        Conv2D(1, 32, 3, stride 2, pad 1)    (N, 28, 28, 1)  -> (N, 14, 14, 32), ReLU
        Conv2D(32, 64, 3, stride 2, pad 1)   (N, 14, 14, 32) -> (N, 7, 7, 64),   ReLU
        Flatten                              (N, 7, 7, 64)   -> (N, 3136)
        Dense(3136, 16)                      (N, 3136)       -> (N, 16), linear

    with a ReLU-followed Dense layer for each width in ``hidden`` before the last one.
    Layers followed by ReLU-like activations get He initialisation, the last one Glorot.

    Tested by: tests/test_conv.py::test_conv_autoencoder_shapes_and_gradients
    """
    channels, sizes = _feature_sizes(input_dim, "input_dim", channels, kernel_size, stride,
                                     padding)
    hidden = checks.widths(hidden, "hidden")
    checks.one_of(activation, ACTIVATIONS, "activation")
    rng = checks.generator(rng)
    layers: list[Layer] = [Reshape((sizes[0], sizes[0], 1))]
    for c_in, c_out in zip([1, *channels[:-1]], channels, strict=True):
        layers += [Conv2D(c_in, c_out, kernel_size, stride, padding,
                          init=init_for(activation), rng=rng, dtype=dtype),
                   ACTIVATIONS[activation]()]
    layers.append(Flatten())
    widths = [sizes[-1] ** 2 * channels[-1], *hidden, checks.width(out_features, "code")]
    layers += dense_stack(widths, activation, None, rng=rng, dtype=dtype)  # the code: linear
    return Sequential(*layers, name=name)


def conv_decoder(
    in_features: int,
    channels: tuple[int, ...],
    hidden: tuple[int, ...],
    output_dim: int,
    activation: str = "relu",
    output_activation: str | None = None,
    kernel_size: int = 3,
    stride: int = 2,
    padding: int = 1,
    rng: np.random.Generator | int | None = None,
    dtype=np.float32,
    name: str | None = None,
) -> Sequential:
    """The mirror of :func:`conv_encoder` (same ``channels`` and ``hidden``, encoder order).

    ``conv_decoder(16, (32, 64), (), 784, output_activation="sigmoid")`` is::

        Dense(16, 3136), ReLU                      (N, 16)         -> (N, 3136)
        Reshape((7, 7, 64))                        (N, 3136)       -> (N, 7, 7, 64)
        ConvTranspose2D(64, 32, 3, 2, 1, op 1)     (N, 7, 7, 64)   -> (N, 14, 14, 32), ReLU
        ConvTranspose2D(32, 1, 3, 2, 1, op 1)      (N, 14, 14, 32) -> (N, 28, 28, 1)
        Flatten, Sigmoid                           (N, 28, 28, 1)  -> (N, 784)

    Each transposed convolution's output_padding, ``(H + 2p - k) % s`` of the encoder layer
    it mirrors, gives back that layer's input size exactly.

    Tested by: tests/test_conv.py::test_conv_autoencoder_shapes_and_gradients
    """
    channels, sizes = _feature_sizes(output_dim, "output_dim", channels, kernel_size, stride,
                                     padding)
    hidden = checks.widths(hidden, "hidden")
    checks.one_of(activation, ACTIVATIONS, "activation")
    checks.one_of(output_activation, [*ACTIVATIONS, None], "output activation")
    rng = checks.generator(rng)
    widths = [checks.width(in_features, "code"), *reversed(hidden), sizes[-1] ** 2 * channels[-1]]
    layers: list[Layer] = []
    for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):  # the maps come next: ReLU
        layers += [Dense(d_in, d_out, init=init_for(activation), rng=rng, dtype=dtype),
                   ACTIVATIONS[activation]()]
    layers.append(Reshape((sizes[-1], sizes[-1], channels[-1])))
    outs = [1, *channels[:-1]]  # the channels of each encoder layer's input
    for i in reversed(range(len(channels))):
        last = i == 0
        output_padding = (sizes[i] + 2 * padding - kernel_size) % stride
        follows = output_activation if last else activation
        layers.append(ConvTranspose2D(
            channels[i], outs[i], kernel_size, stride, padding, output_padding,
            init=init_for(follows), rng=rng, dtype=dtype))
        if not last:
            layers.append(ACTIVATIONS[activation]())
    layers.append(Flatten())
    if output_activation is not None:
        layers.append(ACTIVATIONS[output_activation]())
    return Sequential(*layers, name=name)
