r"""The variational autoencoder: the KL term, the sampling layer, and the model.

**The objective** (Kingma & Welling, *Auto-Encoding Variational Bayes*, 2014). For an image x
and a latent code z with prior p(z) = N(0, I), the encoder defines an approximate posterior
q(z|x) = N(mu(x), diag(sigma^2(x))) and the decoder a likelihood p(x|z). The evidence lower
bound (ELBO) is

.. math::

    \log p(x) \ge \mathrm{ELBO}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)]
                                     - \mathrm{KL}\big(q(z|x) \,\|\, p(z)\big),

and training minimises, over a batch of N images,

.. math::

    L = \frac{1}{N} \sum_{n=1}^{N} \Big( \underbrace{-\log p(x_n | z_n)}_{\text{recon}_n}
        + \beta \, \mathrm{KL}_n \Big), \qquad z_n \sim q(z | x_n),

the negative ELBO in nats per image for beta = 1 (beta != 1 is the beta-VAE of Higgins et al.,
2017). The likelihood is a Bernoulli per pixel with mean sigmoid(s), s the decoder's logits,
so recon_n is the binary cross-entropy summed over pixels (:mod:`npnet.losses`). The pixels
are used as gray targets in [0, 1], not binarised, as in the PyTorch reference example.

**One parameterisation.** The encoder's last layer predicts ``mu`` and ``logvar``
= log sigma^2 (not log sigma), side by side in one (N, 2J) array; everywhere below,
sigma = exp(logvar / 2) and sigma^2 = exp(logvar). ``tests/test_vae.py`` checks this with a
Monte Carlo estimate of the KL drawn from the layer's own sampler.

**The reparameterisation trick.** Sampling z ~ N(mu, sigma^2) is not differentiable in mu
and sigma, but writing the sample as

.. math::  z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim N(0, I)

moves the randomness into eps, a constant of the backward pass: z is then an ordinary
function of (mu, logvar), and dz/dmu = 1, dz/dlogvar = sigma * eps / 2.

**The KL term** between two Gaussians has a closed form (the paper's Appendix B), so it is
computed exactly rather than sampled:

.. math::  \mathrm{KL}_n = -\frac{1}{2} \sum_{j=1}^{J}
           \big(1 + \mathrm{logvar}_{nj} - \mu_{nj}^2 - e^{\mathrm{logvar}_{nj}}\big).

**The IWAE bound** (Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders*,
2015), ``VAE(objective="iwae", k=...)``, is tighter: with k samples z_i ~ q(z|x) and their
importance weights w_i = p(x|z_i) p(z_i) / q(z_i|x),

.. math::  \log p(x) \ge \mathcal{L}_k(x) = \mathbb{E}\Big[\log \frac{1}{k}
           \sum_{i=1}^{k} w_i\Big] \ge \mathcal{L}_1(x) = \mathrm{ELBO}(x),

and it rises with k towards log p(x). Its gradient is the single-sample gradients averaged
with the normalised weights w~_i = w_i / sum_j w_j (:meth:`VAE._iwae_step` derives it).
For k > 1 its KL part is sampled (log p(z_i) - log q(z_i|x)), not the closed form above;
L_1 is the ELBO, and ``VAE(objective="iwae", k=1)`` trains it as the ELBO step does.

**From the math to the code**::

    mu(x), logvar(x)        VAE.encoder (Sequential, last Dense of width 2J), split in half
    z = mu + sigma * eps    Reparameterize.forward        (eps kept in its cache)
    KL_n                    kl_divergence                 (Reparameterize keeps the batch mean)
    dKL_n/dmu, dKL/dlogvar  kl_divergence_backward        (added in Reparameterize.backward)
    logits s(z)             VAE.decoder (Sequential, linear output)
    recon_n, dL/ds          npnet.losses.bce_with_logits
    one step of L           VAE.train_step                (fills VAE.grads; updates nothing)
    log w_i, log p(x)       VAE.log_weights, VAE.log_likelihood (importance sampling)
    one step of -L_k        VAE.train_step with objective="iwae" (VAE._iwae_step)
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .autoencoder import EncoderDecoder, encoder_and_decoder, in_batches
from .layers import Layer, layer_width, sigmoid
from .losses import bce_with_logits, bce_with_logits_per_example, check_binary

__all__ = ["kl_divergence", "kl_divergence_backward", "Reparameterize", "VAE", "LOGVAR_RANGE",
           "log_mean_exp", "accumulate_log_sum_exp", "OBJECTIVES"]

OBJECTIVES = ("elbo", "iwae")  # VAE(objective=...): what train_step minimises

# logvar is clipped to this range before anything uses it (sigma in [3e-7, 2.2e4]). Without
# it, a diverging encoder overflows exp(logvar) in float32 at logvar > 88 and the loss is inf
# rather than large. The clip is part of the forward function and its derivative (0 outside
# the range) part of the backward pass, so gradients are exact; inside the range, which is
# where training lives and where the tests check gradients, the clip does nothing.
LOGVAR_RANGE = (-30.0, 20.0)


def kl_divergence(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    r"""KL(q(z|x) || N(0, I)) for each example, with q = N(mu, diag(exp(logvar))).

    .. math::  \mathrm{KL}_n = \frac{1}{2} \sum_{j=1}^{J}
               \big(\mu_{nj}^2 + e^{\mathrm{logvar}_{nj}} - 1 - \mathrm{logvar}_{nj}\big)

    (the usual ``-1/2 sum(1 + logvar - mu^2 - exp(logvar))``, terms reordered). Each term
    is >= 0 and is 0 exactly at mu = 0, logvar = 0, where q is the prior.

    Its gradient (:func:`kl_divergence_backward`)::

        dKL_n / dmu_nj     = mu_nj
        dKL_n / dlogvar_nj = (exp(logvar_nj) - 1) / 2

    Parameters
    ----------
    mu, logvar : ndarray, (N, J)
        Mean and log-variance (log sigma^2) of q for each example.

    Returns
    -------
    kl : ndarray, (N,)
        In nats, in the dtype of ``mu``.

    Tested by: tests/test_vae.py::test_kl_known_values,
    tests/test_vae.py::test_analytic_kl_matches_monte_carlo
    """
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(
            f"kl_divergence needs mu and logvar of the same shape (N, J), got {mu.shape} "
            f"and {logvar.shape}"
        )
    return 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1)


def kl_divergence_backward(
    mu: np.ndarray, logvar: np.ndarray, dkl: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""Gradient of a loss through :func:`kl_divergence`.

    Given ``dkl`` = dL/dKL_n, shape (N,), the chain rule with the derivatives of KL_n::

        dL/dmu_nj     = dkl_n * mu_nj
        dL/dlogvar_nj = dkl_n * (exp(logvar_nj) - 1) / 2

    For the VAE loss ``L = ... + beta * mean_n KL_n``, every dkl_n is beta / N.

    Parameters
    ----------
    mu, logvar : ndarray, (N, J)
    dkl : ndarray, (N,), or a float (the same for every example)

    Returns
    -------
    dmu, dlogvar : ndarray, (N, J) each

    Tested by: tests/test_vae.py::test_kl_divergence_gradients
    """
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    if np.ndim(dkl) == 0:
        dkl = float(dkl)  # a Python float: a NumPy float64 scalar would upcast float32 arrays
    else:
        dkl = np.asarray(dkl, dtype=mu.dtype)[:, None]
    return dkl * mu, dkl * (np.exp(logvar) - 1) / 2


