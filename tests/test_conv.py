"""Convolutions: hand-written gradients against numeric ones, the adjoint identity, a slow
loop reference, the reshaping layers, the convolutional autoencoders, and clear errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import he_or_glorot, seeds

from npnet.autoencoder import DenoisingAutoencoder
from npnet.conv import (
    Conv2D,
    ConvTranspose2D,
    Flatten,
    Reshape,
    col2im,
    conv_decoder,
    conv_output_size,
    im2col,
)
from npnet.gradcheck import check_gradients, check_layer
from npnet.losses import bce_with_logits, mse_loss
from npnet.vae import VAE

TOLERANCE = 1e-6  # as tests/test_layers.py


@st.composite
def conv_settings(draw, max_side=7):
    """(N, H, W, C, F, kernel, stride, padding) with the kernel fitting the padded image."""
    kernel = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, kernel - 1))
    low = max(1, kernel - 2 * padding)
    height, width = draw(st.integers(low, max_side)), draw(st.integers(low, max_side))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return n, height, width, c, f, kernel, stride, padding


def random_bias(layer, seed):
    """Non-zero biases, so that their gradients are exercised too."""
    layer.params["b"][:] = np.random.default_rng(seed).standard_normal(layer.params["b"].shape)
    return layer


def loop_conv2d(x, W, b, stride, padding):
    """The convolution's definition, one output number at a time: slow and obviously right.

    y[n, r, c, f] = b[f] + sum_{i, j, ch} xp[n, r s + i, c s + j, ch] W[i, j, ch, f]
    """
    n, h, w, channels = x.shape
    k, _, _, filters = W.shape
    xp = np.zeros((n, h + 2 * padding, w + 2 * padding, channels))
    xp[:, padding : padding + h, padding : padding + w, :] = x
    ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    y = np.zeros((n, ho, wo, filters))
    for e in range(n):
        for r in range(ho):
            for c in range(wo):
                for f in range(filters):
                    total = b[f]
                    for i in range(k):
                        for j in range(k):
                            for ch in range(channels):
                                total += xp[e, r * stride + i, c * stride + j, ch] * W[i, j, ch, f]
                    y[e, r, c, f] = total
    return y


def loop_conv_transpose2d(u, W, b, stride, padding, output_padding):
    """The transposed convolution's definition: each input pixel paints a k x k patch of the
    (padded) output, weighted by W; overlapping patches add; then the padding is cut off."""
    n, hi, wi, filters = u.shape
    k, _, channels, _ = W.shape
    hp = (hi - 1) * stride + k + output_padding
    wp = (wi - 1) * stride + k + output_padding
    yp = np.zeros((n, hp, wp, channels))
    for e in range(n):
        for r in range(hi):
            for c in range(wi):
                for i in range(k):
                    for j in range(k):
                        for ch in range(channels):
                            for f in range(filters):
                                yp[e, r * stride + i, c * stride + j, ch] += (
                                    u[e, r, c, f] * W[i, j, ch, f])
    return yp[:, padding : hp - padding, padding : wp - padding, :] + b


@given(case=conv_settings(), seed=seeds, init=st.sampled_from(["he", "glorot"]))
def test_conv2d_gradients(case, seed, init):
    """dL/dx, dL/dW = cols^T D and dL/db against central differences, on drawn shapes."""
    n, h, w, c, f, k, s, p = case
    layer = random_bias(Conv2D(c, f, k, s, p, init=init, rng=seed, dtype=np.float64), seed)
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    errors = check_layer(layer, x, rng=seed)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOLERANCE, errors


@given(case=conv_settings(max_side=5), seed=seeds, data=st.data())
def test_conv_transpose2d_gradients(case, seed, data):
    """dL/du = im2col(dout) W, dL/dW = dcols^T u and dL/db, on drawn shapes (the drawn image
    size is the input's, Hi x Wi, here)."""
    n, hi, wi, f, c, k, s, p = case
    output_padding = data.draw(st.integers(0, s - 1))
    assume((hi - 1) * s + k - 2 * p + output_padding >= 1)
    assume((wi - 1) * s + k - 2 * p + output_padding >= 1)
    layer = random_bias(
        ConvTranspose2D(f, c, k, s, p, output_padding, rng=seed, dtype=np.float64), seed)
    u = np.random.default_rng(seed).standard_normal((n, hi, wi, f))
    errors = check_layer(layer, u, rng=seed)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOLERANCE, errors


@given(case=conv_settings(), seed=seeds)
def test_conv_transpose_is_the_adjoint_of_conv(case, seed):
    """<conv(x), y> = <x, conv_transpose(y)> with the same W and no bias, for any x and y;
    the transposed convolution's output has x's shape (conv_transpose_output_size)."""
    n, h, w, c, f, k, s, p = case
    output_padding = (h + 2 * p - k) % s
    assume((w + 2 * p - k) % s == output_padding)  # one output_padding for both axes
    conv = Conv2D(c, f, k, s, p, rng=seed, dtype=np.float64)
    transpose = ConvTranspose2D(f, c, k, s, p, output_padding, dtype=np.float64)
    transpose.params["W"] = conv.params["W"]  # shared: both hold (k, k, C, F)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    y = rng.standard_normal(conv.forward(x).shape)
    back = transpose.forward(y)
    assert back.shape == x.shape
    left, right = np.sum(conv.forward(x) * y), np.sum(x * back)
    assert left == pytest.approx(right, rel=1e-10, abs=1e-10)


@given(case=conv_settings(), seed=seeds)
def test_col2im_is_the_adjoint_of_im2col(case, seed):
    """<im2col(xp), cols> = <xp, col2im(cols)>: col2im adds each patch back where it came from."""
    n, h, w, c, _, k, s, _ = case
    assume(h >= k and w >= k)
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((n, h, w, c))
    patches = im2col(xp, k, s)
    cols = rng.standard_normal(patches.shape)
    assert np.sum(patches * cols) == pytest.approx(np.sum(xp * col2im(cols, (h, w), s)),
                                                   rel=1e-10, abs=1e-10)


@given(case=conv_settings(max_side=5), seed=seeds)
def test_conv2d_matches_a_loop_over_pixels(case, seed):
    """Conv2D.forward (im2col and one product) against the definition, summed term by term."""
    n, h, w, c, f, k, s, p = case
    layer = random_bias(Conv2D(c, f, k, s, p, rng=seed, dtype=np.float64), seed)
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    y = layer.forward(x)
    assert y.shape == (n, conv_output_size(h, k, s, p), conv_output_size(w, k, s, p), f)
    np.testing.assert_allclose(y, loop_conv2d(x, layer.params["W"], layer.params["b"], s, p),
                               rtol=1e-12, atol=1e-12)


@given(case=conv_settings(max_side=4), seed=seeds, data=st.data())
def test_conv_transpose2d_matches_a_loop_over_pixels(case, seed, data):
    """ConvTranspose2D.forward against painting one weighted patch per input pixel."""
    n, hi, wi, f, c, k, s, p = case
    output_padding = data.draw(st.integers(0, s - 1))
    assume(min(hi, wi) * s + k - s - 2 * p + output_padding >= 1)
    layer = random_bias(
        ConvTranspose2D(f, c, k, s, p, output_padding, rng=seed, dtype=np.float64), seed)
    u = np.random.default_rng(seed).standard_normal((n, hi, wi, f))
    expected = loop_conv_transpose2d(u, layer.params["W"], layer.params["b"], s, p,
                                     output_padding)
    np.testing.assert_allclose(layer.forward(u), expected, rtol=1e-12, atol=1e-12)


@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       n=st.integers(1, 3))
def test_reshape_and_flatten_gradients(seed, shape, n):
    """A reshape renames entries, so its gradient is the reshaped dout (both ways)."""
    x = np.random.default_rng(seed).standard_normal((n, int(np.prod(shape))))
    to_images = Reshape(tuple(shape))
    assert to_images.forward(x).shape == (n, *shape)
    assert max(check_layer(to_images, x, rng=seed).values()) < TOLERANCE
    images = x.reshape(n, *shape)
    assert Flatten().forward(images).shape == x.shape
    assert max(check_layer(Flatten(), images, rng=seed).values()) < TOLERANCE


