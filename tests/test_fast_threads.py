"""npnet.fast.threads: the BLAS thread count that runs fastest, and what it does to the bits.

The speed of a count is the machine's business, so these tests give BlasThreads a clock that
charges each step a cost set by the test for the count it runs with: the logic that chooses
is tested exactly, without depending on the load of the machine the tests run on.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from npnet import fast
from npnet.autoencoder import DenoisingAutoencoder
from npnet.fast.threads import BlasThreads, candidate_counts
from npnet.optim import Adam
from npnet.vae import VAE


class Charged(BlasThreads):
    """BlasThreads whose clock charges ``cost[count]`` seconds for a step with ``count``."""

    def __init__(self, model, threads, cost, **options):
        self.cost, self.current, self.time = cost, None, 0.0
        self.counts_run: list[int] = []
        super().__init__(model, threads, clock=self.tick, **options)

    def tick(self) -> float:
        self.time += self.cost[self.current]  # start and end of a step: elapsed = one cost
        return self.time

    def _limit(self, count):
        self.current = count
        self.counts_run.append(count)
        return super()._limit(count)


def blas_threads_now() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_candidate_counts_are_powers_of_two_and_every_core():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(3) == [1, 2, 3]
    assert candidate_counts(8) == [1, 2, 4, 8]


def train(trainer, optimizer, x, steps):
    losses = []
    for step in range(steps):
        losses.append(trainer.train_step(x, np.random.default_rng([7, step])))
        optimizer.step(trainer.grads)
    return losses


@pytest.mark.parametrize("faster", [1, 2])
def test_auto_keeps_the_fastest_count_and_the_bits(faster):
    """auto times every count on a copy, keeps the fastest, and then trains exactly as the
    core does under that many BLAS threads: the same losses and parameters, bit for bit.

    The model is the experiments' VAE at batch 128, whose products OpenBLAS does split over
    threads, so a count that was not applied would show in the bits where the BLAS's sums
    depend on it (on OpenBLAS 0.3.31 they do; the test says so where they do not).
    """
    x = np.random.default_rng(0).random((128, 784), dtype=np.float32)
    lines = []
    model = VAE(rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    optimizer = Adam(model.params, lr=1e-3)
    trainer = Charged(fast.enable(model, optimizer, blas_threads=None), "auto",
                      cost={1: 1.0, 2: 1.0, faster: 0.5}, candidates=[1, 2], log=lines.append)
    assert trainer.choose(x[:16]) == faster
    assert trainer.rates == {faster: 32.0, 3 - faster: 16.0}
    assert len(lines) == 1 and f"BLAS threads: {faster} " in lines[0]
    for key, value in before.items():  # timing trained a copy
        np.testing.assert_array_equal(model.params[key], value)
    chosen = train(trainer, optimizer, x, 3)
    assert set(trainer.counts_run[-3:]) == {faster} and len(lines) == 1

    reference = {}
    for count in (1, 2):
        core = VAE(rng=0)
        core_optimizer = Adam(core.params, lr=1e-3)
        with threadpool_limits(count, user_api="blas"):
            reference[count] = (train(core, core_optimizer, x, 3), core.params)
    assert chosen == reference[faster][0]
    for key, value in reference[faster][1].items():
        np.testing.assert_array_equal(model.params[key], value, err_msg=key)
    if reference[1][0] == reference[2][0]:
        pytest.skip("this BLAS gives the same bits with 1 and 2 threads; nothing to tell apart")


@pytest.mark.parametrize("cost_of_one,chosen", [(0.97, 2), (0.9, 1)])
def test_auto_keeps_the_most_threads_unless_another_count_is_clearly_faster(cost_of_one, chosen):
    """Within 5%, a tie: the most threads, as the BLAS runs by default."""
    model = DenoisingAutoencoder(16, (8,), 4, rng=0)
    trainer = Charged(model, "auto", cost={1: cost_of_one, 2: 1.0}, candidates=[1, 2],
                      log=lambda line: None)
    assert trainer.choose(np.ones((4, 16), np.float32)) == chosen


def test_auto_says_once_when_its_steps_become_twice_as_slow():
    model = DenoisingAutoencoder(16, (8,), 4, rng=0)
    optimizer = Adam(model.params, lr=1e-3)
    lines = []
    trainer = Charged(model, "auto", cost={1: 1.0, 2: 0.5}, candidates=[1, 2], every=5,
                      log=lines.append)
    x = np.ones((4, 16), np.float32)
    train(trainer, optimizer, x, 12)
    trainer.cost = {1: 1.0, 2: 0.9}  # slower, but not twice: nothing to say
    train(trainer, optimizer, x, 12)
    assert len(lines) == 1
    trainer.cost = {1: 1.0, 2: 1.5}  # three times slower
    train(trainer, optimizer, x, 20)
    assert trainer.threads == 2 and len(lines) == 2
    assert "3.0x slower than when 2 threads were chosen" in lines[1] and "adapt" in lines[1]


def test_adapt_switches_when_another_count_becomes_faster():
    model = DenoisingAutoencoder(16, (8,), 4, rng=0)
    optimizer = Adam(model.params, lr=1e-3)
    lines = []
    trainer = Charged(model, "adapt", cost={1: 2.0, 2: 1.0}, candidates=[1, 2], every=10,
                      settle=0.0, seconds=3.0, log=lines.append)
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    train(trainer, optimizer, x, 25)
    assert trainer.threads == 2 and len(lines) == 1  # chosen once, then still the fastest
    trainer.counts_run.clear()
    trainer.cost = {1: 1.0, 2: 3.0}  # another program took a core
    train(trainer, optimizer, x, 15)
    assert trainer.threads == 1
    assert len(lines) == 2 and "BLAS threads: 2 -> 1 at step 33" in lines[1]
    # Steps 31-33 timed the other count (the only steps not run with the best one known).
    assert trainer.counts_run[:5] == [2, 2, 2, 2, 2] and trainer.counts_run[5:8] == [1, 1, 1]
    assert set(trainer.counts_run[8:]) == {1}


def test_adapt_keeps_its_count_within_the_margin():
    model = DenoisingAutoencoder(16, (8,), 4, rng=0)
    optimizer = Adam(model.params, lr=1e-3)
    lines = []
    trainer = Charged(model, "adapt", cost={1: 1.0, 2: 1.1}, candidates=[1, 2], every=5,
                      log=lines.append)
    train(trainer, optimizer, np.ones((4, 16), np.float32), 40)
    trainer.cost = {1: 1.03, 2: 1.0}  # 3% faster: noise, not a reason to switch
    train(trainer, optimizer, np.ones((4, 16), np.float32), 40)
    assert trainer.threads == 1 and len(lines) == 1


def test_a_fixed_count_is_applied_to_steps_and_evaluation_and_then_restored():
    model = DenoisingAutoencoder(16, (8,), 4, rng=0)
    before = blas_threads_now()
    seen = []

    class Spy(DenoisingAutoencoder):
        def train_step(self, x, rng=None):
            seen.append(blas_threads_now())
            return super().train_step(x, rng)

        def evaluate(self, x, rng=None):
            seen.append(blas_threads_now())
            return super().evaluate(x, rng)

    model.__class__ = Spy
    trainer = BlasThreads(model, 1, log=lambda line: None)
    x = np.ones((4, 16), np.float32)
    trainer.train_step(x, 0)
    trainer.evaluate(x, rng=0)
    assert seen == [[1] * len(before)] * 2
    assert blas_threads_now() == before


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "fast", "2", None])
def test_bad_counts_are_clear_errors(bad):
    with pytest.raises(ValueError, match="positive integer, 'auto' or 'adapt'"):
        BlasThreads(DenoisingAutoencoder(16, (8,), 4, rng=0), bad)


@pytest.mark.parametrize("threads,blas_threads,message", [
    (2, 1, "share of the BLAS threads"), (1, "fast", "positive integer, 'auto' or 'adapt'")])
def test_enable_refuses_a_bad_blas_count_before_changing_anything(threads, blas_threads,
                                                                   message):
    model = DenoisingAutoencoder(16, (8,), 4, rng=0)
    optimizer = Adam(model.params)
    with pytest.raises(ValueError, match=message):
        fast.enable(model, optimizer, threads=threads, blas_threads=blas_threads)
    assert type(optimizer) is Adam and type(model.encoder.layers[0]).__name__ == "Dense"
