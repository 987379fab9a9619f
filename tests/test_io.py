"""Atomic writes and parameter files."""

import os
import stat

import numpy as np
import pytest

from npnet.io import (
    atomic_write,
    load_arrays,
    load_params,
    read_json,
    remove_stale_temporaries,
    save_params,
    write_json,
)
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


def test_load_params_on_a_npy_file_says_what_it_is(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"w\.npy holds one array \(a \.npy file\).*save_params"):
        load_params(tmp_path / "w.npy", model(3, 0).params)


def test_saving_to_a_folder_names_the_folder_not_a_temporary_file(tmp_path):
    folder = tmp_path / "model.npz"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="model.npz is a directory") as error:
        save_params(folder, model(3, 0).params)
    assert ".tmp" not in str(error.value)
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())


def test_loading_a_folder_says_it_is_one(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_arrays(tmp_path)


@pytest.mark.parametrize("bad,message", [
    (np.array([["a", "b", "c"]] * 4), "holds <U1 values, not numbers"),
    (np.full((4, 3), np.nan), "holds NaN or infinite values"),
])
def test_loading_strings_or_nan_is_refused_and_changes_nothing(tmp_path, bad, message):
    params = model(3, 0).params
    np.savez(tmp_path / "m.npz", **{**params, "0.W": bad})
    target = model(3, 1)
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(ValueError, match=f"'0.W' {message}"):
        load_params(tmp_path / "m.npz", target.params)
    for name, value in target.params.items():
        np.testing.assert_array_equal(value, before[name])


def test_lists_save_like_arrays_and_are_refused_as_the_arrays_to_load_into(tmp_path):
    save_params(tmp_path / "m.npz", {"w": [[1.0, 2.0], [3.0, 4.0]]})
    target = {"w": np.zeros((2, 2))}
    load_params(tmp_path / "m.npz", target)
    np.testing.assert_array_equal(target["w"], [[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="'w' is a list.*model.params"):
        load_params(tmp_path / "m.npz", {"w": [[0.0, 0.0], [0.0, 0.0]]})
    with pytest.raises(TypeError, match="'r' is not an array of numbers"):
        save_params(tmp_path / "r.npz", {"r": [[1.0], [2.0, 3.0]]})


def test_stale_temporaries_of_npnet_are_removed_and_nothing_else(tmp_path):
    """Only npnet's own temporaries: a user's .notes.abcdefgh.tmp, or a .bashrc.12345678.tmp
    another program left, look alike but stay."""
    stale = [tmp_path / ".checkpoint.npz.npnet-k3j_x9ab.tmp",
             tmp_path / ".metrics.json.npnet-00000000.tmp"]
    others = [tmp_path / ".notes.tmp", tmp_path / "checkpoint.npz", tmp_path / "a.tmp",
              tmp_path / ".checkpoint.npz.npnet-short.tmp", tmp_path / ".notes.abcdefgh.tmp",
              tmp_path / ".bashrc.12345678.tmp", tmp_path / ".checkpoint.npz.k3j_x9ab.tmp"]
    for path in stale + others:
        path.write_bytes(b"x")
    (tmp_path / ".folder.npz.npnet-abcdefgh.tmp").mkdir()
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(
        [*others, tmp_path / ".folder.npz.npnet-abcdefgh.tmp"])


def test_an_interrupted_atomic_write_leaves_a_temporary_that_the_cleanup_finds(
        tmp_path, monkeypatch):
    """What SIGKILL leaves (no except clause runs, here: its unlink does nothing): the
    temporary's name fits the pattern."""
    from npnet import io as npnet_io

    monkeypatch.setattr(npnet_io.os, "unlink", lambda name: None)
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "checkpoint.npz") as f:
        f.write(b"half")
        raise RuntimeError("killed")
    monkeypatch.undo()
    (left,) = tmp_path.iterdir()
    assert remove_stale_temporaries(tmp_path) == [left] and not left.exists()


def test_ctrl_c_while_np_savez_writes_is_a_keyboard_interrupt_after_the_save(
        tmp_path, monkeypatch):
    """An interrupt inside zipfile's writing handle made its close raise "Can't close the ZIP
    file while there is an open writing handle": Ctrl-C now waits for the save, which
    completes, and then arrives as the KeyboardInterrupt it is."""
    import signal
    import zipfile

    real_close = zipfile._ZipWriteFile.close

    def close_with_ctrl_c(handle):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C, in the middle of the zip's writing
        real_close(handle)

    monkeypatch.setattr(zipfile._ZipWriteFile, "close", close_with_ctrl_c)
    # Python's own Ctrl-C handler (an experiment script imported by another test may have
    # installed its own, which exits instead)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            save_params(tmp_path / "model.npz", {"w": np.arange(3.0)})
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    target = {"w": np.zeros(3)}
    load_params(tmp_path / "model.npz", target)  # written whole
    np.testing.assert_array_equal(target["w"], [0.0, 1.0, 2.0])


def test_an_npz_whose_arrays_promise_more_than_they_hold_is_refused_unread(tmp_path):
    """A .npy header that promises a (10^5, 10^5) float64 array in a few bytes, or members
    far larger than the model's parameters: refused before NumPy allocates anything."""
    import zipfile

    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (10**5, 10**5)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w") as archive, archive.open("w.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 8)
    with pytest.raises(ValueError, match=r"w.npy promises 80000000000 bytes"):
        load_params(bomb, {"w": np.zeros(3)})
    save_params(tmp_path / "big.npz", {"w": np.zeros(10**6)})  # 8 MB for 3 parameters
    with pytest.raises(ValueError, match="more than the .* expected"):
        load_params(tmp_path / "big.npz", {"w": np.zeros(3)})
