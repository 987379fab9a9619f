"""Training speed with 1 BLAS thread, with one per core, and with the count "auto" chooses, idle
and beside busy neighbours, against PyTorch.

    python benchmarks/bench_threads.py                        # dae, vae, b20; 0, 1, 2 neighbours
    python benchmarks/bench_threads.py --quick                # a smoke run (about a minute)
    python benchmarks/bench_threads.py --models b20 --conditions 0 1 --rounds 11
    python benchmarks/bench_threads.py --json threads.json    # also write the numbers
    python benchmarks/bench_threads.py --help

Why. OpenBLAS's threads spin while they wait for the next product. When another program keeps
a core busy, the operating system shares that core between it and one BLAS thread, the other
BLAS thread spins waiting for it, and a step with one thread per core can run at a third of
the speed of a step with one thread. ``npnet.fast.enable(..., blas_threads="auto")`` times the
counts at the first step and keeps the faster (``npnet/fast/threads.py``). This script
measures what that is worth.

Models, each trained with Adam (lr 1e-3) on one batch of random float32 images in [0, 1]
(``np.random.default_rng(0)``), a step being ``trainer.train_step(x, rng)`` then
``optimizer.step(trainer.grads)``:

* ``dae``: the experiments' default DenoisingAutoencoder, batch 128;
* ``vae``: the experiments' default VAE, batch 128;
* ``b20``: ``VAE(hidden=(200, 200), latent=50, activation="tanh")``, batch 20 (the
  784-200-200-50 tanh model of Burda et al.).

Conditions: ``--conditions`` lists numbers of busy neighbours, processes the script starts
itself (a Python loop doing nothing, for a bounded time), 0 being idle. They start before the
condition's trainers are built and are killed, and waited for, when it ends; the machine then
settles for a second.

Modes, in every model and condition, each a fresh model and optimizer built once the
neighbours run:

* ``npnet N threads``: ``fast.enable(model, optimizer, blas_threads=N)``, N the cores this
  process may use (``npnet.fast.parallel.available_cores()``);
* ``npnet 1 thread``: ``blas_threads=1``;
* ``npnet auto``: ``blas_threads="auto"``; its first step, which chooses the count, is taken
  under the condition's load; the script says which count it chose;
* ``PyTorch``: the same architecture, loss and torch.optim.Adam at PyTorch's default thread
  count, when ``torch`` is importable (install it in a separate virtual environment).

Timing. A warm-up under the condition's load calibrates how many steps of each mode last about
``--block-seconds``. Then ``--rounds`` rounds each time one block of every mode (the order
rotates every round, as in ``ab_step.py``), each block after a 0.2 s pause (OpenBLAS's threads
spin that long after their last product) and with its first steps discarded (they settle after
the other mode's). Samples/s: the median over rounds of the blocks'
samples/s. A shared machine's speed drifts within seconds, so ratios are computed round by
round, from blocks a second or so apart, and printed as the median of the per-round ratios
with their range over rounds in brackets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_train import (
    BLAS_SPIN_S,
    blas_info,
    import_torch,
    machine_report,
    torch_stepper,
    torch_vae,
)

IMAGE_PIXELS = 784
MODELS = {
    # name: (row label, batch size)
    "dae": ("default DAE, batch 128", 128),
    "vae": ("default VAE, batch 128", 128),
    "b20": ("VAE 784-200-200-50 tanh, batch 20", 20),
}
SETTLE_STEPS = 2  # discarded at the start of every block
NEIGHBOUR_START_S = 0.5  # for the neighbours' Python to start and spin
SETTLE_S = 1.0  # after the neighbours are stopped
AUTO, ONE, TORCH = "auto", "1 thread", "PyTorch"


# --------------------------------------------------------------------------------------------
# The models and their steps


def build_npnet(name: str):
    """The npnet model ``name`` (seed 0) and its Adam, lr 1e-3."""
    from npnet.autoencoder import DenoisingAutoencoder
    from npnet.optim import Adam
    from npnet.vae import VAE

    if name == "dae":
        model = DenoisingAutoencoder(rng=0)
    elif name == "vae":
        model = VAE(rng=0)
    else:
        model = VAE(hidden=(200, 200), latent=50, activation="tanh", rng=0)
    return model, Adam(model.params, lr=1e-3)


def npnet_stepper(name: str, blas_threads: str | int):
    """(one training step, the trainer, parameter count, what the trainer logged) for
    ``fast.enable(model, optimizer, blas_threads=blas_threads)``."""
    import npnet.fast

    model, optimizer = build_npnet(name)
    said: list[str] = []
    trainer = npnet.fast.enable(model, optimizer, blas_threads=blas_threads, log=said.append)
    rng = np.random.default_rng(1)

    def step(x):
        trainer.train_step(x, rng)
        optimizer.step(trainer.grads)

    return step, trainer, sum(p.size for p in model.params.values()), said


def torch_b20_stepper(seed: int):
    """One training step of the 784-200-200-50 tanh VAE in PyTorch (as bench_train.torch_stepper
    builds the default models): BCE-with-logits summed over pixels + KL, averaged over the
    batch, torch.optim.Adam lr 1e-3."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net, loss_of = torch_vae((200, 200), 50, nn.Tanh)

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    n_params = sum(p.numel() for p in net.parameters())

    def step(x):
        optimizer.zero_grad()
        loss_of(torch.from_numpy(x)).backward()
        optimizer.step()

    return step, n_params


