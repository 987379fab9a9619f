"""Chapter 6, exercise 1: what clipped Gaussian noise does to black and white pixels.

The corruption is x~ = clip(x + sigma n, 0, 1), n ~ N(0, 1) per pixel, sigma = 0.3.
Write phi(n) = exp(-n^2 / 2) / sqrt(2 pi) for the standard normal density.

A black pixel, x = 0. Then x~ = max(sigma n, 0) (the clip at 1 would need n > 1/sigma = 3.3,
probability 4e-4, and is left out of the formulas below):

    P(x~ = 0)      = P(n <= 0)                              = 1/2
    E[x~]          = sigma int_0^inf n phi(n) dn = sigma phi(0) = sigma / sqrt(2 pi) = 0.120
    E[x~^2]        = sigma^2 int_0^inf n^2 phi(n) dn        = sigma^2 / 2            = 0.045
    std(x~)        = sigma sqrt(1/2 - 1/(2 pi))                                      = 0.175

(int_0^inf n phi = phi(0) because phi' = -n phi; int_0^inf n^2 phi = 1/2 by symmetry of
E[n^2] = 1.) So E[(x~ - x)^2] = sigma^2 / 2 at a black pixel, and by the mirror image
(x~ = 1 - max(-sigma n, 0)) also at a white one: half the sigma^2 = 0.09 of a pixel far from
0 and 1, because the clip removes the half of the noise that points out of [0, 1].

An image whose D = 784 pixels are all 0 or 1 therefore has, on average,

    E ||x~ - x||^2 = D sigma^2 / 2 = 35.28,

against D sigma^2 = 70.56 without the clip. The chapter's table gives 36.54 (0.0466 per
pixel) for MNIST: a little more than 35.28, because the gray pixels at the edges of the
strokes get up to the full sigma^2.
"""

import numpy as np

from npnet.autoencoder import corrupt

SIGMA, D = 0.3, 784

predicted = {
    "fraction left at 0": 0.5,
    "mean": SIGMA / np.sqrt(2 * np.pi),
    "std": SIGMA * np.sqrt(0.5 - 1 / (2 * np.pi)),
    "squared error per pixel": SIGMA**2 / 2,
}

# A black background: 2,000 images of 784 black pixels, corrupted by npnet itself.
black = np.zeros((2000, D), dtype=np.float32)
noisy = corrupt(black, "gaussian", SIGMA, rng=0).astype(np.float64)
measured = {
    "fraction left at 0": np.mean(noisy == 0),
    "mean": noisy.mean(),
    "std": noisy.std(),
    "squared error per pixel": np.mean((noisy - black) ** 2),
}
for name, value in predicted.items():
    print(f"black pixel, {name:24s} predicted {value:.4f}, measured {measured[name]:.4f}")
    # 1.6 million pixels: the Monte Carlo error is about 1e-4 on each of these.
    np.testing.assert_allclose(measured[name], value, rtol=0.01)

# "Digits" of pixels that are only 0 or 1 (19 % ink, as in MNIST): the squared error of the
# corrupted input itself is D sigma^2 / 2 per image, whatever the ink fraction.
rng = np.random.default_rng(1)
binary = (rng.random((2000, D)) < 0.19).astype(np.float32)
noisy = corrupt(binary, "gaussian", SIGMA, rng=2).astype(np.float64)
per_image = np.mean(np.sum((noisy - binary) ** 2, axis=1))
print(f"black-and-white images: ||x~ - x||^2 = {per_image:.2f} per image, "
      f"predicted {D * SIGMA**2 / 2:.2f} (unclipped: {D * SIGMA**2:.2f})")
np.testing.assert_allclose(per_image, D * SIGMA**2 / 2, rtol=0.01)

# The clip is what halves it: a mid-gray image far from 0 and 1 (sigma = 0.05 here) keeps
# the whole sigma^2 per pixel.
gray = np.full((2000, D), 0.5, dtype=np.float32)
noisy = corrupt(gray, "gaussian", 0.05, rng=3).astype(np.float64)
np.testing.assert_allclose(np.mean((noisy - gray) ** 2), 0.05**2, rtol=0.01)
