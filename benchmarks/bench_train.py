"""Training throughput of npnet's experiment models, against the machine's matmul peak and PyTorch.

    python benchmarks/bench_train.py                  # DAE and VAE at batch 32, 128, 512
    python benchmarks/bench_train.py --quick          # a short run (fewer, shorter repeats)
    python benchmarks/bench_train.py --memory --data-dir ../shared/data/mnist
    python benchmarks/bench_train.py --compare-core   # + npnet on its core alone (no npnet.fast)
    python benchmarks/bench_train.py --shards 2       # + npnet in 2 shards (DataParallel)
    python benchmarks/bench_train.py --help

A "step" is what :func:`npnet.train.fit` does per mini-batch: ``model.train_step(x, rng)``
then ``optimizer.step(model.grads)`` (Adam), on random float32 images in [0, 1] of MNIST
shape, with the fast path on (``npnet.fast.enable``) as the experiment scripts train.
Achieved GFLOP/s counts 6 x parameters x samples/s (2 for the forward matmuls, 4 for
the backward ones). The peak is the GFLOP/s of a 2048 x 2048 @ 2048 x 2048 float32 matmul
with NumPy.

When PyTorch is importable (install it in a separate virtual environment, never as an npnet
dependency), the same architectures are trained with torch.optim.Adam on the CPU with as
many threads as NumPy's BLAS uses.

Everything is measured in ``--repeats`` repeats. Each repeat measures, back to back, the
matmul peak, then at least ``--min-time`` seconds of npnet steps and of PyTorch steps (which
of the two goes first alternates). A shared virtual machine's speed drifts by tens of percent
within seconds, so the fraction of peak and the npnet/PyTorch ratio are computed within each
repeat, from measurements a second apart, and the script prints their medians over the
repeats with their range. Each repeat also times a 512 x 784 @ 784 x 512 product, which runs
about a fifth slower when the machine is in its slow mode (benchmarks/README.md); a second
line per row gives the medians over the fast-mode and the slow-mode repeats apart.

``--memory`` runs each full experiment (``experiments/dae_mnist.py``,
``experiments/vae_interp.py``, a few minutes each) as a child process and reports its peak
resident memory (ru_maxrss from ``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGE_PIXELS = 784
MODELS = ("dae", "vae")
BLAS_SPIN_S = 0.2
EXPERIMENTS = {"dae": "experiments/dae_mnist.py", "vae": "experiments/vae_interp.py"}


# --------------------------------------------------------------------------------------------
# Threads and the matmul peak


def blas_info() -> dict:
    """NumPy's BLAS library and its thread count (threadpoolctl if installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"library": "unknown (pip install threadpoolctl to see)",
                "num_threads": os.cpu_count() or 1}
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    # SciPy and PyTorch may bring BLAS libraries of their own; NumPy's lives in numpy*.
    pools.sort(key=lambda pool: "numpy" not in pool.get("filepath", ""))
    for pool in pools:
        return {
            "library": f"{pool.get('internal_api')} {pool.get('version')} "
            f"({pool.get('architecture', '?')} kernels)",
            "num_threads": int(pool["num_threads"]),
        }
    return {"library": "unknown", "num_threads": os.cpu_count() or 1}