def log_mean_exp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""``log(mean(exp(a)))`` along ``axis``, finite wherever ``a`` is finite.

    .. math::  \log \frac{1}{k} \sum_{i=1}^{k} e^{a_i}
               = m + \log \frac{1}{k} \sum_{i=1}^{k} e^{a_i - m}, \qquad m = \max_i a_i

    Written naively, ``exp(a)`` overflows for a > 709 and underflows to 0 (log 0 = -inf)
    for a < -745 in float64, and log-weights of images are in the hundreds of nats. With
    the maximum taken out, every exponent is <= 0 and one of them is 0, so the sum is in
    [1, k]. Computed in float64.

    Tested by: tests/test_vae.py::test_log_mean_exp_is_stable_and_exact
    """
    a = np.asarray(a, dtype=np.float64)
    if a.shape[axis] == 0:
        raise ValueError("log_mean_exp of an empty axis: there is nothing to average")
    m = np.max(a, axis=axis, keepdims=True)
    out = m + np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def accumulate_log_sum_exp(m: np.ndarray, total: np.ndarray, a: np.ndarray) -> None:
    r"""Add the terms exp(a) (N, n) to running sums kept as log sum = m + log(total), (N,)
    each, in place: the new maximum m' = max(m, max_i a_i) rescales the old total,

    .. math::  \text{total}' = \text{total}\, e^{m - m'} + \sum_i e^{a_i - m'},

    so no exponent is ever positive. Start from m = -inf, total = 0. While every term so far
    is e^-inf = 0 (m' = -inf), the shift is 0 instead of m': -inf - (-inf) would be NaN, and
    the sum stays an honest log 0 = -inf.

    Tested by: tests/test_vae.py::test_log_likelihood_in_chunks_equals_one_block,
    tests/test_vae.py::test_log_sum_exp_of_zero_weights_is_minus_infinity
    """
    new_m = np.maximum(m, a.max(axis=1))
    shift = np.where(np.isneginf(new_m), 0.0, new_m)
    total *= np.exp(m - shift)
    total += np.exp(a - shift[:, None]).sum(axis=1)
    m[...] = new_m


class Reparameterize(Layer):
    r"""The VAE's sampling layer: z = mu + exp(logvar / 2) * eps, plus the KL term's gradient.

    Its input ``h`` (N, 2J) is the encoder's output, read as two halves::

        mu     = h[:, :J]        mean of q(z|x)
        logvar = h[:, J:]        log sigma^2 of q(z|x);  sigma = exp(logvar / 2)

    Forward, in training mode (``training=True``)::

        eps ~ N(0, I)                 (N, J), from the layer's generator unless injected
        z   = mu + sigma * eps        (N, J)

    In evaluation mode (``training=False``) z = mu: the code of an image is its mean.
    In both modes the layer also computes ``KL_n`` (:func:`kl_divergence`) and keeps the
    batch mean in ``self.kl``: the model adds ``beta * self.kl`` to its loss, and
    ``backward`` adds that term's gradient. logvar is first clipped to
    :data:`LOGVAR_RANGE` (see there); the clip is inactive in the range training uses.

    Backward. The loss is ``L = R(z) + beta * (1/N) sum_n KL_n(mu_n, logvar_n)``, where R
    is the decoder's loss, whose gradient ``dz`` = dR/dz (N, J) arrives from the decoder
    (with R's own 1/N already in it). z_nj depends on mu_nj and logvar_nj only::

        dz_nj/dmu_nj     = 1
        dz_nj/dlogvar_nj = exp(logvar_nj / 2) * eps_nj / 2 = sigma_nj * eps_nj / 2

    and KL_n has dKL_n/dmu_nj = mu_nj, dKL_n/dlogvar_nj = (exp(logvar_nj) - 1) / 2. So::

        dL/dmu     = dz                   + (beta / N) * mu                       (N, J)
        dL/dlogvar = dz * sigma * eps / 2 + (beta / N) * (sigma^2 - 1) / 2        (N, J)
        dL/dh      = [dL/dmu, dL/dlogvar]                                          (N, 2J)

    with the very ``eps`` of the forward pass (kept in the cache). In evaluation mode
    z = mu, so the dz path gives dz to mu and nothing to logvar; the KL terms are the same.
    Where logvar was clipped, dL/dlogvar is 0.

    Parameters
    ----------
    beta : float
        Weight of the KL term (1 gives the ELBO).
    rng : numpy.random.Generator or int or None
        The layer's own source of eps (a seed gives the same eps every run).

    Attributes
    ----------
    kl : float or None
        Mean over the batch of KL_n from the last forward pass, in nats.

    Tested by: tests/test_vae.py::test_reparameterize_gradients,
    tests/test_vae.py::test_samples_have_mean_mu_and_variance_exp_logvar,
    tests/test_vae.py::test_complex_input_is_refused_not_cut_to_its_real_part
    """

    def __init__(
        self,
        beta: float = 1.0,
        rng: np.random.Generator | int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise TypeError(f"beta (the KL weight) must be a number, got {beta!r}")
        if not 0 <= beta < math.inf:
            raise ValueError(f"beta (the KL weight) must be a finite number >= 0, got {beta}")
        self.beta = float(beta)
        self.rng = np.random.default_rng(rng)
        self.kl: float | None = None

    def forward(
        self,
        h: np.ndarray,
        training: bool = True,
        eps: np.ndarray | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """z (N, J) from h = [mu, logvar] (N, 2J); see the class docstring.

        Parameters
        ----------
        h : ndarray, (N, 2J)
        training : bool
            Sample z (True) or return z = mu (False).
        eps : ndarray, (N, J), optional
            The noise to use instead of drawing it (tests inject it). Training mode only.
        rng : numpy.random.Generator or int, optional
            Draw eps from this generator, this call only, instead of the layer's own.
        """
        h = self._real_input(h)
        if not np.issubdtype(h.dtype, np.floating):
            h = h.astype(np.float64)
        if h.ndim != 2 or h.shape[1] % 2 or h.shape[1] == 0:
            raise ValueError(
                f"{self.describe()} expects h of shape (N, 2J), mu and logvar side by side, "
                f"so an even, positive number of columns; got {h.shape}"
            )
        n, latent = h.shape[0], h.shape[1] // 2
        if n == 0:
            raise ValueError(f"{self.describe()} got an empty batch, shape {h.shape}")
        mu = h[:, :latent]
        logvar = np.clip(h[:, latent:], *LOGVAR_RANGE)
        clipped = logvar != h[:, latent:]
        clipped = clipped if clipped.any() else None

        self.kl = float(kl_divergence(mu, logvar).mean())
        sigma = np.exp(0.5 * logvar)
        if not training:
            if eps is not None:
                raise ValueError(f"{self.describe()}: eps is only used with training=True")
            self.cache = (mu, logvar, sigma, None, clipped)
            return mu.copy()
        if eps is None:
            generator = self.rng if rng is None else np.random.default_rng(rng)
            eps = generator.standard_normal((n, latent), dtype=h.dtype)
        else:
            eps = np.asarray(eps, dtype=h.dtype)
            if eps.shape != (n, latent):
                raise ValueError(
                    f"{self.describe()}: eps must have the shape of mu, ({n}, {latent}), "
                    f"got {eps.shape}"
                )
        self.cache = (mu, logvar, sigma, eps, clipped)
        return mu + sigma * eps

    def backward(self, dz: np.ndarray) -> np.ndarray:
        """dL/dh (N, 2J) from dz = dR/dz (N, J), with the KL term's gradient added."""
        mu, logvar, sigma, eps, clipped = self._cached(dz)
        dz = self._check_dout(dz, mu.shape).astype(mu.dtype, copy=False)
        n = mu.shape[0]
        # The KL term, weight beta, averaged over the batch: dL/dKL_n = beta / N for every n.
        dmu_kl, dlogvar_kl = kl_divergence_backward(mu, logvar, self.beta / n)

        if eps is None:  # evaluation mode: z = mu does not depend on logvar
            dlogvar = dlogvar_kl
        else:  # dz_nj/dlogvar_nj = sigma_nj * eps_nj / 2
            dlogvar = dz * sigma * eps / 2 + dlogvar_kl
        if clipped is not None:
            dlogvar = np.where(clipped, 0, dlogvar)
        dmu = dz + dmu_kl  # dz_nj/dmu_nj = 1
        return np.concatenate([dmu, dlogvar], axis=1)  # (N, 2J)

    def __repr__(self) -> str:
        return f"Reparameterize(beta={self.beta}, name={self.name!r})"


class VAE(EncoderDecoder):
    """A variational autoencoder of npnet layers: encoder, sampling layer, decoder.

    Default shape (the PyTorch example's, one hidden layer deeper)::

        encoder  784 -> 512 -> 256 -> 2J      Dense, ReLU, Dense, ReLU, Dense ([mu, logvar])
        sampler  2J -> J                       Reparameterize (z = mu + sigma * eps, KL)
        decoder    J -> 256 -> 512 -> 784      Dense, ReLU, Dense, ReLU, Dense (logits)

    The decoder outputs logits s; the images are their Bernoulli means sigmoid(s). The loss
    (module docstring) is BCE-with-logits summed over pixels plus beta * KL, averaged over
    the batch, in nats per image.

    Parameters
    ----------
    input_dim : int
        D, pixels per image.
    hidden : tuple of int, optional
        Encoder hidden Dense widths, outermost first; the decoder mirrors them. Default
        (512, 256) for ``arch="dense"``, none for ``arch="conv"``.
    latent : int
        J, the dimension of z (J for the latent size, as in Kingma & Welling's
        Appendix B; L is the loss).
    beta : float
        Weight of the KL term.
    activation : str
        Hidden activation, a key of :data:`npnet.layers.ACTIVATIONS`.
    rng : numpy.random.Generator or int or None
        Initial weights, then the sampler's own generator.
    dtype : numpy dtype
        float32 to train, float64 for gradient checks.
    arch : {"dense", "conv"}
        Dense layers only, or convolutions first
        (:func:`npnet.autoencoder.encoder_and_decoder`): 784 -> 14x14x32 -> 7x7x64 -> 2J,
        and J -> 7x7x64 -> 14x14x32 -> 784 with transposed convolutions.
    channels : tuple of int
        The convolutions' output channels, encoder order (``arch="conv"`` only).
    objective : {"elbo", "iwae"}
        What :meth:`train_step` minimises: the negative ELBO with the KL term in closed form
        (one sample per image), or the negative IWAE bound -L_k with ``k`` samples per image
        (binary images only; beta must be 1). With k = 1, L_1 is the ELBO and the step is the
        ELBO step, bit for bit.
    k : int
        Importance samples per image for ``objective="iwae"`` (1 for ``"elbo"``).

    Attributes
    ----------
    params, grads : dict[str, ndarray]
        All parameters under ``"encoder.<i>.<W|b>"`` and ``"decoder.<i>.<W|b>"``; the
        layers' own arrays, so an optimizer updates them in place. The sampler has none.

    Tested by: tests/test_vae.py::test_whole_vae_loss_gradients,
    tests/test_vae.py::test_training_reduces_the_loss,
    tests/test_vae.py::test_vae_widths_must_be_integers,
    tests/test_vae.py::test_iwae_gradients, tests/test_vae.py::test_bad_objectives_are_refused
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden: tuple[int, ...] | None = None,
        latent: int = 20,
        beta: float = 1.0,
        activation: str = "relu",
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
        arch: str = "dense",
        channels: tuple[int, ...] = (32, 64),
        objective: str = "elbo",
        k: int = 1,
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of "
                             + ", ".join(map(repr, OBJECTIVES)))
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"the number of importance samples k must be an integer >= 1, "
                             f"got {k!r}")
        if objective == "elbo" and k != 1:
            raise ValueError(f"objective='elbo' takes one sample per image, got k={k}; "
                             "for k samples use objective='iwae'")
        if objective == "iwae" and beta != 1:
            raise ValueError(f"objective='iwae' is a bound on log p(x), which has no KL "
                             f"weight: beta must be 1, got {beta}")
        self.objective, self.k = objective, int(k)
        rng = np.random.default_rng(rng)
        self.input_dim = layer_width(input_dim, "input_dim")
        self.latent_dim = layer_width(latent, "latent")
        self.arch, self.dtype = arch, np.dtype(dtype)
        self.encoder, self.decoder = encoder_and_decoder(
            arch, self.input_dim, hidden, 2 * self.latent_dim, self.latent_dim, activation,
            None, channels, default_hidden=(512, 256), rng=rng, dtype=dtype)
        self.sampler = Reparameterize(beta, rng=rng.spawn(1)[0], name="sampler")

    @property
    def beta(self) -> float:
        """The KL weight, which lives in the sampler (it adds the KL gradient)."""
        return self.sampler.beta

    def forward(
        self,
        x: np.ndarray,
        training: bool = True,
        eps: np.ndarray | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """Logits s (N, D) of the reconstruction of x (N, D); keeps caches for ``backward``.

        ``training``, ``eps`` and ``rng`` go to the sampler (:meth:`Reparameterize.forward`);
        afterwards ``self.sampler.kl`` holds the batch's mean KL.
        """
        h = self.encoder.forward(x)  # which casts x to the model's dtype
        z = self.sampler.forward(h, training=training, eps=eps, rng=rng)
        return self.decoder.forward(z)

    def backward(self, dlogits: np.ndarray) -> np.ndarray:
        """dL/dx (N, D) through the encoder from dL/ds (N, D); fills ``grads``.

        The sampler adds the KL term's gradient on the way, so L here is the decoder's loss
        plus ``beta * sampler.kl``.
        """
        dh = self.sampler.backward(self.decoder.backward(dlogits))
        return self.encoder.backward(dh)

    def train_step(
        self,
        x: np.ndarray,
        rng: np.random.Generator | int | None = None,
        eps: np.ndarray | None = None,
    ) -> dict[str, float]:
        """Forward and backward on one batch x (N, D) in [0, 1]; fills ``grads``, updates nothing.

        Parameters
        ----------
        x : ndarray, (N, D)
            The images, both the encoder's input and the decoder's (gray) targets.
        rng : numpy.random.Generator or int, optional
            Where eps comes from this step (the training loop passes one per epoch);
            the sampler's own generator otherwise.
        eps : ndarray, (N, J), optional
            Fixed noise instead (gradient checks); (N, k, J) for ``objective="iwae"``.

        Returns
        -------
        dict
            ``{"loss": recon + beta * kl, "recon": ..., "kl": ...}``, means over the
            batch, in nats per image; ``{"loss": -L_k}`` for ``objective="iwae"`` with
            k > 1 (with k = 1, the ELBO step's dict: -L_1 with the KL in closed form).
        """
        x = np.asarray(self._check_pixels(x, "train_step"), dtype=self.dtype)
        if self.objective == "iwae":
            check_binary(x, "objective='iwae'")
            if self.k > 1:
                return self._iwae_step(x, rng, eps)
            # k = 1: L_1 is the ELBO, trained as the ELBO step trains it, with the KL in
            # closed form; _iwae_step's docstring shows its sampled KL has the same mean.
            # The sampler draws its (N, J) eps from rng as _iwae_step draws (N, 1, J).
            eps = None if eps is None else self._iwae_eps(eps, len(x))[:, 0]
        logits = self.forward(x, training=True, eps=eps, rng=rng)
        recon, dlogits = bce_with_logits(logits, x)
        kl = self.sampler.kl
        self.backward(dlogits)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def _iwae_step(self, x: np.ndarray, rng, eps: np.ndarray | None) -> dict[str, float]:
        r"""Forward and backward of the negative IWAE bound on a batch x (N, D) of binary
        images; fills ``grads``.

        **Forward.** h = [mu, logvar] = encoder(x) (N, 2J), logvar clipped as the sampler
        clips it, sigma = exp(logvar / 2). For every image n and sample i = 1..k::

            z_ni     = mu_n + sigma_n * eps_ni                      (N, k, J)
            s_ni     = decoder(z_ni)                                (N k, D) logits
            log w_ni = log p(x_n|z_ni) + log p(z_ni) - log q(z_ni|x_n)
                     = -BCE(s_ni, x_n) - 1/2 sum_j (z_nij^2 - eps_nij^2 - logvar_nj)
            L        = -(1/N) sum_n log (1/k) sum_i w_ni            (the loss, nats)

        (:meth:`log_weights` derives the Gaussian part.) The log-mean-exp takes the maximum
        out (:func:`log_mean_exp`).

        **Backward.** d/dtheta log sum_i w_i = sum_i (w_i / sum_j w_j) d/dtheta log w_i:
        each single-sample gradient weighted by the normalised weight
        w~_ni = w_ni / sum_j w_nj (a softmax over i of log w_ni). So with
        c_ni = w~_ni / N = -dL/dlog w_ni::

            dL/ds_ni     = c_ni * (sigmoid(s_ni) - x_n)                           (N k, D)
            dL/dz_ni     = decoder.backward(dL/ds)_ni + c_ni * z_ni               (N, k, J)
            dL/dmu_n     = sum_i dL/dz_ni                       (dz/dmu = 1)      (N, J)
            dL/dlogvar_n = sum_i dL/dz_ni * sigma_n * eps_ni / 2 - 1 / (2 N)      (N, J)

        The c z term is the derivative of -c log p(z) - (-c log q), -c (-z^2 / 2), through
        z; the -1/(2N) is the explicit logvar in log q, with sum_i w~_ni = 1; where logvar
        was clipped its gradient is 0. With k = 1, w~ = 1 exactly, so the decoder's
        gradients are the ELBO step's own bits; the encoder's differ by the sampled KL
        (E over eps of the difference is 0), which is why :meth:`train_step` trains k = 1
        as the ELBO, with the KL in closed form: the same gradient in expectation, with less
        noise, and the VAE's bits.

        Tested by: tests/test_vae.py::test_iwae_gradients,
        tests/test_vae.py::test_iwae_with_one_sample_is_the_elbo_step
        """
        n, k, latent = len(x), self.k, self.latent_dim
        h = self.encoder.forward(x)  # (N, 2J)
        mu = h[:, :latent]
        logvar = np.clip(h[:, latent:], *LOGVAR_RANGE)
        clipped = logvar != h[:, latent:]
        sigma = np.exp(0.5 * logvar)
        if eps is None:
            generator = self.sampler.rng if rng is None else np.random.default_rng(rng)
            eps = generator.standard_normal((n, k, latent), dtype=h.dtype)
        else:
            eps = self._iwae_eps(eps, n)
        z = mu[:, None, :] + sigma[:, None, :] * eps  # (N, k, J)
        logits = self.decoder.forward(z.reshape(n * k, latent))  # (N k, D)
        targets = np.repeat(x, k, axis=0)  # row n k + i is image n
        log_px_z = -bce_with_logits_per_example(logits, targets).reshape(n, k)
        log_pz_over_qz = -0.5 * np.sum(z**2 - eps**2 - logvar[:, None, :], axis=2)  # (N, k)
        log_w = log_px_z + log_pz_over_qz
        m = log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w - m)
        total = w.sum(axis=1, keepdims=True)
        loss = -float(np.mean(m[:, 0] + np.log(total[:, 0] / k), dtype=np.float64))
        w_tilde = w / total  # (N, k), each row sums to 1

        dlogits = (sigmoid(logits) - targets) * w_tilde.reshape(n * k, 1) / n
        dz = self.decoder.backward(dlogits).reshape(n, k, latent)
        dz += (w_tilde / n)[:, :, None] * z
        dmu = dz.sum(axis=1)
        dlogvar = (dz * eps).sum(axis=1) * sigma / 2 - 0.5 / n
        dlogvar[clipped] = 0
        self.encoder.backward(np.concatenate([dmu, dlogvar], axis=1))
        return {"loss": loss}

    def _iwae_eps(self, eps: np.ndarray, n: int) -> np.ndarray:
        """Injected IWAE noise as an (N, k, J) array of the model's dtype, or a clear error."""
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.shape != (n, self.k, self.latent_dim):
            raise ValueError(f"eps must have the shape (N, k, J) = ({n}, {self.k}, "
                             f"{self.latent_dim}), got {eps.shape}")
        return eps

    def evaluate(
        self,
        x: np.ndarray,
        batch_size: int = 1000,
        rng: np.random.Generator | int | None = 0,
    ) -> dict[str, float]:
        """The training losses on a whole dataset x (N, D): no gradients, in batches.

        z is *sampled* from q(z|x) with ``rng`` (seeded: the same number every call), so
        ``loss`` is a single-sample estimate of the negative ELBO (for beta = 1), the
        number the PyTorch reference example reports. Returns ``{"loss", "recon", "kl"}``
        in nats per image, summed in float64. With ``objective="iwae"``: ``{"loss": -L_k}``,
        the k-sample bound (:meth:`log_likelihood` with the model's k).
        """
        x = np.asarray(self._check_pixels(x, "evaluate"), dtype=self.dtype)
        if len(x) == 0:
            raise ValueError("evaluate got an empty dataset")
        if self.objective == "iwae":  # the training objective: the k-sample bound
            return {"loss": -float(np.mean(self.log_likelihood(x, self.k, rng)))}
        rng = np.random.default_rng(rng)
        recon_total = kl_total = 0.0
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            logits = self.forward(batch, training=True, rng=rng)
            recon_total += float(bce_with_logits_per_example(logits, batch).sum(dtype=np.float64))
            kl_total += self.sampler.kl * len(batch)
        recon, kl = recon_total / len(x), kl_total / len(x)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def log_weights(
        self,
        x: np.ndarray,
        k: int,
        rng: np.random.Generator | int | None = 0,
        eps: np.ndarray | None = None,
    ) -> np.ndarray:
        r"""Importance log-weights ``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)``,
        z_i ~ q(z|x), for a batch x (N, D) of binary images: an (N, k) float64 array.

        With z = mu + sigma * eps (eps ~ N(0, I), sigma = exp(logvar / 2), logvar clipped
        as the sampler clips it) the Gaussian densities' constants cancel::

            log p(z)   = -1/2 sum_j (z_j^2 + log 2 pi)
            log q(z|x) = -1/2 sum_j (eps_j^2 + log 2 pi + logvar_j)
            log p(z) - log q(z|x) = -1/2 sum_j (z_j^2 - eps_j^2 - logvar_j)

        and ``log p(x|z)`` is minus the Bernoulli cross-entropy of x under the decoder's
        logits, summed over pixels (:func:`npnet.losses.bce_with_logits_per_example`).
        E_q[log w] is the ELBO; :meth:`log_likelihood` averages the weights themselves.
        The decoder runs on N k codes at once: call it on slices of x to bound memory.
        ``eps`` (N, k, J), in the model's dtype, replaces the draw from ``rng``.

        Tested by: tests/test_vae.py::test_log_likelihood_matches_numerical_integration
        """
        x = np.asarray(self._check_pixels(x, "log_weights"), dtype=self.dtype)
        check_binary(x, "log_weights")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"the number of importance samples k must be an integer >= 1, "
                             f"got {k!r}")
        h = self.encoder.forward(x)
        mu, logvar = h[:, : self.latent_dim], np.clip(h[:, self.latent_dim :], *LOGVAR_RANGE)
        if eps is None:
            eps = self._draw_eps(np.random.default_rng(rng), len(x), k)
        elif (eps := np.asarray(eps, dtype=self.dtype)).shape != (len(x), k, self.latent_dim):
            raise ValueError(f"eps must have the shape (N, k, J) = ({len(x)}, {k}, "
                             f"{self.latent_dim}), got {eps.shape}")
        z = mu[:, None, :] + np.exp(logvar / 2)[:, None, :] * eps  # (N, k, J)
        logits = self.decoder.forward(z.reshape(-1, self.latent_dim))  # (N k, D)
        targets = np.repeat(x, k, axis=0)  # row n k + i is image n
        log_px_z = -bce_with_logits_per_example(logits, targets).astype(np.float64)
        z64, lv64 = z.astype(np.float64), logvar.astype(np.float64)[:, None, :]
        eps64 = eps.astype(np.float64)
        log_pz_over_qz = -0.5 * np.sum(z64**2 - eps64**2 - lv64, axis=2)  # (N, k)
        return log_px_z.reshape(len(x), k) + log_pz_over_qz

    def _check_likelihood_args(self, x: np.ndarray, k: int, chunk: int) -> np.ndarray:
        """x as an array of the model's dtype if :meth:`log_likelihood` can take x, k and
        chunk; a ValueError that says what to pass otherwise."""
        x = np.asarray(self._check_pixels(x, "log_likelihood"), dtype=self.dtype)
        check_binary(x, "log_likelihood")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"the number of importance samples k must be an integer >= 1, "
                             f"got {k!r}")
        if len(x) == 0:
            raise ValueError("log_likelihood got an empty dataset")
        if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
            raise ValueError(f"chunk (codes decoded at once) must be an integer >= 1, "
                             f"got {chunk!r}")
        return x

    def _draw_eps(self, rng: np.random.Generator, n: int, k: int) -> np.ndarray:
        """k draws of eps ~ N(0, I) for each of n images: (n, k, J) in the model's dtype."""
        return rng.standard_normal((n, k, self.latent_dim), dtype=self.dtype)

    def log_likelihood_blocks(self, n_images: int, k: int, chunk: int):
        """The blocks :meth:`log_likelihood` works in: ``(start, stop, samples)`` tuples, in
        order, each ``samples`` log-weights of images ``start:stop``."""
        per_block = min(k, chunk)  # samples per block
        images = max(1, chunk // per_block)
        for start in range(0, n_images, images):
            for done in range(0, k, per_block):
                yield start, min(start + images, n_images), min(per_block, k - done)

    def log_likelihood(
        self,
        x: np.ndarray,
        k: int = 5000,
        rng: np.random.Generator | int | None = 0,
        chunk: int = 1000,
    ) -> np.ndarray:
        r"""The importance-sampled estimate of log p(x), in nats, for each image of x (N, D).

        .. math::  \log p(x) \approx \log \frac{1}{k} \sum_{i=1}^{k}
                   \frac{p(x|z_i)\,p(z)}{q(z_i|x)}, \qquad z_i \sim q(z|x)

        (Burda et al., 2015). With k = 1 its expectation is the ELBO; it grows towards
        log p(x) as k grows (its bias is about -Var(w) / (2 k E[w]^2)). The weights are
        drawn ``chunk // k`` images (at least one) and ``chunk`` samples at a time at most
        (:meth:`log_likelihood_blocks`), and combined with a running :func:`log_mean_exp`
        in float64, so memory stays bounded for any k (``chunk`` = 1,000 codes of 784
        pixels: logits and targets of about 3 MB each in float32, small enough to stay in
        the processor's cache between the passes over them). Seeded: the same ``rng``
        gives the same numbers.

        Returns an (N,) float64 array; -mean of it is the "test log-likelihood" in nats
        that papers report.

        Tested by: tests/test_vae.py::test_log_likelihood_matches_numerical_integration,
        tests/test_vae.py::test_log_likelihood_in_chunks_equals_one_block,
        tests/test_vae.py::test_log_likelihood_is_finite_for_extreme_models,
        tests/test_vae.py::test_log_likelihood_refuses_bad_k
        """
        x = self._check_likelihood_args(x, k, chunk)
        rng = np.random.default_rng(rng)
        # A running log-sum-exp over the blocks of each image's samples:
        # log sum_i w_i = m + log(total), total = sum_i exp(log w_i - m), m the largest so far.
        m, total = np.full(len(x), -np.inf), np.zeros(len(x))
        for start, stop, samples in self.log_likelihood_blocks(len(x), k, chunk):
            eps = self._draw_eps(rng, stop - start, samples)
            lw = self.log_weights(x[start:stop], samples, eps=eps)
            accumulate_log_sum_exp(m[start:stop], total[start:stop], lw)
        return m + np.log(total / k)

    def init_output_bias(self, x_train: np.ndarray, clip: float = 1e-3) -> None:
        """Set the decoder's output bias to the logit of the mean training image,
        log(p / (1 - p)) with p the mean of each pixel clipped to [clip, 1 - clip]: an
        untrained decoder then predicts the average digit rather than gray 0.5 everywhere
        (Burda et al., 2015). Needs a decoder that ends in a Dense layer.

        Tested by: tests/test_vae.py::test_init_output_bias_predicts_the_mean_image,
        tests/test_vae.py::test_init_output_bias_refuses_what_is_not_a_set_of_images
        """
        last = self.decoder.layers[-1]
        if "b" not in last.params or last.params["b"].shape != (self.input_dim,):
            raise ValueError(f"init_output_bias needs a decoder that ends in a Dense layer "
                             f"of {self.input_dim} outputs, got {last.describe()}")
        x_train = np.asarray(self._check_pixels(x_train, "init_output_bias"))
        if x_train.ndim != 2 or x_train.shape[1] != self.input_dim or len(x_train) == 0:
            raise ValueError(f"init_output_bias needs training images of shape (N, "
                             f"{self.input_dim}) with N >= 1, one image per row; got "
                             f"{x_train.shape}")
        p = np.clip(x_train.mean(axis=0, dtype=np.float64), clip, 1 - clip)
        last.params["b"][...] = np.log(p / (1 - p))

    def encode(self, x: np.ndarray, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar) of q(z|x), each (N, J), for images x (N, D); logvar = log sigma^2,
        as the encoder predicts it (before the sampler's clip)."""
        h = in_batches(self.encoder.forward, np.asarray(x), batch_size)
        return h[:, : self.latent_dim].copy(), h[:, self.latent_dim :].copy()

    def decode(self, z: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """Images sigmoid(s(z)) (N, D), the Bernoulli means, for codes z (N, J)."""
        logits = in_batches(self.decoder.forward, np.asarray(z), batch_size)
        return sigmoid(logits)

    def reconstruct(self, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """decode(mu(x)) (N, D): the reconstruction from the mean code, no sampling."""
        return self.decode(self.encode(x, batch_size)[0], batch_size)

    def __repr__(self) -> str:
        return (
            f"VAE(encoder={self.encoder!r},\n    sampler={self.sampler!r},\n"
            f"    decoder={self.decoder!r})"
        )
