"""The fast convolutions compute what npnet.conv computes, bit for bit, on drawn inputs.

Each test runs a core layer (or model) and its fast twin side by side on the same weights
and batches, and compares every output, gradient and dL/dx by their bytes, not with a
tolerance: the fast layers make the core's matrix products with the core's operands and
add col2im's terms in the core's order. Shapes, hyperparameters, dtypes and values are
drawn by hypothesis; the values include zeros of both signs (as a ReLU's output and
gradient hold), since ``0 + (-0.0)`` is where a sum that started elsewhere would differ.
The layers are checked with numba's compiled loops and with the core functions they fall
back on.
"""

from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import seeds
from test_fast import assert_same_bits

from npnet import fast
from npnet.autoencoder import DenoisingAutoencoder
from npnet.conv import Conv2D, ConvTranspose2D, Reshape
from npnet.fast import conv as fast_conv
from npnet.fast.conv import FastConv2D, FastConvTranspose2D, FastReshape
from npnet.fast.optim import numba_available
from npnet.optim import SGD, Adam
from npnet.vae import VAE

dtypes = st.sampled_from([np.float32, np.float64])
# True: the compiled loops (where numba is installed); False: the core's im2col and col2im.
compiled = st.booleans() if numba_available() else st.just(False)


def without_loops(use_loops: bool):
    """A context in which the fast layers take the compiled loops for every channel count
    (``use_loops``), or the core's im2col and col2im for all (as without numba)."""
    if use_loops:
        return mock.patch.object(fast_conv, "LOOP_MIN_CHANNELS", 1)
    return mock.patch.object(fast_conv, "_kernels_for", lambda dtype, channels: None)


def sparse_normal(rng, shape, dtype, zeros: bool) -> np.ndarray:
    """Standard normal values; with ``zeros``, about half of them 0.0 or -0.0."""
    values = rng.standard_normal(shape)
    if zeros:
        values = values * (rng.random(shape) < 0.5)  # -x * 0 is -0.0
    return values.astype(dtype)


def twins(core_class, fast_class, args, seed, dtype, rng):
    """A core layer and a fast one with the same weights, and a bias that is not 0."""
    core = core_class(*args, rng=seed, dtype=dtype)
    core.params["b"][...] = rng.standard_normal(core.params["b"].shape)
    quick = core_class(*args, rng=seed, dtype=dtype)
    quick.params["b"][...] = core.params["b"]
    quick.__class__ = fast_class
    return core, quick


def check_twins(core, quick, batches, rng, zeros: bool) -> None:
    """Forward and backward of both layers on each batch in turn (the fast layer reusing
    its buffers from the batch before): outputs, dL/dx and gradients; then the fast layer
    with ``input_grad = False``."""
    for x in batches:
        y = core.forward(x)
        assert_same_bits({"y": quick.forward(x)}, {"y": y})
        dout = sparse_normal(rng, y.shape, y.dtype, zeros)
        assert_same_bits({"dx": quick.backward(dout)}, {"dx": core.backward(dout)})
        assert_same_bits(quick.grads, core.grads)
    quick.input_grad = False
    quick.forward(x)
    assert quick.backward(dout) is None
    assert_same_bits(quick.grads, core.grads)


# (kernel, padding) with padding < kernel, and (stride, output_padding) with output_padding
# < stride, as the layers require.
kernel_and_padding = st.integers(1, 4).flatmap(
    lambda k: st.tuples(st.just(k), st.integers(0, k - 1)))
stride_and_output_padding = st.integers(1, 3).flatmap(
    lambda s: st.tuples(st.just(s), st.integers(0, s - 1)))


@settings(max_examples=40, deadline=None)
@given(
    dtype=dtypes,
    n=st.integers(1, 4),
    channels=st.tuples(st.integers(1, 4), st.integers(1, 5)),
    kernel_padding=kernel_and_padding,
    stride=st.integers(1, 3),
    extra=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    n2=st.integers(1, 4),
    zeros=st.booleans(),
    use_loops=compiled,
    seed=seeds,
)
def test_fast_conv2d_gives_the_core_conv2d_bits(dtype, n, channels, kernel_padding, stride,
                                                 extra, n2, zeros, use_loops, seed):
    (kernel, padding), (c, f) = kernel_padding, channels
    h, w = (max(1, kernel - 2 * padding) + e for e in extra)  # the smallest image, and more
    rng = np.random.default_rng(seed)
    core, quick = twins(Conv2D, FastConv2D, (c, f, kernel, stride, padding), seed, dtype, rng)
    batches = [sparse_normal(rng, (m, h, w, c), dtype, zeros) for m in (n, n, n2)]
    with without_loops(use_loops):
        check_twins(core, quick, batches, rng, zeros)


