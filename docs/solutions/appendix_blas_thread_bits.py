"""Appendix, exercise 6: what the number of BLAS threads does to a product, and to training.

A matrix product C = A B is, element by element, the same sum c_ij = sum_k a_ik b_kj
whatever the thread count. But a BLAS does not add the k terms one after the other: it cuts
the K dimension into blocks that fit its caches, adds within each block in registers, and
adds the blocks' partial sums into C. How it cuts depends on how many threads share the
work, and rounding is not associative (exercise 2), so the last bits of C may depend on the
thread count. Whether they do is a property of the BLAS and the machine; this script
measures it, and shows the consequence for training: the same seed gives the same numbers
only with the same count, which is why ``blas_threads="auto"`` chooses once per run and the
experiment scripts record the count (``--blas-threads N`` repeats a run).

Run from anywhere: ``python docs/solutions/appendix_blas_thread_bits.py``.
"""

import numpy as np
from threadpoolctl import threadpool_limits

from npnet import fast
from npnet.optim import Adam
from npnet.vae import VAE

rng = np.random.default_rng(0)
a = rng.random((128, 784), dtype=np.float32)  # a batch of images ...
b = rng.standard_normal((784, 512), dtype=np.float32)  # ... times the first layer's W
products = {}
for count in (1, 2):
    with threadpool_limits(count, user_api="blas"):
        products[count] = a @ b
exact = a.astype(np.float64) @ b.astype(np.float64)  # float32 values are exact in float64
# A sum of K rounded terms is off by at most about K * eps * sum_k |a_ik b_kj| (a classic
# bound): measure errors against that scale, not against c_ij, which may be near 0.
scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
eps = float(np.finfo(np.float32).eps)
differ = products[1] != products[2]
print(f"(128, 784) @ (784, 512) in float32, 1 thread against 2: {differ.mean():.1%} of the "
      "elements differ")
for count, product in products.items():  # both are float32 roundings of the same sum
    error = np.abs(product - exact) / scale
    print(f"  {count} thread(s): error against the float64 product, in units of "
          f"eps * sum|a b|: median {np.median(error) / eps:.2f}, largest {error.max() / eps:.2f}")
    assert error.max() < 784 * eps  # within the bound: rounding, not another formula


def train(count: int, steps: int = 20) -> tuple[list[float], dict]:
    """The default VAE, ``steps`` Adam steps on one batch, with ``count`` BLAS threads."""
    model = VAE(rng=0)
    optimizer = Adam(model.params, lr=1e-3)
    trainer = fast.enable(model, optimizer, blas_threads=count)
    losses = []
    for step in range(steps):
        losses.append(trainer.train_step(a, np.random.default_rng([0, step]))["loss"])
        optimizer.step(trainer.grads)
    return losses, model.params


runs = {count: train(count) for count in (1, 2)}
again = train(1)
assert again[0] == runs[1][0]  # the same count: the same numbers, to the last bit
for key, value in runs[1][1].items():
    np.testing.assert_array_equal(again[1][key], value)
print(f"20 steps with 1 thread, twice: the same losses; last loss {runs[1][0][-1]!r}")
print(f"20 steps with 2 threads:                       last loss {runs[2][0][-1]!r}")
if differ.any():
    changed = sum(not np.array_equal(runs[1][1][k], runs[2][1][k]) for k in runs[1][1])
    largest = max(float(np.max(np.abs(runs[1][1][k] - runs[2][1][k]))) for k in runs[1][1])
    print(f"  {changed} of {len(runs[1][1])} parameter arrays differ between 1 and 2 threads, "
          f"by {largest:.1e} at most")
    assert largest < 1e-3  # nearby runs after 20 steps; over many epochs they drift further
    # The differences are rounding: the two runs agree to a few parts in ten thousand.
    assert abs(runs[1][0][-1] - runs[2][0][-1]) < 1e-3 * abs(runs[1][0][-1])
else:
    print("  this BLAS gives the same bits with 1 and 2 threads: the count is free here")
