"""Analysis: residuals, PCA against an independent eigen-decomposition, interpolation, pairs."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from strategies import seeds

from npnet.analysis import (
    PCAResult,
    active_units,
    fit_pca,
    interpolate_codes,
    interpolation_times,
    latent_grid,
    pca_project,
    pca_reconstruct,
    residual_pca,
    residuals,
    sample_pairs,
)
from npnet.losses import squared_error_per_image

# Turn any RuntimeWarning (0/0, overflow) into a failure.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def datasets(min_n=2, max_n=9, max_d=6):
    """(N, D) float64 data; integer-valued entries make exact ties and rank deficiency likely."""
    shapes = st.tuples(st.integers(min_n, max_n), st.integers(1, max_d))
    elements = st.one_of(st.floats(-10, 10), st.integers(-3, 3).map(float))
    return shapes.flatmap(lambda shape: arrays(np.float64, shape, elements=elements))


def covariance_eigh(x):
    """Independent reference: eigenpairs of the sample covariance, largest first."""
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], -1))
    return values[::-1], vectors[:, ::-1].T


def scale_of(x):
    return max(1.0, float(np.abs(x).max()) ** 2 * x.shape[0] * x.shape[1])


# ------------------------------------------------------------------------ residuals


def test_residuals_are_image_minus_reconstruction_flattened():
    x = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3)
    x_hat = np.ones_like(x)
    r = residuals(x, x_hat)
    assert r.shape == (2, 9)
    np.testing.assert_array_equal(r, (x - 1).reshape(2, 9))


def test_residuals_name_both_shapes_on_mismatch():
    with pytest.raises(ValueError, match=r"\(4, 784\).*\(4, 783\)"):
        residuals(np.zeros((4, 784)), np.zeros((4, 783)))
    with pytest.raises(ValueError, match="batch"):
        residuals(np.zeros(784), np.zeros(784))


# ------------------------------------------------------------------------------ PCA


@given(x=datasets(), data=st.data())
def test_pca_matches_covariance_eigendecomposition(x, data):
    k = data.draw(st.integers(1, min(x.shape)))
    pca = fit_pca(x, k)
    values, vectors = covariance_eigh(x)
    atol = 1e-9 * scale_of(x)

    assert isinstance(pca, PCAResult)
    assert pca.mean.shape == (x.shape[1],)
    assert pca.components.shape == (k, x.shape[1])
    for field in (pca.explained_variance, pca.explained_variance_ratio, pca.singular_values):
        assert field.shape == (k,)
    np.testing.assert_allclose(pca.mean, x.mean(axis=0), atol=atol)
    np.testing.assert_allclose(pca.explained_variance, values[:k], atol=atol)
    np.testing.assert_allclose(pca.singular_values**2, values[:k] * (x.shape[0] - 1), atol=atol)
    # Each component is an eigenvector with its eigenvalue, whatever the multiplicities ...
    cov = np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], -1)
    np.testing.assert_allclose(
        pca.components @ cov, pca.explained_variance[:, None] * pca.components, atol=atol
    )
    # ... and where an eigenvalue is well separated, it is eigh's eigenvector up to sign.
    gaps = np.abs(values[:, None] - values[None, :])
    np.fill_diagonal(gaps, np.inf)
    for j in range(k):
        if gaps[j].min() > 1e-3 * scale_of(x):
            assert abs(pca.components[j] @ vectors[j]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("shape", [(300, 12), (8, 30)], ids=["N>=D: eigh", "N<D: svd"])
def test_pca_matches_the_svd_of_the_centred_data(shape):
    """Both code paths of fit_pca against np.linalg.svd, on data with distinct variances."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * np.linspace(3, 0.5, shape[1]) + 2.0
    k = min(shape) - 1
    pca = fit_pca(x, k)
    _, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(pca.singular_values, s[:k], rtol=1e-10)
    np.testing.assert_allclose(np.abs(pca.components), np.abs(vt[:k]), atol=1e-8)


@given(x=datasets(), data=st.data())
def test_pca_components_orthonormal_with_sign_rule(x, data):
    k = data.draw(st.integers(1, min(x.shape)))
    pca = fit_pca(x, k)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(k), atol=1e-10)
    largest = np.argmax(np.abs(pca.components), axis=1)
    assert np.all(pca.components[np.arange(k), largest] > 0)


@given(x=datasets(), data=st.data())
def test_explained_variance_ratios_descend_and_sum_to_at_most_one(x, data):
    k = data.draw(st.integers(1, min(x.shape)))
    pca = fit_pca(x, k)
    ratio = pca.explained_variance_ratio
    assert np.all(ratio >= 0)
    assert np.all(np.diff(pca.explained_variance) <= 0)
    assert ratio.sum() <= 1 + 1e-12
    total = np.var(x, axis=0, ddof=1).sum()
    if total > 0:
        np.testing.assert_allclose(ratio, pca.explained_variance / total, rtol=1e-9)
        assert fit_pca(x, min(x.shape)).explained_variance_ratio.sum() == pytest.approx(1.0)