def package_version(name: str) -> str:
    """The installed version of ``name``, or "not installed"."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def import_torch(wanted: bool, log):
    """The ``torch`` module, or None when it is not ``wanted`` (--no-torch) or not importable
    here (then ``log`` says how to compare with it)."""
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        log("PyTorch is not importable here: no PyTorch figures. To compare, install it in a "
            "separate virtual environment (pip install torch==2.13.0 threadpoolctl, then pip "
            "install -e \".[fast]\" there; benchmarks/README.md) and run this script with its "
            "python.")
        return None
    return torch


def machine_report(torch=None, torch_extra: str = "") -> str:
    """What the figures were measured with, in three lines: the machine, Python, NumPy and its
    BLAS, numba, npnet and PyTorch (its thread count now, then ``torch_extra``); whether the
    fast path's Adam is compiled; the environment variables that set thread counts."""
    from npnet.fast.optim import numba_available
    from npnet.fast.parallel import available_cores

    blas = blas_info()
    machine = (f"{platform.processor() or platform.machine()}, {available_cores()} cores for "
               f"this process ({os.cpu_count()} CPUs), python {platform.python_version()}, "
               f"numpy {np.__version__}, BLAS {blas['library']} with {blas['num_threads']} "
               f"threads, numba {package_version('numba')}, npnet "
               f"{package_version('npnet')}")
    if torch is not None:
        machine += (f"; torch {torch.__version__} with {torch.get_num_threads()} threads"
                    + torch_extra)
    adam = ("as one compiled loop (numba)" if numba_available()
            else "as NumPy passes (numba is not installed)")
    variables = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "OPENBLAS_CORETYPE")
    environment = ", ".join(f"{var}={os.environ.get(var, '(unset)')}" for var in variables)
    return f"{machine}\nnpnet fast path: Adam {adam}\n{environment}"


