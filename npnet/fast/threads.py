"""How many threads NumPy's BLAS gets while training: the count that runs fastest now.

Why it matters. NumPy hands every matrix product to a BLAS library (OpenBLAS in NumPy's
wheels), which splits a large product over one thread per core. Between products its
threads do not sleep: they *spin*, checking in a tight loop whether the next product has
arrived, because waking a sleeping thread takes longer than a small product does. On an idle
machine that is a good bet. When another program keeps one core busy, the operating system
has to share that core between the program and one BLAS thread; every product then waits
for the descheduled thread, while its partner burns the other core spinning, and a training
step can become three times slower than with a single BLAS thread, which never waits for
anyone. Which count wins depends on the model, the batch and what else runs, so it is
measured, not guessed.

What :class:`BlasThreads` does. It wraps a model for :func:`npnet.train.fit` and runs every
``train_step`` and ``evaluate`` under a BLAS thread count set with threadpoolctl (never with
environment variables, which the user may have set for their own reasons):

* ``"auto"``: at the first step, it times a few steps with each candidate count on a copy of
  the model (so the real model and its random numbers are untouched), keeps the fastest count
  (on a near tie, within ``margin``, the most threads, the BLAS's default on an idle
  machine) for the rest of the run and says so in the log; if the steps later become more than twice
  as slow, it says that too, once, and suggests ``"adapt"``.
* ``"adapt"``: the same, and every ``every`` steps it trains a few real steps with each other
  count (at most 2% of the steps) and switches when another one has become faster (another
  program started or stopped).
* an integer: that count, always.

Why ``"auto"`` keeps its choice. A product's bits depend on the thread count: OpenBLAS
splits and orders the sums of a product differently with one thread than with two (on the
machine this was written on, with OpenBLAS 0.3.31, nearly every product of the experiments'
models differs in the last bits), and training carries such differences on from step to
step, so that after a full run the results differ in their third or fourth significant digit
(README, "Reproducibility"). Results are therefore reproducible *for a given count* (and a
given processor kind, whose BLAS kernels round as they do).
``"auto"`` chooses once per run and the experiment scripts record the count (metrics.json,
the checkpoint), so a resumed run continues with it and ``--blas-threads N`` repeats a run
bit for bit. ``"adapt"`` trades that reproducibility for speed when the machine's load
changes during a run. ``tests/test_fast_threads.py`` checks each claim.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from .parallel import available_cores

__all__ = ["BlasThreads", "candidate_counts", "MODES"]

MODES = ("auto", "adapt")


def candidate_counts(cores: int | None = None) -> list[int]:
    """The thread counts worth timing on ``cores`` cores: 1, 2, 4, ... and ``cores`` itself."""
    cores = available_cores() if cores is None else int(cores)
    counts, count = [], 1
    while count < cores:
        counts.append(count)
        count *= 2
    return [*counts, max(cores, 1)]


class BlasThreads:
    """Train ``model`` under the BLAS thread count that runs fastest; see the module docstring.

    A count is timed in blocks: first ``settle`` seconds of steps that are not counted
    (OpenBLAS's threads from the count before keep spinning for a moment after their last
    product, on the cores the new count needs), then ``seconds`` of steps whose samples per
    second count. Blocks of a fraction of a second, rather than a few steps, see what the
    operating system's time slices (a few milliseconds each) do to a count when another
    program wants a core.

    Parameters
    ----------
    model
        An npnet model (``params``, ``grads``, ``train_step(x, rng)``, ``evaluate``), or a
        trainer that offers the same, such as the one :func:`npnet.fast.enable` returns.
    threads : "auto", "adapt" or int
        How the count is chosen (module docstring).
    candidates : list of int, optional
        Counts to time; default :func:`candidate_counts`.
    every : int
        ``"adapt"``: steps between two timings of the other counts; ``"auto"``: steps between
        two comparisons of the latest steps with the rate it chose by, after which it says,
        once, if they have become more than twice as slow.
    settle, seconds : float
        Seconds of uncounted, then of counted steps per block.
    rounds : int
        Blocks per count at the first step, in rotating order; the median counts.
    margin : float
        A count is chosen over the most threads only if it is faster by this factor, and
        ``"adapt"`` switches only to a count faster than the current one by this factor, so
        that noise does not decide (nor make ``"adapt"`` switch back and forth).
    log : callable
        Where the chosen count, and every change of it, is said (a line of text).
    clock : callable
        Seconds, for timing (the tests give it a clock of their own).

    Attributes
    ----------
    threads : int or None
        The count in use; None until the first step of ``"auto"`` or ``"adapt"``.
    rates : dict[int, float]
        Samples per second of each count at its last timing.
    steps : int
        Steps trained so far (the timing on a copy at the first step not included).

    Tested by: tests/test_fast_threads.py::test_auto_keeps_the_fastest_count_and_the_bits,
    tests/test_fast_threads.py::test_adapt_switches_when_another_count_becomes_faster
    """

    def __init__(
        self,
        model,
        threads: str | int = "auto",
        *,
        candidates: list[int] | None = None,
        every: int = 500,
        settle: float = 0.1,
        seconds: float = 0.2,
        rounds: int = 3,
        margin: float = 1.05,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.perf_counter,
    ):
        from threadpoolctl import ThreadpoolController  # inspects the loaded BLAS: once

        if isinstance(threads, str) and threads in MODES:
            self.mode, self.threads = threads, None
        elif isinstance(threads, (int, np.integer)) and not isinstance(threads, bool) and (
            threads >= 1
        ):
            self.mode, self.threads = "fixed", int(threads)
        else:
            raise ValueError(
                f"blas threads must be a positive integer, 'auto' or 'adapt', got {threads!r}"
            )
        self.module = model
        self.candidates = sorted(set(candidates or candidate_counts()))
        if not self.candidates or min(self.candidates) < 1:
            raise ValueError(f"candidates must be positive thread counts, got {candidates}")
        self.every, self.rounds = int(every), int(rounds)
        self.settle, self.seconds, self.margin = float(settle), float(seconds), float(margin)
        # "adapt" times another count for at most 2% of the steps (3 steps at the least).
        self.max_probe_steps = max(3, self.every // 50)
        self.slowdown = 2.0  # "auto" says so once when its steps become this much slower
        self._warned = False
        self.log, self.clock = log, clock
        self.rates: dict[int, float] = {}
        self.steps = 0
        self._recent: deque[tuple[int, float]] = deque(maxlen=1000)  # (samples, seconds)
        self._queue: list[int] = []  # "adapt": the counts still to time in this round
        self._block: _Block | None = None  # the count being timed now, if any
        self._blas = ThreadpoolController()

    # What fit needs of a model -------------------------------------------------------

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The model's parameters."""
        return self.module.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """The model's gradients of the last step."""
        return self.module.grads

    def evaluate(self, x: np.ndarray, *args, **kwargs) -> dict:
        """The model's ``evaluate``, with the count in use (the BLAS default before any)."""
        if self.threads is None:
            return self.module.evaluate(x, *args, **kwargs)
        with self._limit(self.threads):
            return self.module.evaluate(x, *args, **kwargs)

    def train_step(self, x: np.ndarray, rng) -> dict:
        """The model's ``train_step`` under the chosen count; chooses it at the first step."""
        if self.threads is None:
            self.choose(x)
        block = self._block
        with self._limit(block.count if block else self.threads):
            started = self.clock()
            losses = self.module.train_step(x, rng)
            seconds = self.clock() - started
        self.steps += 1
        if block is None:
            self._recent.append((len(x), seconds))
        elif block.add(len(x), seconds, self.settle, self.seconds, self.max_probe_steps):
            self.rates[block.count] = block.rate
            self._next_block()
        if self.steps % self.every == 0 and len(self.candidates) > 1:
            if self.mode == "adapt" and self._block is None:
                self._queue = [c for c in self.candidates if c != self.threads]
                self._next_block()
            elif self.mode == "auto" and not self._warned:
                self._warn_if_slower()
        return losses

    def close(self) -> None:
        """Close the wrapped trainer, if it has anything to close (a DataParallel's threads)."""
        close = getattr(self.module, "close", None)
        if close is not None:
            close()

    # Choosing ----------------------------------------------------------------------

    def choose(self, x: np.ndarray, rng=0) -> int:
        """Time ``rounds`` blocks of steps on ``x`` with every candidate count, on a copy of
        the model, and keep the fastest count; returns it.

        The copy trains with its own generator (seeded by ``rng``), so the model, its
        parameters and the caller's random numbers are as they were.
        """
        if len(self.candidates) == 1:
            self.threads, self.rates = self.candidates[0], {}
            self.log(f"BLAS threads: {self.threads} (the only count to choose from)")
            return self.threads
        scratch = copy.deepcopy(self.module)
        generator = np.random.default_rng(rng)
        samples: dict[int, list[float]] = {c: [] for c in self.candidates}
        for round_ in range(self.rounds):
            shift = round_ % len(self.candidates)  # which count goes first rotates
            for count in self.candidates[shift:] + self.candidates[:shift]:
                block = _Block(count)
                with self._limit(count):
                    while not block.add(len(x), self._timed_step(scratch, x, generator),
                                        self.settle, self.seconds):
                        pass
                samples[count].append(block.rate)
        self.rates = {c: statistics.median(r) for c, r in samples.items()}
        # Within the margin, the most threads: what the BLAS runs by default on an idle
        # machine, so that a near tie does not make two runs differ in their last bits.
        most = self.candidates[-1]
        best = max(self.candidates, key=lambda c: (self.rates[c], c))
        self.threads = best if self.rates[best] > self.margin * self.rates[most] else most
        self.log(self._chosen_message(most))
        return self.threads

    def _chosen_message(self, most: int) -> str:
        """What was chosen, in plain words: the count, its rate, the others' rates, and
        (when fewer threads than cores won) why that is no fault."""
        others = ", ".join(f"{self.rates[c]:,.0f} with {_threads(c)}"
                           for c in self.candidates if c != self.threads)
        why = ("; another program is probably using a core, which slows the threads that "
               "wait for it: nothing is wrong" if self.threads < most else "")
        keep = (f"timed again every {self.every} steps" if self.mode == "adapt" else
                "kept for the run, so that its numbers can be repeated")
        return (f"BLAS threads: {self.threads} (the fastest now: "
                f"{self.rates[self.threads]:,.0f} samples/s, against {others}{why}); {keep}")

    def _timed_step(self, model, x, generator) -> float:
        started = self.clock()
        model.train_step(x, generator)
        return self.clock() - started

    def _next_block(self) -> None:
        """Time the next count of this round of ``adapt``, or decide once all are timed."""
        if self._queue:
            self._block = _Block(self._queue.pop(0))
            return
        self._block = None
        current = self.rates[self.threads] = self._recent_rate()
        best = max(self.rates, key=lambda c: (self.rates[c], c))
        if best != self.threads and self.rates[best] > self.margin * current:
            self.log(
                f"BLAS threads: {self.threads} -> {best} at step {self.steps}: samples/s now "
                f"{self.rates[best]:,.0f} with {_threads(best)}, {current:,.0f} with "
                f"{_threads(self.threads)} (the machine's load changed)"
            )
            self.threads = best
            self._recent.clear()

    def _recent_rate(self) -> float:
        """Samples/s of the latest steps with the count in use, as many as a block."""
        samples = seconds = 0.0
        for n, step_seconds in reversed(self._recent):
            samples, seconds = samples + n, seconds + step_seconds
            if seconds >= self.seconds:
                break
        return samples / seconds if seconds > 0 else 0.0

    def _warn_if_slower(self) -> None:
        """``auto``: say once if the steps have become much slower than when it chose."""
        chosen, now = self.rates.get(self.threads, 0.0), self._recent_rate()
        if now > 0 and chosen > self.slowdown * now:
            self._warned = True
            chose = f"{_threads(self.threads)} {'was' if self.threads == 1 else 'were'} chosen"
            self.log(
                f"note: training now runs at {now:,.0f} samples/s, {chosen / now:.1f}x slower "
                f"than when {chose}; another program is probably using the cores. Nothing is "
                f"wrong: the run goes on with {_threads(self.threads)}, so that its numbers "
                "can be repeated (--blas-threads adapt would re-time the count during a run). "
                "This note is not repeated."
            )

    def _limit(self, count: int):
        return self._blas.limit(limits=count, user_api="blas")

    def __repr__(self) -> str:
        return (f"BlasThreads({type(self.module).__name__}, mode={self.mode!r}, "
                f"threads={self.threads})")


class _Block:
    """Steps timed with one count: ``settle`` seconds not counted, then ``seconds`` counted."""

    def __init__(self, count: int):
        self.count, self.steps = count, 0
        self.settled = self.samples = self.seconds = 0.0

    def add(self, samples: int, seconds: float, settle: float, measure: float,
            max_steps: int | None = None) -> bool:
        """Record a step; True once the block is done (or has reached ``max_steps``)."""
        self.steps += 1
        if self.settled < settle:
            self.settled += seconds
        else:
            self.samples, self.seconds = self.samples + samples, self.seconds + seconds
        done = self.seconds >= measure or (max_steps is not None and self.steps >= max_steps)
        if done and self.seconds == 0:  # cut short while settling: count what there is
            self.samples, self.seconds = samples, seconds
        return done

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")


def _threads(count: int) -> str:
    return f"{count} thread" + ("s" if count != 1 else "")