@given(x=datasets())
def test_reconstruction_with_all_components_is_exact(x):
    pca = fit_pca(x, min(x.shape))
    np.testing.assert_allclose(pca_reconstruct(pca, x), x, atol=1e-9 * max(1.0, np.abs(x).max()))


@given(x=datasets(), data=st.data())
def test_reconstruction_error_is_discarded_variance(x, data):
    # Residual of a rank-k reconstruction: sum_{j>k} s_j u_j v_j^T, so the mean squared
    # error per image is (1/N) sum_{j>k} s_j^2 = (N-1)/N * sum_{j>k} lambda_j.
    k = data.draw(st.integers(1, min(x.shape)))
    pca = fit_pca(x, k)
    values, _ = covariance_eigh(x)
    n = x.shape[0]
    expected = (n - 1) / n * values[k:].clip(min=0).sum()
    error = squared_error_per_image(x, pca_reconstruct(pca, x))
    assert error == pytest.approx(expected, abs=1e-9 * scale_of(x))


@given(x=datasets(min_n=3))
def test_codes_are_centred_and_decorrelated(x):
    k = min(x.shape)
    pca = fit_pca(x, k)
    codes = pca_project(pca, x)
    assert codes.shape == (x.shape[0], k)
    atol = 1e-9 * scale_of(x)
    np.testing.assert_allclose(codes.mean(axis=0), 0, atol=atol)
    cov = codes.T @ codes / (x.shape[0] - 1)
    np.testing.assert_allclose(cov, np.diag(pca.explained_variance), atol=atol)


def test_scaled_components_have_the_standard_deviation_as_length():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4)) * [3.0, 1.0, 0.5, 0.1]
    pca = fit_pca(x, 3)
    lengths = np.linalg.norm(pca.scaled_components, axis=1)
    np.testing.assert_allclose(lengths, np.sqrt(pca.explained_variance))


def test_pca_sign_rule_on_a_known_direction():
    # All variance along -e_1 + 0.1 e_2: the component must come out as +e_1 - 0.1 e_2.
    t = np.linspace(-1, 1, 11)[:, None]
    x = t * np.array([-1.0, 0.1, 0.0])
    (component,) = fit_pca(x, 1).components
    np.testing.assert_allclose(component, np.array([1.0, -0.1, 0.0]) / np.sqrt(1.01))


def test_constant_data_has_zero_ratios_without_warnings():
    pca = fit_pca(np.ones((5, 3)), 2)
    np.testing.assert_array_equal(pca.explained_variance_ratio, 0.0)
    np.testing.assert_array_equal(pca.explained_variance, 0.0)


def test_residual_pca_mean_is_the_mean_residual():
    rng = np.random.default_rng(1)
    x, x_hat = rng.random((20, 16)), rng.random((20, 16))
    r = residuals(x, x_hat)
    pca = residual_pca(r)
    assert pca.components.shape == (5, 16)
    np.testing.assert_allclose(pca.mean, (x - x_hat).mean(axis=0))


