"""The VAE: the KL term, the sampling layer and the whole loss against numeric gradients;
the parameterisation (logvar = log sigma^2) against Monte Carlo; modes, seeds, dtypes, errors;
a short training run."""

import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from strategies import KINK_MARGIN, batches, seeds, sizes, values

import npnet.reparameterize
from npnet.gradcheck import check_gradients
from npnet.importance import iwae_step
from npnet.layers import ReLU
from npnet.losses import bce_with_logits, bce_with_logits_per_example
from npnet.optim import Adam
from npnet.vae import (
    LOGVAR_RANGE,
    VAE,
    Reparameterize,
    accumulate_log_sum_exp,
    kl_divergence,
    kl_divergence_backward,
    log_mean_exp,
)

TOLERANCE = 1e-6

# h = [mu, logvar] of shape (N, 2L): entries in +-[0.1, 3], so sigma^2 in [0.05, 20].
sampler_inputs = st.tuples(sizes, sizes).flatmap(
    lambda shape: arrays(np.float64, (shape[0], 2 * shape[1]), elements=values)
)
betas = st.sampled_from([0.0, 0.5, 1.0, 4.0])


def sampler_errors(layer, h, seed, training=True):
    """Relative errors for F = sum(z * dout) + beta * mean_n KL_n, with eps fixed."""
    rng = np.random.default_rng(seed)
    latent = h.shape[1] // 2
    eps = rng.standard_normal((len(h), latent)) if training else None
    dout = rng.standard_normal((len(h), latent))

    def loss_and_grads():
        z = layer.forward(h, training=training, eps=eps)
        value = float(np.sum(z * dout)) + layer.beta * layer.kl
        return value, {"h": layer.backward(dout)}

    return check_gradients(loss_and_grads, {"h": h})


# ------------------------------------------------------------------ gradients


@given(mu_logvar=sampler_inputs, seed=seeds)
def test_kl_divergence_gradients(mu_logvar, seed):
    """dKL_n/dmu = mu, dKL_n/dlogvar = (exp(logvar) - 1) / 2, through a random dL/dKL_n."""
    latent = mu_logvar.shape[1] // 2
    mu, logvar = mu_logvar[:, :latent].copy(), mu_logvar[:, latent:].copy()
    dkl = np.random.default_rng(seed).standard_normal(len(mu))

    def loss_and_grads():
        dmu, dlogvar = kl_divergence_backward(mu, logvar, dkl)
        return float(np.sum(kl_divergence(mu, logvar) * dkl)), {"mu": dmu, "logvar": dlogvar}

    errors = check_gradients(loss_and_grads, {"mu": mu, "logvar": logvar})
    assert max(errors.values()) < TOLERANCE, errors


@given(h=sampler_inputs, seed=seeds, beta=betas, training=st.booleans())
def test_reparameterize_gradients(h, seed, beta, training):
    """The sampling layer's dL/dh: the decoder's path through z plus beta * the KL term."""
    errors = sampler_errors(Reparameterize(beta=beta), h, seed, training)
    assert errors["h"] < TOLERANCE, errors


