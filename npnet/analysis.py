"""Analysis of trained autoencoders, on arrays only: residuals, PCA, interpolation, pairs.

Nothing here knows about models. An experiment script runs the model, hands the arrays
(images, reconstructions, latent codes, labels) to these functions, and passes the results
to :mod:`npnet.plotting`.

Notation: N images of D pixels (D = 784 for 28 x 28 MNIST), k principal components,
latent codes of J dimensions, P pairs.

PCA, as used here
-----------------
For data ``x`` (N, D) with mean ``mu`` (D,), the centred data ``xc = x - mu`` has the thin
SVD ``xc = U S V^T``. The rows of ``V^T`` are the principal directions, unit vectors in
pixel space. The sample covariance ``C = xc^T xc / (N - 1)`` has eigenvectors ``V`` and
eigenvalues ``lambda_j = s_j^2 / (N - 1)``: the variance of the data along direction j.

Keeping the first k directions and reconstructing ``x_hat = mu + xc V_k V_k^T`` leaves
the residual ``xc - xc V_k V_k^T = sum_{j>k} s_j u_j v_j^T``, whose squared norm summed
over images is ``sum_{j>k} s_j^2``. So the mean squared error per image is

    (1/N) sum_{j>k} s_j^2 = (N - 1)/N * sum_{j>k} lambda_j,

the discarded eigenvalues times (N - 1)/N (the factor because C divides by N - 1 while
the error is averaged over N images). ``tests/test_analysis.py`` checks this identity.

Computing the SVD. For MNIST, N (10,000 or 60,000) is much larger than D (784). Then the
right singular vectors and singular values come faster from the D x D matrix
``xc^T xc = V S^2 V^T``: one (N, D) matrix product and a symmetric eigendecomposition
(``np.linalg.eigh``), instead of an SVD of the tall (N, D) matrix. Measured on this
project's 2-core machine: 0.6 s against 6.3 s for N = 10,000, D = 784. Squaring the data
squares its condition number, which costs accuracy only in directions of tiny variance,
never in the leading components used here. When N < D, ``np.linalg.svd`` is used as is.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "residuals",
    "active_units",
    "PCAResult",
    "fit_pca",
    "residual_pca",
    "pca_project",
    "pca_reconstruct",
    "interpolation_times",
    "interpolate_codes",
    "latent_grid",
    "sample_pairs",
]


# --------------------------------------------------------------------------- residuals


def residuals(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image residuals ``r_i = x_i - x_hat_i``, flattened to one row per image.

    Parameters
    ----------
    images, reconstructions : ndarray, (N, D) or (N, H, W)
        Same shape. Image stacks (N, H, W) are flattened to (N, H*W).

    Returns
    -------
    r : ndarray, (N, D)
        In the dtype NumPy gives ``images - reconstructions``.
    """
    images = np.asarray(images)
    reconstructions = np.asarray(reconstructions)
    if images.shape != reconstructions.shape:
        raise ValueError(
            f"residuals: images have shape {images.shape} but reconstructions have shape "
            f"{reconstructions.shape}; they must match, one reconstruction per image"
        )
    if images.ndim < 2:
        raise ValueError(
            f"residuals: expected a batch of images, (N, D) or (N, H, W), got shape {images.shape}"
        )
    return (images - reconstructions).reshape(images.shape[0], -1)


# --------------------------------------------------------------------------------- PCA


