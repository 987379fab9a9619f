"""Corruptions: range, rates, reproducibility, and the clean input left alone."""

import numpy as np
import pytest

from npnet.corruption import CORRUPTIONS, corrupt

X = np.random.default_rng(0).random((200, 50), dtype=np.float32)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_range_dtype_seed_and_input_untouched(kind):
    before = X.copy()
    a, b = corrupt(X, kind, 0.3, 1), corrupt(X, kind, 0.3, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, corrupt(X, kind, 0.3, 2))
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(X, before)


def test_rates():
    level = 0.25
    masked = corrupt(X, "masking", level, 0)
    assert np.mean(masked == 0) == pytest.approx(level, abs=0.01)
    salted = corrupt(X, "salt_and_pepper", level, 0)
    assert np.mean(salted == 1) == pytest.approx(level / 2, abs=0.01)
    assert np.mean(salted == 0) == pytest.approx(level / 2, abs=0.01)
    middle = np.full((400, 400), 0.5, dtype=np.float32)  # far from the clip at 0 and 1
    noisy = corrupt(middle, "gaussian", 0.05, 0)
    assert np.std(noisy - middle) == pytest.approx(0.05, rel=0.02)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown corruption 'blur'"):
        corrupt(X, "blur", 0.1, 0)
    with pytest.raises(ValueError, match="probability in \\[0, 1\\]"):
        corrupt(X, "masking", 1.5, 0)