def build_vae(dims, seed, activation, beta):
    input_dim, hidden_1, hidden_2, latent = dims
    model = VAE(input_dim, (hidden_1, hidden_2), latent, beta=beta, activation=activation,
                rng=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        if name.endswith(".b"):  # non-zero biases, so their gradients are exercised
            value[:] = 0.1 * rng.standard_normal(value.shape)
    return model


def relu_inputs_clear_of_kink(model, x, eps):
    """True if every ReLU's input is at least KINK_MARGIN away from 0 on this batch."""
    h = x
    for layer in model.encoder.layers:
        if isinstance(layer, ReLU) and np.min(np.abs(h)) <= KINK_MARGIN:
            return False
        h = layer.forward(h)
    h = model.sampler.forward(h, eps=eps)
    for layer in model.decoder.layers:
        if isinstance(layer, ReLU) and np.min(np.abs(h)) <= KINK_MARGIN:
            return False
        h = layer.forward(h)
    return True


@given(
    x=batches(d=st.integers(1, 5)),
    widths=st.tuples(sizes, sizes, st.integers(1, 3)),
    seed=seeds,
    beta=betas,
    activation=st.sampled_from(["tanh", "relu"]),
)
def test_whole_vae_loss_gradients(x, widths, seed, beta, activation):
    """encoder -> sampler (eps fixed) -> decoder -> BCE + beta KL: every parameter and x.

    ``x`` is the encoder's input; the BCE target is held fixed, so dL/dx is the encoder's
    path (``VAE.backward``). ``test_train_step_is_forward_bce_backward`` ties this to
    ``train_step``.
    """
    x = np.abs(x) / 3  # pixels in (0, 1]
    target = x.copy()
    model = build_vae((x.shape[1], *widths), seed, activation, beta)
    eps = np.random.default_rng(seed).standard_normal((len(x), model.latent_dim))
    if activation == "relu":
        assume(relu_inputs_clear_of_kink(model, x, eps))

    def loss_and_grads():
        logits = model.forward(x, eps=eps)
        recon, dlogits = bce_with_logits(logits, target)
        dx = model.backward(dlogits)
        grads = {name: g.copy() for name, g in model.grads.items()}
        return recon + beta * model.sampler.kl, {"x": dx, **grads}

    errors = check_gradients(loss_and_grads, {"x": x, **model.params})
    assert max(errors.values()) < TOLERANCE, errors
    assert len(errors) == 1 + 12


def test_train_step_is_forward_bce_backward():
    """train_step's numbers and gradients are exactly the composition checked above."""
    model = build_vae((5, 4, 3, 2), seed=0, activation="tanh", beta=0.7)
    x = np.random.default_rng(1).random((6, 5))
    eps = np.random.default_rng(2).standard_normal((6, 2))
    losses = model.train_step(x, eps=eps)
    step_grads = {name: g.copy() for name, g in model.grads.items()}

    recon, dlogits = bce_with_logits(model.forward(x, eps=eps), x)
    model.backward(dlogits)
    assert losses == {"loss": recon + 0.7 * model.sampler.kl, "recon": recon,
                      "kl": model.sampler.kl}
    for name, g in model.grads.items():
        np.testing.assert_array_equal(step_grads[name], g)


def test_gradient_check_catches_a_wrong_kl_gradient(monkeypatch):
    """The checks above can fail: drop the 1/2 in dKL/dlogvar and the sampler's check fails."""
    h = np.random.default_rng(0).standard_normal((4, 6))
    assert sampler_errors(Reparameterize(beta=1.0), h, seed=1)["h"] < TOLERANCE

    def kl_backward_without_half(mu, logvar, dkl):
        dmu, dlogvar = kl_divergence_backward(mu, logvar, dkl)
        return dmu, 2 * dlogvar  # (exp(logvar) - 1) instead of (exp(logvar) - 1) / 2

    monkeypatch.setattr(npnet.reparameterize, "kl_divergence_backward", kl_backward_without_half)
    assert sampler_errors(Reparameterize(beta=1.0), h, seed=1)["h"] > 1e-2
    monkeypatch.undo()
    assert sampler_errors(Reparameterize(beta=1.0), h, seed=1)["h"] < TOLERANCE


# ------------------------------------------------ the parameterisation, by Monte Carlo

MU = np.array([0.5, -1.2, 2.0])
LOGVAR = np.array([-1.5, 0.8, 0.0])  # log sigma^2; away from 0, where log sigma = log sigma^2
SAMPLES = 200_000


@pytest.fixture(scope="module")
def sampled_codes():
    """z (SAMPLES, 3) from the layer's own sampler, and its KL, for one q = N(MU, e^LOGVAR)."""
    layer = Reparameterize(rng=12345)
    h = np.tile(np.concatenate([MU, LOGVAR]), (SAMPLES, 1))
    z = layer.forward(h)
    return z, layer.kl


def test_analytic_kl_matches_monte_carlo(sampled_codes):
    """KL = E_q[log q(z) - log p(z)], estimated from the layer's samples with logvar as
    log sigma^2. Reading logvar as log sigma anywhere would break the agreement."""
    z, analytic_kl = sampled_codes
    log_q = -0.5 * (np.log(2 * np.pi) + LOGVAR + (z - MU) ** 2 / np.exp(LOGVAR))
    log_p = -0.5 * (np.log(2 * np.pi) + z**2)
    log_ratio = (log_q - log_p).sum(axis=1)
    standard_error = log_ratio.std() / np.sqrt(SAMPLES)
    assert abs(log_ratio.mean() - analytic_kl) < 5 * standard_error
    assert analytic_kl == pytest.approx(float(kl_divergence(MU[None], LOGVAR[None])[0]))


def test_samples_have_mean_mu_and_variance_exp_logvar(sampled_codes):
    z, _ = sampled_codes
    variance = np.exp(LOGVAR)
    assert np.all(np.abs(z.mean(axis=0) - MU) < 5 * np.sqrt(variance / SAMPLES))
    # The sample variance of a Gaussian has standard error variance * sqrt(2 / n).
    assert np.all(np.abs(z.var(axis=0) - variance) < 5 * variance * np.sqrt(2 / SAMPLES))


def test_kl_known_values():
    assert kl_divergence(np.zeros((2, 3)), np.zeros((2, 3))).tolist() == [0.0, 0.0]
    # One dimension: KL = (mu^2 + sigma^2 - 1 - log sigma^2) / 2.
    value = kl_divergence(np.array([[1.0]]), np.array([[np.log(4.0)]]))[0]
    assert value == pytest.approx((1 + 4 - 1 - np.log(4.0)) / 2)


# -------------------------------------------------------- modes, seeds, dtypes, errors


def test_eval_mode_returns_mu_exactly_and_still_computes_kl():
    h = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    layer = Reparameterize()
    z = layer.forward(h, training=False)
    np.testing.assert_array_equal(z, h[:, :4])
    assert layer.kl == pytest.approx(float(kl_divergence(h[:, :4], h[:, 4:]).mean()))
    dh = layer.backward(np.ones((5, 4), dtype=np.float32))
    np.testing.assert_allclose(dh[:, 4:], 0.5 / 5 * np.expm1(h[:, 4:]), rtol=1e-5)


def test_same_seed_same_eps():
    h = np.random.default_rng(0).standard_normal((5, 8))
    first, second = Reparameterize(rng=3), Reparameterize(rng=3)
    np.testing.assert_array_equal(first.forward(h), second.forward(h))
    np.testing.assert_array_equal(first.cache[3], second.cache[3])  # the cached eps
    assert not np.array_equal(first.forward(h), Reparameterize(rng=4).forward(h))
    # An rng passed to forward is used instead of the layer's own.
    np.testing.assert_array_equal(
        Reparameterize(rng=9).forward(h, rng=np.random.default_rng(5)),
        Reparameterize(rng=10).forward(h, rng=np.random.default_rng(5)),
    )


def test_injected_eps_is_used_and_kept_for_backward():
    h = np.random.default_rng(0).standard_normal((3, 4))
    eps = np.random.default_rng(1).standard_normal((3, 2))
    layer = Reparameterize()
    z = layer.forward(h, eps=eps)
    np.testing.assert_allclose(z, h[:, :2] + np.exp(0.5 * h[:, 2:]) * eps)
    np.testing.assert_array_equal(layer.cache[3], eps)


def test_float32_in_float32_out():
    model = VAE(12, (8, 6), 3, rng=0)
    x = np.random.default_rng(0).random((5, 12), dtype=np.float32)
    losses = model.train_step(x, rng=1)
    assert all(isinstance(v, float) for v in losses.values())
    assert all(g.dtype == np.float32 for g in model.grads.values())
    mu, sigma, eps = model.sampler.cache[0], model.sampler.cache[2], model.sampler.cache[3]
    assert mu.dtype == sigma.dtype == eps.dtype == np.float32
    mu, logvar = model.encode(x)
    assert mu.dtype == logvar.dtype == model.decode(mu).dtype == np.float32

    layer = Reparameterize(rng=0)
    z = layer.forward(np.ones((2, 4), dtype=np.float32))
    assert z.dtype == layer.backward(np.ones_like(z)).dtype == np.float32


def test_odd_width_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, 2J\).*\(4, 5\)"):
        Reparameterize().forward(np.zeros((4, 5)))


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before forward"):
        Reparameterize().backward(np.ones((2, 2)))


