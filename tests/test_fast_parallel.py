"""Data parallelism: the shards' weighted gradients are the whole batch's gradient, the
replicas share one set of parameters, BLAS runs one thread per shard, and fit trains through
it (reproducibly, resumably)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info

from npnet import fast
from npnet.autoencoder import DenoisingAutoencoder
from npnet.fast.parallel import DataParallel, available_cores
from npnet.optim import Adam
from npnet.train import fit
from npnet.vae import VAE


def small_dae(seed=0, dtype=np.float64, noise_level=0.0):
    return DenoisingAutoencoder(12, (8, 6), 3, noise_level=noise_level, rng=seed, dtype=dtype)


def small_vae(seed=0):
    return VAE(12, hidden=(8, 6), latent=2, rng=seed, dtype=np.float64)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 11), threads=st.integers(2, 3), seed=st.integers(0, 2**32 - 1))
def test_sharded_gradients_equal_the_whole_batch_gradients(n, threads, seed):
    """dL/dtheta = sum_k (n_k / N) dL_k/dtheta, shards of equal or unequal size (no noise)."""
    x = np.random.default_rng(seed).random((n, 12))
    whole, sharded = small_dae(seed), small_dae(seed)
    expected = whole.train_step(x, rng=0)
    with DataParallel(sharded, threads) as parallel:
        if n < threads:
            with pytest.raises(ValueError, match="cannot be split"):
                parallel.train_step(x, rng=0)
            return
        got = parallel.train_step(x, rng=0)
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-12)
    for name, grad in whole.grads.items():
        np.testing.assert_allclose(sharded.grads[name], grad, rtol=1e-10, atol=1e-13)


def test_vae_shards_use_the_documented_generators():
    """Shard 0 draws from the step's generator, shard k from the (k-1)-th spawned child:
    the losses and gradients are those of the shards run one by one with those generators."""
    x = np.random.default_rng(3).random((7, 12))
    by_hand = [small_vae(), small_vae()]
    rng = np.random.default_rng(11)
    shard_rngs = [rng, *rng.spawn(1)]
    shards, weights = [x[:4], x[4:]], [4 / 7, 3 / 7]  # round(7 / 2) = 4 rows go first
    losses = [m.train_step(s, r) for m, s, r in zip(by_hand, shards, shard_rngs, strict=True)]

    model = small_vae()
    with DataParallel(model, 2) as parallel:
        got = parallel.train_step(x, np.random.default_rng(11))
    for name in ("loss", "recon", "kl"):
        expected = sum(w * loss[name] for w, loss in zip(weights, losses, strict=True))
        assert got[name] == pytest.approx(expected, rel=1e-12), name
    for name, grad in model.grads.items():
        expected = sum(w * m.grads[name] for w, m in zip(weights, by_hand, strict=True))
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13)


def test_replicas_share_the_parameters_the_optimizer_updates():
    model = small_dae(dtype=np.float32, noise_level=0.2)
    with DataParallel(model, 3) as parallel:
        optimizer = Adam(parallel.params, lr=0.1)
        parallel.train_step(np.random.default_rng(0).random((9, 12)), rng=0)
        optimizer.step(parallel.grads)
        for replica in parallel.replicas[1:]:
            for name, array in model.params.items():
                assert replica.params[name] is array
            for name, array in model.grads.items():
                assert replica.grads[name] is not array  # each shard writes its own


def test_same_seed_same_numbers_and_one_thread_is_the_model_itself():
    x = np.random.default_rng(0).random((10, 12), dtype=np.float32)
    runs = []
    for _ in range(2):
        model = small_dae(dtype=np.float32, noise_level=0.3)
        with DataParallel(model, 2) as parallel:
            runs.append((parallel.train_step(x, rng=5), model.grads))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])

    alone, wrapped = small_dae(dtype=np.float32, noise_level=0.3), small_dae(
        dtype=np.float32, noise_level=0.3
    )
    assert DataParallel(wrapped, 1).train_step(x, rng=5) == alone.train_step(x, rng=5)


@pytest.mark.skipif(available_cores() < 2, reason="needs two cores to limit BLAS to one each")
def test_blas_runs_one_thread_per_shard_and_is_restored_after():
    model = small_dae()
    seen = []
    original = model.train_step

    def recording_train_step(x, rng):
        seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
        return original(x, rng)

    model.train_step = recording_train_step  # replica 0 is the model itself
    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    with DataParallel(model, available_cores()) as parallel:
        parallel.train_step(np.random.default_rng(0).random((8, 12)), rng=0)
    assert seen and all(n == 1 for n in seen[0]), seen
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before


@pytest.mark.parametrize("threads, error", [(0, ValueError), (-1, ValueError),
                                            (2.5, TypeError), (float("nan"), TypeError),
                                            ("2", TypeError)], ids=repr)
def test_bad_thread_counts_are_clear_errors(threads, error):
    with pytest.raises(error, match="threads must be an integer >= 1"):
        DataParallel(small_dae(), threads)
    model = small_dae()
    with pytest.raises(error, match="threads must be an integer >= 1"):
        fast.enable(model, Adam(model.params), threads=threads)


def test_a_thread_count_far_above_the_cores_is_refused_before_copying():
    """threads=10**6 would deep-copy the model a million times."""
    with pytest.raises(ValueError, match=r"threads=1000000 would copy the model 999999 times"):
        DataParallel(small_dae(), 10**6)


def test_fit_trains_through_it_and_resumes_exactly(tmp_path):
    x = np.random.default_rng(0).random((96, 12), dtype=np.float32) ** 3

    def run(epochs, **kwargs):
        model = small_dae(dtype=np.float32, noise_level=0.1)
        optimizer = Adam(model.params, lr=1e-2)
        with DataParallel(model, 2) as parallel:
            history = fit(parallel, optimizer, x, x_eval=x[:20], epochs=epochs, batch_size=16,
                          seed=5, progress=False, log=lambda _: None, **kwargs)
        return model, history

    straight, history = run(8)  # as test_train.py asks of the model alone
    assert history["train_loss"][-1] < 0.6 * history["train_loss"][0]
    run(4, checkpoint=tmp_path / "ckpt.npz")
    resumed, _ = run(8, checkpoint=tmp_path / "ckpt.npz", resume=True)
    for name, array in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], array)
