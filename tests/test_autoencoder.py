"""The denoising autoencoder: its gradients, its corruptions, evaluation in slices."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import batches, seeds

from npnet.autoencoder import CORRUPTIONS, DenoisingAutoencoder, corrupt, in_batches
from npnet.gradcheck import check_gradients
from npnet.losses import mse_loss

X = np.random.default_rng(0).random((200, 50), dtype=np.float32)


@given(x=batches(d=st.integers(2, 6)), seed=seeds, code=st.integers(1, 3))
def test_dae_loss_gradients(x, seed, code):
    """L = mse(dec(enc(x~)), x) through every layer, for the input x~ and every parameter.

    tanh hidden layers have no kink, so no margin is needed; the corruption is drawn once
    and held fixed, as the training step's noise is a constant of its backward pass.
    """
    clean = (np.tanh(x) + 1) / 2  # pixels in (0, 1)
    model = DenoisingAutoencoder(
        x.shape[1], (5, 4), code, activation="tanh", rng=seed, dtype=np.float64
    )
    noisy = model.corrupt(clean, seed)

    def loss_and_grads():
        loss, dreconstruction = mse_loss(model.forward(noisy), clean)
        dnoisy = model.backward(dreconstruction)
        return loss, {**model.grads, "x~": dnoisy}

    errors = check_gradients(loss_and_grads, {"x~": noisy, **model.params})
    assert max(errors.values()) < 1e-6, errors
    assert len(errors) == 1 + 2 * 6  # the input and W, b of six Dense layers


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corruption_range_dtype_seed_and_input_untouched(kind):
    before = X.copy()
    a, b = corrupt(X, kind, 0.3, 1), corrupt(X, kind, 0.3, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, corrupt(X, kind, 0.3, 2))
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(X, before)


def test_corruption_rates():
    level = 0.25
    masked = corrupt(X, "masking", level, 0)
    assert np.mean(masked == 0) == pytest.approx(level, abs=0.01)
    salted = corrupt(X, "salt_and_pepper", level, 0)
    assert np.mean(salted == 1) == pytest.approx(level / 2, abs=0.01)
    assert np.mean(salted == 0) == pytest.approx(level / 2, abs=0.01)
    middle = np.full((400, 400), 0.5, dtype=np.float32)  # far from the clip at 0 and 1
    noisy = corrupt(middle, "gaussian", 0.05, 0)
    assert np.std(noisy - middle) == pytest.approx(0.05, rel=0.02)
    assert abs(np.mean(noisy - middle)) < 0.001


def test_corruption_bad_arguments():
    with pytest.raises(ValueError, match="unknown corruption 'blur'"):
        corrupt(X, "blur", 0.1, 0)
    with pytest.raises(ValueError, match="probability in \\[0, 1\\]"):
        corrupt(X, "masking", 1.5, 0)
    with pytest.raises(ValueError, match=r"standard deviation\) must be a finite number >= 0"):
        corrupt(X, "gaussian", -0.1, 0)
    with pytest.raises(TypeError, match="x / 255"):
        corrupt((X * 255).astype(np.uint8), "gaussian", 0.1, 0)


def test_in_batches_equals_one_batch():
    model = DenoisingAutoencoder(50, (8, 6), 3, rng=0, dtype=np.float64)
    x = X[:23].astype(np.float64)
    np.testing.assert_allclose(in_batches(model.forward, x, 5), model.forward(x), rtol=1e-12)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        in_batches(model.forward, x[:0])


NOT_PIXELS = {
    "0-255 floats": (X * 255, ValueError, r"\[0, 1\].*got values from .* to .*1/255"),
    "uint8": ((X * 255).astype(np.uint8), TypeError, "floating-point.*uint8.*x / 255"),
    "0/1 integers": ((X > 0.5).astype(np.int64), TypeError, "floating-point.*int64"),
    "complex": (X.astype(np.complex64), TypeError, "floating-point.*complex64"),
    "NaN": (np.where(X > 0.9, np.nan, X), ValueError, r"\[0, 1\].*nan"),
    "negative": (X - 0.5, ValueError, r"\[0, 1\]"),
}


@pytest.mark.parametrize("data", sorted(NOT_PIXELS))
def test_dae_refuses_what_is_not_pixels_in_0_1(data):
    """0-255 pixels would train without a word, to a squared error 65,025 times too large;
    the VAE refuses them (its BCE needs [0, 1]), and so does the DAE, with the same check."""
    x, error, match = NOT_PIXELS[data]
    model = DenoisingAutoencoder(50, (8,), 3, rng=0)
    with pytest.raises(error, match=match):
        model.train_step(x[:10], rng=0)
    with pytest.raises(error, match=match):
        model.evaluate(x)


def test_dae_widths_must_be_integers():
    for kwargs, error in (
        ({"hidden": (32.5,)}, TypeError),  # int() made it 32
        ({"hidden": "512"}, TypeError),  # would be the widths 5, 1, 2
        ({"code": 2.5}, TypeError),
        ({"input_dim": "784"}, TypeError),
        ({"hidden": (8, 0)}, ValueError),
    ):
        name = next(iter(kwargs))
        with pytest.raises(error, match=f"{name}.*integer"):
            DenoisingAutoencoder(**{"input_dim": 50, "hidden": (8,), "code": 3, **kwargs})


def test_complex_images_are_refused_not_cut_to_their_real_part():
    model = DenoisingAutoencoder(50, (8,), 3, rng=0)
    complex_images = X[:4].astype(np.complex64)
    for method in (model.forward, model.reconstruct, model.encode):
        with pytest.raises(TypeError, match="(real numbers|floating-point pixels).*complex64"):
            method(complex_images)


@pytest.mark.parametrize("level,error", [("0.3", TypeError), (None, TypeError),
                                         (float("inf"), ValueError)])
def test_noise_level_must_be_a_number(level, error):
    with pytest.raises(error, match="noise level"):
        DenoisingAutoencoder(16, (8,), 2, noise_level=level, rng=0)


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-1, ValueError),
                                               (2.5, TypeError), ("100", TypeError)])
def test_evaluation_batch_sizes_are_checked(batch_size, error):
    """A batch size of -1 made in_batches return nothing, and VAE.evaluate zeros."""
    from npnet.vae import VAE

    with pytest.raises(error, match="batch_size must be an integer >= 1"):
        in_batches(lambda a: a, X, batch_size)
    with pytest.raises(error, match="batch_size must be an integer >= 1"):
        DenoisingAutoencoder(50, (8,), 3, rng=0).reconstruct(X, batch_size)
    with pytest.raises(error, match="batch_size must be an integer >= 1"):
        VAE(50, (8,), 3, rng=0).evaluate(X, batch_size=batch_size)


def test_images_of_0_255_are_refused_by_encode_and_reconstruct():
    """train_step refuses them; so do the methods that analyse a trained model."""
    model = DenoisingAutoencoder(50, (8,), 3, rng=0)
    for method in (model.encode, model.reconstruct):
        with pytest.raises(ValueError, match=r"pixels must be in \[0, 1\].*1/255"):
            method(X * 255)
