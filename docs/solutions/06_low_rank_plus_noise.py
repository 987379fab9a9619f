"""Chapter 6, exercise 4: the error of rank-k PCA on data with a known structure.

The data: N = 2000 points in D = 40 dimensions, a mean m, a signal in an r = 3 dimensional
subspace with standard deviations a = (3, 2, 1.5) along its orthonormal directions q_j, and
isotropic noise of standard deviation sigma = 0.1 in every direction:

    x_i = m + sum_{j<=3} a_j g_ij q_j + sigma e_i,        g_ij, e_i ~ N(0, 1)    x : (N, D)

Predictions, before computing anything.

* The covariance is sum_j a_j^2 q_j q_j^T + sigma^2 I. Its eigenvalues are a_j^2 + sigma^2
  (9.01, 4.01, 2.26) along the q_j and sigma^2 = 0.01 in the D - r = 37 other directions;
  the sample eigenvalues scatter around these by a few percent (N >> D).
* The mean squared error per image of the rank-k reconstruction is (chapter 6)
  (1/N) sum_{j>k} s_j^2 = (N - 1)/N sum_{j>k} lambda_j. At k = r that is the noise in the
  discarded directions, about (D - r) sigma^2 = 0.37 (slightly less: PCA picks the r
  directions with the most sample variance, signal plus some noise). Below k = r it adds
  a whole signal eigenvalue per missing component; above it, each further component removes
  only about sigma^2. The curve bends sharply at k = r.
* At k = 0 there is no component: the reconstruction is the mean, and the error is the
  whole spread, (1/N) sum_j s_j^2 = (1/N) sum_i ||x_i - m||^2. With the mean itself, the
  squared length of the data splits as (1/N) sum_i ||x_i||^2 = ||m||^2 + (1/N) sum_j s_j^2
  (the chapter's "mean's part and the spread around it", for the residuals).
* PCA's subspace is the best one (Eckart-Young): any other k-dimensional subspace through
  the mean, a random one for instance, leaves a larger error.
"""

import numpy as np

from npnet.analysis import fit_pca, pca_reconstruct
from npnet.losses import squared_error_per_image

rng = np.random.default_rng(0)
N, D, r, sigma = 2000, 40, 3, 0.1
a = np.array([3.0, 2.0, 1.5])
q, _ = np.linalg.qr(rng.standard_normal((D, r)))  # (D, r) orthonormal columns
m = rng.standard_normal(D)
x = m + (rng.standard_normal((N, r)) * a) @ q.T + sigma * rng.standard_normal((N, D))

full = fit_pca(x, D)
s = full.singular_values
np.testing.assert_allclose(full.explained_variance[:r], a**2 + sigma**2, rtol=0.1)
np.testing.assert_allclose(full.explained_variance[r:].mean(), sigma**2, rtol=0.05)

# The identity, for every k from 1 to D: measured error = (1/N) sum_{j>k} s_j^2.
errors = []
for k in range(1, D + 1):
    pca = fit_pca(x, k)
    error = squared_error_per_image(x, pca_reconstruct(pca, x))
    np.testing.assert_allclose(error, np.sum(s[k:] ** 2) / N, rtol=1e-8, atol=1e-10)
    errors.append(error)
errors = np.array(errors)
print("error per image for k = 1..6:", errors[:6].round(3))
np.testing.assert_allclose(errors[r - 1], (D - r) * sigma**2, rtol=0.03)  # about 0.37
assert errors[r - 2] - errors[r - 1] > 100 * (errors[r - 1] - errors[r])  # the bend at k = r
assert errors[-1] < 1e-10  # k = D keeps everything

# k = 0 and the split into the mean's part and the spread.
spread = np.sum(s**2) / N
np.testing.assert_allclose(squared_error_per_image(x, np.tile(full.mean, (N, 1))), spread)
np.testing.assert_allclose(np.mean(np.sum(x**2, axis=1)), full.mean @ full.mean + spread)

# Eckart-Young: a random 3-dimensional subspace through the mean does worse.
basis, _ = np.linalg.qr(rng.standard_normal((D, r)))
xc = x - full.mean
random_error = np.mean(np.sum((xc - xc @ basis @ basis.T) ** 2, axis=1))
print(f"rank 3: PCA {errors[r - 1]:.3f} per image (predicted {(D - r) * sigma**2:.2f}), "
      f"a random subspace {random_error:.2f}")
assert random_error > errors[r - 1]
