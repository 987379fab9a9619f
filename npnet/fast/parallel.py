r"""Data parallelism: one model trained on several CPU cores, each core on a shard of the batch.

Why it is correct. Every npnet loss is a mean over the examples of a batch of N,
:math:`L = \frac{1}{N} \sum_i \ell_i`. Split the batch into shards :math:`S_1, \dots, S_K` of
:math:`n_k` examples, and let :math:`L_k = \frac{1}{n_k} \sum_{i \in S_k} \ell_i` be the loss
that ``train_step`` computes on shard k alone. Then

.. math::  L = \sum_k \frac{n_k}{N} L_k, \qquad
           \frac{\partial L}{\partial \theta} = \sum_k \frac{n_k}{N}
           \frac{\partial L_k}{\partial \theta},

because differentiation is linear: the batch's gradient is the size-weighted mean of the
shards' gradients. Each shard's forward and backward pass needs nothing from the others, so
K threads can run them at once, each on its own copy of the model (its own caches and
``grads``) that shares the one set of parameter arrays.

When it is faster. NumPy's BLAS (OpenBLAS) already spreads every matrix product over the
cores, but the elementwise work (activations, noise, losses) runs on one core, and the
threads of one product wait for each other many times per product. Shards give every core a
whole forward and backward pass, elementwise work included, with one synchronisation per
step; BLAS is held to one thread per shard meanwhile (threadpoolctl). Whether that beats
one model on a multi-threaded BLAS depends on the batch size and the machine
(``benchmarks/bench_train.py --shards 2`` measures it), so it is an option (``--threads`` in
the experiment scripts, ``threads=`` of :func:`npnet.fast.enable`), off by default.

What changes. The shards draw their noise from different random generators (shard 0 from
the step's generator, the others from generators spawned from it), so a run with K threads
gives other numbers than one with a single thread, the same numbers every time for the same
K and seed. The sums are also rounded in another order.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .. import checks

__all__ = ["DataParallel", "available_cores"]

# More shards than cores only take turns; a bound keeps a typo (threads=10**6) from copying
# the model a million times.
MAX_THREADS_PER_CORE = 4


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class DataParallel:
    """Train ``model`` with ``threads`` threads, each on a shard of every batch.

    It offers what :func:`npnet.train.fit` needs of a model (``params``, ``grads``,
    ``train_step``, ``evaluate``), so ``fit(DataParallel(model), optimizer, ...)`` trains
    ``model`` itself: the optimizer updates ``model.params``, the arrays every replica uses.

    Parameters
    ----------
    model
        An npnet model: ``params`` and ``grads`` dicts, ``train_step(x, rng)`` returning
        per-example means, ``evaluate``. It is copied ``threads - 1`` times; the copies share
        its parameter arrays and have gradients and caches of their own.
    threads : int, optional
        Shards per batch, one thread each (default: one per core this process may use).
        1 runs ``model.train_step`` unchanged.

    Attributes
    ----------
    module
        The wrapped model (replica 0, trained in the calling thread).
    replicas : list
        ``[module, copy 1, ..., copy K-1]``.
    """

    def __init__(self, model, threads: int | None = None):
        threads = checks.integer(available_cores() if threads is None else threads, "threads",
                                 low=1)
        if threads > MAX_THREADS_PER_CORE * available_cores():
            raise ValueError(
                f"threads={threads} would copy the model {threads - 1} times for "
                f"{available_cores()} cores, where the shards would only take turns; use at "
                f"most {MAX_THREADS_PER_CORE * available_cores()} (one per core is fastest)")
        self.module = model
        self.threads = threads
        # deepcopy copies everything except what its memo already maps: mapping each
        # parameter array to itself makes every copy hold the very same arrays.
        shared = {id(array): array for array in model.params.values()}
        self.replicas = [model] + [
            copy.deepcopy(model, memo=dict(shared)) for _ in range(threads - 1)
        ]
        for replica in self.replicas[1:]:
            if any(replica.params[k] is not v for k, v in model.params.items()):
                raise TypeError(
                    f"{type(model).__name__} keeps its parameters where a copy cannot share "
                    "them; DataParallel needs model.params to return the layers' own arrays"
                )
        self._pool = None
        self._blas = None
        if threads > 1:
            from threadpoolctl import ThreadpoolController  # inspects the loaded BLAS: once

            self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="npnet-shard")
            self._blas = ThreadpoolController()
            self._blas_threads = max(1, available_cores() // threads)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The model's parameters (shared by every replica)."""
        return self.module.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dL/d(param) of the whole last batch: replica 0's arrays, once ``train_step`` is done."""
        return self.module.grads

    def evaluate(self, x: np.ndarray, *args, **kwargs) -> dict:
        """The model's own ``evaluate`` (one thread; BLAS uses every core)."""
        return self.module.evaluate(x, *args, **kwargs)

    def train_step(self, x: np.ndarray, rng: np.random.Generator | int | None) -> dict:
        """Forward and backward on a batch x (N, D), in shards; fills ``grads``.

        Returns the model's losses for the whole batch: the shards' losses weighted by
        n_k / N, as the gradients are.
        """
        if self.threads == 1:
            return self.module.train_step(x, rng)
        x = np.asarray(x)
        n = len(x)
        if n < self.threads:
            raise ValueError(
                f"a batch of {n} examples cannot be split into {self.threads} shards; "
                f"use a batch of at least {self.threads} examples, or fewer threads"
            )
        bounds = [round(k * n / self.threads) for k in range(self.threads + 1)]
        shards = [x[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        weights = [len(shard) / n for shard in shards]  # n_k / N, as Python floats (a NumPy
        # float64 scalar would turn the float32 gradients it multiplies into float64)
        rng = np.random.default_rng(rng)
        rngs = [rng, *rng.spawn(self.threads - 1)]

        with self._blas.limit(limits=self._blas_threads, user_api="blas"):
            losses = self._run(lambda k: self.replicas[k].train_step(shards[k], rngs[k]))
        self._combine_gradients(weights)
        return {name: sum(w * loss[name] for w, loss in zip(weights, losses, strict=True))
                for name in losses[0]}

    def _run(self, task) -> list:
        """[task(0), ..., task(K-1)]: task(0) in this thread, the others in the pool's."""
        futures = [self._pool.submit(task, k) for k in range(1, self.threads)]
        try:
            first = task(0)
        finally:
            wait(futures)  # never leave a shard running into the next step
        return [first, *(future.result() for future in futures)]

    def _combine_gradients(self, weights: list[float]) -> None:
        """grads[key] <- sum_k w_k grads_k[key] for every key, into replica 0's arrays.

        In this thread: the sums are bound by memory bandwidth, and splitting them over the
        threads made them slower.
        """
        equal = all(w == weights[0] for w in weights)
        for key, total in self.module.grads.items():
            if equal:  # the usual case: (g_0 + ... + g_{K-1}) / K, with no temporary array
                for replica in self.replicas[1:]:
                    total += replica.grads[key]
                total *= weights[0]
            else:
                total *= weights[0]
                for weight, replica in zip(weights[1:], self.replicas[1:], strict=True):
                    total += weight * replica.grads[key]

    def close(self) -> None:
        """Stop the worker threads (also done at interpreter exit)."""
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self) -> str:
        return f"DataParallel({type(self.module).__name__}, threads={self.threads})"

