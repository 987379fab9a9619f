r"""Importance sampling: a VAE's log-likelihood log p(x), and the IWAE bound that trains on it.

**The importance weights.** A VAE (:mod:`npnet.vae`) defines p(x) = E_{p(z)}[p(x|z)], an
integral over every code z that no one can compute. Drawing z from the encoder's
q(z|x) instead of the prior and reweighting keeps the expectation:

.. math::  p(x) = \mathbb{E}_{q(z|x)}\Big[\frac{p(x|z)\,p(z)}{q(z|x)}\Big]
           \approx \frac{1}{k} \sum_{i=1}^{k} w_i, \qquad
           w_i = \frac{p(x|z_i)\,p(z_i)}{q(z_i|x)}, \quad z_i \sim q(z|x).

The average of the w_i is unbiased for p(x); its log, the estimate of log p(x), is biased
low (Jensen), by about Var(w) / (2 k E[w]^2), so it rises towards log p(x) as k grows.

**The IWAE bound** (Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders*,
2015) is that estimate's expectation, a lower bound on log p(x) that tightens with k:

.. math::  \mathcal{L}_k(x) = \mathbb{E}\Big[\log \frac{1}{k} \sum_{i=1}^{k} w_i\Big],
           \qquad \mathrm{ELBO}(x) = \mathcal{L}_1(x) \le \mathcal{L}_k(x) \le \log p(x).

``VAE(objective="iwae", k=...)`` trains on -L_k with the gradient derived in
:func:`iwae_step`.

**Working in logs.** Log-weights of MNIST images are in the hundreds of nats: e^{-300}
underflows. Every average of weights is a log-mean-exp with the largest term taken out
(:func:`log_mean_exp`), or a running log-sum-exp over blocks of samples
(:func:`accumulate_log_sum_exp`), so that k = 5000 samples per image fit in memory.

**From the math to the code**::

    z_i = mu + sigma * eps_i     the sampler's split of h and its noise (npnet.vae)
    log w_i                      log_weights                 (N, k), float64
    log (1/k) sum_i w_i          log_mean_exp, or accumulate_log_sum_exp over blocks
    log p(x), k = 5000           log_likelihood              (N,), float64
    -L_k and its gradient        iwae_step                   (fills model.grads)

The functions take the model as their first argument and use its ``encoder``, ``sampler``
and ``decoder``: ``VAE.log_weights``, ``VAE.log_likelihood`` and ``VAE.train_step`` (with
``objective="iwae"``) call them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import checks
from .layers import sigmoid
from .losses import bce_with_logits_per_example

__all__ = ["log_mean_exp", "accumulate_log_sum_exp", "log_prior_over_posterior",
           "log_weights", "iwae_step", "log_likelihood"]


def log_mean_exp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""``log(mean(exp(a)))`` along ``axis``, finite wherever ``a`` is finite, in float64.

    For log-weights a_i = log w_i, i = 1..k, and their largest, omega = max_i log w_i:

    .. math::  \log \frac{1}{k} \sum_{i=1}^{k} w_i
               = \omega + \log \frac{1}{k} \sum_{i=1}^{k} e^{\log w_i - \omega}

    Written naively, ``exp(a)`` overflows for a > 709 and underflows to 0 (log 0 = -inf)
    for a < -745 in float64, and log-weights of images are in the hundreds of nats. With
    the largest taken out, every exponent is <= 0 and one of them is 0, so the sum is in
    [1, k].

    Tested by: tests/test_vae.py::test_log_mean_exp_is_stable_and_exact,
    tests/test_vae.py::test_log_mean_exp_of_infinite_terms
    """
    a = np.asarray(a, dtype=np.float64)
    if a.shape[axis] == 0:
        raise ValueError("log_mean_exp of an empty axis: there is nothing to average")
    return _log_mean_exp_and_weights(a, axis)[0]


