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

**Importance sampling** builds on this model: the log-likelihood log p(x) that papers
report, and the IWAE bound that ``VAE(objective="iwae", k=...)`` trains on, are in
:mod:`npnet.importance`.

**From the math to the code**::

    mu(x), logvar(x)        VAE.encoder (Sequential, last Dense of width 2J), then
                            Reparameterize.split          (logvar clipped to LOGVAR_RANGE)
    z = mu + sigma * eps    Reparameterize.forward        (eps kept in its cache)
    KL_n                    kl_divergence                 (Reparameterize keeps the batch mean)
    dKL_n/dmu, dKL/dlogvar  kl_divergence_backward        (added in Reparameterize.backward)
    logits s(z)             VAE.decoder (Sequential, linear output)
    recon_n, dL/ds          npnet.losses.bce_with_logits
    one step of L           VAE.train_step                (fills VAE.grads; updates nothing)
    log w_i, log p(x), -L_k VAE.log_weights, VAE.log_likelihood, objective="iwae"
                            (npnet.importance)
"""

from __future__ import annotations

import numpy as np

from . import checks, importance
from .autoencoder import EncoderDecoder, encoder_and_decoder, in_batches
from .importance import accumulate_log_sum_exp, log_mean_exp  # where they were before
from .layers import Layer, sigmoid
from .losses import bce_with_logits, bce_with_logits_per_example

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

    mu and logvar (log sigma^2) are (N, J); returns KL_n (N,), in nats, in mu's dtype.

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

    mu and logvar are (N, J), dkl (N,) or one float for every example; returns dmu and
    dlogvar, (N, J) each.

    Tested by: tests/test_vae.py::test_kl_divergence_gradients
    """
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    if np.ndim(dkl) == 0:
        dkl = float(dkl)  # a Python float: a NumPy float64 scalar would upcast float32 arrays
    else:
        dkl = np.asarray(dkl, dtype=mu.dtype)[:, None]
    return dkl * mu, dkl * (np.exp(logvar) - 1) / 2


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

    ``beta`` weighs the KL term (1 gives the ELBO); ``rng`` is the layer's own source of eps
    (a seed gives the same eps every run); ``kl`` is the batch mean of KL_n from the last
    forward pass, in nats.

    Tested by: tests/test_vae.py::test_reparameterize_gradients,
    tests/test_vae.py::test_samples_have_mean_mu_and_variance_exp_logvar,
    tests/test_vae.py::test_complex_input_is_refused_not_cut_to_its_real_part
    """

    def __init__(self, beta: float = 1.0, rng: np.random.Generator | int | None = None,
                 name: str | None = None):
        super().__init__(name)
        self.beta = checks.non_negative(beta, "beta (the KL weight)")
        self.rng = np.random.default_rng(rng)
        self.kl: float | None = None

    @staticmethod
    def split(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """mu (N, J) and logvar (N, J) from h = [mu, logvar] (N, 2J), logvar clipped to
        :data:`LOGVAR_RANGE`, and where the clip changed it (N, J) bool: its gradient is 0
        there. The one place both halves are read, for the sampler and for
        :mod:`npnet.importance`."""
        latent = h.shape[1] // 2
        logvar = np.clip(h[:, latent:], *LOGVAR_RANGE)
        return h[:, :latent], logvar, logvar != h[:, latent:]

    def noise(self, shape: tuple, dtype, rng: np.random.Generator | int | None = None
              ) -> np.ndarray:
        """eps ~ N(0, I) of ``shape`` and ``dtype``, from ``rng`` if given, else from the
        layer's own generator."""
        generator = self.rng if rng is None else np.random.default_rng(rng)
        return generator.standard_normal(shape, dtype=dtype)

    def forward(self, h: np.ndarray, training: bool = True, eps: np.ndarray | None = None,
                rng: np.random.Generator | int | None = None) -> np.ndarray:
        """z (N, J) from h = [mu, logvar] (N, 2J): sampled (``training=True``) or mu.

        ``eps`` (N, J) replaces the draw (tests inject it; training mode only); ``rng``
        draws it, this call only, instead of the layer's own generator.
        """
        h = self._real_input(h)
        if not np.issubdtype(h.dtype, np.floating):
            h = h.astype(np.float64)
        mu, logvar, clipped = self.split(checks.mean_and_logvar(h, self.describe()))
        self.kl = float(kl_divergence(mu, logvar).mean())
        sigma = np.exp(0.5 * logvar)
        if not training:
            if eps is not None:
                raise ValueError(f"{self.describe()}: eps is only used with training=True")
            self.cache = (mu, logvar, sigma, None, clipped)
            return mu.copy()
        if eps is None:
            eps = self.noise(mu.shape, h.dtype, rng)
        else:
            eps = checks.shape(np.asarray(eps, dtype=h.dtype), mu.shape,
                               f"{self.describe()}: eps must have the shape of mu,")
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
        dlogvar[clipped] = 0  # the clip's derivative
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
    rng, dtype
        Initial weights, then the sampler's own generator; float32 to train, float64 for
        gradient checks.
    arch, channels
        ``"dense"``, or ``"conv"``: convolutions with ``channels`` first
        (:func:`npnet.autoencoder.encoder_and_decoder`), 784 -> 14x14x32 -> 7x7x64 -> 2J, and
        J -> 7x7x64 -> 14x14x32 -> 784 with transposed convolutions.
    objective, k : {"elbo", "iwae"}, int
        What :meth:`train_step` minimises: the negative ELBO with the KL term in closed form
        (one sample per image, k = 1), or the negative IWAE bound -L_k with k samples per
        image (:mod:`npnet.importance`; binary images only; beta must be 1).

    ``params`` and ``grads`` hold all parameters under ``"encoder.<i>.<W|b>"`` and
    ``"decoder.<i>.<W|b>"``: the layers' own arrays, which an optimizer updates in place.

    Tested by: tests/test_vae.py::test_whole_vae_loss_gradients,
    tests/test_vae.py::test_training_reduces_the_loss,
    tests/test_vae.py::test_vae_widths_must_be_integers,
    tests/test_vae.py::test_iwae_gradients, tests/test_vae.py::test_bad_objectives_are_refused
    """

    def __init__(self, input_dim: int = 784, hidden: tuple[int, ...] | None = None,
                 latent: int = 20, beta: float = 1.0, activation: str = "relu",
                 rng: np.random.Generator | int | None = None, dtype=np.float32,
                 arch: str = "dense", channels: tuple[int, ...] = (32, 64),
                 objective: str = "elbo", k: int = 1):
        self.objective, self.k = checks.objective(objective, OBJECTIVES, k, beta)
        rng = np.random.default_rng(rng)
        self.input_dim = checks.width(input_dim, "input_dim")
        self.latent_dim = checks.width(latent, "latent")
        self.arch, self.dtype = arch, np.dtype(dtype)
        self.encoder, self.decoder = encoder_and_decoder(
            arch, self.input_dim, hidden, 2 * self.latent_dim, self.latent_dim, activation,
            None, channels, default_hidden=(512, 256), rng=rng, dtype=dtype)
        self.sampler = Reparameterize(beta, rng=rng.spawn(1)[0], name="sampler")

    @property
    def beta(self) -> float:
        """The KL weight, which lives in the sampler (it adds the KL gradient)."""
        return self.sampler.beta

    def forward(self, x: np.ndarray, training: bool = True, eps: np.ndarray | None = None,
                rng: np.random.Generator | int | None = None) -> np.ndarray:
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

    def train_step(self, x: np.ndarray, rng: np.random.Generator | int | None = None,
                   eps: np.ndarray | None = None) -> dict[str, float]:
        """Forward and backward on one batch x (N, D) in [0, 1]; fills ``grads``, updates nothing.

        x is both the encoder's input and the decoder's (gray) target. eps comes from ``rng``
        (the training loop passes one per epoch), else from the sampler's own generator;
        ``eps`` (N, J) fixes it instead (gradient checks), (N, k, J) for the IWAE.

        Returns ``{"loss": recon + beta * kl, "recon": ..., "kl": ...}``, means over the
        batch in nats per image; ``{"loss": -L_k}`` for ``objective="iwae"`` with k > 1
        (:func:`npnet.importance.iwae_step`; with k = 1, L_1 is the ELBO, and this is the
        ELBO step with the KL in closed form).
        """
        if self.objective == "iwae" and self.k > 1:
            return importance.iwae_step(self, x, rng, eps)
        x = np.asarray(self._check_pixels(x, "train_step"), dtype=self.dtype)
        if self.objective == "iwae":  # k = 1: L_1 is the ELBO, trained with the KL in
            checks.binary(x, "objective='iwae'")  # closed form (iwae_step's docstring)
            if eps is not None:  # (N, 1, J), drawn as the (N, J) the sampler draws
                eps = checks.shape(np.asarray(eps, dtype=self.dtype), (len(x), 1,
                                   self.latent_dim), "eps must have the shape (N, k, J) =")[:, 0]
        logits = self.forward(x, training=True, eps=eps, rng=rng)
        recon, dlogits = bce_with_logits(logits, x)
        kl = self.sampler.kl
        self.backward(dlogits)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def evaluate(self, x: np.ndarray, batch_size: int = 1000,
                 rng: np.random.Generator | int | None = 0) -> dict[str, float]:
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
            return {"loss": -float(np.mean(importance.log_likelihood(self, x, self.k, rng)))}
        rng = np.random.default_rng(rng)
        recon_total = kl_total = 0.0
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            logits = self.forward(batch, training=True, rng=rng)
            recon_total += float(bce_with_logits_per_example(logits, batch).sum(dtype=np.float64))
            kl_total += self.sampler.kl * len(batch)
        recon, kl = recon_total / len(x), kl_total / len(x)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def log_weights(self, x: np.ndarray, k: int, rng: np.random.Generator | int | None = 0,
                    eps: np.ndarray | None = None) -> np.ndarray:
        """Importance log-weights log w_i (N, k) of binary images x (N, D):
        :func:`npnet.importance.log_weights`."""
        return importance.log_weights(self, x, k, rng, eps)

    def log_likelihood(self, x: np.ndarray, k: int = 5000,
                       rng: np.random.Generator | int | None = 0, chunk: int = 1000
                       ) -> np.ndarray:
        """The importance-sampled estimate of log p(x) (N,), in nats, for binary images
        x (N, D): :func:`npnet.importance.log_likelihood`."""
        return importance.log_likelihood(self, x, k, rng, chunk)

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
