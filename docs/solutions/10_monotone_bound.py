r"""Chapter 10, exercise 5: L_1 <= L_2 <= ... <= L_k <= log p(x), on a model you can integrate.

With a one-dimensional latent, log p(x) = log int p(x|z) N(z; 0, 1) dz is an integral over
a line: a Riemann sum on a grid of 6001 points in [-12, 12] (the prior's density is below
1e-31 outside) gives it to many digits, computed with log_mean_exp because p(x|z) is tiny.
The same grid gives the ELBO with the KL term in closed form,

    ELBO = int q(z|x) log p(x|z) dz - KL(q || N(0, 1)),

exactly too, so that L_1 = E[log w] can be compared with it.

L_k = E[log (1/k) sum_i w_i] is estimated by averaging many independent k-sample estimates.
All the k are estimated from one pool of 2000 x 100 log-weights per image, split into groups
of k: each group is an independent k-sample estimate, and since the estimates of different
k share their samples, their differences are much less noisy than the estimates themselves.

Burda et al.'s Theorem 1, in the chapter's proof: the mean of k weights is the average, over
the random subsets I of size m < k, of the means over I; the log of an average is at least
the average of the logs (Jensen); and each subset's mean is an m-sample estimate. So
L_k >= L_m.

The model: a small VAE with a tanh decoder of large weights (so that p(x|z) changes a lot
with z, and the posterior is narrow and not Gaussian), and an encoder whose last layer is
set to give every image the same q = N(0.3, e^-0.5): a mediocre q, far enough from the
posteriors for L_1 to fall up to a nat or so below log p(x).
"""

import numpy as np

from npnet.losses import bce_with_logits_per_example
from npnet.vae import VAE, kl_divergence, log_mean_exp

D = 8
model = VAE(D, (3,), 1, activation="tanh", rng=0, dtype=np.float64)
rng = np.random.default_rng(0)
for name, value in model.params.items():
    if name.startswith("decoder"):
        value[:] = 1.5 * rng.standard_normal(value.shape)
model.encoder.layers[-1].params["W"][:] = 0.0
model.encoder.layers[-1].params["b"][:] = [0.3, -0.5]  # mu, logvar for every image
x = (rng.random((3, D)) < 0.5).astype(np.float64)

# log p(x) and the ELBO by integration over z.
z = np.linspace(-12, 12, 6001)
dz = z[1] - z[0]
logits = model.decoder.forward(z[:, None])  # (G, D)
log_px_z = np.stack([-bce_with_logits_per_example(logits, np.repeat(image[None], len(z), 0))
                     for image in x])  # (3, G)
log_prior = -0.5 * (z**2 + np.log(2 * np.pi))
log_px = log_mean_exp(log_px_z + log_prior, axis=1) + np.log(len(z) * dz)
mu, logvar = model.encode(x)  # (3, 1) each
q = np.exp(-0.5 * ((z - mu) ** 2 / np.exp(logvar) + np.log(2 * np.pi) + logvar))  # (3, G)
elbo = (q * log_px_z).sum(axis=1) * dz - kl_divergence(mu, logvar)
print("log p(x), by integration:", log_px.round(4))
print("ELBO, by integration:    ", elbo.round(4))

# L_k from one pool of log-weights per image.
repeats, pool = 2000, 100
log_w = model.log_weights(x, repeats * pool, rng=1).reshape(3, repeats, pool)
bounds, errors = [], []
for k in (1, 2, 5, 20, 100):
    estimates = log_mean_exp(log_w.reshape(3, repeats, pool // k, k), axis=3).mean(axis=2)
    bounds.append(estimates.mean(axis=1))
    errors.append(estimates.std(axis=1) / np.sqrt(repeats))
    print(f"L_{k:<3d} = {bounds[-1].round(4)} +- {errors[-1].round(4)}")
bounds, errors = np.array(bounds), np.array(errors)  # (5 values of k, 3 images)

np.testing.assert_array_less(bounds[:-1], bounds[1:])  # rising with k, for every image
np.testing.assert_array_less(bounds, log_px + 3 * errors)  # below log p(x)
assert np.all(np.abs(bounds[0] - elbo) < 4 * errors[0])  # L_1 is the ELBO
gap = log_px - bounds[0]  # KL(q || posterior): 0.16 to 1.25 nats here
assert np.all(log_px - bounds[-1] < 0.1 * gap)  # nine tenths of it closed at k = 100

# The estimate the script reports, with k = 5000 samples per image.
estimate = model.log_likelihood(x, k=5000, rng=2)
print("log_likelihood, k = 5000:", estimate.round(4))
np.testing.assert_allclose(estimate, log_px, atol=0.1)
