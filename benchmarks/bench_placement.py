"""What npnet.fast.placement buys: training steps with the arrays placed, and plain copies.

    python benchmarks/bench_placement.py                      # default DAE, batch 128
    python benchmarks/bench_placement.py --model vae --batch-size 512

The fast path places each parameter, its gradient and its optimizer state a quarter page
apart and, from 256 KiB up, on huge pages (``npnet/fast/placement.py``). Here one model
trains in blocks of steps, alternating between its own arrays ("placed") and copies of them
made with ``np.copy`` ("plain": ordinary NumPy arrays, where the heap puts them, as the core
allocates them). Between blocks the values are copied across, so training simply
goes on. Alternating within one process, a block a second or less, keeps the machine's
drifts out of the comparison as far as possible; the script prints each arrangement's
median step and Adam-step times and the median of the per-round ratios placed / plain.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from bench_train import (  # the benchmark's models and optimizer, exactly
    add_block_options,
    npnet_model,
)

from npnet.layers import Dense


def parameters(model) -> list[tuple[Dense, str, str]]:
    """(layer, key, parameter name) for every parameter of every Dense layer."""
    layers = [layer for layer in [*model.encoder.layers, *model.decoder.layers]
              if isinstance(layer, Dense)]
    return [(layer, key, f"{layer.name}.{key}") for layer in layers for key in layer.params]


def arrays_of(layer, key, name, optimizer) -> list[np.ndarray]:
    """The arrays of one parameter's loop: parameter, gradient, then the optimizer's state."""
    state = optimizer.state[name]
    return [layer.params[key], layer.grads[key], *(state[s] for s in optimizer.state_slots)]


def use(arrangement: list[list[np.ndarray]], model, optimizer) -> None:
    """Make ``arrangement`` (one list per parameter, as ``arrays_of``) the live arrays,
    with the values of the arrays live until now."""
    for (layer, key, name), target in zip(parameters(model), arrangement, strict=True):
        for live, new in zip(arrays_of(layer, key, name, optimizer), target, strict=True):
            if new is not live:
                new[...] = live
        param, grad, *state = target
        layer.params[key] = optimizer.params[name] = param
        layer.grads[key] = grad
        optimizer.state[name] = dict(zip(optimizer.state_slots, state, strict=True))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_block_options(parser)
    args = parser.parse_args(argv)

    _, model, optimizer = npnet_model(args.model, seed=0)  # on the fast path
    x = np.random.default_rng(0).random((args.batch_size, 784), dtype=np.float32)
    rng = np.random.default_rng(0)
    model.train_step(x, rng)
    optimizer.step(model.grads)  # creates the optimizer's state
    placed = [arrays_of(*p, optimizer) for p in parameters(model)]
    plain = [[np.copy(a) for a in arrays] for arrays in placed]

    def block(steps: int) -> tuple[float, float]:
        step_seconds, adam_seconds = [], []
        for _ in range(steps):
            started = time.perf_counter()
            model.train_step(x, rng)
            backward_done = time.perf_counter()
            optimizer.step(model.grads)
            finished = time.perf_counter()
            step_seconds.append(finished - started)
            adam_seconds.append(finished - backward_done)
        return statistics.median(step_seconds), statistics.median(adam_seconds)

    times: dict[str, list[tuple[float, float]]] = {"placed": [], "plain": []}
    for round_ in range(args.rounds):
        order = ("placed", "plain") if round_ % 2 == 0 else ("plain", "placed")
        for label in order:
            use(placed if label == "placed" else plain, model, optimizer)
            block(5)  # settle: the first steps after a switch read the copies from memory
            times[label].append(block(args.steps))

    print(f"{args.model}, batch {args.batch_size}: {args.rounds} rounds of {args.steps} "
          "steps each way, medians over the rounds")
    for label, pairs in times.items():
        step = statistics.median(s for s, _ in pairs)
        adam = statistics.median(a for _, a in pairs)
        print(f"  {label:<6}  step {1e3 * step:6.3f} ms   Adam step {1e3 * adam:6.3f} ms")
    for part, index in (("step", 0), ("Adam step", 1)):
        ratios = [p[index] / q[index] for p, q in zip(times["placed"], times["plain"],
                                                       strict=True)]
        print(f"  placed / plain, {part}: {statistics.median(ratios):.3f} "
              f"[{min(ratios):.2f}-{max(ratios):.2f}]")


if __name__ == "__main__":
    main()