def test_reshape_refuses_a_size_that_does_not_match():
    with pytest.raises(ValueError, match=r"shape \(28, 28, 1\) \(784 numbers\).*\(5, 780\)"):
        Reshape((28, 28, 1)).forward(np.zeros((5, 780)))
    with pytest.raises(ValueError, match="integer >= 1"):
        Reshape((28, 0))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"stride": 0}, ValueError, "stride must be an integer >= 1"),
    ({"stride": -1}, ValueError, "stride must be an integer >= 1"),
    ({"stride": 1.5}, TypeError, "stride must be an integer"),
    ({"stride": "2"}, TypeError, "stride must be an integer"),
    ({"stride": True}, TypeError, "stride must be an integer"),
    ({"padding": -1}, ValueError, "padding must be an integer >= 0"),
    ({"padding": 1.0}, TypeError, "padding must be an integer"),
    ({"padding": 3}, ValueError, "padding 3 is not smaller than kernel_size 3"),
    ({"kernel_size": 0}, ValueError, "kernel_size must be an integer >= 1"),
    ({"init": "xavier"}, ValueError, "unknown init"),
    ({"dtype": np.int32}, TypeError, "floating point"),
])
@pytest.mark.parametrize("layer", [Conv2D, ConvTranspose2D])
def test_conv_layers_refuse_bad_hyperparameters(layer, kwargs, error, message):
    with pytest.raises(error, match=message):
        layer(2, 3, **{"kernel_size": 3, **kwargs})


