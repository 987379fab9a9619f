"""The pieces of the likelihood experiment's training step, each timed alone with hot caches.

    python benchmarks/micro_batch20.py
    python benchmarks/micro_batch20.py --repeats 21

``profile_step.py --model likelihood`` says where a batch-20 step of
``experiments/vae_likelihood.py``'s model spends its time; this script says what each kind of
work costs on its own, to tell what could go faster and what cannot without other bits:

* NumPy's float32 element-wise functions that the step and the log p(x) estimate call
  (``exp``, ``log``, ``log1p``, ``tanh``), in ns per element, on a batch of 20 images and on
  a 1,000-row chunk of the evaluation;
* every matrix product of the 784-200-200-50 model at batch 20 with one BLAS thread
  (forward ``x W``, the weight gradient ``x^T dout``, the input gradient ``dout W^T``), in
  microseconds and GFLOP/s;
* Adam's update of all the model's parameters by the fast path's compiled loop
  (:func:`npnet.fast.optim.adam_kernel`), with the arrays hot in cache.

glibc is told to keep freed memory for the next call (:mod:`npnet.fast.memory`, as the fast
path and ``bench_likelihood.py`` do), so a 3 MB result is not a fresh mapping, page faults
and all, at every call. Every figure is the median over ``--repeats`` timings, each of a
block of calls long enough to be well above the clock's resolution. Run it on an idle
machine.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import numpy as np
from bench_likelihood import ACTIVATION, HIDDEN, LATENT, PIXELS
from threadpoolctl import threadpool_limits

from npnet.fast.memory import keep_freed_memory
from npnet.fast.optim import adam_kernel
from npnet.vae import VAE

# The experiment's model, as bench_likelihood.py builds it: its parameters' shapes, W (in,
# out) and b (out,) of every Dense layer, encoder first (its last one gives mu and logvar).
SHAPES = [p.shape for p in VAE(PIXELS, HIDDEN, LATENT, activation=ACTIVATION).params.values()]
LAYERS = [shape for shape in SHAPES if len(shape) == 2]


def median_seconds(call, number: int, repeats: int) -> float:
    """Median over ``repeats`` of the time of one call, each timing a block of ``number``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            call()
        times.append((time.perf_counter() - started) / number)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=11, help="timings per figure")
    args = parser.parse_args(argv)
    keep_freed_memory()
    rng = np.random.default_rng(0)

    print("NumPy float32 element-wise functions, ns per element (median):")
    for rows in (20, 1000):
        s = (rng.standard_normal((rows, 784)) * 4).astype(np.float32)
        u = np.exp(-np.abs(s))  # log1p's argument in the loss: exp(-|s|), in (0, 1]
        number = max(5, 200_000 // s.size)
        cells = []
        for name, function, argument in [("exp", np.exp, -np.abs(s)), ("log", np.log, u),
                                         ("log1p", np.log1p, u), ("tanh", np.tanh, s)]:
            call = functools.partial(function, argument)
            seconds = median_seconds(call, number, args.repeats)
            cells.append(f"{name} {1e9 * seconds / s.size:.1f}")
        print(f"  ({rows}, 784): " + ", ".join(cells))

    print("\nthe model's products at batch 20, 1 BLAS thread, microseconds (GFLOP/s):")
    with threadpool_limits(limits=1, user_api="blas"):
        for d_in, d_out in LAYERS:
            x = rng.standard_normal((20, d_in)).astype(np.float32)
            w = rng.standard_normal((d_in, d_out)).astype(np.float32)
            dout = rng.standard_normal((20, d_out)).astype(np.float32)
            grad = np.empty_like(w)
            flops = 2 * 20 * d_in * d_out
            cells = []
            for name, call in [("x W", functools.partial(np.matmul, x, w)),
                               ("x^T dout", functools.partial(np.matmul, x.T, dout, out=grad)),
                               ("dout W^T", functools.partial(np.matmul, dout, w.T))]:
                seconds = median_seconds(call, 200, args.repeats)
                cells.append(f"{name} {1e6 * seconds:.1f} ({flops / seconds / 1e9:.0f})")
            print(f"  {d_in:>3} -> {d_out:<3}: " + ", ".join(cells))

    kernel = adam_kernel()
    if kernel is None:
        print("\nAdam's compiled loop: numba is not installed")
        return
    arrays = []
    for shape in SHAPES:  # every W and b
        w, g = (rng.standard_normal(shape).astype(np.float32).reshape(-1) for _ in range(2))
        arrays.append((w, g, np.zeros_like(w), np.zeros_like(w)))
    count = sum(w.size for w, *_ in arrays)
    scalars = tuple(np.float32(v) for v in (0.9, 0.1, 0.999, 0.001, 0.1, 0.001, 1e-3, 1e-4))

    def update_all():
        for w, g, m, v in arrays:
            kernel(w, g, m, v, *scalars)

    seconds = median_seconds(update_all, 50, args.repeats)
    traffic = 7 * 4 * count  # read w, g, m, v and write w, m, v: float32
    print(f"\nAdam's compiled loop on all {count:,} parameters, hot in cache: "
          f"{1e3 * seconds:.3f} ms ({traffic / seconds / 1e9:.0f} GB/s of {traffic / 1e6:.1f} "
          "MB read and written)")


if __name__ == "__main__":
    main()