def test_pca_refuses_bad_input():
    x = np.random.default_rng(2).standard_normal((6, 4))
    for k in (0, 5, -1):
        with pytest.raises(ValueError, match="between 1 and min"):
            fit_pca(x, k)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fit_pca(x.reshape(6, 2, 2), 1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fit_pca(x[:1], 1)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_pca(bad, 1)
    with pytest.raises(ValueError, match="D = 3"):
        pca_project(fit_pca(x, 2), x[:, :3])


# ---------------------------------------------------------------------- interpolation


def test_interpolation_times_exclude_the_endpoints():
    np.testing.assert_array_equal(interpolation_times(7), np.arange(1, 8) / 8)
    with pytest.raises(ValueError):
        interpolation_times(0)


@given(
    z=arrays(
        np.float64,
        st.tuples(st.just(2), st.integers(1, 5)),
        elements=st.floats(-5, 5, allow_subnormal=False),
    ),
    n=st.integers(1, 9),
)
def test_interpolates_are_interior_evenly_spaced_and_start_near_z_a(z, n):
    z_a, z_b = z
    path = interpolate_codes(z_a, z_b, n)
    assert path.shape == (n, z_a.size)
    step = (z_b - z_a) / (n + 1)
    # Adding the endpoints back gives n + 2 equally spaced points from z_a to z_b.
    full = np.vstack([z_a, path, z_b])
    np.testing.assert_allclose(
        np.diff(full, axis=0), np.broadcast_to(step, (n + 1, z_a.size)), atol=1e-12
    )
    distances = np.abs(path - z_a).max(axis=1)  # max-norm: no squares to underflow
    if np.any(z_a != z_b):
        assert np.all(np.diff(distances) > 0)


@given(seed=seeds, p=st.integers(1, 4), n=st.integers(1, 8))
def test_batched_interpolation_is_one_interpolation_per_pair(seed, p, n):
    rng = np.random.default_rng(seed)
    z_a, z_b = rng.standard_normal((2, p, 3)).astype(np.float32)
    batched = interpolate_codes(z_a, z_b, n)
    assert batched.shape == (p, n, 3)
    assert batched.dtype == np.float32
    for i in range(p):
        np.testing.assert_array_equal(batched[i], interpolate_codes(z_a[i], z_b[i], n))


def test_interpolation_refuses_mismatched_codes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        interpolate_codes(np.zeros(3), np.zeros(4))


def test_latent_grid_reads_like_a_map():
    grid = latent_grid((-1.0, 1.0, -2.0, 2.0), n_rows=3, n_cols=5)
    assert grid.shape == (3, 5, 2)
    np.testing.assert_array_equal(grid[0, :, 0], np.linspace(-1, 1, 5))  # z1 left to right
    np.testing.assert_array_equal(grid[:, 0, 1], [2.0, 0.0, -2.0])  # z2 top to bottom


# ------------------------------------------------------------------------------ pairs


labels_strategy = arrays(np.int64, st.integers(2, 30), elements=st.integers(0, 4))


def count_possible(labels, same_label):
    equal = labels[:, None] == labels[None, :]
    upper = np.triu(np.ones_like(equal), k=1)
    return int((upper & (equal if same_label else ~equal)).sum())


@given(labels=labels_strategy, same_label=st.booleans(), seed=seeds, data=st.data())
def test_pairs_have_the_requested_kind_and_never_repeat(labels, same_label, seed, data):
    possible = count_possible(labels, same_label)
    n_pairs = data.draw(st.integers(0, min(possible, 12)))
    pairs = sample_pairs(labels, n_pairs, same_label, seed)
    assert pairs.shape == (n_pairs, 2)
    assert pairs.dtype == np.int64
    assert np.all((pairs >= 0) & (pairs < labels.size))
    assert np.all(pairs[:, 0] != pairs[:, 1])
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    assert np.all(same) if same_label else not np.any(same)
    unordered = {tuple(sorted(pair)) for pair in pairs.tolist()}
    assert len(unordered) == n_pairs


@given(labels=labels_strategy, same_label=st.booleans(), seed=seeds)
def test_same_seed_gives_same_pairs(labels, same_label, seed):
    n_pairs = min(count_possible(labels, same_label), 5)
    first = sample_pairs(labels, n_pairs, same_label, seed)
    np.testing.assert_array_equal(first, sample_pairs(labels, n_pairs, same_label, seed))
    generator = np.random.default_rng(seed)
    np.testing.assert_array_equal(first, sample_pairs(labels, n_pairs, same_label, generator))


def test_every_possible_pair_can_be_drawn():
    labels = np.array([0, 0, 1, 1, 1])  # same-label pairs: {0,1}, {2,3}, {2,4}, {3,4}
    pairs = sample_pairs(labels, 4, same_label=True, rng=0)
    assert {tuple(sorted(p)) for p in pairs.tolist()} == {(0, 1), (2, 3), (2, 4), (3, 4)}
    assert len(sample_pairs(labels, 6, same_label=False, rng=0)) == 6


def test_impossible_requests_say_why():
    with pytest.raises(ValueError, match="same-label.*allow only 0"):
        sample_pairs(np.arange(10), 1, same_label=True, rng=0)
    with pytest.raises(ValueError, match="different-label.*allow only 0"):
        sample_pairs(np.zeros(10, dtype=int), 1, same_label=False, rng=0)
    with pytest.raises(ValueError, match="allow only 1"):
        sample_pairs(np.array([3, 3, 5]), 2, same_label=True, rng=0)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        sample_pairs(np.zeros((2, 3)), 1, same_label=True, rng=0)


def test_analysis_imports_numpy_only():
    code = "import sys, npnet.analysis; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_active_units_counts_varying_dimensions():
    """Dimensions whose mean code varies over the images more than 0.01 are counted; constant
    and nearly constant ones are not."""
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.normal(0, 1, 500), np.full(500, 3.0),
                             rng.normal(0, 0.05, 500), rng.normal(5, 0.2, 500)])
    count, variances = active_units(codes)
    assert count == 2
    np.testing.assert_allclose(variances, codes.var(axis=0))
    assert active_units(codes, threshold=1e-4)[0] == 3
    with pytest.raises(ValueError, match=r"shape \(N, J\) with N >= 2"):
        active_units(codes[:1])
    codes[7, 1] = np.nan  # a diverged encoder: an error, not a dimension counted inactive
    with pytest.raises(ValueError, match="NaN or infinite"):
        active_units(codes)
