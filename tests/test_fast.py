"""The fast path computes what the core computes, bit for bit, on inputs hypothesis draws.

The core (npnet.layers, npnet.optim, ...) is the definition; every fast variant is checked
against it with ``np.testing.assert_array_equal``, not a tolerance: the fast code does the
core's floating-point operations in the core's order, and only changes where results are
written and how many passes over memory it takes.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from strategies import seeds
from threadpoolctl import threadpool_limits

from npnet import fast
from npnet.autoencoder import DenoisingAutoencoder
from npnet.fast.layers import FastDense
from npnet.fast.likelihood import log_likelihood as fast_log_likelihood
from npnet.fast.optim import FastAdam, numba_available
from npnet.layers import Dense
from npnet.optim import SGD, Adam
from npnet.vae import VAE

dtypes = st.sampled_from([np.float32, np.float64])
needs_numba = pytest.mark.skipif(not numba_available(), reason="numba not installed")


def assert_same_bits(fast_arrays: dict, core_arrays: dict) -> None:
    """Same keys, dtypes, shapes, values and signs: the same bits, 0.0 and -0.0 told apart
    (a long double's bytes also hold padding, so they are not compared as bytes)."""
    assert fast_arrays.keys() == core_arrays.keys()
    for key, value in core_arrays.items():
        quick = fast_arrays[key]
        assert quick.dtype == value.dtype and quick.shape == value.shape, key
        np.testing.assert_array_equal(quick, value, err_msg=key)
        np.testing.assert_array_equal(np.signbit(quick), np.signbit(value),
                                      err_msg=f"{key}: signs (of zeros)")


@given(
    dtype=dtypes,
    n=st.integers(1, 40),
    d_in=st.integers(1, 40),
    d_out=st.integers(1, 40),
    seed=seeds,
)
def test_fast_dense_gives_the_core_dense_bits(dtype, n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    core = Dense(d_in, d_out, rng=seed, dtype=dtype)
    core.params["b"][...] = rng.standard_normal(d_out)
    quick = Dense(d_in, d_out, rng=seed, dtype=dtype)
    quick.params["b"][...] = core.params["b"]
    quick.__class__ = FastDense
    x = rng.standard_normal((n, d_in)).astype(dtype)
    dout = rng.standard_normal((n, d_out)).astype(dtype)

    assert_same_bits({"y": quick.forward(x)}, {"y": core.forward(x)})
    assert_same_bits({"dx": quick.backward(dout)}, {"dx": core.backward(dout)})
    assert_same_bits(quick.grads, core.grads)
    quick.input_grad = False
    assert quick.backward(dout) is None
    assert_same_bits(quick.grads, core.grads)


@needs_numba
@given(
    dtype=dtypes,
    shape=array_shapes(min_dims=1, max_dims=2, max_side=40),
    seed=seeds,
    weight_decay=st.sampled_from([0.0, 0.01]),
    lr=st.sampled_from([1e-3, 0.1]),
)
def test_fast_adam_gives_the_core_adams_bits(dtype, shape, seed, weight_decay, lr):
    """Five steps of the compiled loop against the core's NumPy passes: w, m and v."""
    w0 = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    grads = np.random.default_rng(seed + 1).standard_normal((5, *shape)).astype(dtype)
    results = {}
    for optimizer_class in (Adam, FastAdam):
        w = w0.copy()
        optimizer = optimizer_class({"w": w}, lr=lr, weight_decay=weight_decay)
        for g in grads:
            optimizer.step({"w": g})
        results[optimizer_class] = {"w": w, **optimizer.state["w"]}
    assert_same_bits(results[FastAdam], results[Adam])


@given(x=arrays(np.float32, (3, 4), elements=st.floats(-2, 2, width=32)))
def test_fast_adam_takes_the_core_passes_for_arrays_it_cannot_loop_over(x):
    """A transposed (strided) parameter, or a gradient of another dtype: the core's rule."""
    w_view, w_core = x.copy().T, np.ascontiguousarray(x.T)
    FastAdam({"w": w_view}, lr=0.1).step({"w": np.ones((4, 3), np.float32)})
    Adam({"w": w_core}, lr=0.1).step({"w": np.ones((4, 3), np.float32)})
    np.testing.assert_array_equal(w_view, w_core)
    w_mixed = np.ascontiguousarray(x.T)
    FastAdam({"w": w_mixed}, lr=0.1).step({"w": np.ones((4, 3), np.float64)})
    np.testing.assert_array_equal(w_mixed, w_core)



def test_fast_adam_gives_the_core_adams_bits_in_long_double():
    """numba has no long double arithmetic: such parameters take the core's passes (float16
    ones are refused by both: tests/test_optim.py::test_adam_refuses_float16_parameters)."""
    dtype = np.longdouble
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(7).astype(dtype), rng.standard_normal((3, 7)).astype(dtype)
    results = {}
    for optimizer_class in (Adam, FastAdam):
        w = w0.copy()
        optimizer = optimizer_class({"w": w}, lr=0.1, weight_decay=0.01)
        for g in grads:
            optimizer.step({"w": g})
        results[optimizer_class] = {"w": w, **optimizer.state["w"]}
    assert_same_bits(results[FastAdam], results[Adam])
    assert not np.array_equal(results[Adam]["w"], w0)

def make(kind: str, seed: int):
    if kind == "dae":
        return DenoisingAutoencoder(30, (16, 8), 4, rng=seed)
    return VAE(30, (16, 8), 3, rng=seed)


@settings(max_examples=15, deadline=None)
@given(
    kind=st.sampled_from(["dae", "vae"]),
    optimizer_class=st.sampled_from([Adam, SGD]),
    seed=seeds,
    batch=st.integers(1, 17),
)
def test_enabled_training_gives_the_core_bits(kind, optimizer_class, seed, batch):
    """Six training steps of a whole model: losses, parameters and optimizer state."""
    x = np.random.default_rng(seed).random((batch, 30), dtype=np.float32)
    outcome = {}
    for use_fast in (False, True):
        model = make(kind, seed)
        optimizer = optimizer_class(model.params, lr=1e-2)
        trainer = model
        if use_fast:
            # A fixed count: "auto" would time the counts first (tests/test_fast_threads.py).
            trainer = fast.enable(model, optimizer, blas_threads=1)
            assert isinstance(trainer, fast.BlasThreads) and trainer.module is model
            assert isinstance(model.encoder.layers[0], FastDense)
        losses = []
        for step in range(6):
            losses.append(trainer.train_step(x, np.random.default_rng([seed, step])))
            optimizer.step(trainer.grads)
        state = {f"{k}/{slot}": a for k, s in optimizer.state.items() for slot, a in s.items()}
        outcome[use_fast] = (losses, dict(model.params), state)
    assert outcome[True][0] == outcome[False][0]
    assert_same_bits(outcome[True][1], outcome[False][1])
    assert_same_bits(outcome[True][2], outcome[False][2])


def test_enable_keeps_state_and_refuses_a_foreign_optimizer():
    model = make("dae", 0)
    optimizer = Adam(model.params, lr=1e-2)
    model.train_step(np.full((4, 30), 0.5, np.float32), 0)
    optimizer.step(model.grads)
    saved = {k: v.copy() for k, v in optimizer.state_dict().items()}
    fast.enable(model, optimizer)
    assert type(optimizer) is FastAdam and optimizer.steps == 1
    assert_same_bits(optimizer.state_dict(), saved)
    with pytest.raises(ValueError, match="not built on this model"):
        fast.enable(make("vae", 0), Adam(model.params))


def test_enable_with_threads_returns_a_data_parallel_trainer():
    model = make("dae", 0)
    trainer = fast.enable(model, Adam(model.params), threads=2)
    try:
        assert isinstance(trainer, fast.DataParallel) and trainer.module is model
    finally:
        trainer.close()


# --- log p(x) on every core -----------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(seed=seeds, n=st.integers(1, 7), k=st.integers(1, 200), chunk=st.integers(1, 30),
       workers=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.float64]))