def test_wrong_eps_or_dz_shape_is_a_clear_error():
    layer = Reparameterize()
    with pytest.raises(ValueError, match=r"eps must have the shape of mu, \(4, 3\)"):
        layer.forward(np.zeros((4, 6)), eps=np.zeros((4, 2)))
    layer.forward(np.zeros((4, 6)))
    with pytest.raises(ValueError, match=r"dout of shape \(4, 6\).*\(4, 3\)"):
        layer.backward(np.zeros((4, 6)))


def test_extreme_logvar_is_clipped_finite_and_blocks_its_gradient():
    low, high = LOGVAR_RANGE
    h = np.array([[0.0, 0.0, 1000.0, -1000.0]], dtype=np.float32)  # mu = 0, logvar = +-1000
    layer = Reparameterize(rng=0)
    with np.errstate(all="raise"):
        z = layer.forward(h)
        dh = layer.backward(np.ones_like(z))
    assert np.all(np.isfinite(z)) and np.isfinite(layer.kl)
    expected = float(kl_divergence(np.zeros((1, 2)), np.array([[high, low]]))[0])
    assert layer.kl == pytest.approx(expected, rel=1e-6)
    assert dh[0, 2:].tolist() == [0.0, 0.0]


# ------------------------------------------------------------------- the model


