"""Where a training step's time goes: every layer's forward and backward, the loss, the noise,
the optimizer.

    python benchmarks/profile_step.py                     # default DAE, batch 128
    python benchmarks/profile_step.py --model vae --batch-size 512
    python benchmarks/profile_step.py --no-fast           # the core alone (no npnet.fast)
    python benchmarks/profile_step.py --arch conv         # the convolutional DAE
    python benchmarks/profile_step.py --model likelihood  # vae_likelihood.py's model, batch 20

It runs the same step as ``bench_train.py`` (``model.train_step`` then Adam's ``step``, on
random images) with a timer around each part, and prints the median milliseconds of each
part and its share of the median step. Layers are named as in ``model.params``
(``encoder.0`` is the first Dense layer); "Dense" rows are almost all matrix products, the
activation and loss rows are NumPy's elementwise work. ``--model likelihood`` is the model
of ``experiments/vae_likelihood.py`` as ``bench_likelihood.py`` builds it (784-200-200-50
tanh VAE, output bias at the mean image's logit, Adam eps 1e-4; ELBO), on binary images,
at that experiment's batch of 20 unless ``--batch-size`` says otherwise.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import defaultdict

import numpy as np
from bench_train import npnet_model  # the benchmark's models and optimizer, exactly

import npnet.autoencoder
import npnet.vae
from npnet.vae import VAE


def timed(function, key: str, times: dict):
    """``function``, with the seconds of every call appended to ``times[key]``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        times[key].append(time.perf_counter() - started)
        return result

    return wrapper


def instrument(model, times: dict) -> None:
    """Time every layer's forward and backward, the loss and the model's noise, in place."""
    layers = [*model.encoder.layers, *model.decoder.layers]
    if isinstance(model, VAE):
        layers.append(model.sampler)
        npnet.vae.bce_with_logits = timed(npnet.vae.bce_with_logits, "loss (BCE)", times)
    else:
        model.corrupt = timed(model.corrupt, "corruption (noise)", times)
        npnet.autoencoder.mse_loss = timed(npnet.autoencoder.mse_loss, "loss (MSE)", times)
    for layer in layers:
        label = f"{layer.name} {type(layer).__name__}"
        label = label.replace("Fast", "")  # the fast path's FastDense is a Dense row, ...
        layer.forward = timed(layer.forward, f"{label} forward", times)
        layer.backward = timed(layer.backward, f"{label} backward", times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["dae", "vae", "likelihood"], default="dae")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 128 (20 for --model likelihood)")
    parser.add_argument("--steps", type=int, default=400, help="timed steps (after 50 more)")
    parser.add_argument("--arch", choices=["dense", "conv"], default="dense")
    parser.add_argument("--no-fast", action="store_true", help="time the core alone")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads for the products (default: the BLAS's own count)")
    args = parser.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 20 if args.model == "likelihood" else 128
    x = np.random.default_rng(0).random((args.batch_size, 784), dtype=np.float32)

    if args.model == "likelihood":
        if args.arch != "dense":
            parser.error("--model likelihood is dense (784-200-200-50 tanh)")
        from bench_likelihood import build_npnet

        import npnet.fast

        x = (x < 0.3).astype(np.float32)  # binary pixels, as the experiment trains on
        model, optimizer = build_npnet("elbo", 1, x)
        if not args.no_fast:
            npnet.fast.enable(model, optimizer, blas_threads=None)
    elif args.arch == "dense":
        _, model, optimizer = npnet_model(args.model, seed=0, fast=not args.no_fast)
    else:  # the experiments' conv models, built as npnet_model builds the dense ones
        import npnet.fast
        from npnet.optim import Adam

        model_class = npnet.autoencoder.DenoisingAutoencoder if args.model == "dae" else VAE
        model = model_class(rng=0, arch="conv")
        optimizer = Adam(model.params, lr=1e-3)
        if not args.no_fast:
            npnet.fast.enable(model, optimizer, blas_threads=None)
    times: dict[str, list[float]] = defaultdict(list)
    instrument(model, times)
    optimizer.step = timed(optimizer.step, "Adam step", times)
    rng = np.random.default_rng(0)
    warmup = 50
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.blas_threads, user_api="blas")  # for the whole run
    for i in range(warmup + args.steps):
        if i == warmup:
            times.clear()
        started = time.perf_counter()
        model.train_step(x, rng)
        optimizer.step(model.grads)
        times["step"].append(time.perf_counter() - started)

    step = statistics.median(times.pop("step"))
    medians = {key: statistics.median(values) for key, values in times.items()}
    threads = "the BLAS's own count" if args.blas_threads is None else args.blas_threads
    print(f"BLAS threads: {threads}")
    print(f"{args.model} ({args.arch}), batch {args.batch_size}: median step {1e3 * step:.3f} ms "
          f"({args.batch_size / step:,.0f} samples/s), medians over {args.steps} steps\n")
    for key, seconds in medians.items():
        print(f"  {key:<34} {1e3 * seconds:8.3f} ms {100 * seconds / step:6.1f}%")
    dense = sum(s for k, s in medians.items() if " Dense " in k)
    print(f"\n  {'all Dense layers':<34} {1e3 * dense:8.3f} ms {100 * dense / step:6.1f}%")
    rest = step - sum(medians.values())
    label = "the rest (Python, untimed work)"
    print(f"  {label:<34} {1e3 * rest:8.3f} ms {100 * rest / step:6.1f}%")


if __name__ == "__main__":
    main()
