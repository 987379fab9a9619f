r"""Chapter 10, exercise 2: exp(-BCE) on gray targets does not integrate to 1.

For one pixel with Bernoulli mean q = sigmoid(s) and a gray target t in [0, 1],
exp(-l(s, t)) = q^t (1 - q)^(1 - t) = (1 - q) r^t with r = q / (1 - q) = e^s, so

    Z(q) = int_0^1 q^t (1 - q)^(1 - t) dt = (1 - q) (r - 1) / log r
         = (2q - 1) / log(q / (1 - q)) = (2 sigmoid(s) - 1) / s = tanh(s / 2) / s,

(Z = 1/2 at s = 0, the limit). Since |tanh(u)| <= |u|, Z <= 1/2, with equality only at
s = 0, q = 1/2. (Z is the logarithmic mean of q and 1 - q, which never exceeds their
arithmetic mean 1/2.) So over [0, 1]^D, where the pixels' integrals multiply,

    int exp(-sum_d l(s_d, t_d)) dt = prod_d Z(q_d) <= 2^(-D),

for MNIST at most 2^(-784) = e^(-543): chapter 7's exp(-reconstruction) is not a density
on gray images, and its logarithm not a log-density.

Normalising pixel by pixel gives the continuous Bernoulli distribution (Loaiza-Ganem &
Cunningham, 2019), p(t | q) = C(q) q^t (1 - q)^(1 - t) with C(q) = 1 / Z(q)
= 2 artanh(1 - 2q) / (1 - 2q). Its negative log-density is

    -log p(t | q) = sum_d l(s_d, t_d) - sum_d log C(q_d),

so what has to be added to the BCE is -sum_d log C(q_d), with log C >= log 2: at least
543 nats subtracted for 784 pixels. The result can be negative: a density, unlike a
probability, can exceed 1.
"""

import numpy as np

from npnet.losses import bce_with_logits_per_example

t = (np.arange(200_000) + 0.5) / 200_000  # midpoints of [0, 1]
for s in [-6.0, -2.0, -0.3, 1e-4, 0.5, 3.0, 8.0]:
    q = 1 / (1 + np.exp(-s))
    numeric = np.mean(q**t * (1 - q) ** (1 - t))  # the midpoint rule on [0, 1]
    closed = np.tanh(s / 2) / s
    c = 2 * np.arctanh(1 - 2 * q) / (1 - 2 * q)
    print(f"s = {s:+7.4f}, q = {q:.4f}: Z numeric {numeric:.8f}, tanh(s/2)/s {closed:.8f}, "
          f"1/C {1 / c:.8f}")
    np.testing.assert_allclose(numeric, closed, rtol=1e-8)
    np.testing.assert_allclose(closed, 1 / c, rtol=1e-6)
    assert closed <= 0.5

# Three pixels, through the library's own BCE: the integral over [0, 1]^3 is the product.
s = np.array([0.3, -1.2, 2.0])
grid = (np.arange(60) + 0.5) / 60
targets = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
density = np.exp(-bce_with_logits_per_example(np.tile(s, (len(targets), 1)), targets))
integral = density.mean()  # the volume of [0, 1]^3 is 1
print(f"integral of exp(-BCE) over [0, 1]^3: {integral:.6f}, "
      f"product of Z: {np.prod(np.tanh(s / 2) / s):.6f}, 2^-3 = {2 ** -3}")
np.testing.assert_allclose(integral, np.prod(np.tanh(s / 2) / s), rtol=1e-4)
assert integral < 2.0**-3