@settings(max_examples=40, deadline=None)
@given(
    dtype=dtypes,
    n=st.integers(1, 4),
    channels=st.tuples(st.integers(1, 5), st.integers(1, 4)),
    kernel_padding=kernel_and_padding,
    stride_output_padding=stride_and_output_padding,
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    n2=st.integers(1, 4),
    zeros=st.booleans(),
    use_loops=compiled,
    seed=seeds,
)
def test_fast_conv_transpose2d_gives_the_core_bits(dtype, n, channels, kernel_padding,
                                                   stride_output_padding, size, n2, zeros,
                                                   use_loops, seed):
    (kernel, padding), (stride, output_padding) = kernel_padding, stride_output_padding
    (f, c), (hi, wi) = channels, size
    args = (f, c, kernel, stride, padding, output_padding)
    assume((min(hi, wi) - 1) * stride + kernel - 2 * padding + output_padding >= 1)
    rng = np.random.default_rng(seed)
    core, quick = twins(ConvTranspose2D, FastConvTranspose2D, args, seed, dtype, rng)
    batches = [sparse_normal(rng, (m, hi, wi, f), dtype, zeros) for m in (n, n, n2)]
    with without_loops(use_loops):
        check_twins(core, quick, batches, rng, zeros)


def make(kind: str, side: int, channels: tuple, seed: int, dtype):
    if kind == "dae":
        return DenoisingAutoencoder(side * side, code=3, arch="conv", channels=channels,
                                    rng=seed, dtype=dtype)
    return VAE(side * side, latent=2, arch="conv", channels=channels, rng=seed, dtype=dtype)


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(["dae", "vae"]),
    optimizer_class=st.sampled_from([Adam, SGD]),
    dtype=dtypes,
    side=st.integers(5, 9),
    channels=st.sampled_from([(2,), (3, 2), (2, 3)]),
    batch=st.integers(1, 9),
    use_loops=compiled,
    seed=seeds,
)
def test_enabled_conv_training_gives_the_core_bits(kind, optimizer_class, dtype, side,
                                                   channels, batch, use_loops, seed):
    """Five training steps of a whole conv model: losses, parameters and optimizer state."""
    x = np.random.default_rng(seed).random((batch, side * side)).astype(dtype)
    outcome = {}
    for use_fast in (False, True):
        model = make(kind, side, channels, seed, dtype)
        optimizer = optimizer_class(model.params, lr=1e-2)
        trainer = model
        if use_fast:
            trainer = fast.enable(model, optimizer, blas_threads=1)
            front, first = model.encoder.layers[:2]
            assert type(front) is FastReshape and type(first) is FastConv2D
            assert not first.input_grad
            assert sum(type(layer) is FastConvTranspose2D for layer in model.decoder.layers) \
                == len(channels)
        losses = []
        with without_loops(use_loops):
            for step in range(5):
                losses.append(trainer.train_step(x, np.random.default_rng([seed, step])))
                optimizer.step(trainer.grads)
        state = {f"{k}/{slot}": a for k, s in optimizer.state.items() for slot, a in s.items()}
        outcome[use_fast] = (losses, dict(model.params), state)
    assert outcome[True][0] == outcome[False][0]
    assert_same_bits(outcome[True][1], outcome[False][1])
    assert_same_bits(outcome[True][2], outcome[False][2])


def test_the_first_layer_skips_dx_only_behind_shape_layers():
    """A model that starts with Reshape then Conv2D: the conv skips dL/dx and the Reshape
    passes None on; one that starts with a layer that cannot take None keeps dL/dx."""
    from npnet.layers import ReLU, Sequential

    model = Sequential(Reshape((4, 4, 1)), Conv2D(1, 2, 3, rng=0), name="m")
    fast.enable(model, SGD(model.params), blas_threads=None)
    assert type(model.layers[0]) is FastReshape and not model.layers[1].input_grad
    model.forward(np.ones((2, 16), np.float32))
    assert model.backward(np.ones((2, 2, 2, 2), np.float32)) is None

    model = Sequential(Reshape((4, 4, 1)), ReLU(), Conv2D(1, 2, 3, rng=0), name="m")
    fast.enable(model, SGD(model.params), blas_threads=None)
    assert type(model.layers[0]) is Reshape and model.layers[2].input_grad
    model.forward(np.ones((2, 16), np.float32))
    assert model.backward(np.ones((2, 2, 2, 2), np.float32)).shape == (2, 16)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_long_double_takes_the_core_functions():
    """numba has no long double arithmetic: such layers take the core's im2col and col2im."""
    rng = np.random.default_rng(0)
    for core_class, fast_class, args, shape in [
        (Conv2D, FastConv2D, (2, 3, 3, 2, 1), (2, 5, 5, 2)),
        (ConvTranspose2D, FastConvTranspose2D, (2, 3, 3, 2, 1, 1), (2, 3, 3, 2)),
    ]:
        core, quick = twins(core_class, fast_class, args, 0, np.longdouble, rng)
        batch = sparse_normal(rng, shape, np.longdouble, zeros=True)
        with without_loops(True):  # loops allowed for every channel count
            check_twins(core, quick, [batch], rng, zeros=True)
