r"""Chapter 7, exercise 3: the reparameterised gradient of E_q[f(z)], by Monte Carlo.

Take f(z) = sum_j cos(z_j) and q = N(mu, diag(exp(logvar))), J = 2. For z ~ N(mu, sigma^2),
E[cos z] = Re E[e^{iz}] = cos(mu) exp(-sigma^2 / 2), so the expectation and its gradient are
known exactly (with d/dlogvar = sigma^2 d/d(sigma^2)):

    F(mu, logvar)  = sum_j cos(mu_j) exp(-sigma_j^2 / 2)
    dF/dmu_j       = -sin(mu_j) exp(-sigma_j^2 / 2)
    dF/dlogvar_j   = -(sigma_j^2 / 2) cos(mu_j) exp(-sigma_j^2 / 2)

The reparameterised estimate: draw M samples z_m = mu + sigma * eps_m and average the
gradient of f through them, f'(z) = -sin(z):

    dF/dmu      ~ (1/M) sum_m f'(z_m)
    dF/dlogvar  ~ (1/M) sum_m f'(z_m) * sigma * eps_m / 2

which is exactly what npnet.vae.Reparameterize.backward computes, with beta = 0 (no KL
term), for a batch of M copies of h = [mu, logvar] and dz = f'(z) / M (the 1/M of the
average): summing dL/dh over the M rows gives the estimate.

For comparison, the score-function (REINFORCE) estimate uses f itself, not its derivative:
dF/dtheta = E[f(z) d log q(z)/dtheta], with d log q/dmu = eps / sigma and
d log q/dlogvar = (eps^2 - 1) / 2. It is unbiased too, but its samples vary much more
(here with small sigma, where eps / sigma is large): the reason VAEs use the trick.
"""

import numpy as np

from npnet.vae import Reparameterize

mu = np.array([0.7, -1.2])
logvar = np.array([-3.0, -1.0])  # sigma = 0.22 and 0.61
sigma2 = np.exp(logvar)
analytic = np.concatenate([
    -np.sin(mu) * np.exp(-sigma2 / 2),
    -(sigma2 / 2) * np.cos(mu) * np.exp(-sigma2 / 2),
])

M, J = 200_000, 2
eps = np.random.default_rng(0).standard_normal((M, J))
layer = Reparameterize(beta=0.0)
z = layer.forward(np.tile(np.concatenate([mu, logvar]), (M, 1)), eps=eps)  # (M, J)
per_sample = M * layer.backward(-np.sin(z) / M)  # (M, 2J): one gradient estimate per sample
reparameterised = per_sample.mean(axis=0)
standard_error = per_sample.std(axis=0) / np.sqrt(M)

f = np.cos(z)
score = np.concatenate([f * eps / np.sqrt(sigma2), f * (eps**2 - 1) / 2], axis=1)  # (M, 2J)

print("analytic        ", analytic.round(4))
print("reparameterised ", reparameterised.round(4), "+-", standard_error.round(4))
print("score function  ", score.mean(0).round(4), "+-", (score.std(0) / np.sqrt(M)).round(4))
print("std of one sample, score / reparameterised:", (score.std(0) / per_sample.std(0)).round(1))

assert np.all(np.abs(reparameterised - analytic) < 4 * standard_error)
assert np.all(np.abs(score.mean(0) - analytic) < 4 * score.std(0) / np.sqrt(M))
assert np.all(score.std(0) > 2 * per_sample.std(0))  # same answer, far noisier
