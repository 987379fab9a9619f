"""The importance-sampled log p(x) of :meth:`npnet.vae.VAE.log_likelihood`, on every core.

The estimate of a test set with k = 5000 samples per image decodes 50 million codes, one
block of samples after another; a block's work (the decoder's products and the Bernoulli
log-likelihood of every pixel) does not depend on any other block's. :func:`log_likelihood`
computes the very blocks the core computes, in threads, one BLAS thread each (NumPy's
products and element-wise passes release the GIL, so the threads run at once), while the
calling thread keeps what must stay in order:

* it draws every block's noise eps from the one generator, in the core's order
  (:meth:`VAE.log_likelihood_blocks`), so each block sees the core's eps;
* it adds the blocks' log-weights into the running log-sum-exp in the core's order
  (:func:`npnet.vae.accumulate_log_sum_exp`), so every sum rounds as the core's does.

Each worker decodes with its own copy of the model (the layers keep caches). The result is
the core's, bit for bit, when the core runs with one BLAS thread too (a product's bits
depend on the BLAS's thread count, :mod:`npnet.fast.threads`):
``tests/test_fast.py::test_parallel_log_likelihood_gives_the_core_bits``.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from ..vae import VAE, accumulate_log_sum_exp
from .parallel import available_cores

__all__ = ["log_likelihood"]


def log_likelihood(
    model: VAE,
    x: np.ndarray,
    k: int = 5000,
    rng: np.random.Generator | int | None = 0,
    chunk: int = 1000,
    workers: int | None = None,
) -> np.ndarray:
    """:meth:`VAE.log_likelihood` (same arguments, same (N,) float64 result) with its blocks
    on ``workers`` threads (default: one per core)."""
    x = model._check_likelihood_args(x, k, chunk)
    workers = available_cores() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers (threads) must be an integer >= 1, got {workers!r}")
    rng = np.random.default_rng(rng)
    local = threading.local()  # each thread's own copy of the model

    def log_weights(batch: np.ndarray, samples: int, eps: np.ndarray) -> np.ndarray:
        if not hasattr(local, "model"):
            local.model = copy.deepcopy(model)
        return local.model.log_weights(batch, samples, eps=eps)

    m, total = np.full(len(x), -np.inf), np.zeros(len(x))
    pending: deque = deque()

    def add_oldest() -> None:
        start, stop, future = pending.popleft()
        accumulate_log_sum_exp(m[start:stop], total[start:stop], future.result())

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        for start, stop, samples in model.log_likelihood_blocks(len(x), k, chunk):
            eps = model._draw_eps(rng, stop - start, samples)
            pending.append((start, stop, pool.submit(log_weights, x[start:stop], samples, eps)))
            if len(pending) > 2 * workers:  # a bounded queue: memory stays bounded
                add_oldest()
        while pending:
            add_oldest()
    return m + np.log(total / k)