def test_params_and_grads_are_the_layers_arrays():
    model = VAE(10, (8, 6), 2, rng=0)
    expected = [f"{part}.{i}.{key}" for part in ("encoder", "decoder") for i in (0, 2, 4)
                for key in ("W", "b")]
    assert list(model.params) == expected
    assert model.grads.keys() == model.params.keys()
    assert model.params["encoder.4.W"].shape == (6, 4)  # the head predicts [mu, logvar]
    assert model.params["decoder.0.W"].shape == (2, 6)
    assert model.params["encoder.0.W"] is model.encoder.layers[0].params["W"]
    before = model.encoder.layers[0].params["W"].copy()
    optimizer = Adam(model.params, lr=0.1)
    model.train_step(np.random.default_rng(0).random((4, 10)), rng=0)
    optimizer.step(model.grads)
    assert not np.array_equal(model.encoder.layers[0].params["W"], before)


def test_train_step_does_not_change_parameters():
    model = VAE(10, (8, 6), 2, rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    model.train_step(np.random.default_rng(0).random((4, 10)), rng=0)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name])


def test_evaluate_is_seeded_and_independent_of_batch_size():
    model = VAE(10, (8, 6), 2, rng=0, dtype=np.float64)
    x = np.random.default_rng(0).random((25, 10))
    whole = model.evaluate(x, batch_size=1000, rng=7)
    assert model.evaluate(x, rng=7) == whole
    # eps is drawn batch after batch from one generator: the same noise as in one batch.
    sliced = model.evaluate(x, batch_size=4, rng=7)
    assert sliced == pytest.approx(whole, rel=1e-12)
    assert whole["loss"] == pytest.approx(whole["recon"] + whole["kl"])
    assert model.evaluate(x, rng=8) != whole  # z really is sampled


def test_encode_decode_reconstruct():
    model = VAE(10, (8, 6), 3, rng=0)
    x = np.random.default_rng(0).random((7, 10), dtype=np.float32)
    mu, logvar = model.encode(x, batch_size=3)
    h = model.encoder.forward(x)
    # A float32 product of 3 rows may round otherwise than one of 7 (BLAS picks its kernel
    # by shape): equal to float32's precision, not bit for bit.
    np.testing.assert_allclose(mu, h[:, :3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar, h[:, 3:], rtol=1e-5, atol=1e-6)
    images = model.decode(mu, batch_size=2)
    assert images.shape == (7, 10) and np.all((images > 0) & (images < 1))
    np.testing.assert_array_equal(model.reconstruct(x), model.decode(model.encode(x)[0]))


def test_training_reduces_the_loss():
    """100 Adam steps on 4 noisy binary patterns of 16 pixels: the negative ELBO falls."""
    rng = np.random.default_rng(0)
    patterns = rng.random((4, 16)) < 0.5
    data = np.clip(patterns[rng.integers(0, 4, 256)] * 0.9 + 0.05
                   + 0.05 * rng.standard_normal((256, 16)), 0, 1).astype(np.float32)
    model = VAE(16, (32, 16), 2, rng=0)
    optimizer = Adam(model.params, lr=3e-3)
    before = model.evaluate(data, rng=1)
    for _ in range(100):
        model.train_step(data[rng.integers(0, 256, 32)], rng=rng)
        optimizer.step(model.grads)
    after = model.evaluate(data, rng=1)
    assert after["loss"] < 0.7 * before["loss"], (before, after)
    assert after["kl"] > 0.1  # the code is used, not collapsed to the prior


@pytest.mark.parametrize(
    "x,error,match",
    [
        (np.full((4, 10), 255.0), ValueError, r"\[0, 1\].*1/255"),
        (np.full((4, 10), 255, dtype=np.uint8), TypeError, "floating-point.*uint8"),
        (np.ones((4, 10), dtype=np.int64), TypeError, "floating-point.*int64"),
        (np.full((4, 10), 0.5 + 0.5j), TypeError, "floating-point.*complex128"),
    ],
    ids=["0-255 floats", "uint8", "0/1 integers", "complex"],
)
def test_vae_refuses_what_is_not_pixels_in_0_1(x, error, match):
    """The same check as the DAE's (EncoderDecoder), before anything is computed."""
    model = VAE(10, (8, 6), 2, rng=0)
    with pytest.raises(error, match=match):
        model.train_step(x, rng=0)
    with pytest.raises(error, match=match):
        model.evaluate(x)


def test_vae_widths_must_be_integers():
    for kwargs, error in (
        ({"hidden": (32.5,)}, TypeError),  # int() made it 32
        ({"hidden": "512"}, TypeError),
        ({"latent": 2.5}, TypeError),
        ({"latent": 0}, ValueError),
        ({"input_dim": None}, TypeError),
    ):
        name = next(iter(kwargs))
        with pytest.raises(error, match=f"{name}.*integer"):
            VAE(**{"input_dim": 10, "hidden": (8, 6), "latent": 2, **kwargs})


def test_complex_input_is_refused_not_cut_to_its_real_part():
    model = VAE(10, (8, 6), 2, rng=0)
    with pytest.raises(TypeError, match="Reparameterize layer .*real numbers.*complex128"):
        model.sampler.forward(np.full((4, 4), 1j))
    for method, width in ((model.forward, 10), (model.encode, 10), (model.decode, 2)):
        with pytest.raises(TypeError, match="(real numbers|floating-point pixels).*complex128"):
            method(np.full((4, width), 0.5 + 0j))


@pytest.mark.parametrize("beta,error", [("1", TypeError), (None, TypeError), (True, TypeError),
                                        (float("inf"), ValueError), (-0.5, ValueError)])
def test_beta_must_be_a_finite_number_at_least_zero(beta, error):
    with pytest.raises(error, match="beta"):
        VAE(16, (8,), 2, beta=beta, rng=0)


@given(a=arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)),
                elements=st.floats(-50, 50)), shift=st.floats(-2000, 2000))
