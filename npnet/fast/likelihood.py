"""The importance-sampled log p(x) of :func:`npnet.importance.log_likelihood`, on every core.

The estimate of a test set with k = 5000 samples per image decodes 50 million codes, one
block of samples after another; a block's work (the decoder's products and the Bernoulli
log-likelihood of every pixel) does not depend on any other block's. :func:`log_likelihood`
computes the very blocks the core computes, in threads, one BLAS thread each (NumPy's
products and element-wise passes release the GIL, so the threads run at once), while the
calling thread keeps what must stay in order:

* it walks the core's blocks in the core's order (images ``chunk // min(k, chunk)`` at a
  time, at most ``chunk`` samples each) and draws every block's noise eps from the one
  generator, through the model's sampler, so each block sees the core's eps;
* it adds the blocks' log-weights into the running log-sum-exp in the core's order
  (:func:`npnet.importance.accumulate_log_sum_exp`), so every sum rounds as the core's does.

Each worker decodes with its own copy of the model (the layers keep caches). The result is
the core's, bit for bit, when the core runs with one BLAS thread too (a product's bits
depend on the BLAS's thread count, :mod:`npnet.fast.threads`):
``tests/test_fast.py::test_parallel_log_likelihood_gives_the_core_bits``. Blocks of
``chunk`` = 1,000 codes of 784 pixels (logits and targets of about 3 MB each in float32)
stay in the processor's cache between the passes over them.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from .. import checks
from ..importance import accumulate_log_sum_exp, log_weights
from ..vae import VAE
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
    """:func:`npnet.importance.log_likelihood` (same arguments, same (N,) float64 result)
    with its blocks on ``workers`` threads (default: one per core)."""
    x = checks.binary(model._check_pixels(x, "log_likelihood"), "log_likelihood")
    x = np.asarray(x, dtype=model.dtype)
    k = checks.integer(k, "the number of importance samples k", low=1)
    chunk = checks.integer(chunk, "chunk (codes decoded at once)", low=1)
    if len(x) == 0:
        raise ValueError("log_likelihood got an empty dataset")
    workers = checks.integer(available_cores() if workers is None else workers,
                             "workers (threads)", low=1)
    rng = np.random.default_rng(rng)
    local = threading.local()  # each thread's own copy of the model

    def weigh(batch: np.ndarray, eps: np.ndarray) -> np.ndarray:
        if not hasattr(local, "model"):
            local.model = copy.deepcopy(model)
        return log_weights(local.model, batch, eps.shape[1], eps=eps)

    m, total = np.full(len(x), -np.inf), np.zeros(len(x))
    pending: deque = deque()

    def add_oldest() -> None:
        block, future = pending.popleft()
        accumulate_log_sum_exp(m[block], total[block], future.result())

    samples = min(k, chunk)  # the core's blocks, in the core's order
    images = max(1, chunk // samples)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(x), images):
            block = slice(start, start + images)
            for done in range(0, k, samples):
                shape = (len(x[block]), min(samples, k - done), model.latent_dim)
                eps = model.sampler.noise(shape, model.dtype, rng)
                pending.append((block, pool.submit(weigh, x[block], eps)))
                if len(pending) > 2 * workers:  # a bounded queue: memory stays bounded
                    add_oldest()
        while pending:
            add_oldest()
    return m + np.log(total / k)
