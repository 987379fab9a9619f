"""What both experiment scripts share (npnet/cli.py): an --out folder is never clobbered by
mistake, and Ctrl-C at any moment ends a script with one line. These build a ``Run`` or call
a script's ``main`` in this process, without MNIST; test_experiments.py runs the scripts."""

import json
import os
from pathlib import Path

import pytest
from script_helpers import load_experiment

from npnet import cli
from npnet.cli import Run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def runs_end():
    """A started run holds its --out (a lock) until the script ends; so does each test's."""
    yield
    cli._settle_set_aside(finished=False)
    cli._release_out_lock()


def start(out, *argv, name="dae_mnist.py"):
    """A Run of ``name`` into ``out``, as the script starts one (options checked, folder
    prepared)."""
    args, parser = load_experiment(name).parse_args(["--quick", "--out", str(out), *argv])
    return Run(args, parser)


def refused(capsys, out, *argv):
    """The message with which starting a run is refused (exit status 2, as a bad option)."""
    with pytest.raises(SystemExit) as exit_:
        start(out, *argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_interp.py"])
@pytest.mark.parametrize("out", ["", "  "])
def test_an_empty_out_is_refused(capsys, name, out):
    with pytest.raises(SystemExit) as exit_:
        load_experiment(name).parse_args(["--out", out])
    assert exit_.value.code == 2
    assert "--out: must name a folder" in capsys.readouterr().err


@pytest.mark.parametrize("existing", ["checkpoint.npz", "model.npz", "metrics.json"])
def test_a_folder_that_holds_a_run_is_refused_without_resume_or_overwrite(
        tmp_path, capsys, existing):
    (tmp_path / existing).write_text("the last run")
    message = refused(capsys, tmp_path)
    assert f"already holds a run ({existing})" in message
    assert "--resume" in message and "--overwrite" in message
    assert (tmp_path / existing).read_text() == "the last run"


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    message = refused(capsys, tmp_path, "--resume", "--overwrite")
    assert "not allowed with argument" in message


def test_resume_without_a_checkpoint_beside_a_finished_run_is_refused(tmp_path, capsys):
    (tmp_path / "model.npz").write_text("a finished run's model")
    message = refused(capsys, tmp_path, "--resume")
    assert "no checkpoint.npz to resume" in message and "--overwrite" in message
    assert (tmp_path / "model.npz").read_text() == "a finished run's model"


def test_overwrite_sets_the_previous_run_aside_and_nothing_else(tmp_path):
    """Its files wait in a hidden folder until the new run has something in their place."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("checkpoint.npz", "model.npz", "figure.png", "unlisted.png", "notes.txt"):
        (out / name).write_text("old")
    (tmp_path / "outside.png").write_text("not in --out")
    listed = ["figure.png", "../outside.png", "model.npz", "gone.png"]
    (out / "metrics.json").write_text(json.dumps({"files": listed}))
    try:
        run = start(out, "--overwrite")
        visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        assert visible == ["notes.txt", "unlisted.png"]
        (aside,) = out.glob(".npnet-replaced-*")
        assert sorted(p.name for p in aside.iterdir()) == [
            "checkpoint.npz", "figure.png", "metrics.json", "model.npz"]
        assert (tmp_path / "outside.png").exists()
        assert run.run_id.startswith("0-")
    finally:
        cli._settle_set_aside(finished=False)
        cli._release_out_lock()


def test_overwrite_puts_the_previous_run_back_if_the_new_one_ends_without_a_checkpoint(
        tmp_path):
    """A replacing run that fails before its first checkpoint (a divergence in epoch 1, a
    Ctrl-C) leaves the previous run as it was; one that wrote a checkpoint replaces it."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("checkpoint.npz", "model.npz", "metrics.json"):
        (out / name).write_text("old " + name)
    start(out, "--overwrite")
    cli._settle_set_aside(finished=False)
    cli._release_out_lock()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.json",
                                                     "model.npz"]
    assert (out / "model.npz").read_text() == "old model.npz"
    start(out, "--overwrite")
    cli._settle_set_aside(finished=True)
    cli._release_out_lock()
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(tmp_path, capsys):
    """Two runs started a moment apart both passed the check for a run already there, and
    one replaced the other's files: the first now holds --out until it ends."""
    first = start(tmp_path)
    try:
        message = refused(capsys, tmp_path)
        assert "in use by another run" in message and "another --out" in message
        assert len(message.strip().splitlines()) <= 2
    finally:
        cli._release_out_lock()
    assert first.run_id
    start(tmp_path)  # free again once the first has ended
    cli._release_out_lock()


