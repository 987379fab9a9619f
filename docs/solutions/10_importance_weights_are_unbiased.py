r"""Chapter 10, exercise 1: the importance weights average to p(x), whatever q, if q covers.

With w(z) = p(x|z) p(z) / q(z|x) and q(z|x) > 0 wherever p(x|z) p(z) > 0,

    E_q[w] = int q(z|x) p(x|z) p(z) / q(z|x) dz = int p(x|z) p(z) dz = p(x):

the q cancels, which is why any q gives an unbiased estimate of p(x) (not of log p(x):
see the chapter). If q is the posterior p(z|x) = p(x|z) p(z) / p(x), then

    w(z) = p(x|z) p(z) / p(z|x) = p(x)    for every z:

every weight is the answer, its variance is 0, and one sample is exact. The closer q is to
the posterior, the smaller the variance of w.

If q is 0 on part of the posterior, the integral only runs over the region S where q > 0:

    E_q[w] = int_S p(x|z) p(z) dz = p(x) P_posterior(z in S) < p(x),

biased low by a factor that no number of samples repairs: the weights never see the part of
the posterior that q never proposes.

The check: z ~ N(0, 1), x | z ~ N(z, 1), so p(x) = N(x; 0, 2) and the posterior is
N(x/2, 1/2). For a uniform q on [x/2 - 1, x/2 + 1], S covers the posterior mean +- 1,
that is +- sqrt(2) posterior standard deviations, which holds P = erf(1) = 0.843 of it.
"""

import math

import numpy as np


def log_normal(v, mean, var):
    return -0.5 * ((v - mean) ** 2 / var + np.log(2 * np.pi * var))


x = 1.5
p_x = math.exp(log_normal(x, 0.0, 2.0))
rng = np.random.default_rng(0)
M = 400_000


def weights(z, log_q):
    return np.exp(log_normal(x, z, 1.0) + log_normal(z, 0.0, 1.0) - log_q)


# Gaussian q's: off-centre, narrow, wide. All unbiased; the narrow one has the noisiest w.
for q_mean, q_var in [(x / 2, 1.0), (x / 2 + 0.5, 0.3), (x / 2 - 0.5, 2.0), (0.0, 1.0)]:
    z = q_mean + math.sqrt(q_var) * rng.standard_normal(M)
    w = weights(z, log_normal(z, q_mean, q_var))
    standard_error = w.std() / math.sqrt(M)
    print(f"q = N({q_mean:+.2f}, {q_var:.1f}): E[w] = {w.mean():.5f} +- {standard_error:.5f}, "
          f"p(x) = {p_x:.5f}, std(w) / p(x) = {w.std() / p_x:.3f}")
    assert abs(w.mean() - p_x) < 5 * standard_error

# q = the posterior: every weight is p(x).
z = x / 2 + math.sqrt(0.5) * rng.standard_normal(1000)
w = weights(z, log_normal(z, x / 2, 0.5))
print(f"q = posterior: weights from {w.min():.12f} to {w.max():.12f}")
np.testing.assert_allclose(w, p_x, rtol=1e-12)

# A uniform q on [x/2 - 1, x/2 + 1]: density 1/2 there, 0 elsewhere.
z = x / 2 + rng.uniform(-1, 1, M)
w = weights(z, np.log(0.5))
standard_error = w.std() / math.sqrt(M)
print(f"uniform q: E[w] = {w.mean():.5f} +- {standard_error:.5f} "
      f"= {w.mean() / p_x:.4f} p(x); erf(1) = {math.erf(1):.4f}")
assert abs(w.mean() - math.erf(1) * p_x) < 5 * standard_error
assert w.mean() < 0.9 * p_x  # biased low, however many samples