def load_report(when: str) -> str:
    """The load averages ``when`` ("at the start", ...), flagged where the machine is busy."""
    load = os.getloadavg()
    return (f"load average {when}: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"
            + ("  (NOT idle: the timings mean little)" if load[0] >= 0.5 else ""))


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "| --- " * len(headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def median_range(values: list[float], scale: float = 1.0, fmt: str = ".2f") -> str:
    """'median [min-max]' of ``values`` times ``scale``."""
    return (f"{scale * statistics.median(values):{fmt}} "
            f"[{scale * min(values):{fmt}}-{scale * max(values):{fmt}}]")


def matmul_gflops(
    shape: tuple[int, int, int] = (2048, 2048, 2048), repeats: int = 7, backend: str = "numpy"
) -> float:
    """Median GFLOP/s of an (m, k) @ (k, n) float32 product (2 m k n flops), shape = (m, k, n)."""
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    if backend == "torch":
        import torch

        a, b = torch.from_numpy(a), torch.from_numpy(b)
        out = torch.empty((m, n))

        def product():
            torch.matmul(a, b, out=out)
    else:
        out = np.empty((m, n), dtype=np.float32)

        def product():
            np.matmul(a, b, out=out)

    product()  # warm-up: thread start, page faults
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        product()
        times.append(time.perf_counter() - started)
    return 2 * m * k * n / statistics.median(times) / 1e9


# The first DAE layer's product. It tells the machine's two speeds apart
# (benchmarks/README.md): products of this size drop by about a fifth in the slow mode, while
# the 2048^3 product behind the peak does not.
MIDSIZE = (512, 784, 512)
FAST_MODE = 0.9  # a repeat is "fast" when the mid-size product runs at >= 90% of the peak


# --------------------------------------------------------------------------------------------
# The models: npnet and their PyTorch twins


def add_block_options(parser: argparse.ArgumentParser) -> None:
    """The options of the benchmarks that time one model in alternating blocks of steps
    (``bench_placement.py``, ``ab_step.py``): model, batch size, rounds and steps."""
    from npnet.cli import positive_int

    parser.add_argument("--model", choices=["dae", "vae"], default="dae")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--rounds", type=positive_int, default=20, help="pairs of blocks")
    parser.add_argument("--steps", type=positive_int, default=50,
                        help="timed steps per block")


def npnet_model(name: str, seed: int, fast: bool = True, shards: int = 1):
    """(trainer, model, Adam) as the experiment scripts build them, default sizes: the trainer
    is the model on the fast path (``npnet.fast.enable``; its DataParallel for ``shards`` > 1),
    or on the core alone for ``fast=False``."""
    import npnet.fast
    from npnet.autoencoder import DenoisingAutoencoder
    from npnet.optim import Adam
    from npnet.vae import VAE

    model = DenoisingAutoencoder(rng=seed) if name == "dae" else VAE(rng=seed)
    optimizer = Adam(model.params, lr=1e-3)
    # blas_threads=None: the BLAS's default count, the count PyTorch is given here too
    # (bench_threads.py measures the count that "auto" chooses).
    trainer = (npnet.fast.enable(model, optimizer, threads=shards, blas_threads=None)
               if fast else model)
    return trainer, model, optimizer


def npnet_stepper(name: str, seed: int, fast: bool = True, shards: int = 1):
    """(one training step, parameter count) of :func:`npnet_model`'s trainer."""
    trainer, model, optimizer = npnet_model(name, seed, fast, shards)
    rng = np.random.default_rng(seed)

    def step(x):
        trainer.train_step(x, rng)
        optimizer.step(trainer.grads)

    return step, sum(p.size for p in model.params.values())


def torch_stepper(name: str, seed: int, adam_impl: str):
    """One training step of the same architecture, loss and optimizer in PyTorch."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if name == "dae":
        #  784-512-128-16, mirrored, sigmoid output; MSE summed over pixels, mean over batch.
        net = nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 16),
            nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 784),
            nn.Sigmoid(),
        )

        def loss_of(x):
            noisy = (x + 0.3 * torch.randn_like(x)).clamp_(0.0, 1.0)
            return nn.functional.mse_loss(net(noisy), x, reduction="sum") / x.shape[0]
    else:
        net, loss_of = torch_vae((512, 256), 20, nn.ReLU)

    options = {"foreach": None, "fused": None}
    if adam_impl in ("foreach", "fused"):
        options = {adam_impl: True}
    elif adam_impl == "loop":
        options = {"foreach": False}
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, **options)
    n_params = sum(p.numel() for p in net.parameters())

    def step(x):
        optimizer.zero_grad()
        loss_of(torch.from_numpy(x)).backward()
        optimizer.step()

    return step, n_params


def torch_vae(hidden: tuple[int, ...], latent: int, activation):
    """(module, loss function) of npnet's VAE in PyTorch: a 784-hidden-2J encoder head for
    (mu, logvar), a J-reversed(hidden)-784 decoder to logits; BCE-with-logits summed over
    pixels + KL, both averaged over the batch."""
    import torch
    from torch import nn

    def chain(widths):
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += [nn.Linear(a, b)] + ([activation()] if i < len(widths) - 2 else [])
        return nn.Sequential(*layers)

    encoder = chain([784, *hidden, 2 * latent])
    decoder = chain([latent, *reversed(hidden), 784])

    def loss_of(x):
        mu, logvar = encoder(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = nn.functional.binary_cross_entropy_with_logits(
            decoder(z), x, reduction="sum"
        ) / x.shape[0]
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp()) / x.shape[0]
        return recon + kl

    return nn.ModuleList([encoder, decoder]), loss_of


# --------------------------------------------------------------------------------------------
# Timing


def time_steps(step, batches: list[np.ndarray], n_steps: int) -> float:
    """Seconds for n_steps steps, cycling through the pre-made batches."""
    started = time.perf_counter()
    for i in range(n_steps):
        step(batches[i % len(batches)])
    return time.perf_counter() - started


def calibrate(step, batches, warmup_s: float, min_time: float) -> int:
    """Warm up for about warmup_s seconds; return how many steps take min_time seconds."""
    n, elapsed = 1, 0.0
    spent = 0.0
    while spent < warmup_s or elapsed == 0.0:
        elapsed = time_steps(step, batches, n)
        spent += elapsed
        if elapsed < warmup_s / 4:
            n *= 2
    per_step = elapsed / n
    return max(3, math.ceil(min_time / per_step))


def bench_model(name, batch_sizes, args, with_torch: bool, log) -> list[dict]:
    """Throughput of one model at each batch size, in repeats that pair every measurement.

    The speed of a shared (virtual) machine drifts by tens of percent over seconds, so
    numbers taken minutes apart cannot be divided. Each repeat therefore measures, back to
    back: the matmul peak, npnet, and PyTorch (alternating which of the two goes first).
    The fraction of peak and the npnet/PyTorch ratio are computed within each repeat, and
    the medians over repeats are reported.
    """
    rows = []
    for batch in batch_sizes:
        data_rng = np.random.default_rng([args.seed, batch])
        batches = [data_rng.random((batch, IMAGE_PIXELS), dtype=np.float32) for _ in range(4)]
        runners = {}
        runners["npnet"], n_params = npnet_stepper(name, args.seed)
        if args.compare_core:
            runners["core"], _ = npnet_stepper(name, args.seed, fast=False)
        if args.shards > 1:
            runners["sharded"], _ = npnet_stepper(name, args.seed, shards=args.shards)
        if with_torch:
            runners["torch"], torch_params = torch_stepper(name, args.seed, args.torch_adam)
            if torch_params != n_params:
                log(f"  note: {name} has {n_params} parameters in npnet, "
                    f"{torch_params} in PyTorch")
        steps = {k: calibrate(s, batches, args.warmup, args.min_time) for k, s in runners.items()}
        rates: dict[str, list[float]] = {k: [] for k in runners}
        peaks, probes = [], []
        order = list(runners)
        for repeat in range(args.repeats):
            peaks.append(matmul_gflops(repeats=3))
            probes.append(matmul_gflops(MIDSIZE, repeats=30))
            for key in order if repeat % 2 == 0 else order[::-1]:
                # OpenBLAS's worker threads spin for a while after a product (about 0.1 s)
                # before they sleep; let them, so that no measurement inherits a busy core.
                time.sleep(BLAS_SPIN_S)
                seconds = time_steps(runners[key], batches, steps[key])
                rates[key].append(steps[key] * batch / seconds)
        row = {"model": name, "batch": batch, "params": n_params, "steps": steps["npnet"],
               "peak_gflops_all": peaks, "midsize_gflops_all": probes}
        for key, values in rates.items():
            row[f"{key}_samples_s"] = statistics.median(values)
            row[f"{key}_all"] = values
            row[f"{key}_gflops"] = 6 * n_params * row[f"{key}_samples_s"] / 1e9
        for key, prefix in (("npnet", ""), ("sharded", "sharded_")):
            if key not in rates:
                continue
            fractions = [6 * n_params * rate / 1e9 / peak
                         for rate, peak in zip(rates[key], peaks, strict=True)]
            row[f"{prefix}fraction_of_peak"] = statistics.median(fractions)
            row[f"{prefix}fraction_min"] = min(fractions)
            row[f"{prefix}fraction_max"] = max(fractions)
            if with_torch:
                ratios = [a / b for a, b in zip(rates[key], rates["torch"], strict=True)]
                row[f"{prefix}ratio"] = statistics.median(ratios)
                row[f"{prefix}ratio_min"], row[f"{prefix}ratio_max"] = min(ratios), max(ratios)
        fast = [probe >= FAST_MODE * peak for probe, peak in zip(probes, peaks, strict=True)]
        row["fast_repeats"] = sum(fast)
        for mode, wanted in (("fast", True), ("slow", False)):
            chosen = [i for i, is_fast in enumerate(fast) if is_fast == wanted]
            if not chosen:
                continue
            row[f"{mode}_fraction_of_peak"] = statistics.median(
                6 * n_params * rates["npnet"][i] / 1e9 / peaks[i] for i in chosen
            )
            if with_torch:
                row[f"{mode}_ratio"] = statistics.median(
                    rates["npnet"][i] / rates["torch"][i] for i in chosen
                )
        if args.compare_core:
            speedups = [a / b for a, b in zip(rates["npnet"], rates["core"], strict=True)]
            row["fast_speedup"] = statistics.median(speedups)
            row["fast_speedup_min"], row["fast_speedup_max"] = min(speedups), max(speedups)
        if with_torch:
            row["ratio_of_medians"] = row["npnet_samples_s"] / row["torch_samples_s"]
        rows.append(row)
        log(format_row(row, with_torch))
        log(format_modes(row, args.repeats))
    return rows


def format_row(row: dict, with_torch: bool) -> str:
    text = (f"{row['model']:>5} {row['batch']:>6} {row['npnet_samples_s']:>12,.0f} "
            f"{row['npnet_gflops']:>8.1f} {100 * row['fraction_of_peak']:>6.1f}% "
            f"[{100 * row['fraction_min']:.0f}-{100 * row['fraction_max']:.0f}]")
    if with_torch:
        text += (f" {row['torch_samples_s']:>12,.0f} {row['torch_gflops']:>8.1f} "
                 f"{row['ratio']:>6.2f}x  [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]")
    if "sharded_samples_s" in row:
        median = 100 * row["sharded_fraction_of_peak"]
        low, high = 100 * row["sharded_fraction_min"], 100 * row["sharded_fraction_max"]
        text += f"  {row['sharded_samples_s']:>12,.0f} {median:>6.1f}% [{low:.0f}-{high:.0f}]"
        if with_torch:
            text += (f" {row['sharded_ratio']:>6.2f}x  [{row['sharded_ratio_min']:.2f}-"
                     f"{row['sharded_ratio_max']:.2f}]")
    if "fast_speedup" in row:
        text += (f"  {row['fast_speedup']:>5.2f}x [{row['fast_speedup_min']:.2f}-"
                 f"{row['fast_speedup_max']:.2f}]")
    return text


def format_modes(row: dict, repeats: int) -> str:
    """The row's medians over the repeats in the machine's fast mode and in its slow mode."""
    parts = []
    for mode, count in (("fast", row["fast_repeats"]), ("slow", repeats - row["fast_repeats"])):
        if count:
            text = f"{mode} mode {count}/{repeats}: {100 * row[f'{mode}_fraction_of_peak']:.1f}%"
            if f"{mode}_ratio" in row:
                text += f", {row[f'{mode}_ratio']:.2f}x"
            parts.append(text)
    return "             " + "; ".join(parts)


def header(with_torch: bool, compare_core: bool = False, shards: int = 1) -> str:
    text = (f"{'model':>5} {'batch':>6} {'npnet smp/s':>12} {'GFLOP/s':>8} {'peak':>7} "
            f"{'[range]':>7}")
    if with_torch:
        text += f" {'torch smp/s':>12} {'GFLOP/s':>8} {'ratio':>7}  [range]"
    if shards > 1:
        text += f"  {shards} shards: smp/s     peak [range]"
        text += "  ratio  [range]" if with_torch else ""
    if compare_core:
        text += "  fast/core"
    return text


# --------------------------------------------------------------------------------------------
# Peak memory of full experiment runs


def experiment_peak_memory(name: str, data_dir: str | None, log) -> dict:
    """Run one full experiment in a child process; its max RSS in MiB and its wall time."""
    with tempfile.TemporaryDirectory(prefix=f"npnet-bench-{name}-") as out:
        command = [sys.executable, str(REPO / EXPERIMENTS[name]), "--out", out, "--no-progress"]
        if data_dir:
            command += ["--data-dir", data_dir]
        log(f"  running {' '.join(command)}")
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
        # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would be the maximum
        # over every child waited for so far).
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{EXPERIMENTS[name]} exited with status {child.returncode}")
    return {"experiment": EXPERIMENTS[name], "max_rss_mib": usage.ru_maxrss / 1024,
            "seconds": seconds}


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which experiment models to measure (default: both)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512],
                        help="images per training step")
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed repeats (each measures the peak, npnet and PyTorch)")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds of steps per framework in one repeat")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up steps")
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats of 0.3 s after 0.3 s of warm-up (a rough look)")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip PyTorch even if it is importable")
    parser.add_argument("--torch-adam", choices=["default", "loop", "foreach", "fused"],
                        default="default",
                        help="torch.optim.Adam implementation; default is PyTorch's own choice")
    parser.add_argument("--compare-core", action="store_true",
                        help="also time npnet on its core alone (no npnet.fast) in every "
                        "repeat; the last column is the fast path's speed over that")
    parser.add_argument("--shards", type=int, default=1,
                        help="also time npnet training in this many shards on as many threads "
                        "(npnet.fast.DataParallel) in every repeat: extra columns")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads (default: the number NumPy's BLAS uses)")
    parser.add_argument("--memory", action="store_true",
                        help="also run each full experiment (minutes each) and report its "
                        "peak resident memory")
    parser.add_argument("--memory-only", action="store_true",
                        help="--memory without the throughput measurements")
    parser.add_argument("--data-dir", default=os.environ.get("NPNET_DATA"),
                        help="MNIST folder for --memory (default: $NPNET_DATA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.memory = args.memory or args.memory_only
    if args.quick:
        args.repeats, args.min_time, args.warmup = 3, 0.3, 0.3
    if args.repeats < 1 or args.min_time <= 0 or min(args.batch_sizes) < 1 or args.shards < 1:
        parser.error("--repeats, --min-time, --batch-sizes and --shards must be positive")
    return args


def measure_throughput(args, with_torch: bool, results: dict, log) -> None:
    """Every model and batch size (see :func:`bench_model`); fills ``results``."""
    peak = results["matmul_peak_gflops"] = matmul_gflops()
    if with_torch:
        results["torch_matmul_gflops"] = matmul_gflops(backend="torch")
    log(f"float32 matmul 2048^3: numpy {peak:.1f} GFLOP/s"
        + (f", torch {results['torch_matmul_gflops']:.1f} GFLOP/s" if with_torch else ""))
    log(f"{args.repeats} repeats, each: the numpy matmul peak, then >= {args.min_time:g} s of "
        f"npnet{' and of PyTorch' if with_torch else ''} (after {args.warmup:g} s of warm-up)")
    log("samples/s: median over repeats; peak: median of the per-repeat fractions of that "
        "repeat's matmul peak; ratio: median of the per-repeat npnet/PyTorch ratios; "
        "[min-max] over repeats")
    log(f"second line: the same medians over the repeats in which a 512 x 784 @ 784 x 512 "
        f"product ran at >= {FAST_MODE:.0%} of the peak (fast mode) and the others (slow)\n")
    log(header(with_torch, args.compare_core, args.shards))
    for name in args.models:
        results["rows"] += bench_model(name, args.batch_sizes, args, with_torch, log)
    log(load_report("at the end"))


def main(argv=None) -> None:
    args = parse_args(argv)

    def log(text: str) -> None:
        print(text, flush=True)

    blas = blas_info()
    torch = import_torch(not args.no_torch, log)
    with_torch = torch is not None
    threads = args.threads or blas["num_threads"]
    if with_torch:
        torch.set_num_threads(threads)

    log(machine_report(torch, f", Adam {args.torch_adam}" if with_torch else ""))
    log(load_report("at the start"))
    results: dict = {"blas": blas, "threads": threads, "rows": []}
    # As npnet.fast.enable does: freed arrays keep their pages for the next step. The
    # setting is process-wide, so PyTorch's steps (and --compare-core's) get it too.
    from npnet.fast.memory import keep_freed_memory

    results["keep_freed_memory"] = keep_freed_memory()
    if not args.memory_only:
        measure_throughput(args, with_torch, results, log)

    if args.memory:
        log("\npeak memory of full experiment runs:")
        results["memory"] = []
        for name in args.models:
            usage = experiment_peak_memory(name, args.data_dir, log)
            results["memory"].append(usage)
            log(f"  {usage['experiment']}: max RSS {usage['max_rss_mib']:,.0f} MiB "
                f"({usage['seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
