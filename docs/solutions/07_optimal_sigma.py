r"""Chapter 7, exercise 4: how wide q becomes, for a decoder that cares more or less about z.

One latent dimension, and a stand-in for the decoder's loss that wants z near z_0, with a
curvature c >= 0 (how sharply the reconstruction degrades when z moves):

    R(z) = c (z - z_0)^2 / 2.

Under q = N(mu, sigma^2), E_q[(z - z_0)^2] = (mu - z_0)^2 + sigma^2, so the loss of chapter 7,
for one image, is

    L(mu, sigma^2) = c ((mu - z_0)^2 + sigma^2) / 2 + beta (mu^2 + sigma^2 - 1 - log sigma^2) / 2.

Setting its derivatives to zero:

    dL/dmu      = c (mu - z_0) + beta mu            = 0   =>   mu*      = c z_0 / (c + beta)
    dL/dsigma^2 = c / 2 + beta (1 - 1 / sigma^2) / 2 = 0 =>   sigma^2* = beta / (c + beta)

* c = 0, a dimension the decoder ignores: mu* = 0 and sigma^2* = 1, q is the prior and its
  KL is 0. This is what an unused latent dimension looks like.
* The more the decoder depends on z (large c), the narrower q (sigma^2* ~ beta / c) and the
  closer mu* to z_0: the KL grows, and buys a better reconstruction.
* A larger beta widens q and pulls mu towards 0; beta = 0 gives sigma = 0, a plain
  autoencoder.

The check: minimise L with gradient steps, the gradient estimated as in training, by
npnet.vae.Reparameterize (samples z = mu + sigma eps and the layer's own KL gradient),
one latent dimension per setting (c, z_0), and compare with mu*, sigma^2*.
"""

import numpy as np

from npnet.optim import Adam
from npnet.vae import Reparameterize

settings = [(0.0, 2.0), (1.0, 2.0), (9.0, 2.0), (3.0, -1.0)]  # (c, z0), one per latent dim
c = np.array([s[0] for s in settings])
z0 = np.array([s[1] for s in settings])
J, M = len(settings), 512

for beta in (1.0, 4.0):
    mu_star, var_star = c * z0 / (c + beta), beta / (c + beta)
    h = np.zeros((1, 2 * J))  # [mu, logvar], starting at the prior
    optimizer = Adam({"h": h}, lr=0.02)
    layer = Reparameterize(beta=beta, rng=0)
    history = []
    for step in range(2000):
        z = layer.forward(np.repeat(h, M, axis=0))  # (M, J): M samples of q
        dh = layer.backward(c * (z - z0) / M)  # dR/dz, averaged over the M samples; plus KL
        optimizer.step({"h": dh.sum(axis=0, keepdims=True)})
        if step >= 1200:  # average the last iterates: the gradient is a noisy estimate
            history.append(h.copy())
    mu, logvar = np.mean(history, axis=0)[0, :J], np.mean(history, axis=0)[0, J:]
    print(f"beta {beta}: mu      {mu.round(3)}  predicted {mu_star.round(3)}")
    print(f"          sigma^2 {np.exp(logvar).round(3)}  predicted {var_star.round(3)}")
    np.testing.assert_allclose(mu, mu_star, atol=0.02)
    np.testing.assert_allclose(np.exp(logvar), var_star, rtol=0.05)

# At the predicted optimum, the exact gradient of L is zero, term by term.
beta = 1.0
mu, var = c * z0 / (c + beta), beta / (c + beta)
np.testing.assert_allclose(c * (mu - z0) + beta * mu, 0, atol=1e-12)
np.testing.assert_allclose(c * var / 2 + beta * (var - 1) / 2, 0, atol=1e-12)  # dL/dlogvar