@pytest.mark.parametrize("init", ["he", "glorot"])
def test_conv_initialisation_scale(init):
    """fan_in is the number of terms in each output's sum: k^2 C for a convolution, and on
    average k^2 F / s^2 for a transposed one (each input pixel reaches k^2 outputs, and there
    are s^2 outputs per input pixel); fan_out is k^2 F and k^2 C."""
    k, c, f, s = 3, 16, 64, 2
    conv = Conv2D(c, f, k, stride=s, init=init, rng=0)
    transposed = ConvTranspose2D(f, c, k, stride=s, init=init, rng=0)
    assert he_or_glorot(conv.params["W"], k * k * c, k * k * f) == init
    assert he_or_glorot(transposed.params["W"], k * k * f / s**2, k * k * c) == init
    # and the decoder's Dense layers before its feature maps are followed by a ReLU: He
    decoder = conv_decoder(16, (4, 8), (), 784, rng=0)
    assert he_or_glorot(decoder.layers[0].params["W"], 16, 7 * 7 * 8) == "he"


def test_conv_transpose_refuses_an_output_padding_not_below_the_stride():
    with pytest.raises(ValueError, match="output_padding must be smaller than the stride"):
        ConvTranspose2D(4, 2, 3, stride=2, padding=1, output_padding=2)
    with pytest.raises(ValueError, match="output pixels; use less padding"):
        ConvTranspose2D(4, 2, 3, stride=1, padding=2).forward(np.zeros((1, 1, 1, 4)))


def test_conv2d_refuses_wrong_channels_and_small_images():
    layer = Conv2D(3, 4, kernel_size=5, stride=1, padding=1)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, H, W, 3\).*\(2, 8, 8, 1\)"):
        layer.forward(np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match="needs a Reshape"):
        layer.forward(np.zeros((2, 192)))
    with pytest.raises(ValueError, match="smaller than the 5 x 5 kernel"):
        layer.forward(np.zeros((2, 2, 8, 3)))
    with pytest.raises(ValueError, match="got dout of shape"):
        layer.forward(np.zeros((2, 8, 8, 3)))
        layer.backward(np.zeros((2, 8, 8, 4)))
    with pytest.raises(TypeError, match="real numbers"):
        layer.forward(np.zeros((2, 8, 8, 3), dtype=complex))