def torch_model_stepper(name: str):
    """(one PyTorch training step, parameter count) of the model ``name``."""
    if name == "b20":
        return torch_b20_stepper(0)
    return torch_stepper(name, 0, "default")


# --------------------------------------------------------------------------------------------
# Busy neighbours


def start_neighbours(count: int, seconds: float) -> list[subprocess.Popen]:
    """``count`` processes that keep a core busy for at most ``seconds`` seconds."""
    code = (f"import time\nend = time.monotonic() + {seconds:.0f}\n"
            "while time.monotonic() < end: pass")
    return [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
            for _ in range(count)]


def stop_neighbours(neighbours: list[subprocess.Popen]) -> None:
    for neighbour in neighbours:
        if neighbour.poll() is None:
            neighbour.kill()
    for neighbour in neighbours:
        neighbour.wait()


def condition_label(neighbours: int) -> str:
    if neighbours == 0:
        return "idle"
    return f"{neighbours} busy neighbour" + ("s" if neighbours != 1 else "")


# --------------------------------------------------------------------------------------------
# Timing


def run_steps(step, x, n: int) -> float:
    """Seconds for ``n`` steps on ``x``."""
    started = time.perf_counter()
    for _ in range(n):
        step(x)
    return time.perf_counter() - started


def calibrate(step, x, warmup_s: float, block_s: float) -> int:
    """Warm up for about ``warmup_s`` seconds; how many steps last ``block_s`` seconds."""
    run_steps(step, x, SETTLE_STEPS)
    n, spent = 0, 0.0
    while spent < warmup_s or n < 3:
        spent += run_steps(step, x, 1)
        n += 1
    return max(3, round(block_s / (spent / n)))