def _log_mean_exp_and_weights(log_w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`log_mean_exp` in log_w's own dtype, and the normalised weights
    w_i / sum_j w_j (a softmax along ``axis``), which share its terms. Where the largest,
    omega, is infinite there is nothing to take out (-inf - (-inf) would be NaN): the sum is
    then an honest log 0 = -inf, or +inf."""
    omega = np.max(log_w, axis=axis, keepdims=True)
    omega = np.where(np.isfinite(omega), omega, 0)
    w = np.exp(log_w - omega)
    total = np.sum(w, axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf, as it should be
        return np.squeeze(omega + np.log(total / log_w.shape[axis]), axis=axis), w / total


def accumulate_log_sum_exp(omega: np.ndarray, total: np.ndarray, log_w: np.ndarray) -> None:
    r"""Add the terms w_i = exp(log w_i), ``log_w`` (N, n), to running sums kept as
    log sum_i w_i = omega + log(total), ``omega`` and ``total`` (N,) each, in place: the new
    largest log-weight omega' = max(omega, max_i log w_i) rescales the old total,

    .. math::  \text{total}' = \text{total}\, e^{\omega - \omega'}
               + \sum_i e^{\log w_i - \omega'},

    so no exponent is ever positive. Start from omega = -inf, total = 0. While every term so
    far is e^-inf = 0 (omega' = -inf), the shift is 0 instead of omega': -inf - (-inf) would
    be NaN, and the sum stays an honest log 0 = -inf.

    Tested by: tests/test_vae.py::test_log_likelihood_in_chunks_equals_one_block,
    tests/test_vae.py::test_log_sum_exp_of_zero_weights_is_minus_infinity
    """
    new_omega = np.maximum(omega, log_w.max(axis=1))
    shift = np.where(np.isneginf(new_omega), 0.0, new_omega)
    total *= np.exp(omega - shift)
    total += np.exp(log_w - shift[:, None]).sum(axis=1)
    omega[...] = new_omega


def log_prior_over_posterior(z: np.ndarray, eps: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    r"""log p(z) - log q(z|x) for codes z = mu + sigma * eps, summed over the J dimensions.

    With p(z) = N(0, I) and q(z|x) = N(mu, sigma^2), sigma = exp(logvar / 2), the density of
    z under q is that of eps scaled by sigma, and the constants cancel::

        log p(z)   = -1/2 sum_j (z_j^2 + log 2 pi)
        log q(z|x) = -1/2 sum_j (eps_j^2 + log 2 pi + logvar_j)
        log p(z) - log q(z|x) = -1/2 sum_j (z_j^2 - eps_j^2 - logvar_j)

    z and eps (N, k, J), logvar (N, 1, J) (one per image, broadcast over the samples);
    returns (N, k) in their dtype.

    Tested by: tests/test_vae.py::test_log_likelihood_matches_numerical_integration
    """
    return -0.5 * np.sum(z**2 - eps**2 - logvar, axis=-1)


class _Samples(NamedTuple):
    """What :func:`_sampled_codes` computes, and the IWAE step's backward pass reads."""

    z: np.ndarray  # (N, k, J) codes, z_ni = mu_n + sigma_n eps_ni
    logvar: np.ndarray  # (N, J), clipped as the sampler clips it
    sigma: np.ndarray  # (N, J), exp(logvar / 2)
    clipped: np.ndarray  # (N, J) bool, where the clip changed logvar
    logits: np.ndarray  # (N k, D), the decoder's output for every code
    targets: np.ndarray  # (N k, D), row n k + i is image n
    log_px_z: np.ndarray  # (N, k), log p(x_n | z_ni): minus the Bernoulli cross-entropy


def _sampled_codes(model, x: np.ndarray, eps: np.ndarray) -> _Samples:
    """The forward pass that the log-weights and the IWAE step share, in the model's dtype:
    h = encoder(x), [mu, logvar] = the sampler's split of h, z = mu + sigma * eps, the
    decoder's logits for every z, and log p(x|z)."""
    n, k, latent = eps.shape
    mu, logvar, clipped = model.sampler.split(model.encoder.forward(x))
    sigma = np.exp(0.5 * logvar)
    z = mu[:, None, :] + sigma[:, None, :] * eps
    logits = model.decoder.forward(z.reshape(n * k, latent))
    targets = np.repeat(x, k, axis=0)
    log_px_z = -bce_with_logits_per_example(logits, targets).reshape(n, k)
    return _Samples(z, logvar, sigma, clipped, logits, targets, log_px_z)


def _noise(model, x: np.ndarray, k: int, rng, eps) -> np.ndarray:
    """eps (N, k, J): drawn by the model's sampler from ``rng``, or the given one, checked."""
    shape = (len(x), k, model.latent_dim)
    if eps is None:
        return model.sampler.noise(shape, model.dtype, rng)
    return checks.shape(np.asarray(eps, dtype=model.dtype), shape,
                        "eps must have the shape (N, k, J) =")


def log_weights(model, x: np.ndarray, k: int, rng: np.random.Generator | int | None = 0,
                eps: np.ndarray | None = None) -> np.ndarray:
    r"""Importance log-weights ``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``,
    z_i ~ q(z|x), for a batch x (N, D) of binary images: an (N, k) float64 array.

    log p(x|z) is minus the Bernoulli cross-entropy of x under the decoder's logits,
    summed over pixels (:func:`npnet.losses.bce_with_logits_per_example`); the Gaussian
    part is :func:`log_prior_over_posterior`, here in float64. E_q[log w] is the ELBO;
    :func:`log_likelihood` averages the weights themselves. The decoder runs on N k codes
    at once: call it on slices of x to bound memory. ``eps`` (N, k, J), in the model's
    dtype, replaces the draw from ``rng``.

    Tested by: tests/test_vae.py::test_log_likelihood_matches_numerical_integration
    """
    x = np.asarray(model._check_pixels(x, "log_weights"), dtype=model.dtype)
    checks.binary(x, "log_weights")
    k = checks.integer(k, "the number of importance samples k", low=1)
    eps = _noise(model, x, k, rng, eps)
    s = _sampled_codes(model, x, eps)
    z64, eps64, logvar64 = (a.astype(np.float64) for a in (s.z, eps, s.logvar[:, None, :]))
    return s.log_px_z.astype(np.float64) + log_prior_over_posterior(z64, eps64, logvar64)


def iwae_step(model, x: np.ndarray, rng: np.random.Generator | int | None = None,
              eps: np.ndarray | None = None) -> dict[str, float]:
    r"""Forward and backward of the negative IWAE bound on a batch x (N, D) of binary images,
    with the model's k samples per image; fills ``model.grads``, updates nothing.

    **Forward**, for every image n and sample i = 1..k, in the model's dtype::

        z_ni     = mu_n + sigma_n * eps_ni                          (N, k, J)
        a_ni     = decoder(z_ni)                                    (N k, D) logits
        log w_ni = -BCE(a_ni, x_n) - 1/2 sum_j (z_nij^2 - eps_nij^2 - logvar_nj)
        L        = -(1/N) sum_n log (1/k) sum_i w_ni                (the loss, nats)

    (the forward of :func:`log_weights`, and :func:`log_mean_exp`'s form).

    **Backward.** The derivative of log sum_i w_i is sum_i (w_i / sum_j w_j) d log w_i:
    each sample's gradient weighted by its normalised weight w~_ni = w_ni / sum_j w_nj
    (a softmax over i of log w_ni). So dL/d(log w_ni) = -c_ni with c_ni = w~_ni / N, and
    log w_ni reaches the parameters along three paths:

    * through the logits: d(-BCE)/da = x - sigmoid(a), so dL/da_ni = c_ni (sigmoid(a_ni) - x_n);
    * through z in log p(z) = -1/2 sum_j z_j^2 + const, whose derivative is -z: it adds
      c_ni z_ni to dL/dz_ni (log q, written with eps held fixed, has no z in it);
    * through logvar in -log q(z|x) = +1/2 sum_j logvar_j + ...: each sample adds
      -c_ni / 2, and sum_i w~_ni = 1, so -1 / (2N) in all.

    With z = mu + sigma * eps (dz/dmu = 1, dz/dlogvar = sigma * eps / 2)::

        dL/da_ni     = c_ni * (sigmoid(a_ni) - x_n)                           (N k, D)
        dL/dz_ni     = decoder.backward(dL/da)_ni + c_ni * z_ni               (N, k, J)
        dL/dmu_n     = sum_i dL/dz_ni                                         (N, J)
        dL/dlogvar_n = sum_i dL/dz_ni * sigma_n * eps_ni / 2 - 1 / (2 N)      (N, J)

    and 0 for logvar where the sampler clipped it. With k = 1, w~ = 1 and L is the ELBO with
    its KL term *sampled*; ``VAE.train_step`` trains k = 1 with the KL in closed form, which
    has the same expected gradient and less noise (chapter 10 shows both).

    Tested by: tests/test_vae.py::test_iwae_gradients,
    tests/test_vae.py::test_iwae_with_one_sample_is_the_elbo_step
    """
    x = np.asarray(model._check_pixels(x, "train_step"), dtype=model.dtype)
    checks.binary(x, "objective='iwae'")
    n, k = len(x), model.k
    eps = _noise(model, x, k, rng, eps)
    z, logvar, sigma, clipped, logits, targets, log_px_z = _sampled_codes(model, x, eps)
    log_w = log_px_z + log_prior_over_posterior(z, eps, logvar[:, None, :])
    log_mean_w, w_tilde = _log_mean_exp_and_weights(log_w, axis=1)  # (N,), (N, k)
    loss = -float(np.mean(log_mean_w, dtype=np.float64))

    dlogits = (sigmoid(logits) - targets) * w_tilde.reshape(n * k, 1) / n
    dz = model.decoder.backward(dlogits).reshape(eps.shape)
    dz += (w_tilde / n)[:, :, None] * z
    dmu = dz.sum(axis=1)
    dlogvar = (dz * eps).sum(axis=1) * sigma / 2 - 0.5 / n
    dlogvar[clipped] = 0
    model.encoder.backward(np.concatenate([dmu, dlogvar], axis=1))
    return {"loss": loss}


def log_likelihood(model, x: np.ndarray, k: int = 5000,
                   rng: np.random.Generator | int | None = 0, chunk: int = 1000) -> np.ndarray:
    r"""The importance-sampled estimate of log p(x), in nats, for each image of x (N, D).

    .. math::  \log p(x) \approx \log \frac{1}{k} \sum_{i=1}^{k}
               \frac{p(x|z_i)\,p(z_i)}{q(z_i|x)}, \qquad z_i \sim q(z|x)

    (Burda et al., 2015). With k = 1 its expectation is the ELBO; it grows towards
    log p(x) as k grows (its bias is about -Var(w) / (2 k E[w]^2)). The weights are
    drawn in blocks of ``chunk // k`` images (at least one) and at most ``chunk`` samples,
    and summed with a running :func:`accumulate_log_sum_exp` in float64, so memory stays
    bounded for any k. Seeded: the same ``rng`` gives the same numbers.

    Returns an (N,) float64 array; -mean of it is the "test log-likelihood" in nats that
    papers report.

    Tested by: tests/test_vae.py::test_log_likelihood_matches_numerical_integration,
    tests/test_vae.py::test_log_likelihood_in_chunks_equals_one_block,
    tests/test_vae.py::test_log_likelihood_is_finite_for_extreme_models,
    tests/test_vae.py::test_log_likelihood_refuses_bad_k
    """
    x = np.asarray(model._check_pixels(x, "log_likelihood"), dtype=model.dtype)
    checks.binary(x, "log_likelihood")
    k = checks.integer(k, "the number of importance samples k", low=1)
    chunk = checks.integer(chunk, "chunk (codes decoded at once)", low=1)
    if len(x) == 0:
        raise ValueError("log_likelihood got an empty dataset")
    rng = checks.generator(rng)
    samples = min(k, chunk)  # samples per block, at most
    images = max(1, chunk // samples)  # images per block
    # log sum_i w_i = m + log(total), total = sum_i exp(log w_i - m), m the largest so far
    m, total = np.full(len(x), -np.inf), np.zeros(len(x))
    for start in range(0, len(x), images):
        block = slice(start, start + images)
        for done in range(0, k, samples):
            lw = log_weights(model, x[block], min(samples, k - done), rng)
            accumulate_log_sum_exp(m[block], total[block], lw)
    return m + np.log(total / k)