def test_log_mean_exp_is_stable_and_exact(a, shift):
    """log(mean(exp(a))): the naive formula where it is safe, and finite after any shift of
    a by a constant, which it follows exactly (log-weights of images are hundreds of nats)."""
    np.testing.assert_allclose(log_mean_exp(a, axis=1), np.log(np.mean(np.exp(a), axis=1)),
                               rtol=1e-12, atol=1e-12)
    shifted = log_mean_exp(a + shift, axis=1)
    assert np.all(np.isfinite(shifted))
    np.testing.assert_allclose(shifted, log_mean_exp(a, axis=1) + shift, rtol=1e-12, atol=1e-9)


def tiny_vae(seed: int, pixels: int) -> VAE:
    """A VAE with a one-dimensional latent (so that log p(x) is a 1-D integral), float64,
    with non-zero biases, and q(z|x) = N(mu, sigma^2) wider than the prior and near it: mu
    in [-0.5, 0.5] and logvar in [0.7, 1.2] for every x. Then the weights
    p(x|z) p(z) / q(z|x) <= p(z) / q(z|x) <= sigma exp(mu^2 / (2 (sigma^2 - 1))) < 2, and
    k = 20,000 samples pin log p(x) down to about a hundredth of a nat. (An untrained
    encoder's q can be narrower than the posterior, and far from it; the estimate is then
    still a lower bound in expectation, but converges too slowly for a test.)"""
    model = VAE(pixels, (3,), 1, rng=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        if name.endswith(".b"):
            value[:] = 0.3 * rng.standard_normal(value.shape)
    last = model.encoder.layers[-1].params
    last["W"][:] = 0.0
    last["b"][:] = rng.uniform(-0.5, 0.5), rng.uniform(0.7, 1.2)
    return model


def log_px_by_integration(model: VAE, x: np.ndarray) -> np.ndarray:
    """log p(x) = log of the integral of p(x|z) N(z; 0, 1) over z, by a Riemann sum on a grid
    of 6001 points in [-12, 12] (the prior's density is below 1e-31 outside it)."""
    z = np.linspace(-12, 12, 6001)[:, None]
    logits = model.decoder.forward(z)
    log_joint = np.stack([
        -bce_with_logits_per_example(logits, np.repeat(image[None], len(z), axis=0))
        - 0.5 * z[:, 0] ** 2 - 0.5 * np.log(2 * np.pi)
        for image in x])
    return log_mean_exp(log_joint, axis=1) + np.log(len(z) * (z[1, 0] - z[0, 0]))


@settings(max_examples=10, deadline=None)
@given(seed=seeds, pixels=st.integers(1, 4))
def test_log_likelihood_matches_numerical_integration(seed, pixels):
    """The importance-sampled log p(x) with k = 20,000 against the exact integral (to 0.05
    nats; the largest of 60 drawn models was 0.012); its k = 1 expectation is the ELBO."""
    model = tiny_vae(seed, pixels)
    x = (np.random.default_rng(seed).random((2, pixels)) < 0.5).astype(np.float64)
    exact = log_px_by_integration(model, x)
    np.testing.assert_allclose(model.log_likelihood(x, k=20_000, rng=seed, chunk=7_000),
                               exact, atol=0.05)
    # Each log-weight is log p(x|z) + log N(z; 0, 1) - log N(z; mu, sigma^2), sample by
    # sample, and their mean estimates the ELBO E_q[log p(x|z)] - KL(q || p).
    log_w = model.log_weights(x, 20_000, rng=seed + 1)
    mu, logvar = model.encode(x)
    eps = np.random.default_rng(seed + 1).standard_normal((2, 20_000, 1))  # its eps
    z = (mu[:, None, :] + np.exp(logvar / 2)[:, None, :] * eps)[..., 0]
    recon = -bce_with_logits_per_example(
        model.decoder.forward(z.reshape(-1, 1)), np.repeat(x, 20_000, axis=0)).reshape(2, -1)
    log_normal = lambda v, mean, var: -0.5 * ((v - mean) ** 2 / var + np.log(2 * np.pi * var))  # noqa: E731
    np.testing.assert_allclose(
        log_w, recon + log_normal(z, 0, 1) - log_normal(z, mu, np.exp(logvar)), rtol=1e-9)
    difference = log_w - (recon - kl_divergence(mu, logvar)[:, None])  # mean 0 in expectation
    standard_error = difference.std(axis=1) / np.sqrt(20_000)
    assert np.all(np.abs(difference.mean(axis=1)) < 5 * standard_error + 1e-9)
    assert np.all(log_w.mean(axis=1) <= exact + 1e-9)


def test_log_likelihood_is_finite_for_extreme_models():
    """Huge logits (pixels predicted with certainty, right or wrong) and an encoder whose
    logvar is far outside LOGVAR_RANGE give a finite estimate, never NaN."""
    model = tiny_vae(0, 4)
    model.decoder.layers[-1].params["W"][:] = 1e4
    model.encoder.layers[-1].params["b"][:] = [0.0, 1e6]  # mu = 0, logvar = 1e6 (clipped)
    x = np.array([[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    estimate = model.log_likelihood(x, k=1000, rng=0)
    assert estimate.shape == (2,) and np.all(np.isfinite(estimate)), estimate
    np.testing.assert_array_equal(estimate, model.log_likelihood(x, k=1000, rng=0))  # seeded


@pytest.mark.parametrize("k, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                      (True, TypeError), ("10", TypeError)])
def test_log_likelihood_refuses_bad_k(k, error):
    model = tiny_vae(0, 4)
    with pytest.raises(error, match="k must be an integer >= 1"):
        model.log_likelihood(np.zeros((1, 4)), k=k)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, k=st.integers(1, 300), chunk=st.integers(1, 300))
def test_log_likelihood_in_chunks_equals_one_block(seed, k, chunk):
    """The running log-sum-exp over blocks of samples gives what one log_mean_exp over all k
    log-weights gives (one image: the blocks draw the same eps from the generator), for an
    untrained model whose weights spread over many nats, so that the maximum moves."""
    model = VAE(5, (4,), 2, rng=seed, dtype=np.float64)
    model.encoder.layers[-1].params["b"][2:] = -3.0  # a narrow q: widely spread weights
    x = (np.random.default_rng(seed).random((1, 5)) < 0.5).astype(np.float64)
    whole = log_mean_exp(model.log_weights(x, k, rng=seed), axis=1)
    np.testing.assert_allclose(model.log_likelihood(x, k=k, rng=seed, chunk=chunk), whole,
                               rtol=1e-12, atol=1e-12)


def test_log_sum_exp_of_zero_weights_is_minus_infinity():
    """Blocks whose every weight is e^-inf = 0 (log-weights of -inf, as a float32 sum of
    pixel losses that overflows gives) leave the running sum at log 0 = -inf, never NaN,
    and a later block with finite weights still counts in full."""
    m, total = np.full(2, -np.inf), np.zeros(2)
    accumulate_log_sum_exp(m, total, np.full((2, 3), -np.inf))
    with np.errstate(divide="ignore"):  # log 0
        assert np.all(m + np.log(total) == -np.inf)
    finite = np.array([[0.0, 1.0], [-700.0, -702.0]])
    accumulate_log_sum_exp(m, total, finite)
    np.testing.assert_allclose(m + np.log(total), log_mean_exp(finite, axis=1) + np.log(2),
                               rtol=1e-15)


# ------------------------------------------------------------------ the IWAE bound


def binary_images(seed: int, n: int, pixels: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, pixels)) < 0.4).astype(np.float64)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, n=st.integers(1, 4), k=st.integers(1, 5),
       widths=st.tuples(st.integers(2, 6), st.integers(1, 5), st.integers(1, 3)),
       activation=st.sampled_from(["tanh", "sigmoid"]))
def test_iwae_gradients(seed, n, k, widths, activation):
    """The whole negative IWAE bound -L_k with fixed noise eps (N, k, J): the hand-written
    gradient (normalised weights through the decoder, the c z and -1/(2N) terms of the
    Gaussian densities) against central differences, every parameter."""
    pixels, hidden, latent = widths
    model = VAE(pixels, (hidden,), latent, activation=activation, rng=seed,
                dtype=np.float64, objective="iwae", k=k)
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        if name.endswith(".b"):
            value[:] = 0.3 * rng.standard_normal(value.shape)
    x = binary_images(seed, n, pixels)
    eps = rng.standard_normal((n, k, latent))

    def loss_and_grads():  # the formula itself, also at k = 1 (which train_step trains as
        loss = iwae_step(model, x, eps=eps)["loss"]  # the ELBO, closed-form KL)
        return loss, {name: g.copy() for name, g in model.grads.items()}

    errors = check_gradients(loss_and_grads, model.params)
    assert max(errors.values()) < TOLERANCE, errors


def test_iwae_loss_is_minus_the_log_mean_exp_of_the_log_weights():
    """The training step's loss is -(1/N) sum_n log_mean_exp_i log w_ni, with the log-weights
    that log_weights computes from the same eps (drawn from the same seed)."""
    model = VAE(6, (5,), 2, activation="tanh", rng=3, dtype=np.float64, objective="iwae", k=4)
    x = binary_images(3, 5, 6)
    loss = model.train_step(x, rng=11)["loss"]
    np.testing.assert_allclose(loss, -log_mean_exp(model.log_weights(x, 4, rng=11), axis=1)
                               .mean(), rtol=1e-12)


def test_iwae_with_one_sample_is_the_elbo_step():
    """k = 1: L_1 is the ELBO, and train_step gives the ELBO step's loss and gradients, bit for
    bit, with noise drawn from the same seed or injected. The IWAE formula itself
    (npnet.importance.iwae_step) at k = 1: the normalised weight is exactly 1, so its
    decoder gradients are the ELBO step's bits; its encoder gradients differ by the KL term,
    sampled there and in closed form here, whose difference has mean 0 over eps."""
    kwargs = dict(input_dim=6, hidden=(5,), latent=3, activation="tanh", rng=4)
    elbo, iwae = VAE(**kwargs), VAE(**kwargs, objective="iwae", k=1)
    x = binary_images(4, 8, 6).astype(np.float32)
    assert iwae.train_step(x, rng=9) == elbo.train_step(x, rng=9)
    for name in elbo.grads:
        np.testing.assert_array_equal(iwae.grads[name], elbo.grads[name])
    eps = np.random.default_rng(5).standard_normal((8, 3)).astype(np.float32)
    assert iwae.train_step(x, eps=eps[:, None, :]) == elbo.train_step(x, eps=eps)
    for name in elbo.grads:
        np.testing.assert_array_equal(iwae.grads[name], elbo.grads[name])

    iwae_step(iwae, x, eps=eps[:, None, :])  # the sampled-KL formula
    for name in elbo.grads:
        if name.startswith("decoder"):
            np.testing.assert_array_equal(iwae.grads[name], elbo.grads[name])
    assert not np.array_equal(iwae.grads["encoder.0.W"], elbo.grads["encoder.0.W"])
    # Its encoder gradient, averaged over many eps, is the ELBO step's (float64, 4000 draws).
    elbo64, iwae64 = (VAE(**kwargs, dtype=np.float64, **extra)
                      for extra in ({}, {"objective": "iwae", "k": 1}))
    x64 = x.astype(np.float64)
    sums = {"elbo": 0.0, "iwae": 0.0}
    draws = np.random.default_rng(6).standard_normal((4000, 8, 3))
    for eps_draw in draws:
        elbo64.train_step(x64, eps=eps_draw)
        iwae_step(iwae64, x64, eps=eps_draw[:, None, :])
        sums["elbo"] += elbo64.grads["encoder.0.W"]
        sums["iwae"] += iwae64.grads["encoder.0.W"]
    difference = (sums["iwae"] - sums["elbo"]) / len(draws)
    assert np.max(np.abs(difference)) < 0.05 * np.max(np.abs(sums["elbo"] / len(draws))), (
        difference)


def test_iwae_bound_rises_with_k():
    """E[L_k] is non-decreasing in k (Burda et al., Theorem 1): on a fixed untrained model,
    the k-sample bound averaged over many draws, for k = 1, 5, 50."""
    model = VAE(8, (6,), 2, activation="tanh", rng=0, dtype=np.float64)
    x = binary_images(0, 3, 8)
    bounds = [np.mean(log_mean_exp(model.log_weights(x, k * 400, rng=k).reshape(3, 400, k),
                                   axis=2)) for k in (1, 5, 50)]
    assert bounds[0] < bounds[1] < bounds[2], bounds


@pytest.mark.parametrize("kwargs, error, match", [
    ({"objective": "vampprior"}, ValueError,
     "unknown objective 'vampprior'; choose one of 'elbo', 'iwae'"),
    ({"objective": "iwae", "k": 0}, ValueError, "k must be an integer >= 1, got 0"),
    ({"objective": "iwae", "k": 2.5}, TypeError, "k must be an integer >= 1, got 2.5"),
    ({"objective": "elbo", "k": 5}, ValueError,
     "objective='elbo' takes one sample per image, got k=5"),
    ({"objective": "iwae", "k": 5, "beta": 2.0}, ValueError, "beta must be 1, got 2.0"),
])
def test_bad_objectives_are_refused(kwargs, error, match):
    with pytest.raises(error, match=re.escape(match)):
        VAE(6, (4,), 2, **kwargs)


def test_iwae_eps_of_the_wrong_shape_is_refused():
    model = VAE(6, (4,), 2, objective="iwae", k=3)
    with pytest.raises(ValueError, match=re.escape("shape (N, k, J) = (2, 3, 2), got (2, 2)")):
        model.train_step(binary_images(0, 2, 6), eps=np.zeros((2, 2)))


@pytest.mark.parametrize("call", ["iwae_step", "log_likelihood", "log_weights"])
def test_likelihoods_refuse_gray_images(call):
    """A Bernoulli likelihood of gray pixels is not a probability: the IWAE objective and the
    log p(x) estimates refuse them, and say how to binarise."""
    x = np.full((2, 6), 0.5)
    model = VAE(6, (4,), 2, objective="iwae", k=2) if call == "iwae_step" else VAE(6, (4,), 2)
    run = {"iwae_step": lambda: model.train_step(x),
           "log_likelihood": lambda: model.log_likelihood(x, k=3),
           "log_weights": lambda: model.log_weights(x, 3)}[call]
    with pytest.raises(ValueError, match="needs binary images .* such as 0.5.* --binarize"):
        run()
    model.log_likelihood(np.round(x + 0.1), k=3) if call != "iwae_step" else model.train_step(
        np.round(x + 0.1))  # the same images binarised are accepted


def test_init_output_bias_predicts_the_mean_image():
    """After init_output_bias, a decoder whose last weights are 0 predicts sigmoid(b) = the
    mean training image, clipped to [1e-3, 1 - 1e-3]."""
    x = np.random.default_rng(0).random((50, 6)).astype(np.float32) ** 3
    x[:, 0] = 0.0  # a pixel that is never on: its logit is clipped
    model = VAE(6, (4,), 2, rng=0)
    model.init_output_bias(x)
    model.decoder.layers[-1].params["W"][:] = 0
    means = model.decode(np.zeros((1, 2), np.float32))[0]
    expected = np.clip(x.mean(axis=0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(means, expected, rtol=1e-4)  # float32 logits


@pytest.mark.parametrize("x_train", [np.zeros((0, 6)), np.full(6, 0.5), np.full((3, 5), 0.5)],
                         ids=["no images", "one image as a 1-D array", "5 pixels, not 6"])
def test_init_output_bias_refuses_what_is_not_a_set_of_images(x_train):
    """No NaN bias from an empty set, no one-image mean spread over every pixel, no raw
    broadcasting error: a ValueError that says the shape it needs."""
    model = VAE(6, (4,), 2, rng=0)
    before = model.decoder.layers[-1].params["b"].copy()
    with pytest.raises(ValueError, match=re.escape("training images of shape (N, 6) with N >= 1")):
        model.init_output_bias(x_train)
    np.testing.assert_array_equal(model.decoder.layers[-1].params["b"], before)



@pytest.mark.parametrize("clip", [0, -1, 0.5, 0.6, np.nan])
def test_init_output_bias_refuses_a_clip_outside_0_to_one_half(clip):
    """clip = 0 gives logit(0) = -inf, 0.6 an inverted clip, NaN NaN biases."""
    model = VAE(6, (4,), 2, rng=0)
    before = model.decoder.layers[-1].params["b"].copy()
    with pytest.raises(ValueError, match=r"clip must be in \(0, 0.5\)"):
        model.init_output_bias(np.full((3, 6), 0.5), clip=clip)
    np.testing.assert_array_equal(model.decoder.layers[-1].params["b"], before)


def test_log_mean_exp_of_infinite_terms():
    """All -inf: the mean of zeros, log 0 = -inf (not NaN); an inf term: inf."""
    assert log_mean_exp(np.full(3, -np.inf)) == -np.inf
    assert log_mean_exp(np.array([np.inf, 0.0])) == np.inf
    np.testing.assert_array_equal(log_mean_exp(np.array([[-np.inf, -np.inf], [0.0, 0.0]])),
                                  [-np.inf, 0.0])


def test_a_float16_vae_is_refused_when_built():
    """NumPy draws no float16 normal noise: refused at once, not inside the first step."""
    with pytest.raises(TypeError, match="float32 or float64, got float16"):
        VAE(6, (4,), 2, dtype=np.float16)


def test_encode_refuses_0_255_pixels_as_train_step_does():
    model = VAE(6, (4,), 2, rng=0)
    with pytest.raises(ValueError, match=r"VAE.encode: pixels must be in \[0, 1\]"):
        model.encode(np.full((2, 6), 255.0))