def test_a_folder_named_like_an_output_file_is_refused_before_training(tmp_path, capsys):
    """examples.png/ in --out made the run crash after training, when it saved the figure."""
    (tmp_path / "examples.png").mkdir()
    message = refused(capsys, tmp_path)
    assert "examples.png" in message and "move them out of --out" in message


def test_more_threads_than_cores_can_run_are_refused(capsys, tmp_path):
    from npnet.fast.parallel import MAX_THREADS_PER_CORE, available_cores

    threads = MAX_THREADS_PER_CORE * available_cores() + 1
    message = refused(capsys, tmp_path, "--threads", str(threads), "--batch-size", "1000")
    assert f"--threads {threads}" in message and "per core" in message


def test_starting_a_run_removes_the_temporaries_of_a_killed_save(tmp_path, capsys):
    stale = [tmp_path / ".checkpoint.npz.npnet-ab12cd_e.tmp",
             tmp_path / ".metrics.json.npnet-zzzzzzzz.tmp",
             tmp_path / ".write-test.npnet-k3_9ab0c.tmp"]  # a check of --out, killed
    for path in stale:
        path.write_bytes(b"half a file")
    (tmp_path / "mine.tmp").write_text("not npnet's")
    start(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name != cli.LOCK_NAME] == ["mine.tmp"]
    assert "removed 3 temporary files" in capsys.readouterr().out


def test_every_run_has_its_own_id(tmp_path):
    first, second = start(tmp_path / "a", "--seed", "3"), start(tmp_path / "b", "--seed", "3")
    assert first.run_id.startswith("3-") and first.run_id != second.run_id


@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_interp.py"])
def test_ctrl_c_while_the_data_loads_ends_with_one_line(tmp_path, capsys, monkeypatch, name):
    module = load_experiment(name)

    def load_data(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "load_data", load_data)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--quick", "--out", str(tmp_path)])
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and "interrupted" in err


@pytest.mark.parametrize("argv", [[], ["--resume"], ["--overwrite"]])
def test_a_checkpoint_that_is_a_folder_is_refused_before_anything_runs(tmp_path, capsys, argv):
    (tmp_path / "checkpoint.npz").mkdir()
    assert "checkpoint.npz, named like files a run writes but not files" in refused(
        capsys, tmp_path, *argv)
    assert (tmp_path / "checkpoint.npz").is_dir()


@pytest.mark.skipif(not os.environ.get("NPNET_DATA"), reason="set NPNET_DATA to the MNIST files")
def test_a_full_disk_ends_the_run_with_one_line_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch):
    import errno

    import npnet.train

    module = load_experiment("dae_mnist.py")
    module.main(["--quick", "--no-progress", "--blas-threads", "1", "--out", str(tmp_path)])
    checkpoint = (tmp_path / "checkpoint.npz").read_bytes()

    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(npnet.train, "save_arrays", disk_full)
    with pytest.raises(SystemExit, match="cannot write .*checkpoint.npz: No space left"):
        module.main(["--quick", "--no-progress", "--blas-threads", "1", "--resume",
                     "--epochs", "2", "--out", str(tmp_path)])
    assert (tmp_path / "checkpoint.npz").read_bytes() == checkpoint