def measure_cell(name: str, neighbours: int, modes: list[str], cores: int, args, log) -> dict:
    """One model under one condition: all modes in alternating blocks (see the docstring)."""
    label, batch = MODELS[name]
    x = np.random.default_rng(0).random((batch, IMAGE_PIXELS), dtype=np.float32)
    cell: dict = {"model": name, "batch": batch, "neighbours": neighbours}
    # A bound on the neighbours' life: about twice what the cell should take, so that a
    # benchmark killed without its finally leaves nothing running for long.
    expected = (len(modes) * (args.warmup + 0.5) + 3.0
                + args.rounds * len(modes) * (1.5 * args.block_seconds + BLAS_SPIN_S))
    busy = start_neighbours(neighbours, 2 * expected + 10)
    try:
        if busy:
            time.sleep(NEIGHBOUR_START_S)
        steppers = {}
        for mode in modes:
            if mode == TORCH:
                steppers[mode], n_params = torch_model_stepper(name)
                cell["torch_params"] = n_params
                continue
            count = AUTO if mode == AUTO else 1 if mode == ONE else cores
            step, trainer, n_params, said = npnet_stepper(name, count)
            step(x)  # the first step: "auto" chooses its count now, under this load
            steppers[mode] = step
            cell["npnet_params"] = n_params
            if mode == AUTO:
                cell["auto_threads"] = trainer.threads
                cell["auto_said"] = " ".join(said)
        if cell.get("torch_params", cell["npnet_params"]) != cell["npnet_params"]:
            log(f"  note: {name} has {cell['npnet_params']} parameters in npnet, "
                f"{cell['torch_params']} in PyTorch")
        steps = {mode: calibrate(step, x, args.warmup, args.block_seconds)
                 for mode, step in steppers.items()}
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        for round_ in range(args.rounds):
            shift = round_ % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                time.sleep(BLAS_SPIN_S)  # the other mode's BLAS threads stop spinning
                run_steps(steppers[mode], x, SETTLE_STEPS)
                rates[mode].append(steps[mode] * batch / run_steps(steppers[mode], x,
                                                                   steps[mode]))
        cell["neighbours_ran_to_the_end"] = all(p.poll() is None for p in busy)
    finally:
        stop_neighbours(busy)
        if busy:
            time.sleep(SETTLE_S)
    cell["steps_per_block"] = steps
    cell["samples_s_all"] = rates
    cell["samples_s"] = {mode: statistics.median(values) for mode, values in rates.items()}
    log(f"{label}, {condition_label(neighbours)}: auto chose {cell['auto_threads']}")
    log(f"  auto said: {cell['auto_said'] or '(nothing: one candidate count)'}")
    log("  steps per block: " + ", ".join(f"{mode} {n}" for mode, n in steps.items()))
    log("  samples/s, median of the blocks: "
        + ", ".join(f"{mode} {rate:,.0f}" for mode, rate in cell["samples_s"].items()))
    if not cell["neighbours_ran_to_the_end"]:
        log("  warning: a neighbour ended before the blocks did; the last blocks ran with less "
            "load (raise the neighbours' time bound in measure_cell)")
    return cell


