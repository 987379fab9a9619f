r"""The VAE's sampling layer: z = mu + sigma * eps, with the KL term and its gradients.

The encoder of a VAE (:mod:`npnet.vae`) predicts, for each image, the mean ``mu`` and the
log-variance ``logvar`` = log sigma^2 of a Gaussian q(z|x) = N(mu, diag(sigma^2)) over codes.
This module holds what is done with them:

* the KL divergence of q(z|x) from the prior N(0, I), in closed form, and its gradient
  (:func:`kl_divergence`, :func:`kl_divergence_backward`);
* the sampling layer :class:`Reparameterize`, which draws z = mu + sigma * eps with
  eps ~ N(0, I) (the reparameterisation trick: the randomness is in eps, a constant of the
  backward pass, so z is an ordinary function of mu and logvar), and whose backward pass
  adds the KL term's gradient to the decoder's.

One parameterisation everywhere: ``logvar`` is log sigma^2 (not log sigma), so
sigma = exp(logvar / 2) and sigma^2 = exp(logvar).
"""

from __future__ import annotations

import numpy as np

from . import checks
from .layers import Layer

__all__ = ["LOGVAR_RANGE", "kl_divergence", "kl_divergence_backward", "Reparameterize"]

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
        self.rng = checks.generator(rng)
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
        generator = self.rng if rng is None else checks.generator(rng)
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