@dataclass(frozen=True)
class PCAResult:
    """A fitted PCA. All arrays are float64.

    Attributes
    ----------
    mean : (D,)
        The mean of the data. For :func:`residual_pca` this is the mean residual.
    components : (k, D)
        Orthonormal principal directions (unit rows), by decreasing variance. Signs follow
        the rule in :func:`fit_pca`.
    explained_variance : (k,)
        Variance of the data along each component, ``s_j^2 / (N - 1)``: the eigenvalues of
        the sample covariance.
    explained_variance_ratio : (k,)
        ``explained_variance`` divided by the total variance of the data (the sum over
        *all* components, not only the k kept), so it sums to at most 1.
    singular_values : (k,)
        The singular values ``s_j`` of the centred data.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    singular_values: np.ndarray

    @property
    def scaled_components(self) -> np.ndarray:
        """Components times their standard deviation, ``sqrt(lambda_j) v_j``: (k, D).

        Unlike the unit-length ``components``, these are in the data's units (pixels), so
        they can be shown on the same scale as the mean: one standard deviation of the
        data along each direction.
        """
        return self.components * np.sqrt(self.explained_variance)[:, None]


def _check_data(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as a finite numeric (N, D) array, in its own floating dtype (float64 for ints)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{what}: expected data of shape (N, D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{what}: expected numeric data, got dtype {x.dtype}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: data contains NaN or infinite values")
    return x


def _centred_gram(x: np.ndarray, mean: np.ndarray, rows: int = 8192) -> np.ndarray:
    """``(x - mean)^T (x - mean)`` in float64, (D, D), summed over slices of ``rows`` rows.

    Slicing keeps memory at one float64 slice, instead of a float64 copy of all of ``x``
    (376 MB for the 60,000 MNIST training images).
    """
    gram = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, len(x), rows):
        centred = x[start : start + rows].astype(np.float64) - mean
        gram += centred.T @ centred
    return gram


def fit_pca(x: np.ndarray, n_components: int) -> PCAResult:
    """Principal component analysis of ``x`` by the SVD of the centred data, in float64.

    The SVD is obtained from the eigendecomposition of ``xc^T xc`` when N >= D (see the
    module docstring for why and what it costs).

    Parameters
    ----------
    x : ndarray, (N, D)
        N >= 2 samples (the variance divides by N - 1). Finite values only.
    n_components : int
        k, with ``1 <= k <= min(N, D)``. With ``k = min(N, D)`` the reconstruction is exact.

    Returns
    -------
    PCAResult

    Notes
    -----
    **Sign rule.** An eigenvector is defined only up to sign, and SVD routines pick signs
    arbitrarily. To make results reproducible across machines, each component is flipped
    so that its entry of largest absolute value is positive (on a tie, the first such
    entry, as ``np.argmax`` picks it). For images: the pixel that a component changes
    most, it makes lighter.

    If all samples are equal (total variance 0), every explained-variance ratio is 0.
    """
    x = _check_data(x, "fit_pca")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"fit_pca: need at least 2 samples to estimate a variance, got {n}")
    n_components = operator.index(n_components)
    if not 1 <= n_components <= min(n, d):
        raise ValueError(
            f"fit_pca: n_components must be between 1 and min(N, D) = {min(n, d)} for data "
            f"of shape {x.shape}, got {n_components}"
        )
    mean = x.mean(axis=0, dtype=np.float64)
    if n >= d:
        eigenvalues, eigenvectors = np.linalg.eigh(_centred_gram(x, mean))  # V S^2 V^T, ascending
        s = np.sqrt(np.clip(eigenvalues[::-1], 0.0, None))  # rounding can leave tiny negatives
        vt = eigenvectors[:, ::-1].T
    else:
        _, s, vt = np.linalg.svd(x.astype(np.float64) - mean, full_matrices=False)

    # Sign rule: the largest-magnitude entry of each component is positive.
    vt = vt[:n_components]
    largest = np.argmax(np.abs(vt), axis=1)
    signs = np.where(vt[np.arange(n_components), largest] < 0, -1.0, 1.0)
    components = vt * signs[:, None]

    variance = s**2 / (n - 1)  # all min(N, D) of them: their sum is the total variance
    total = variance.sum()
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    return PCAResult(
        mean=mean,
        components=components,
        explained_variance=variance[:n_components],
        explained_variance_ratio=ratio[:n_components],
        singular_values=s[:n_components],
    )


def residual_pca(residuals: np.ndarray, n_components: int = 5) -> PCAResult:
    """PCA of reconstruction residuals ``r_i = x_i - x_hat_i`` (N, D); see :func:`fit_pca`.

    ``result.mean`` is the mean residual (the systematic error of the autoencoder), and
    ``result.components`` are the directions along which its errors vary most.
    """
    return fit_pca(residuals, n_components)


def _check_fits(pca: PCAResult, x: np.ndarray, what: str) -> np.ndarray:
    x = _check_data(x, what)
    if x.shape[1] != pca.mean.shape[0]:
        raise ValueError(
            f"{what}: data has D = {x.shape[1]} features per row (shape {x.shape}) but the "
            f"PCA was fitted to D = {pca.mean.shape[0]}"
        )
    return x


def pca_project(pca: PCAResult, x: np.ndarray) -> np.ndarray:
    """Codes of ``x`` in the principal basis: ``(x - mean) V_k``.

    Parameters
    ----------
    x : ndarray, (N, D)

    Returns
    -------
    codes : ndarray, (N, k), float64
    """
    x = _check_fits(pca, x, "pca_project")
    return (x - pca.mean) @ pca.components.T


def pca_reconstruct(pca: PCAResult, x: np.ndarray) -> np.ndarray:
    """The PCA baseline autoencoder: encode with :func:`pca_project`, decode linearly.

    ``x_hat = mean + (x - mean) V_k V_k^T``, the best rank-k affine reconstruction of the
    fitting data in squared error (Eckart-Young). Its error on the fitting data is
    ``(N - 1)/N`` times the sum of the discarded eigenvalues (module docstring).

    Parameters
    ----------
    x : ndarray, (N, D)

    Returns
    -------
    x_hat : ndarray, (N, D), float64
    """
    return pca.mean + pca_project(pca, x) @ pca.components


# ----------------------------------------------------------------- latent interpolation


def interpolation_times(n_interpolates: int = 7) -> np.ndarray:
    """The interior points ``tau_i = i / (I + 1)``, i = 1..I (I = ``n_interpolates``): shape
    (I,), increasing.

    With I = 7: 1/8, 2/8, ..., 7/8. The endpoints tau = 0 and tau = 1 (the two real
    images) are excluded.
    """
    n_interpolates = operator.index(n_interpolates)
    if n_interpolates < 1:
        raise ValueError(f"n_interpolates must be at least 1, got {n_interpolates}")
    return np.arange(1, n_interpolates + 1, dtype=np.float64) / (n_interpolates + 1)


def interpolate_codes(z_a: np.ndarray, z_b: np.ndarray, n_interpolates: int = 7) -> np.ndarray:
    """Evenly spaced points on the segment between two latent codes, endpoints excluded.

    .. math::  z_i = (1 - \\tau_i) z_a + \\tau_i z_b,
               \\qquad \\tau_i = \\frac{i}{I + 1}, \\; i = 1..I

    with I = ``n_interpolates``, ordered by increasing tau: the first row is nearest ``z_a``.

    Parameters
    ----------
    z_a, z_b : ndarray, (J,) for one pair or (P, J) for P pairs
        Same shape.
    n_interpolates : int
        I >= 1.

    Returns
    -------
    z : ndarray, (I, J) for one pair, (P, I, J) for P pairs
        Floating point: float32 codes stay float32, anything else becomes float64.
    """
    z_a = np.asarray(z_a)
    z_b = np.asarray(z_b)
    if z_a.shape != z_b.shape:
        raise ValueError(
            f"interpolate_codes: z_a has shape {z_a.shape} but z_b has shape {z_b.shape}; "
            "they must match"
        )
    if z_a.ndim not in (1, 2):
        raise ValueError(
            f"interpolate_codes: expected codes of shape (J,) or (P, J), got {z_a.shape}"
        )
    dtype = np.result_type(z_a.dtype, z_b.dtype, np.float32)
    tau = interpolation_times(n_interpolates).astype(dtype)[:, None]  # (I, 1)
    # z_a[..., None, :] is (1, J) or (P, 1, J): broadcasting against tau gives (..., I, J).
    return (1 - tau) * z_a[..., None, :] + tau * z_b[..., None, :]


def latent_grid(extent: tuple[float, float, float, float], n_rows: int, n_cols: int) -> np.ndarray:
    """Codes on a regular grid over a 2-D latent space, laid out like a map: (R, C, 2).

    ``extent = (z1_min, z1_max, z2_min, z2_max)``, in matplotlib's ``imshow`` order (left,
    right, bottom, top). ``z1`` increases along columns, left to right; ``z2`` decreases
    down the rows, so row 0 is the top (largest ``z2``). Decoding ``grid.reshape(-1, 2)``
    and reshaping to (R, C, D) gives the images for :func:`npnet.plotting.manifold_figure`.
    """
    z1_min, z1_max, z2_min, z2_max = (float(v) for v in extent)
    n_rows, n_cols = operator.index(n_rows), operator.index(n_cols)
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"latent_grid: need at least one row and column, got {n_rows}x{n_cols}")
    z1 = np.linspace(z1_min, z1_max, n_cols)
    z2 = np.linspace(z2_max, z2_min, n_rows)
    grid = np.empty((n_rows, n_cols, 2))
    grid[..., 0] = z1[None, :]
    grid[..., 1] = z2[:, None]
    return grid


# ---------------------------------------------------------------------- pair selection


def sample_pairs(
    labels: np.ndarray,
    n_pairs: int,
    same_label: bool,
    rng: int | np.random.Generator | None,
) -> np.ndarray:
    """Random pairs of image indices whose labels are equal (or differ), without repeats.

    How a pair is drawn (every label gets an equal chance, whatever its frequency):

    * ``same_label=True``: a label uniformly among the labels with at least two images,
      then two different images of that label, uniformly.
    * ``same_label=False``: two different labels uniformly among the labels present, then
      one image of each, uniformly. The first index has the first label drawn.

    A pair whose two indices, in either order, were already drawn is rejected and drawn
    again. Meant for a few pairs out of many possible ones (10 pairs among MNIST's
    millions); it stays correct, only slower, as ``n_pairs`` nears the number possible.

    Parameters
    ----------
    labels : ndarray, (N,)
        One label per image (any values NumPy can sort, e.g. digits).
    n_pairs : int
        P >= 0.
    same_label : bool
    rng : int, numpy.random.Generator or None
        Seed or generator, through ``np.random.default_rng``: the same seed gives the same
        pairs.

    Returns
    -------
    pairs : ndarray of int64, (P, 2)
        Row ``(a, b)``: ``a != b``; ``labels[a] == labels[b]`` exactly when ``same_label``.

    Raises
    ------
    ValueError
        If fewer than ``n_pairs`` distinct pairs of the requested kind exist.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"sample_pairs: expected labels of shape (N,), got {labels.shape}")
    n_pairs = operator.index(n_pairs)
    if n_pairs < 0:
        raise ValueError(f"sample_pairs: n_pairs must be >= 0, got {n_pairs}")
    rng = np.random.default_rng(rng)

    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    n = labels.shape[0]
    n_same = sum(int(c) * (int(c) - 1) // 2 for c in counts)
    available = n_same if same_label else n * (n - 1) // 2 - n_same
    if n_pairs > available:
        kind = "same-label" if same_label else "different-label"
        raise ValueError(
            f"sample_pairs: asked for {n_pairs} distinct {kind} pairs, but the {n} labels "
            f"(counts {dict(zip(classes.tolist(), counts.tolist(), strict=True))}) allow only "
            f"{available}"
        )
    eligible = np.flatnonzero(counts >= 2)

    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    while len(pairs) < n_pairs:
        if same_label:
            label = eligible[rng.integers(eligible.size)]
            a, b = rng.choice(members[label], size=2, replace=False)
        else:
            label_a, label_b = rng.choice(classes.size, size=2, replace=False)
            a = members[label_a][rng.integers(counts[label_a])]
            b = members[label_b][rng.integers(counts[label_b])]
        a, b = int(a), int(b)
        key = (min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            pairs.append((a, b))
    return np.array(pairs, dtype=np.int64).reshape(n_pairs, 2)


def active_units(codes: np.ndarray, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """How many latent dimensions the encoder uses: Burda et al.'s (2015) measure.

    Dimension j is *active* if the encoder's mean mu_j(x) varies over the data,
    ``Var_x(mu_j(x)) > threshold`` (0.01 in the paper). A dimension whose mean is the same
    for every image carries no information about it: q(z_j|x) is then the prior, which the
    KL term pulls unused dimensions to.

    Parameters
    ----------
    codes : ndarray, (N, J)
        The encoder's means mu(x) of N images (for example the 10,000 test images).

    Returns
    -------
    count : int
    variances : float64 ndarray, (J,)
        Var over the N images of each mu_j (dividing by N).

    Tested by: tests/test_analysis.py::test_active_units_counts_varying_dimensions
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"active_units needs codes of shape (N, J) with N >= 2, "
                         f"got {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("active_units got codes that are NaN or infinite: the encoder has "
                         "diverged (check the training loss), or the codes are not its means")
    variances = codes.astype(np.float64).var(axis=0)
    return int(np.sum(variances > threshold)), variances