def conv_models(seed, activation="tanh"):
    """A tiny convolutional DAE and VAE (6 x 6 images, 2 and 3 channels), float64, with
    non-zero biases; tanh has no kink for the numeric gradient to straddle."""
    common = {"input_dim": 36, "hidden": (4,), "activation": activation, "rng": seed,
              "dtype": np.float64, "arch": "conv", "channels": (2, 3)}
    models = [DenoisingAutoencoder(code=3, **common), VAE(latent=2, **common)]
    rng = np.random.default_rng(seed)
    for model in models:
        for name, value in model.params.items():
            if name.endswith(".b"):
                value[:] = 0.1 * rng.standard_normal(value.shape)
    return models


def test_conv_autoencoder_shapes():
    """784 -> 28x28x1 -> 14x14x32 -> 7x7x64 -> 16, and back through transposed convolutions."""
    model = DenoisingAutoencoder(arch="conv", rng=0)
    shapes, h = [], np.zeros((2, 784), np.float32)
    for layer in model.encoder.layers + model.decoder.layers:
        h = layer.forward(h)
        shapes.append(h.shape[1:])
    assert shapes == [(28, 28, 1), (14, 14, 32), (14, 14, 32), (7, 7, 64), (7, 7, 64), (3136,),
                      (16,), (3136,), (3136,), (7, 7, 64), (14, 14, 32), (14, 14, 32),
                      (28, 28, 1), (784,), (784,)]
    vae = VAE(arch="conv", rng=0)
    assert vae.encode(np.zeros((3, 784), np.float32))[0].shape == (3, 20)
    assert vae.decode(np.zeros((3, 20), np.float32)).shape == (3, 784)


@settings(max_examples=20)
@given(seed=seeds, n=st.integers(1, 3))
def test_conv_autoencoder_shapes_and_gradients(seed, n):
    """The whole DAE loss (mse) and VAE loss (BCE + KL, eps fixed) of the convolutional
    models: every parameter (two convolutions, two transposed, the Dense layers) and the input."""
    dae, vae = conv_models(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((n, 36))
    target = rng.random((n, 36))
    eps = rng.standard_normal((n, 2))

    def dae_loss():
        loss, dreconstruction = mse_loss(dae.forward(x), target)
        dx = dae.backward(dreconstruction)  # before reading grads, which backward replaces
        return loss, {**dae.grads, "x": dx}

    def vae_loss():
        recon, dlogits = bce_with_logits(vae.forward(x, eps=eps), target)
        loss = recon + vae.beta * vae.sampler.kl
        dx = vae.backward(dlogits)
        return loss, {**vae.grads, "x": dx}

    for model, loss in ((dae, dae_loss), (vae, vae_loss)):
        errors = check_gradients(loss, {"x": x, **model.params})
        assert len(errors) == 1 + 2 * 8  # x; W, b of 2 Conv2D, 2 + 2 Dense, 2 ConvTranspose2D
        assert max(errors.values()) < TOLERANCE, errors


def test_conv_models_train_and_reconstruct_in_the_pixel_range():
    """A few Adam steps lower the DAE's loss; reconstructions are images in [0, 1]."""
    from npnet.optim import Adam

    rng = np.random.default_rng(0)  # images from two patterns: something to learn
    x = (rng.random((32, 2)) @ rng.random((2, 36)) / 2).astype(np.float32)
    model = DenoisingAutoencoder(36, code=3, arch="conv", channels=(4, 4), rng=0)
    optimizer = Adam(model.params, lr=1e-2)
    first = model.train_step(x, 0)["loss"]
    for step in range(30):
        model.train_step(x, step)
        optimizer.step(model.grads)
    assert model.train_step(x, 0)["loss"] < 0.5 * first
    reconstruction = model.reconstruct(x)
    assert reconstruction.shape == x.shape and 0 <= reconstruction.min() <= 1


def test_conv_models_refuse_images_that_are_not_square():
    with pytest.raises(ValueError, match="not a square number"):
        DenoisingAutoencoder(input_dim=50, arch="conv")
    with pytest.raises(ValueError, match="unknown architecture 'cnn'"):
        VAE(arch="cnn")