def test_parallel_log_likelihood_gives_the_core_bits(seed, n, k, chunk, workers, dtype):
    """npnet.fast.likelihood.log_likelihood: the same blocks, the same eps, the same running
    sums as VAE.log_likelihood, so the same bits (the core with one BLAS thread, as the
    workers run)."""
    model = VAE(9, (6,), 3, activation="tanh", rng=seed, dtype=dtype)
    x = (np.random.default_rng(seed).random((n, 9)) < 0.5).astype(dtype)
    with threadpool_limits(limits=1, user_api="blas"):
        core = model.log_likelihood(x, k=k, rng=seed, chunk=chunk)
    fast = fast_log_likelihood(model, x, k=k, rng=seed, chunk=chunk, workers=workers)
    assert_same_bits({"log p(x)": fast}, {"log p(x)": core})


def test_parallel_log_likelihood_refuses_what_the_core_refuses():
    model = VAE(4, (3,), 2)
    with pytest.raises(ValueError, match="needs binary images"):
        fast_log_likelihood(model, np.full((2, 4), 0.5), k=3)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        fast_log_likelihood(model, np.ones((2, 4)), k=0)
    with pytest.raises(ValueError, match="workers .* must be an integer >= 1, got 0"):
        fast_log_likelihood(model, np.ones((2, 4)), k=3, workers=0)


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
def test_adams_loop_compiles_without_a_cache_where_numba_has_no_folder_for_one(
        monkeypatch, capsys):
    """A read-only installation and home leave numba no locator: "cannot cache function
    '_adam_loop': no locator available" at the first step. The loop is compiled for the
    process instead, with one line saying so, and gives the core's bits."""
    from numba.core import caching

    from npnet.fast import optim as fast_optim

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])  # no writable folder
    kernel = fast_optim.adam_kernel.__wrapped__()  # adam_kernel itself is cached
    assert "no writable folder to cache" in capsys.readouterr().err
    w, g = np.linspace(-1, 1, 8, dtype=np.float32), np.linspace(1, -1, 8, dtype=np.float32)
    core = Adam({"w": w.copy()}, lr=0.1)
    core.step({"w": g})
    m, v, w_fast = np.zeros(8, np.float32), np.zeros(8, np.float32), w.copy()
    scalars = (0.9, 0.1, 0.999, 1 - 0.999, 1 - 0.9, 1 - 0.999, 0.1, 1e-8)
    kernel(w_fast, g, m, v, *map(np.float32, scalars))
    np.testing.assert_array_equal(w_fast, core.params["w"])
