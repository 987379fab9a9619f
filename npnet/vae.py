r"""The variational autoencoder: the model and its loss, the negative ELBO.

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
2017). The likelihood is a Bernoulli per pixel with mean sigmoid(a), a the decoder's logits,
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
                            (the three in npnet.reparameterize)
    logits a(z)             VAE.decoder (Sequential, linear output)
    recon_n, dL/da          npnet.losses.bce_with_logits
    one step of L           VAE.train_step                (fills VAE.grads; updates nothing)
    log w_i, log p(x), -L_k VAE.log_weights, VAE.log_likelihood, objective="iwae"
                            (npnet.importance)
"""

from __future__ import annotations

import numpy as np

from . import checks, importance
from .autoencoder import EncoderDecoder, encoder_and_decoder, in_batches
from .importance import accumulate_log_sum_exp, log_mean_exp  # where they were before
from .layers import sigmoid
from .losses import bce_with_logits, bce_with_logits_per_example
from .reparameterize import LOGVAR_RANGE, Reparameterize, kl_divergence, kl_divergence_backward

__all__ = ["kl_divergence", "kl_divergence_backward", "Reparameterize", "VAE", "LOGVAR_RANGE",
           "log_mean_exp", "accumulate_log_sum_exp", "OBJECTIVES"]

OBJECTIVES = ("elbo", "iwae")  # VAE(objective=...): what train_step minimises

class VAE(EncoderDecoder):
    """A variational autoencoder of npnet layers: encoder, sampling layer, decoder.

    Default shape (the PyTorch example's, one hidden layer deeper)::

        encoder  784 -> 512 -> 256 -> 2J      Dense, ReLU, Dense, ReLU, Dense ([mu, logvar])
        sampler  2J -> J                       Reparameterize (z = mu + sigma * eps, KL)
        decoder    J -> 256 -> 512 -> 784      Dense, ReLU, Dense, ReLU, Dense (logits)

    The decoder outputs logits a; the images are their Bernoulli means sigmoid(a). The loss
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
        rng = checks.generator(rng)
        self.input_dim = checks.width(input_dim, "input_dim")
        self.latent_dim = checks.width(latent, "latent")
        self.arch, self.dtype = arch, checks.floating_dtype(dtype, "a VAE")
        if self.dtype not in (np.float32, np.float64):  # what NumPy's normal sampler draws
            raise TypeError(f"a VAE samples its codes in float32 or float64, got {self.dtype}")
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
        """Logits a (N, D) of the reconstruction of x (N, D); keeps caches for ``backward``.

        ``training``, ``eps`` and ``rng`` go to the sampler (:meth:`Reparameterize.forward`);
        afterwards ``self.sampler.kl`` holds the batch's mean KL.
        """
        h = self.encoder.forward(x)  # which casts x to the model's dtype
        z = self.sampler.forward(h, training=training, eps=eps, rng=rng)
        return self.decoder.forward(z)

    def backward(self, dlogits: np.ndarray) -> np.ndarray:
        """dL/dx (N, D) through the encoder from dL/da (N, D); fills ``grads``.

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
        if self.objective == "iwae":
            # k = 1: L_1 is the ELBO, trained with the KL in closed form (iwae_step's
            # docstring). Its eps (N, 1, J) are drawn as the sampler's (N, J) are.
            checks.binary(x, "objective='iwae'")
            if eps is not None:
                shape = (len(x), 1, self.latent_dim)
                eps = checks.shape(np.asarray(eps, dtype=self.dtype), shape,
                                   "eps must have the shape (N, k, J) =")[:, 0]
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
        batch_size = checks.integer(batch_size, "batch_size", low=1)
        if len(x) == 0:
            raise ValueError("evaluate got an empty dataset")
        if self.objective == "iwae":  # the training objective: the k-sample bound
            return {"loss": -float(np.mean(importance.log_likelihood(self, x, self.k, rng)))}
        rng = checks.generator(rng)
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
        if not 0 < checks.number(clip, "clip") < 0.5:
            raise ValueError(f"init_output_bias clip must be in (0, 0.5): the mean pixel is "
                             f"clipped to [clip, 1 - clip] so that its logit is finite; got {clip}")
        p = np.clip(x_train.mean(axis=0, dtype=np.float64), clip, 1 - clip)
        last.params["b"][...] = np.log(p / (1 - p))

    def encode(self, x: np.ndarray, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar) of q(z|x), each (N, J), for images x (N, D); logvar = log sigma^2,
        as the encoder predicts it (before the sampler's clip)."""
        h = in_batches(self.encoder.forward, self._check_pixels(x, "encode"), batch_size)
        return h[:, : self.latent_dim].copy(), h[:, self.latent_dim :].copy()

    def decode(self, z: np.ndarray, batch_size: int = 2000) -> np.ndarray:
        """Images sigmoid(a(z)) (N, D), the Bernoulli means, for codes z (N, J)."""
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