def ratio(cell: dict, a: str, b: str) -> dict | None:
    """Median and range over rounds of the per-round ratio of mode a's samples/s to b's."""
    rates = cell["samples_s_all"]
    if a not in rates or b not in rates:
        return None
    ratios = [p / q for p, q in zip(rates[a], rates[b], strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


# --------------------------------------------------------------------------------------------
# Output


def markdown_tables(cells: list[dict], args, modes_all: list[str], many: str) -> str:
    """The samples/s table (rows models, columns condition x mode) and the ratio table."""
    headers = []
    for neighbours in args.conditions:
        for mode in modes_all:
            title = {many: f"{many.split()[0]} BLAS threads"}.get(mode, mode)
            headers.append(f"{condition_label(neighbours)}, {title}")
    lines = ["| step (Adam) | " + " | ".join(headers) + " |",
             "| --- " * (len(headers) + 1) + "|"]
    by_key = {(c["model"], c["neighbours"]): c for c in cells}
    for name in args.models:
        row = []
        for neighbours in args.conditions:
            cell = by_key[(name, neighbours)]
            for mode in modes_all:
                if mode not in cell["samples_s"]:
                    row.append("n/a")
                    continue
                text = f"{cell['samples_s'][mode]:,.0f}" + (" samples/s" if not row else "")
                if mode == AUTO:
                    text += f" (chose {cell['auto_threads']})"
                row.append(text)
        lines.append(f"| {MODELS[name][0]} | " + " | ".join(row) + " |")

    def shown(value: dict | None) -> str:
        if value is None:
            return "n/a"
        return f"{value['median']:.2f} [{value['min']:.2f}-{value['max']:.2f}]"

    lines += ["", f"| model | condition | auto chose | auto / 1 thread | auto / {many} | "
              "auto / PyTorch |", "| --- | --- | --- | --- | --- | --- |"]
    for name in args.models:
        for neighbours in args.conditions:
            cell = by_key[(name, neighbours)]
            lines.append(
                f"| {MODELS[name][0]} | {condition_label(neighbours)} | "
                f"{cell['auto_threads']} | {shown(cell['ratios']['auto / 1 thread'])} | "
                f"{shown(cell['ratios'][f'auto / {many}'])} | "
                f"{shown(cell['ratios']['auto / PyTorch'])} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="which models to measure")
    parser.add_argument("--conditions", nargs="+", type=int, default=[0, 1, 2],
                        help="numbers of busy neighbour processes, one condition each "
                        "(0: idle)")
    parser.add_argument("--rounds", type=int, default=7,
                        help="rounds of blocks (one block of every mode per round)")
    parser.add_argument("--block-seconds", type=float, default=0.4,
                        help="about how long one block of steps lasts")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds of warm-up steps per mode and condition, which also "
                        "calibrate the steps per block")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 0.15 s blocks after 0.2 s of warm-up (a smoke run)")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip PyTorch even if it is importable")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.block_seconds, args.warmup = 2, 0.15, 0.2
    if args.rounds < 1 or args.block_seconds <= 0 or args.warmup < 0:
        parser.error("--rounds and --block-seconds must be positive, --warmup not negative")
    if min(args.conditions) < 0:
        parser.error("--conditions are numbers of neighbours: 0 or more")
    args.models = list(dict.fromkeys(args.models))
    args.conditions = list(dict.fromkeys(args.conditions))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)

    def log(text: str) -> None:
        print(text, flush=True)

    from npnet.fast.parallel import available_cores

    load = start_load = os.getloadavg()
    log(f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
    if load[0] >= 0.5:
        log(f"warning: the machine is not idle (1-minute load average {load[0]:.2f}): the "
            "'idle' condition has that load too, and every other condition that much more")

    torch = import_torch(not args.no_torch, log)
    with_torch = torch is not None
    cores = available_cores()
    log(machine_report(torch))

    many = f"{cores} threads"
    modes_all = ([many] if cores > 1 else []) + [ONE, AUTO, TORCH]
    modes = [mode for mode in modes_all if mode != TORCH or with_torch]
    log(f"{args.rounds} rounds per model and condition, one block of about "
        f"{args.block_seconds:g} s per mode each (order rotating), after {args.warmup:g} s of "
        f"warm-up per mode; {SETTLE_STEPS} steps discarded at the start of every block, "
        f"{BLAS_SPIN_S:g} s of pause before it\n")

    cells = []
    for name in args.models:
        for neighbours in args.conditions:
            cell = measure_cell(name, neighbours, modes, cores, args, log)
            cell["ratios"] = {f"auto / {other}": ratio(cell, AUTO, other)
                              for other in (ONE, many, TORCH)}
            cells.append(cell)

    log("\nsamples/s: median over rounds of each block's samples/s; ratios of samples/s: median "
        "of the per-round ratios [min-max over rounds]\n")
    log(markdown_tables(cells, args, modes_all, many))
    load = os.getloadavg()
    log(f"\nload average at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} "
        "(the neighbours count in it)")
    if args.json:
        results = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "cores": cores, "blas": blas_info(), "load_average_start": start_load,
            "load_average_end": load,
            "torch": ({"version": torch.__version__, "threads": torch.get_num_threads()}
                      if with_torch else None),
            "modes": modes, "cells": cells,
        }
        args.json.write_text(json.dumps(results, indent=2))
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
