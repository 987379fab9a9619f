"""npnet.checks, where the core's argument checks live: each refuses what it must, with a
message that names the argument, and returns what it accepts converted as documented. Most
checks are also exercised through the objects that call them (tests/test_layers.py,
test_optim.py, test_vae.py, ...); these tests cover what those do not."""

import numpy as np
import pytest

from npnet import checks
from npnet.layers import Dense, LeakyReLU
from npnet.optim import SGD, Adam
from npnet.vae import VAE


@pytest.mark.parametrize("value", [2.0, 2.7, "2", True, None, np.float64(3), [2]], ids=repr)
def test_integers_refuse_what_is_not_one(value):
    """int() would take 2.7, "2" and True without a word."""
    with pytest.raises(TypeError, match=r"stride must be an integer >= 1, got .* of type"):
        checks.integer(value, "stride", low=1)


def test_integers_below_their_bound_are_refused_and_numpy_integers_become_int():
    with pytest.raises(ValueError, match="padding must be an integer >= 0, got -1"):
        checks.integer(-1, "padding")
    assert checks.integer(0, "padding") == 0
    value = checks.integer(np.int64(5), "k", low=1)
    assert value == 5 and type(value) is int


@pytest.mark.parametrize("alpha, error", [(1.0, ValueError), (-0.1, ValueError),
                                          (np.nan, ValueError), ("0.1", TypeError),
                                          (True, TypeError)], ids=repr)
def test_leaky_relu_slope_is_a_fraction(alpha, error):
    with pytest.raises(error, match="LeakyReLU alpha must be"):
        LeakyReLU(alpha)
    slope = LeakyReLU(np.float32(0.25)).alpha
    assert slope == 0.25 and type(slope) is float


def test_one_of_names_the_choices():
    assert checks.one_of("he", ("he", "glorot"), "init") == "he"
    assert checks.one_of(None, ("relu", None), "output activation") is None
    with pytest.raises(ValueError, match="unknown init 'xavier'; choose one of 'he', 'glorot'"):
        checks.one_of("xavier", ("he", "glorot"), "init")
    with pytest.raises(ValueError, match=r"unknown init \['he'\]"):
        checks.one_of(["he"], ("he", "glorot"), "init")  # unhashable: no TypeError from `in`


@pytest.mark.parametrize("rng, error", [(-1, ValueError), ("0", TypeError), (2.5, TypeError),
                                        ([0, -2], ValueError), (True, TypeError)], ids=repr)
def test_a_random_generator_or_seed_is_checked(rng, error):
    """NumPy's own refusal of these names neither the argument nor what to pass."""
    with pytest.raises(error, match="rng must be a numpy.random.Generator, a seed"):
        Dense(3, 3, rng=rng)
    with pytest.raises(error, match="rng must be"):
        VAE(4, (3,), 1, rng=0).log_likelihood(np.ones((2, 4)), k=2, rng=rng)


def test_generators_and_seeds_are_accepted_as_numpy_takes_them():
    generator = np.random.default_rng(5)
    assert checks.generator(generator) is generator
    for seed in (7, np.int64(7), [7, 1], np.random.SeedSequence(7)):
        assert isinstance(checks.generator(seed), np.random.Generator)
    np.testing.assert_array_equal(Dense(3, 3, rng=[0, 1]).params["W"],
                                  Dense(3, 3, rng=np.random.default_rng([0, 1])).params["W"])


def trained_adam() -> tuple[Adam, dict]:
    w = np.ones(3)
    optimizer = Adam({"w": w}, lr=0.1)
    optimizer.step({"w": np.array([1.0, -2.0, 0.5])})
    return optimizer, optimizer.state_dict()


@pytest.mark.parametrize("edit, error, match", [
    (lambda s: s.pop("steps"), KeyError, "no 'steps' entry"),
    (lambda s: s.update(steps=np.array(-1)), ValueError, "'steps' must be an integer >= 0"),
    (lambda s: s.update(steps=np.array(2.5)), TypeError, "'steps' must be an integer"),
    (lambda s: s.update({"m/w": np.ones(4)}), ValueError, r"'m/w' has shape \(4,\)"),
    (lambda s: s.update({"m/u": np.ones(3)}), KeyError, "unknown parameter 'u'"),
    (lambda s: s.update({"velocity/w": np.ones(3)}), KeyError, "keeps \\['m', 'v'\\]"),
    (lambda s: s.update({"v/w": np.full(3, np.nan)}), ValueError, "'v/w' is not finite"),
], ids=["no steps", "negative steps", "fractional steps", "shape", "parameter", "slot", "nan"])
def test_optimizer_state_is_checked_before_it_is_loaded(edit, error, match):
    """A negative or fractional step count would make Adam's bias correction divide by a
    wrong (or negative) 1 - beta^t; every entry is checked before any is loaded."""
    optimizer, state = trained_adam()
    before = {key: value.copy() for key, value in optimizer.state_dict().items()}
    edit(state)
    with pytest.raises(error, match=match):
        optimizer.load_state_dict(state)
    after = optimizer.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_a_good_optimizer_state_loads_into_a_new_optimizer():
    optimizer, state = trained_adam()
    fresh = Adam({"w": np.ones(3)}, lr=0.1)
    fresh.load_state_dict(state)
    assert fresh.steps == 1 and type(fresh.steps) is int
    np.testing.assert_array_equal(fresh.state["w"]["v"], optimizer.state["w"]["v"])
    with pytest.raises(KeyError, match="SGD keeps \\['velocity'\\]"):
        SGD({"w": np.ones(3)}, momentum=0.9).load_state_dict(state)


def test_optimizer_state_that_overflows_the_parameters_dtype_is_refused():
    """1e6 is finite in float32 but inf in float16: checked as it would be stored."""
    w = np.ones(3, np.float16)
    optimizer = SGD({"w": w}, momentum=0.9)
    with pytest.raises(ValueError, match="'velocity/w' is not finite in the parameter's dtype "
                                         "float16"):
        optimizer.load_state_dict({"steps": np.array(1),
                                   "velocity/w": np.full(3, 1e6, np.float32)})
    assert optimizer.state == {} and optimizer.steps == 0