@pytest.mark.parametrize("name,argv,folder", [
    ("dae_mnist.py", [], "results/dae"),
    ("dae_mnist.py", ["--quick"], "results/dae-quick"),
    ("dae_mnist.py", ["--arch", "conv"], "results/dae-conv"),
    ("dae_mnist.py", ["--arch", "conv", "--quick"], "results/dae-conv-quick"),
    ("vae_interp.py", ["--quick"], "results/vae-quick"),
    ("vae_interp.py", ["--arch", "conv"], "results/vae-conv"),
    ("vae_likelihood.py", ["--quick"], "results/likelihood-quick"),
    ("dae_mnist.py", ["--quick", "--out", "mine"], "mine"),
])
def test_a_smoke_run_and_a_conv_run_have_their_own_default_out(
        tmp_path, monkeypatch, name, argv, folder):
    monkeypatch.chdir(tmp_path)
    args, parser = load_experiment(name).parse_args(argv)
    run = Run(args, parser)
    assert run.args.out == Path(folder) and (tmp_path / folder).is_dir()
    assert "default_out" not in run.settings()


def test_the_readme_order_of_runs_is_never_refused(tmp_path, monkeypatch):
    """A new user runs --quick, then the full run, then --arch conv, each with the plain
    command: none of them finds the folder of another."""
    monkeypatch.chdir(tmp_path)
    module = load_experiment("dae_mnist.py")
    for argv in (["--quick"], [], ["--arch", "conv"]):
        run = Run(*module.parse_args(argv))
        for name in ("checkpoint.npz", "model.npz", "metrics.json"):  # as a finished run
            (run.args.out / name).write_text("a finished run")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "dae", "dae-conv", "dae-quick"]


@pytest.mark.parametrize("argv", [[], ["--resume"]])
def test_a_refusal_is_a_line_or_two_without_the_usage_block(tmp_path, capsys, argv):
    (tmp_path / "model.npz").write_text("a finished run's model")
    message = refused(capsys, tmp_path, *argv)
    assert "usage:" not in message
    assert 1 <= len(message.strip().splitlines()) <= 2
    assert message.startswith("dae_mnist.py: error: --out ")


def test_a_bad_option_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        load_experiment("vae_interp.py").parse_args(["--arch", "cnn"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["vae_interp.py: error: argument --arch: invalid "
                                        "choice: 'cnn' (choose from 'dense', 'conv')"]


def test_missing_data_leads_with_the_command_line_fix_and_leaves_nothing_behind(
        tmp_path, monkeypatch, capsys):
    """No MNIST anywhere and no network: the error says first what to add to the command,
    never a Python call; neither --out nor the cache folder is left behind, empty."""
    import urllib.request

    import npnet.data

    home = tmp_path / "home"  # a user's home without a cache folder yet
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("NPNET_DATA", raising=False)
    monkeypatch.delenv("NPNET_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setattr(npnet.data, "BESIDE_PROJECT_DIR", tmp_path / "data_mnist")

    def offline(url, *args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit) as exit_:
        load_experiment("dae_mnist.py").main(["--quick", "--no-progress"])
    message = str(exit_.value.code)
    first = message.splitlines()[0]
    assert first.startswith("error: the MNIST files were not found")
    assert "--data-dir FOLDER" in first and "NPNET_DATA=FOLDER" in first
    assert str(home / ".cache" / "npnet" / "mnist") in first  # where a download would go
    assert "load_mnist(" not in message and "train-images-idx3-ubyte" in message
    assert "no network in this test" in message
    assert list(work.iterdir()) == []  # no results/dae-quick/
    assert list(home.iterdir()) == []  # no .cache/npnet/


def test_a_wrong_data_dir_is_named_first(tmp_path, monkeypatch):
    import urllib.request

    def offline(url, *args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    nowhere = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as exit_:
        load_experiment("dae_mnist.py").main(
            ["--quick", "--no-progress", "--data-dir", str(nowhere), "--out",
             str(tmp_path / "out")])
    first = str(exit_.value.code).splitlines()[0]
    assert first.startswith(f"error: --data-dir {nowhere} does not hold the MNIST files")
    assert not nowhere.exists() and not (tmp_path / "out").exists()
