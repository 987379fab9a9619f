"""This working tree's training step, fast path on and off, against another revision's.

    python benchmarks/ab_step.py                          # default DAE, batch 128, against HEAD
    python benchmarks/ab_step.py --model vae --base HEAD~2 --rounds 30

A change meant to make training faster is measured here before it is kept. The base
revision's ``npnet/`` is extracted with ``git archive`` into a temporary folder as a package
named ``npnet_base`` and imported beside the working tree's ``npnet``. Three trainers build
the default model of the experiments from the same seed, with Adam:

* ``tree, fast``: this tree with ``npnet.fast.enable``, as the experiment scripts train
  (all three at the BLAS's default thread count: this compares steps, not thread counts);
* ``tree, core``: this tree's core alone, as ``--no-fast`` trains;
* ``base``: the base revision as its experiment scripts trained (through its
  ``npnet.fast.enable`` if it has one).

First each takes one step on the same batch, and the script says which parameters are then
the same bits (the fast path and the core must be). Then they train in alternating blocks
of steps on random images (the order rotates every round), and the script prints each one's
median step and the medians of the per-round ratios of step times, with their range.

Why one process: the speed of a shared machine drifts within seconds (``README.md``), so
two timings taken in separate runs, or a minute apart, cannot be divided by each other.
Blocks of a second or less, alternating, see the same drifts. The malloc setting of the fast
path (``npnet.fast.memory``) is process-wide, so the core's blocks run with it too.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from bench_train import add_block_options

REPO = Path(__file__).resolve().parents[1]


def extract_base(revision: str, into: Path) -> None:
    """``npnet/`` of ``revision`` as the package ``into/npnet_base``."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", revision, "npnet"],
            check=True, capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        sys.exit(f"ab_step.py: cannot read npnet/ at revision {revision!r} with git archive: "
                 f"{detail.decode().strip() or error}. Give --base a commit of this repository.")
    # Our own repository's files; the "data" filter where this Python has it (3.10.12+).
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, **safe)
    package = into / "npnet_base"
    (into / "npnet").rename(package)
    # The package imports itself relatively, except a few absolute ``npnet.`` imports.
    for source in package.rglob("*.py"):
        text = source.read_text()
        source.write_text(re.sub(r"^(\s*)(from|import) npnet\.", r"\1\2 npnet_base.", text,
                                 flags=re.MULTILINE))


def build(package: str, model: str, fast: bool):
    """(model, Adam) of ``package``: the experiments' default DAE or VAE, seed 0, through the
    package's ``fast.enable`` when ``fast`` and it has one."""
    if model == "dae":
        net = importlib.import_module(f"{package}.autoencoder").DenoisingAutoencoder(rng=0)
    else:
        net = importlib.import_module(f"{package}.vae").VAE(rng=0)
    optimizer = importlib.import_module(f"{package}.optim").Adam(net.params, lr=1e-3)
    if fast and importlib.util.find_spec(f"{package}.fast") is not None:
        importlib.import_module(f"{package}.fast").enable(net, optimizer)
    return net, optimizer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with")
    add_block_options(parser)
    args = parser.parse_args(argv)

    # The base package stays on disk while it runs: numba caches Adam's loop beside it.
    with tempfile.TemporaryDirectory(prefix="npnet-ab-") as folder:
        extract_base(args.base, Path(folder))
        sys.path.insert(0, folder)
        compare(args)


def compare(args) -> None:
    """Build the three trainers, compare one step's bits, then time alternating blocks."""
    models = {
        "tree, fast": build("npnet", args.model, fast=True),
        "tree, core": build("npnet", args.model, fast=False),
        "base": build("npnet_base", args.model, fast=True),
    }
    x = np.random.default_rng(0).random((args.batch_size, 784), dtype=np.float32)
    for model, optimizer in models.values():
        model.train_step(x, np.random.default_rng(1))
        optimizer.step(model.grads)
    reference = models["tree, core"][0].params
    for label in ("tree, fast", "base"):
        params = models[label][0].params
        same = all(np.array_equal(params[k], reference[k]) for k in reference)
        print(f"after one step on the same batch, {label} and tree, core have "
              f"{'the same bits' if same else 'NOT the same bits'}")

    rngs = {label: np.random.default_rng(2) for label in models}
    medians: dict[str, list[float]] = {label: [] for label in models}
    labels = list(models)
    for round_ in range(args.rounds):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            model, optimizer = models[label]
            seconds = []
            for i in range(5 + args.steps):  # 5 to settle after the other's block
                started = time.perf_counter()
                model.train_step(x, rngs[label])
                optimizer.step(model.grads)
                if i >= 5:
                    seconds.append(time.perf_counter() - started)
            medians[label].append(statistics.median(seconds))

    print(f"{args.model}, batch {args.batch_size}, base {args.base}: {args.rounds} rounds of "
          f"{args.steps} steps each, medians over the rounds")
    for label, values in medians.items():
        step = statistics.median(values)
        print(f"  {label:<10}  step {1e3 * step:6.3f} ms  {args.batch_size / step:8,.0f} "
              "samples/s")
    for a, b in (("tree, fast", "base"), ("tree, core", "base"), ("tree, core", "tree, fast")):
        ratios = [p / q for p, q in zip(medians[a], medians[b], strict=True)]
        print(f"  step time {a} / {b}: {statistics.median(ratios):.3f} "
              f"[{min(ratios):.3f}-{max(ratios):.3f}]")


if __name__ == "__main__":
    main()
