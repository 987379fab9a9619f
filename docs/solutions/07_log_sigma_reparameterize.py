r"""Chapter 7, exercise 2: the sampling layer with an encoder that predicts log sigma.

The input is h = [mu, rho] (N, 2J), with rho = log sigma instead of log sigma^2:

    sigma = exp(rho),  sigma^2 = exp(2 rho)                                    (N, J)

Forward, in training mode:  z = mu + sigma * eps,  eps ~ N(0, I)              (N, J)
In evaluation mode:         z = mu.

The KL term. For one dimension (chapter 7),
KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1 - log sigma^2) / 2, and log sigma^2 = 2 rho:

    KL_n = 1/2 sum_j ( mu_nj^2 + exp(2 rho_nj) - 1 - 2 rho_nj )               (N,)

Its derivatives:

    dKL_n/dmu_nj  = mu_nj
    dKL_n/drho_nj = 1/2 (2 exp(2 rho_nj) - 2) = sigma_nj^2 - 1

and those of z:  dz_nj/dmu_nj = 1,  dz_nj/drho_nj = exp(rho_nj) eps_nj = sigma_nj eps_nj.

Backward, for L = R(z) + beta * (1/N) sum_n KL_n and dz = dR/dz (N, J):

    dL/dmu  = dz                 + (beta / N) mu                                (N, J)
    dL/drho = dz * sigma * eps   + (beta / N) (sigma^2 - 1)                     (N, J)
    dL/dh   = [dL/dmu, dL/drho]                                                 (N, 2J)

Every factor 1/2 of the log sigma^2 version is gone. Since rho = logvar / 2, the chain rule
says the same thing: dL/drho = 2 dL/dlogvar, which the checks below confirm against
npnet.vae.Reparameterize. rho is clipped to half of LOGVAR_RANGE, so both layers describe
the same sigmas, and the gradient is 0 where the clip is active.

Why not npnet.gradcheck.check_layer: it calls forward(x) with no eps, so each evaluation
draws new noise and the loss is not a function of h alone (the numeric differences would be
differences of noise); and its scalar, sum(forward(x) * dout), leaves out beta * kl, whose
gradient backward adds. check_gradients with the loss written out and eps held fixed has
neither problem, as in tests/test_vae.py::test_reparameterize_gradients.
"""

import numpy as np

from npnet.gradcheck import check_gradients
from npnet.vae import LOGVAR_RANGE, Reparameterize

LOG_SIGMA_RANGE = (LOGVAR_RANGE[0] / 2, LOGVAR_RANGE[1] / 2)


