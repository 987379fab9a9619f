"""This working tree's training step against another revision's, side by side in one process.

    python benchmarks/ab_step.py                          # default DAE, batch 128, against HEAD
    python benchmarks/ab_step.py --model vae --base HEAD~2 --rounds 30

A change meant to make training faster is measured here before it is kept. The base
revision's ``npnet/`` is extracted with ``git archive`` into a temporary folder as a package
named ``npnet_base`` and imported beside the working tree's ``npnet``. Both build the default
model of the experiments from the same seed, with Adam. First they take one step on the same
batch, and the script says whether the parameters afterwards are the same bits. Then they
train in alternating blocks of steps on random images (the order of the pair flips every
round), and the script prints each one's median step and the median of the per-round ratios
"this tree / base", with their range.

Why one process: this machine switches between a fast and a slow mode every few seconds
(``benchmarks/README.md``), so two timings taken in separate runs, or a minute apart, cannot
be divided by each other. Blocks of a second or less, alternating, see the same modes.
"""

from __future__ import annotations

import argparse
import importlib
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


def build(package: str, model: str):
    """(model, Adam) of ``package``: the experiments' default DAE or VAE, seed 0."""
    if model == "dae":
        net = importlib.import_module(f"{package}.autoencoder").DenoisingAutoencoder(rng=0)
    else:
        net = importlib.import_module(f"{package}.vae").VAE(rng=0)
    return net, importlib.import_module(f"{package}.optim").Adam(net.params, lr=1e-3)


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
    """Build both models, compare one step's bits, then time alternating blocks."""
    from npnet.memory import keep_freed_memory

    keep_freed_memory()  # as the experiment scripts do
    models = {"this tree": build("npnet", args.model), "base": build("npnet_base", args.model)}

    x = np.random.default_rng(0).random((args.batch_size, 784), dtype=np.float32)
    for model, optimizer in models.values():
        model.train_step(x, np.random.default_rng(1))
        optimizer.step(model.grads)
    (tree, _), (base, _) = models.values()
    same = all(np.array_equal(tree.params[k], base.params[k]) for k in base.params)
    print(f"after one step on the same batch, the parameters are "
          f"{'the same bits' if same else 'NOT the same bits'}")

    rngs = {label: np.random.default_rng(2) for label in models}
    medians: dict[str, list[float]] = {label: [] for label in models}
    for round_ in range(args.rounds):
        order = list(models) if round_ % 2 == 0 else list(reversed(models))
        for label in order:
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
        print(f"  {label:<9}  step {1e3 * statistics.median(values):6.3f} ms")
    ratios = [a / b for a, b in zip(medians["this tree"], medians["base"], strict=True)]
    print(f"  this tree / base: {statistics.median(ratios):.3f} "
          f"[{min(ratios):.3f}-{max(ratios):.3f}]")


if __name__ == "__main__":
    main()
