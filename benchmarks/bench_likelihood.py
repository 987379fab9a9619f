"""Burda et al.'s 784-200-200-50 tanh VAE: npnet's training step at batch 20 against PyTorch's,
side by side in one run, and the time of the k = 5000 importance-sampled log p(x).

    python benchmarks/bench_likelihood.py                           # VAE (ELBO), npnet only
    ../venv-torch/bin/python benchmarks/bench_likelihood.py         # + the PyTorch column
    ../venv-torch/bin/python benchmarks/bench_likelihood.py --objective iwae --k 5
    ../venv-torch/bin/python benchmarks/bench_likelihood.py --check # same function? then exit
    python benchmarks/bench_likelihood.py --rounds 2 --steps-per-round 20 --eval-images 2
    python benchmarks/bench_likelihood.py --help

The model is the one ``experiments/vae_likelihood.py`` trains:
``VAE(784, hidden=(200, 200), latent=50, activation="tanh", objective=..., k=...)`` (seed 0),
its decoder's output bias set to the logit of the mean training image
(``init_output_bias``), a Bernoulli decoder (BCE with logits summed over pixels), Adam with
lr 1e-3 and eps 1e-4, batch 20, float32. ``--objective elbo`` is the VAE (k = 1, the KL term
in closed form); ``--objective iwae --k 5`` the IWAE bound with 5 samples per image.

The images are binary: real MNIST, binarised once (``npnet.data.binarize``; the test images
with ``TEST_BINARIZATION_SEED``, as the experiment does), when ``$NPNET_DATA`` names a folder
with the MNIST files; otherwise ``np.random.default_rng(0).random((N, 784)) < 0.3``. The
experiment binarises every training batch afresh; that draw is not part of the step timed
here. The training steps cycle through a pool of ``--pool-batches`` pre-made batches.

1. **Training step** (forward, backward, Adam update), in samples/s, for every BLAS thread
   count of ``--threads`` (default 1 and, on a machine with 2 or more cores, 2):

   * ``npnet core``: ``model.train_step(x, rng)`` then ``optimizer.step(model.grads)``, the
     core alone (no ``npnet.fast``), under ``threadpoolctl.threadpool_limits(T)``;
   * ``npnet fast``: ``trainer = npnet.fast.enable(model, optimizer, blas_threads=T)``, then
     ``trainer.train_step(x, rng)`` and ``optimizer.step(trainer.grads)``;
   * ``PyTorch`` (when ``torch`` is importable): the same network as an ``nn.Module``
     (Linear-Tanh-Linear-Tanh-Linear(2J) encoder for (mu, logvar), the reparameterisation
     z = mu + exp(logvar / 2) eps, Linear-Tanh-Linear-Tanh-Linear decoder to logits), its
     loss BCE-with-logits summed over pixels / N + the analytic KL / N (ELBO), or minus the
     mean over the batch of ``torch.logsumexp`` of the k log-weights - log k (IWAE);
     ``torch.optim.Adam(lr=1e-3, eps=1e-4)``, ``torch.set_num_threads(T)``; npnet's initial
     weights copied in. PyTorch does not clip logvar to [-30, 20] as npnet does (the clip is
     inactive in training).

2. **log p(x)**, ``model.log_likelihood(x, k=5000, rng=0)`` on ``--eval-images`` images
   (the experiment estimates it on the 10,000 test images): seconds per image and the
   extrapolation to 10,000 images, under each thread count; and the same estimate in PyTorch
   (the encoder, then the decoder on the k codes in npnet's chunks, ``chunk // k`` images
   and at most ``chunk`` codes at a time, the log-weights combined with ``torch.logsumexp``
   in float64, under ``torch.inference_mode``). Other npnet evaluations of log p(x) go into
   :data:`EVALUATORS`, one line each.

**The same function.** Before timing (and with ``--check``, instead of it), the script copies
a fresh npnet model's weights into the PyTorch twin and prints, for the ELBO and for the IWAE
bound, both losses on one batch with the same eps and the largest absolute difference of a
gradient; the log p(x) estimates of both on two images with the same eps; and whether the
fast path's first step gives the core's loss bit for bit.

**Timing**, as in ``bench_threads.py`` and ``bench_conv.py``: numbers of one machine and one
moment; run it on an idle machine. Every contender is warmed up first (``--warmup-steps``
steps: numba's compilation, the allocator). Then ``--rounds`` rounds each time one block of
``--steps-per-round`` steps of every contender, in an order that rotates from round to round,
each block after a 0.2 s pause (OpenBLAS's threads stop spinning) and with its first 2 steps
not counted. Samples/s are medians over rounds, [min-max] the range over rounds. A shared
machine's speed drifts within seconds, so every ratio is computed within a round, from blocks
a second or so apart, and printed as the median [min-max] of the per-round ratios. Ratios are
of speed: npnet's samples/s over PyTorch's (PyTorch's time over npnet's; above 1, npnet is
faster). The log p(x) evaluations are timed the same way, ``--eval-rounds`` rounds of one
call each on the ``--eval-images`` images. glibc keeps freed memory for the next step in the
whole process (``npnet.fast.memory.keep_freed_memory``, which ``enable`` calls), so for every
contender.

PyTorch is never an npnet dependency: run the script with a virtual environment that has it
(``pip install torch==2.13.0`` in a separate one, with npnet installed there too; see
benchmarks/README.md); without it, the npnet columns only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from bench_train import (
    BLAS_SPIN_S,
    import_torch,
    load_report,
    machine_report,
    markdown,
    median_range,
)

from npnet.fast.likelihood import log_likelihood as fast_log_likelihood
from npnet.optim import Adam
from npnet.vae import VAE

PIXELS, HIDDEN, LATENT, ACTIVATION = 784, (200, 200), 50, "tanh"
LR, ADAM_EPS = 1e-3, 1e-4  # Burda et al.'s Adam eps, as experiments/vae_likelihood.py
SETTLE_STEPS = 2  # not counted at the start of every block
TEST_IMAGES = 10_000  # the evaluation's extrapolation: MNIST's test set
# npnet's log_likelihood decodes this many codes at a time; the PyTorch estimate follows it.
CHUNK = inspect.signature(VAE.log_likelihood).parameters["chunk"].default
CORE, FAST, TORCH = "npnet core", "npnet fast", "PyTorch"

# The log p(x) estimates to time: name -> f(model, x, k, threads) giving the (N,) float64
# estimates, called with NumPy's BLAS limited to ``threads``, the thread count of the row.
# Add another npnet evaluation in one line. PyTorch's is added when torch is importable.
EVALUATORS: dict[str, Callable[[VAE, np.ndarray, int, int], np.ndarray]] = {
    "npnet log_likelihood": lambda model, x, k, threads: model.log_likelihood(x, k=k, rng=0),
    "npnet.fast.likelihood": lambda model, x, k, threads: fast_log_likelihood(
        model, x, k=k, rng=0, workers=threads),
}


# --------------------------------------------------------------------------------------------
# Data and the npnet model


def load_images(pool: int, eval_images: int, log) -> tuple[np.ndarray, np.ndarray, str]:
    """(training images (pool, 784), evaluation images (eval_images, 784), their source),
    float32 and binary: MNIST through $NPNET_DATA, random pixels otherwise."""
    if os.environ.get("NPNET_DATA"):
        from npnet.data import TEST_BINARIZATION_SEED, binarize, load_mnist

        try:
            x_train, _ = load_mnist("train", download=False)
            x_test, _ = load_mnist("test", download=False)
        except Exception as error:  # any failure: say so, and use random images
            log(f"NPNET_DATA is set but MNIST could not be loaded ({error}); random binary "
                "images instead")
        else:
            train = binarize(x_train[:pool], 0)
            test = binarize(x_test, TEST_BINARIZATION_SEED)[:eval_images]
            return (train, test, f"binarised MNIST (NPNET_DATA={os.environ['NPNET_DATA']}): "
                    f"the first {pool} training images, the first {eval_images} test images")
    x = (np.random.default_rng(0).random((pool + eval_images, PIXELS)) < 0.3).astype(np.float32)
    return (x[:pool], x[pool:], "random binary images, np.random.default_rng(0).random((N, "
            "784)) < 0.3 (set NPNET_DATA to a folder with the MNIST files for real digits)")


def build_npnet(objective: str, k: int, x_train: np.ndarray) -> tuple[VAE, Adam]:
    """The experiment's model (seed 0, output bias at the mean image's logit) and its Adam."""
    model = VAE(PIXELS, HIDDEN, LATENT, activation=ACTIVATION, rng=0, objective=objective, k=k)
    model.init_output_bias(x_train)
    return model, Adam(model.params, lr=LR, eps=ADAM_EPS)


@contextlib.contextmanager
def blas_threads(count: int):
    """NumPy's BLAS (every BLAS library loaded) with ``count`` threads inside the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield


# --------------------------------------------------------------------------------------------
# The PyTorch twin


def torch_twin(model: VAE):
    """(encoder, decoder) as ``nn.Sequential`` with npnet ``model``'s current weights, and
    the list of (npnet Dense layer, nn.Linear) pairs. npnet's W is (in, out), PyTorch's
    weight (out, in)."""
    import torch
    from torch import nn

    activations = {"Tanh": nn.Tanh, "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid}
    pairs = []

    def chain(layers):
        modules = []
        for layer in layers:
            if layer.params:
                W, b = layer.params["W"], layer.params["b"]
                linear = nn.Linear(*W.shape)
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                    linear.bias.copy_(torch.from_numpy(np.array(b)))
                modules.append(linear)
                pairs.append((layer, linear))
            else:
                modules.append(activations[type(layer).__name__.removeprefix("Fast")]())
        return nn.Sequential(*modules)

    return chain(model.encoder.layers), chain(model.decoder.layers), pairs


def torch_log_weights(decoder, x, z, eps, logvar, float64: bool = False):
    """log w (n, k) = log p(x|z) + log p(z) - log q(z|x) for z (n, k, J) = mu + sigma eps,
    as npnet's ``VAE.log_weights`` (the Gaussians' constants cancel); the Gaussian part and
    the sum in float64 with ``float64``, as npnet's evaluation does."""
    import torch.nn.functional as F

    n, k, latent = z.shape
    logits = decoder(z.reshape(n * k, latent))
    targets = x.repeat_interleave(k, dim=0)  # row n k + i is image n, as npnet's np.repeat
    log_px_z = -F.binary_cross_entropy_with_logits(
        logits, targets, reduction="none").sum(dim=1).view(n, k)
    if float64:
        log_px_z, z, eps, logvar = (t.double() for t in (log_px_z, z, eps, logvar))
    return log_px_z - 0.5 * (z * z - eps * eps - logvar[:, None, :]).sum(dim=2)


def torch_loss(encoder, decoder, objective: str, k: int):
    """loss(x, eps=None): the negative ELBO or the negative IWAE bound, nats per image, with
    eps (n, J) or (n, k, J) drawn by PyTorch unless given."""
    import torch
    import torch.nn.functional as F

    def elbo(x, eps=None):
        n = x.shape[0]
        mu, logvar = encoder(x).chunk(2, dim=1)
        eps = torch.randn_like(mu) if eps is None else eps
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = F.binary_cross_entropy_with_logits(decoder(z), x, reduction="sum") / n
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp()) / n
        return recon + kl

    def iwae(x, eps=None):
        n = x.shape[0]
        mu, logvar = encoder(x).chunk(2, dim=1)
        eps = torch.randn(n, k, mu.shape[1]) if eps is None else eps
        z = mu[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps
        log_w = torch_log_weights(decoder, x, z, eps, logvar)
        return -(torch.logsumexp(log_w, dim=1) - math.log(k)).mean()

    return elbo if objective == "elbo" else iwae


def torch_log_likelihood(encoder, decoder, x: np.ndarray, k: int, noise=None) -> np.ndarray:
    """The k-sample estimate of log p(x) (N,) in PyTorch, in npnet's chunks: ``CHUNK // k``
    images (at least one) and at most ``CHUNK`` codes at a time. ``noise(n, k, J)`` gives eps
    (default: ``torch.randn``, seeded 0)."""
    import torch

    if noise is None:
        generator = torch.Generator().manual_seed(0)

        def noise(n, samples, latent):
            return torch.randn(n, samples, latent, generator=generator)

    per_block = min(k, CHUNK)
    images = max(1, CHUNK // per_block)
    result = np.empty(len(x))
    with torch.inference_mode():
        xt = torch.from_numpy(x)
        for start in range(0, len(x), images):
            batch = xt[start : start + images]
            mu, logvar = encoder(batch).chunk(2, dim=1)
            sigma = torch.exp(0.5 * logvar)[:, None, :]
            blocks = []
            for done in range(0, k, per_block):
                eps = noise(len(batch), min(per_block, k - done), mu.shape[1])
                z = mu[:, None, :] + sigma * eps
                blocks.append(torch_log_weights(decoder, batch, z, eps, logvar, float64=True))
            log_w = torch.cat(blocks, dim=1)
            result[start : start + images] = (torch.logsumexp(log_w, dim=1)
                                              - math.log(k)).numpy()
    return result


# --------------------------------------------------------------------------------------------
# The same function: npnet against PyTorch, same weights, same eps


def check(args, x_train: np.ndarray, x_eval: np.ndarray, with_torch: bool, log) -> None:
    """Print npnet's and PyTorch's losses and gradients on one batch (ELBO and IWAE, same
    eps), their log p(x) on two images (same eps), and whether the fast path's first step
    gives the core's loss."""
    import npnet.fast

    x = x_train[: args.batch_size]
    k_iwae = args.k if args.objective == "iwae" else 5
    for objective, k in (("elbo", 1), ("iwae", k_iwae)):
        label = "ELBO" if objective == "elbo" else f"IWAE k = {k}"
        # The fast path's first step against the core's, 1 BLAS thread for both.
        core, _ = build_npnet(objective, k, x_train)
        fast_model, fast_opt = build_npnet(objective, k, x_train)
        trainer = npnet.fast.enable(fast_model, fast_opt, blas_threads=1, log=lambda _: None)
        with blas_threads(1):
            core_loss = core.train_step(x, np.random.default_rng(2))["loss"]
        fast_loss = trainer.train_step(x, np.random.default_rng(2))["loss"]
        log(f"  {label}: first step, 1 BLAS thread: core loss {core_loss!r}, fast path "
            f"{fast_loss!r}" + (" (the same bits)" if core_loss == fast_loss
                                else " (NOT the same bits)"))
        if not with_torch:
            continue
        import torch

        model, _ = build_npnet(objective, k, x_train)
        encoder, decoder, pairs = torch_twin(model)
        shape = (len(x), LATENT) if objective == "elbo" else (len(x), k, LATENT)
        eps = np.random.default_rng(3).standard_normal(shape, dtype=np.float32)
        loss = model.train_step(x, eps=eps)["loss"]
        loss_t = torch_loss(encoder, decoder, objective, k)(torch.from_numpy(x),
                                                            torch.from_numpy(eps))
        loss_t.backward()
        abs_diff = rel_diff = scale = 0.0
        for layer, linear in pairs:
            for ours, theirs in ((layer.grads["W"], linear.weight.grad.numpy().T),
                                 (layer.grads["b"], linear.bias.grad.numpy())):
                difference = np.abs(ours.astype(np.float64) - theirs)
                abs_diff = max(abs_diff, float(difference.max()))
                scale = max(scale, float(np.abs(theirs).max()))
                rel_diff = max(rel_diff, float(np.linalg.norm(difference)
                                               / max(np.linalg.norm(theirs), 1e-30)))
        log(f"  {label}: loss on one batch of {len(x)}, same weights and eps: npnet "
            f"{loss:.6f}, PyTorch {loss_t.item():.6f} (difference {abs(loss - loss_t.item()):.1e});"
            f" gradients: largest absolute difference {abs_diff:.1e} (largest |gradient| "
            f"{scale:.1e}), largest relative difference of a W or b in norm {rel_diff:.1e}")

    if not with_torch:
        log("  (PyTorch is not importable: no comparison with it)")
        return
    # log p(x) on two images: npnet's draws of eps, in npnet's order, fed to PyTorch.
    import torch

    model, _ = build_npnet("elbo", 1, x_train)
    encoder, decoder, _ = torch_twin(model)
    images = x_eval[:2]
    ours = model.log_likelihood(images, k=args.eval_k, rng=0)
    draws = np.random.default_rng(0)

    def same_noise(n, samples, latent):
        return torch.from_numpy(draws.standard_normal((n, samples, latent), dtype=np.float32))

    theirs = torch_log_likelihood(encoder, decoder, images, args.eval_k, noise=same_noise)
    log(f"  log p(x), k = {args.eval_k}, {len(images)} images, same eps: npnet "
        + ", ".join(f"{v:.4f}" for v in ours) + "; PyTorch "
        + ", ".join(f"{v:.4f}" for v in theirs)
        + f" (largest difference {np.max(np.abs(ours - theirs)):.1e} nats)")


# --------------------------------------------------------------------------------------------
# Timing: blocks of every contender per round, in rotating order


def block_runner(step: Callable[[], None],
                 threads: Callable[[], contextlib.AbstractContextManager]):
    """run(n): seconds for ``n`` steps under ``threads()``, after SETTLE_STEPS uncounted."""

    def run(n: int) -> float:
        with threads():
            for _ in range(SETTLE_STEPS):
                step()
            started = time.perf_counter()
            for _ in range(n):
                step()
            return time.perf_counter() - started

    return run


def torch_threads(count: int):
    """A context factory that sets PyTorch's intra-op threads to ``count``."""

    @contextlib.contextmanager
    def threads():
        import torch

        torch.set_num_threads(count)
        yield

    return threads


def step_runners(args, threads: int, batches: list[np.ndarray], x_train, with_torch: bool):
    """{contender: run(n)} of training steps with ``threads`` BLAS (or PyTorch) threads."""
    import npnet.fast

    def cycling(step_on):
        position = 0

        def step():
            nonlocal position
            step_on(batches[position % len(batches)])
            position += 1

        return step

    runners = {}
    core, core_opt = build_npnet(args.objective, args.k, x_train)
    core_rng = np.random.default_rng(1)

    def core_step(x):
        core.train_step(x, core_rng)
        core_opt.step(core.grads)

    runners[CORE] = block_runner(cycling(core_step), functools.partial(blas_threads, threads))

    fast_model, fast_opt = build_npnet(args.objective, args.k, x_train)
    trainer = npnet.fast.enable(fast_model, fast_opt, blas_threads=threads, log=lambda _: None)
    fast_rng = np.random.default_rng(1)

    def fast_step(x):
        trainer.train_step(x, fast_rng)  # sets its BLAS count itself, as in training
        fast_opt.step(trainer.grads)

    runners[FAST] = block_runner(cycling(fast_step), contextlib.nullcontext)

    if with_torch:
        import torch

        model, _ = build_npnet(args.objective, args.k, x_train)  # its initial weights
        encoder, decoder, _ = torch_twin(model)
        torch.manual_seed(1)
        loss_of = torch_loss(encoder, decoder, args.objective, args.k)
        optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=LR,
                                     eps=ADAM_EPS)
        tensors = [torch.from_numpy(x) for x in batches]
        position = 0

        def torch_step():
            nonlocal position
            optimizer.zero_grad()
            loss_of(tensors[position % len(tensors)]).backward()
            optimizer.step()
            position += 1

        runners[TORCH] = block_runner(torch_step, torch_threads(threads))
    return runners


def measure(runners: dict, rounds: int, n: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of ``n`` calls of every runner, one value per round, after ``warmup`` calls."""
    for run in runners.values():
        if warmup:
            run(warmup)
    seconds: dict[str, list[float]] = {key: [] for key in runners}
    keys = list(runners)
    for round_ in range(rounds):
        shift = round_ % len(keys)
        for key in keys[shift:] + keys[:shift]:
            time.sleep(BLAS_SPIN_S)  # the last block's BLAS threads stop spinning
            seconds[key].append(runners[key](n))
    return seconds


def eval_runners(args, threads: int, x_train, x_eval, with_torch: bool, estimates: dict):
    """{evaluator: run(n)}: seconds for n calls of it on x_eval with ``threads`` threads (its
    estimates of the last call kept in ``estimates``)."""
    import npnet.fast

    # The model the experiment evaluates: trained through the fast path (Dense -> FastDense),
    # log_likelihood called on the model itself.
    model, optimizer = build_npnet(args.objective, args.k, x_train)
    npnet.fast.enable(model, optimizer, blas_threads=None, log=lambda _: None)
    evaluators = {name: functools.partial(evaluate, model, x_eval, args.eval_k, threads)
                  for name, evaluate in EVALUATORS.items()}
    contexts = dict.fromkeys(evaluators, functools.partial(blas_threads, threads))
    if with_torch:
        encoder, decoder, _ = torch_twin(model)
        evaluators[TORCH] = functools.partial(torch_log_likelihood, encoder, decoder, x_eval,
                                              args.eval_k)
        contexts[TORCH] = torch_threads(threads)

    def runner(name):
        def run(n: int) -> float:
            with contexts[name]():
                started = time.perf_counter()
                for _ in range(n):
                    estimates[name] = evaluators[name]()
                return time.perf_counter() - started
        return run

    return {name: runner(name) for name in evaluators}


# --------------------------------------------------------------------------------------------
# Output


def speed_ratio(seconds: dict, a: str, b: str) -> str:
    """a's speed over b's, per round (b's seconds over a's): 'median [min-max]'."""
    if a not in seconds or b not in seconds:
        return "n/a"
    return median_range([tb / ta for ta, tb in zip(seconds[a], seconds[b], strict=True)])


def step_table(rows: list[dict], args) -> str:
    what = "ELBO (VAE)" if args.objective == "elbo" else f"IWAE k = {args.k}"
    samples = args.steps_per_round * args.batch_size
    headers = [f"step (Adam), {what}, batch {args.batch_size}", "threads",
               f"{CORE} samples/s", f"{FAST} samples/s", f"{TORCH} samples/s",
               "fast / PyTorch", "core / PyTorch", "fast / core"]
    table = []
    for row in rows:
        s = row["seconds"]
        cells = ["784-200-200-50 tanh", str(row["threads"])]
        for key in (CORE, FAST, TORCH):
            if key not in s:
                cells.append("n/a")
                continue
            rates = [samples / t for t in s[key]]
            cells.append(f"{statistics.median(rates):,.0f} [{min(rates):,.0f}-{max(rates):,.0f}]")
        cells += [speed_ratio(s, FAST, TORCH), speed_ratio(s, CORE, TORCH),
                  speed_ratio(s, FAST, CORE)]
        table.append(cells)
    return markdown(headers, table)


def eval_table(rows: list[dict], args, images: int) -> str:
    headers = [f"log p(x), k = {args.eval_k}, {plural(images, 'image')}", "threads",
               "seconds per image",
               f"{TEST_IMAGES:,} images (extrapolated)", "speed / PyTorch's",
               "mean log p(x), nats"]
    table = []
    for row in rows:
        for name, seconds in row["seconds"].items():
            per_image = [t / images for t in seconds]
            total = statistics.median(per_image) * TEST_IMAGES
            table.append([
                name, str(row["threads"]), median_range(per_image, fmt=".4f"),
                f"{total:,.0f} s ({total / 60:.1f} min)",
                "1" if name == TORCH else speed_ratio(row["seconds"], name, TORCH),
                f"{np.mean(row['estimates'][name]):.2f}",
            ])
    return markdown(headers, table)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("s" if count != 1 else "")


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    from npnet.fast.parallel import available_cores

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--objective", choices=["elbo", "iwae"], default="elbo",
                        help="elbo: the VAE (k = 1); iwae: the IWAE bound with --k samples")
    parser.add_argument("--k", type=int, default=None,
                        help="samples per image for --objective iwae (default: 5; 1 for elbo)")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+",
                        default=[1, 2] if available_cores() >= 2 else [1],
                        help="BLAS thread counts (threadpoolctl; blas_threads= for the fast "
                        "path) and torch.set_num_threads for PyTorch; one table row each")
    parser.add_argument("--rounds", type=int, default=9,
                        help="rounds of training-step blocks (one block of every contender "
                        "per round)")
    parser.add_argument("--steps-per-round", type=int, default=100,
                        help="timed steps per block")
    parser.add_argument("--warmup-steps", type=int, default=30,
                        help="steps of every contender before the rounds")
    parser.add_argument("--pool-batches", type=int, default=50,
                        help="pre-made batches the steps cycle through")
    parser.add_argument("--eval-images", type=int, default=20,
                        help="images whose log p(x) is estimated, per call")
    parser.add_argument("--eval-k", type=int, default=5000,
                        help="importance samples per image for log p(x)")
    parser.add_argument("--eval-rounds", type=int, default=3,
                        help="rounds of log p(x) calls (one call of every evaluator each)")
    parser.add_argument("--skip-step", action="store_true", help="do not time training steps")
    parser.add_argument("--skip-eval", action="store_true", help="do not time log p(x)")
    parser.add_argument("--check", action="store_true",
                        help="only check that npnet and PyTorch compute the same losses, "
                        "gradients and log p(x) (and the fast path the core's loss), then exit")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip PyTorch even if it is importable")
    args = parser.parse_args(argv)
    if args.k is None:
        args.k = 5 if args.objective == "iwae" else 1
    if args.objective == "elbo" and args.k != 1:
        parser.error(f"--k {args.k} is for --objective iwae; the ELBO takes one sample per image")
    if min(args.k, args.batch_size, *args.threads, args.rounds, args.steps_per_round,
           args.pool_batches, args.eval_images, args.eval_k, args.eval_rounds) < 1:
        parser.error("--k, --batch-size, --threads, --rounds, --steps-per-round, "
                     "--pool-batches and the --eval-* counts must be >= 1")
    if args.warmup_steps < 0:
        parser.error("--warmup-steps must be >= 0")
    args.threads = list(dict.fromkeys(args.threads))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)

    def log(text: str = "") -> None:
        print(text, flush=True)

    from npnet.fast.memory import keep_freed_memory
    from npnet.fast.parallel import available_cores

    torch = import_torch(not args.no_torch, log)
    with_torch = torch is not None
    cores = available_cores()
    log(machine_report(torch))
    log(load_report("at the start"))
    if max(args.threads) > cores:
        log(f"warning: --threads {max(args.threads)} is more than the {cores} cores this "
            "process may use")

    x_train, x_eval, source = load_images(args.pool_batches * args.batch_size,
                                          args.eval_images, log)
    batches = [np.ascontiguousarray(x_train[i : i + args.batch_size])
               for i in range(0, len(x_train) - args.batch_size + 1, args.batch_size)]
    log(f"data: {source}")
    keep_freed_memory()  # as npnet.fast.enable does; process-wide, so for every contender

    log("\nchecks: npnet and PyTorch compute the same function (same weights, same eps); "
        "the fast path gives the core's bits")
    check(args, x_train, x_eval, with_torch, log)
    if args.check:
        return

    what = "ELBO (VAE, k = 1)" if args.objective == "elbo" else f"IWAE, k = {args.k}"
    if not args.skip_step:
        log(f"\n## Training step, {what}, batch {args.batch_size}\n")
        log(f"{plural(args.rounds, 'round')} of one block of {args.steps_per_round} steps per "
            f"contender (order rotating), {SETTLE_STEPS} uncounted steps and a "
            f"{BLAS_SPIN_S:g} s pause before each block, after {args.warmup_steps} warm-up "
            "steps; samples/s: median [min-max] over rounds; ratios of speed, per round: "
            "median [min-max]")
        rows = []
        for threads in args.threads:
            runners = step_runners(args, threads, batches, x_train, with_torch)
            seconds = measure(runners, args.rounds, args.steps_per_round, args.warmup_steps)
            rows.append({"threads": threads, "seconds": seconds})
            log(f"  {plural(threads, 'thread')}: " + ", ".join(
                f"{key} {args.steps_per_round * args.batch_size / statistics.median(s):,.0f}"
                for key, s in seconds.items()) + " samples/s")
        log()
        log(step_table(rows, args))

    if not args.skip_eval:
        images = len(x_eval)
        log(f"\n## log p(x), k = {args.eval_k}, {plural(images, 'image')} per call (model: "
            f"{what}, untrained)\n")
        log(f"{plural(args.eval_rounds, 'round')} of one call per evaluator (order rotating) "
            "after one warm-up call; seconds per image: median [min-max] over rounds; the "
            f"extrapolation to {TEST_IMAGES:,} images from the median; speed ratios per round")
        rows = []
        for threads in args.threads:
            estimates: dict = {}
            runners = eval_runners(args, threads, x_train, x_eval, with_torch, estimates)
            seconds = measure(runners, args.eval_rounds, 1, 1)
            rows.append({"threads": threads, "seconds": seconds, "estimates": estimates})
        log()
        log(eval_table(rows, args, images))
        if with_torch:
            log("\n(PyTorch draws its own eps, so its mean log p(x) differs from npnet's by "
                "the estimates' noise; the check above compares them with the same eps.)")
    log("\n" + load_report("at the end"))


if __name__ == "__main__":
    main()