def log_sigma_kl(mu: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """KL_n (N,) of N(mu, diag(exp(2 rho))) from N(0, I); mu, rho : (N, J)."""
    return 0.5 * np.sum(mu**2 + np.exp(2 * rho) - 1 - 2 * rho, axis=1)


class LogSigmaReparameterize(Reparameterize):
    """Reparameterize for h = [mu, log sigma]: z = mu + exp(rho) * eps, and the KL term."""

    def forward(self, h, training=True, eps=None, rng=None):
        h = np.asarray(h)
        if not np.issubdtype(h.dtype, np.floating):
            h = h.astype(np.float64)
        if h.ndim != 2 or h.shape[1] % 2 or h.shape[1] == 0 or h.shape[0] == 0:
            raise ValueError(f"{self.describe()} expects h = [mu, rho], (N, 2J); got {h.shape}")
        n, latent = h.shape[0], h.shape[1] // 2
        mu = h[:, :latent]
        rho = np.clip(h[:, latent:], *LOG_SIGMA_RANGE)
        clipped = rho != h[:, latent:]
        self.kl = float(log_sigma_kl(mu, rho).mean())
        sigma = np.exp(rho)
        if not training:
            if eps is not None:  # as the library's layer: an injected eps would be ignored
                raise ValueError(f"{self.describe()}: eps is only used with training=True")
            self.cache = (mu, sigma, None, clipped)
            return mu.copy()
        if eps is None:
            generator = self.rng if rng is None else np.random.default_rng(rng)
            eps = generator.standard_normal((n, latent), dtype=h.dtype)
        eps = np.asarray(eps, dtype=h.dtype)
        if eps.shape != (n, latent):
            raise ValueError(f"{self.describe()}: eps must have shape ({n}, {latent})")
        self.cache = (mu, sigma, eps, clipped)
        return mu + sigma * eps

    def backward(self, dz):
        mu, sigma, eps, clipped = self._cached(dz)
        dz = self._check_dout(dz, mu.shape).astype(mu.dtype, copy=False)
        dkl = self.beta / mu.shape[0]  # dL/dKL_n = beta / N for every n
        dmu = dz + dkl * mu
        drho = dkl * (sigma**2 - 1)
        if eps is not None:  # training: dz/drho = sigma * eps
            drho = drho + dz * sigma * eps
        drho = np.where(clipped, 0, drho)
        return np.concatenate([dmu, drho], axis=1)


rng = np.random.default_rng(0)
N, J = 5, 3
eps = rng.standard_normal((N, J))
dz = rng.standard_normal((N, J))


def gradient_error(beta: float, training: bool, h: np.ndarray) -> float:
    """Relative error of dL/dh for L = sum(z * dz) + beta * kl, the noise held fixed."""
    layer = LogSigmaReparameterize(beta=beta)

    def loss_and_grads():
        z = layer.forward(h, training=training, eps=eps if training else None)
        loss = float(np.sum(z * dz)) + layer.beta * layer.kl
        return loss, {"h": layer.backward(dz)}

    return check_gradients(loss_and_grads, {"h": h})["h"]


# 1. The gradient check, with the noise held fixed, both modes, several betas.
for beta in (0.0, 0.5, 1.0, 4.0):
    for training in (True, False):
        error = gradient_error(beta, training, rng.standard_normal((N, 2 * J)))
        print(f"beta {beta}, training {training}: relative error {error:.1e}")
        assert error < 1e-7, error

# 2. The same q as npnet's layer on logvar = 2 rho: same z, same KL, dL/drho = 2 dL/dlogvar.
mu, rho = rng.standard_normal((N, J)), rng.standard_normal((N, J))
ours, npnets = LogSigmaReparameterize(beta=1.5), Reparameterize(beta=1.5)
z_ours = ours.forward(np.hstack([mu, rho]), eps=eps)
z_npnet = npnets.forward(np.hstack([mu, 2 * rho]), eps=eps)
np.testing.assert_allclose(z_ours, z_npnet, rtol=1e-12)
np.testing.assert_allclose(ours.kl, npnets.kl, rtol=1e-12)
dh_ours, dh_npnet = ours.backward(dz), npnets.backward(dz)
np.testing.assert_allclose(dh_ours[:, :J], dh_npnet[:, :J], rtol=1e-12)
np.testing.assert_allclose(dh_ours[:, J:], 2 * dh_npnet[:, J:], rtol=1e-12)

# 3. The samples have standard deviation exp(rho), and the KL is that of the q sampled from
#    (a Monte Carlo estimate of E_q[log q - log p], away from rho = 0 where a mix-up hides).
mu, rho = np.array([[0.5, -1.2]]), np.array([[-0.8, 0.4]])
sampler = LogSigmaReparameterize(rng=1)
z = sampler.forward(np.tile(np.hstack([mu, rho]), (200_000, 1)))
np.testing.assert_allclose(z.std(axis=0), np.exp(rho[0]), rtol=0.01)
log_q = -0.5 * np.log(2 * np.pi) - rho - (z - mu) ** 2 / (2 * np.exp(2 * rho))
log_p = -0.5 * np.log(2 * np.pi) - z**2 / 2
monte_carlo = np.mean(np.sum(log_q - log_p, axis=1))
print(f"KL: closed form {sampler.kl:.4f}, Monte Carlo {monte_carlo:.4f}")
assert abs(monte_carlo - sampler.kl) < 0.02
