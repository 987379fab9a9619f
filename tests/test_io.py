"""Atomic writes and parameter files."""

import os
import stat

import numpy as np
import pytest

from npnet.io import atomic_write, load_params, read_json, save_params, write_json
from npnet.layers import Dense, ReLU, Sequential


def model(width, seed):
    return Sequential(Dense(4, width, rng=seed), ReLU(), Dense(width, 2, rng=seed + 1))


def test_params_round_trip(tmp_path):
    a, b = model(3, 0), model(3, 10)
    save_params(tmp_path / "m.npz", a.params)
    load_params(tmp_path / "m.npz", b.params)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert b.params["0.W"] is b.layers[0].params["W"]  # loaded in place


def test_loading_other_sizes_names_the_parameter_and_changes_nothing(tmp_path):
    save_params(tmp_path / "m.npz", model(3, 0).params)
    target = model(5, 1)
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(ValueError, match=r"'0\.W' has shape \(4, 3\) in the file but \(4, 5\)"):
        load_params(tmp_path / "m.npz", target.params)
    for name, value in target.params.items():
        np.testing.assert_array_equal(value, before[name])


def test_loading_missing_parameters_lists_them(tmp_path):
    save_params(tmp_path / "m.npz", {"0.W": np.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"missing from the file: \['0\.b', '2\.W', '2\.b'\]"):
        load_params(tmp_path / "m.npz", model(3, 0).params)


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"epoch": 1})
    with pytest.raises(KeyboardInterrupt), atomic_write(path, "w") as f:
        f.write('{"epoch": 2, "half')
        raise KeyboardInterrupt
    assert read_json(path) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_json_converts_numpy_values(tmp_path):
    write_json(tmp_path / "m.json", {"a": np.float32(1.5), "b": np.arange(3)})
    assert read_json(tmp_path / "m.json") == {"a": 1.5, "b": [0, 1, 2]}


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_usual_mode_for_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        with atomic_write(tmp_path / "new.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == mode


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("old")
    target.chmod(0o640)
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
