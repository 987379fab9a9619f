"""Smoke runs of both experiment scripts in --quick mode, as a user runs them (subprocess).

They read the real MNIST files through $NPNET_DATA (CI sets it) and are skipped without it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from script_helpers import load_experiment

from npnet.cli import Run
from npnet.io import load_arrays, save_arrays
from npnet.train import checkpoint_meta

ROOT = Path(__file__).resolve().parents[1]
needs_mnist = pytest.mark.skipif(
    not os.environ.get("NPNET_DATA"), reason="set NPNET_DATA to the folder with the MNIST files"
)


def run_script(name, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / name), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )


def quick_run(name, out, *args):
    """A ``--quick --no-progress`` run into ``out`` that must succeed; its metrics.json."""
    result = run_script(name, "--quick", "--no-progress", "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_interp.py", "vae_likelihood.py"])
def test_help_explains_the_options(name):
    result = run_script(name, "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--data-dir",
                   "--out", "--quick", "--resume"):
        assert option in result.stdout
    assert "(default: None)" not in result.stdout  # options without a default say why
    assert "Run time" in result.stdout and "about" in result.stdout  # what to expect
    if name == "vae_likelihood.py":  # the dense model only: --arch is not offered
        assert "--arch" not in result.stdout and "conv" not in result.stdout


@pytest.mark.parametrize(
    "name,args,message",
    [
        ("dae_mnist.py", ["--seed", "-1"], "--seed: must be an integer >= 0"),
        ("dae_mnist.py", ["--noise-level", "-1"], "a standard deviation >= 0"),
        ("dae_mnist.py", ["--noise-level", "nan"], "a standard deviation >= 0"),
        ("dae_mnist.py", ["--noise", "masking", "--noise-level", "1.5"], "a probability in"),
        ("dae_mnist.py", ["--optimizer", "sgd", "--momentum", "1.5"], "--momentum: must be in"),
        ("dae_mnist.py", ["--lr", "inf"], "--lr: must be a positive number"),
        ("vae_interp.py", ["--beta", "nan"], "--beta must be a number >= 0"),
        ("vae_interp.py", ["--seed", "-3"], "--seed: must be an integer >= 0"),
        ("vae_interp.py", ["--blas-threads", "0"], "must be auto, adapt or a positive integer"),
        ("dae_mnist.py", ["--threads", "2", "--blas-threads", "1"], "drop --blas-threads 1"),
        ("dae_mnist.py", ["--channels", "8", "16"], "add --arch conv, or drop --channels"),
        ("dae_mnist.py", ["--arch", "conv", "--channels", "8", "--hidden"], "two --channels"),
        ("vae_interp.py", ["--arch", "cnn"], "argument --arch: invalid choice: 'cnn'"),
        ("vae_interp.py", ["--arch", "conv", "--channels", "0"], "--channels: must be"),
        ("vae_interp.py", ["--binarize", "dynamc"], "--binarize: invalid choice: 'dynamc'"),
        ("vae_interp.py", ["--log-likelihood-k", "10"], "add --binarize dynamic"),
        ("vae_interp.py", ["--log-likelihood-k", "-1"], "--log-likelihood-k: must be"),
        ("vae_likelihood.py", ["--binarize", "none"], "only defined for binary images"),
        ("vae_likelihood.py", ["--k", "5"], "--k 5 is for --objective iwae"),
        ("vae_likelihood.py", ["--objective", "iwae", "--k", "0"], "--k: must be"),
        ("vae_likelihood.py", ["--eval-k", "0"], "--eval-k: must be"),
        ("vae_likelihood.py", ["--lr-schedule", "steps"], "invalid choice: 'steps'"),
        ("vae_likelihood.py", ["--arch", "conv"], "leave --arch out"),
    ],
)
def test_bad_option_values_are_refused_before_anything_runs(tmp_path, name, args, message):
    out = tmp_path / "out"
    result = run_script(name, "--quick", "--out", str(out), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "usage:" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert not out.exists()


@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_interp.py"])
def test_an_out_that_is_a_file_is_refused_before_anything_runs(tmp_path, name):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("mine")
    result = run_script(name, "--quick", "--out", str(not_a_folder))
    assert result.returncode == 2
    assert "is a file" in result.stderr and "Traceback" not in result.stderr
    assert not_a_folder.read_text() == "mine"


@pytest.mark.parametrize(
    "name,argv,epochs",
    [
        ("dae_mnist.py", [], 20),
        ("dae_mnist.py", ["--quick"], 1),
        ("dae_mnist.py", ["--quick", "--epochs", "3"], 3),
        ("dae_mnist.py", ["--quick", "--epoch", "3"], 3),  # argparse's abbreviation
        ("vae_interp.py", ["--quick", "--epochs=2"], 2),
        ("vae_interp.py", [], 30),
    ],
)
def test_quick_means_one_epoch_unless_epochs_is_given(tmp_path, name, argv, epochs):
    """Called as a function (main(argv)), where sys.argv says nothing about the options."""
    args, parser = load_experiment(name).parse_args([*argv, "--out", str(tmp_path)])
    run = Run(args, parser)
    assert run.args.epochs == epochs
    assert "full_run_epochs" not in run.settings()


def test_missing_data_is_a_clear_error(tmp_path):
    result = run_script("dae_mnist.py", "--quick", "--data-dir", str(tmp_path / "nowhere"),
                        "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "train-images-idx3-ubyte" in result.stderr and "Traceback" not in result.stderr


@needs_mnist
def test_dae_quick_run_writes_figures_and_metrics(tmp_path):
    out = tmp_path / "dae"
    metrics = quick_run("dae_mnist.py", out)
    for name in ("residuals_shared_scale.png", "residuals_own_scale.png", "examples.png",
                 "training_curves.png", "model.npz", "checkpoint.npz"):
        assert (out / name).stat().st_size > 0, name
    with PIL.Image.open(out / "examples.png") as figure:  # a figure names the run that drew it
        assert figure.text["npnet run"] == metrics["run_id"]
    ratios = metrics["residual_pca"]["explained_variance_ratio"]
    assert len(ratios) == 5 and ratios == sorted(ratios, reverse=True) and sum(ratios) < 1
    errors = metrics["test_squared_error_per_image"]
    assert set(errors) == {"dae_clean_input", "dae_corrupted_input", "corrupted_input_itself",
                           "pca_16_components"}
    assert len(metrics["history"]["train_loss"]) == 1
    assert set(metrics["files"]) == {"residuals_shared_scale.png", "residuals_own_scale.png",
                                     "examples.png", "training_curves.png", "model.npz",
                                     "checkpoint.npz"}
    assert checkpoint_meta(out / "checkpoint.npz")["run_id"] == metrics["run_id"]

    # Resuming with more epochs continues from the checkpoint instead of starting over, and
    # says that the cosine schedule then differs from a run that long from the start.
    again = run_script("dae_mnist.py", "--quick", "--no-progress", "--out", str(out),
                       "--resume", "--epochs", "2")
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stdout
    assert "trained as a 1-epoch run" in again.stdout
    resumed = json.loads((out / "metrics.json").read_text())
    # ... with the BLAS thread count the checkpoint was trained with.
    assert resumed["settings"]["blas_threads"] == metrics["settings"]["blas_threads"]
    assert "as the checkpoint was trained" in again.stdout
    assert resumed["history"]["train_loss"][0] == metrics["history"]["train_loss"][0]
    assert len(resumed["history"]["train_loss"]) == 2
    assert resumed["run_id"] == metrics["run_id"]  # the same run, continued

    # Fewer epochs than the checkpoint has done would train nothing: refused.
    fewer = run_script("dae_mnist.py", "--quick", "--no-progress", "--out", str(out),
                       "--resume", "--epochs", "1")
    assert fewer.returncode == 1
    assert "already trained 2 epochs" in fewer.stderr and "Traceback" not in fewer.stderr
    assert json.loads((out / "metrics.json").read_text()) == resumed


@needs_mnist
@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_interp.py", "vae_likelihood.py"])
def test_a_quick_run_says_it_is_a_smoke_test_in_its_summary_and_every_figure(tmp_path, name):
    """A --quick model is meant to be bad (a DAE worse than the noisy input, gray VAE blobs):
    its summary says so before the numbers, and so does every figure, at its top."""
    out = tmp_path / "quick"
    extra = ["--eval-k", "5", "--eval-images", "20"] if name == "vae_likelihood.py" else []
    result = run_script(name, "--quick", "--no-progress", "--blas-threads", "1", "--out",
                        str(out), *extra)
    assert result.returncode == 0, result.stderr
    summary = result.stdout[result.stdout.rindex("\n\n"):]
    assert summary.lstrip().startswith("SMOKE TEST (--quick): 1 epoch on 2,000 training images")
    assert "not what the model learns" in summary and "drop --quick" in summary
    figures = sorted(out.glob("*.png"))
    assert figures
    for figure in figures:
        with PIL.Image.open(figure) as image:
            assert image.text["npnet note"].startswith("SMOKE TEST (--quick): 1 epoch"), figure
    if name == "vae_likelihood.py":
        assert ", 1 epoch, " in result.stdout  # not "1 epochs"


@needs_mnist
def test_a_full_run_has_no_smoke_test_note(tmp_path, monkeypatch):
    """The same run without --quick (on --quick's slice of the data, to be quick) draws its
    figures without the note."""
    module = load_experiment("vae_interp.py")
    real = module.load_data

    def sliced(args):
        args.quick = True
        try:
            return real(args)
        finally:
            args.quick = False

    monkeypatch.setattr(module, "load_data", sliced)
    module.main(["--epochs", "1", "--no-progress", "--blas-threads", "1", "--out",
                 str(tmp_path)])
    for figure in tmp_path.glob("*.png"):
        with PIL.Image.open(figure) as image:
            assert "npnet note" not in image.text, figure


@needs_mnist
def test_dae_trains_in_shards_with_threads_and_refuses_to_resume_with_other_threads(tmp_path):
    out = tmp_path / "dae"
    metrics = quick_run("dae_mnist.py", out, "--threads", "2")
    assert metrics["settings"]["threads"] == 2
    one_thread = quick_run("dae_mnist.py", tmp_path / "1")["history"]
    # Other noise draws, the same training: the epoch's loss agrees to a few percent.
    assert metrics["history"]["train_loss"][0] == pytest.approx(
        one_thread["train_loss"][0], rel=0.05
    )

    other = run_script("dae_mnist.py", "--quick", "--no-progress", "--out", str(out),
                       "--resume", "--epochs", "2", "--threads", "1")
    assert other.returncode != 0 and "threads" in other.stderr
    assert "Traceback" not in other.stderr

    too_many = run_script("dae_mnist.py", "--quick", "--no-progress", "--out", str(out / "x"),
                          "--threads", "64", "--batch-size", "32")
    assert too_many.returncode != 0 and "--threads 64 is more than --batch-size 32" in (
        too_many.stderr
    )


@needs_mnist
def test_vae_quick_run_writes_both_interpolation_figures_and_pairs(tmp_path):
    out = tmp_path / "vae"
    metrics = quick_run("vae_interp.py", out, "--latent", "2")
    for name in ("interpolation_same_digit.png", "interpolation_different_digits.png",
                 "prior_samples.png", "reconstructions.png", "training_curves.png",
                 "latent_scatter.png", "latent_manifold.png"):
        assert (out / name).stat().st_size > 0, name
    nats = metrics["test_nats_per_image"]
    assert nats["negative_elbo"] == pytest.approx(nats["reconstruction"] + nats["kl"])
    same, different = metrics["pairs"]["same_digit"], metrics["pairs"]["different_digits"]
    assert len(same["test_indices"]) == len(different["test_indices"]) == 10
    assert all(a == b for a, b in same["labels"])
    assert all(a != b for a, b in different["labels"])
    assert all(a != b for a, b in same["test_indices"])


def assert_same_results(first: dict, second: dict, first_out: Path, second_out: Path):
    """Two runs' metrics (but what varies from run to run) and model.npz, bit for bit."""
    for metrics in (first, second):
        for varying in ("wall_seconds", "settings", "environment", "run_id"):
            del metrics[varying]
        del metrics["history"]["epoch_seconds"]
    assert first == second
    saved = [np.load(out / "model.npz") for out in (first_out, second_out)]
    for key in saved[1].files:
        np.testing.assert_array_equal(saved[0][key], saved[1][key])


@needs_mnist
@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_interp.py"])
def test_no_fast_gives_the_same_numbers_and_models(tmp_path, name):
    """The scripts train through npnet.fast by default; --no-fast trains on the core alone.
    The histories, the metrics and the saved parameters are the same, bit for bit."""
    fast = quick_run(name, tmp_path / "fast", "--epochs", "2", "--blas-threads", "1")
    core = quick_run(name, tmp_path / "core", "--epochs", "2", "--no-fast",
                     "--blas-threads", "1")
    assert fast["environment"]["fast_path"] and not core["environment"]["fast_path"]
    assert_same_results(fast, core, tmp_path / "fast", tmp_path / "core")


@needs_mnist
def test_blas_threads_auto_records_the_count_that_repeats_the_run(tmp_path):
    """--blas-threads auto times the counts, says which it keeps, and records it; a run
    given that count computes the same numbers and model, bit for bit."""
    result = run_script("dae_mnist.py", "--quick", "--no-progress", "--out",
                        str(tmp_path / "auto"))
    assert result.returncode == 0, result.stderr
    auto = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    count = auto["settings"]["blas_threads"]
    assert isinstance(count, int) and count >= 1
    assert f"BLAS threads: {count} (the fastest now: " in result.stdout
    # The summary says which BLAS, kernels and count computed the numbers, and what repeats them.
    blas = auto["environment"]["blas"][0]
    summary = result.stdout[result.stdout.index("\nBLAS: "):]
    assert f"{blas['library']} {blas['version']} ({blas['kernels']} kernels)" in summary
    assert f"The same command with --blas-threads {count} repeats these numbers" in summary
    again = quick_run("dae_mnist.py", tmp_path / "again", "--blas-threads", str(count))
    assert_same_results(auto, again, tmp_path / "auto", tmp_path / "again")


@needs_mnist
@pytest.mark.parametrize("name,args,message", [
    ("dae_mnist.py", ["--lr", "10"], "the model has collapsed"),
    ("dae_mnist.py", ["--optimizer", "sgd", "--lr", "1000"], "the model has collapsed"),
    ("vae_interp.py", ["--lr", "10"], "train_loss is .* it has exploded"),
])
def test_a_run_that_diverges_fails_and_writes_no_results(tmp_path, name, args, message):
    out = tmp_path / "out"
    result = run_script(name, "--quick", "--no-progress", "--epochs", "3", "--out", str(out),
                        "--blas-threads", "1", *args)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training went wrong in epoch 1: ")
    assert re.search(message, last) and "--lr" in last and "Traceback" not in result.stderr
    assert not out.exists()  # no model, checkpoint, figures or metrics: not even the folder


@needs_mnist
def test_a_used_out_is_kept_unless_told_and_a_damaged_checkpoint_overwrites_nothing(tmp_path):
    out = tmp_path / "vae"
    first = quick_run("vae_interp.py", out, "--latent", "2", "--blas-threads", "1")
    finished = {path.name: path.read_bytes() for path in out.iterdir()}

    # Forgetting --resume: refused before anything runs, and the run is intact.
    again = run_script("vae_interp.py", "--quick", "--out", str(out), "--epochs", "2")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "already holds a run" in again.stderr and "--resume" in again.stderr
    assert "--overwrite" in again.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir()} == finished

    # A checkpoint with NaN weights: --resume is refused naming it; nothing is overwritten.
    saved = load_arrays(out / "checkpoint.npz")
    saved["params/decoder.2.W"][0, 0] = np.nan
    save_arrays(out / "checkpoint.npz", saved)
    damaged = {path.name: path.read_bytes() for path in out.iterdir()}
    resumed = run_script("vae_interp.py", "--quick", "--no-progress", "--out", str(out),
                         "--latent", "2", "--resume", "--blas-threads", "1")
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr
    assert resumed.stderr.startswith(f"error: {out / 'checkpoint.npz'} cannot be resumed")
    assert "NaN" in resumed.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir()} == damaged

    # --overwrite: a new run, whose files are all its own (no latent figures of the last).
    second = quick_run("vae_interp.py", out, "--overwrite", "--blas-threads", "1")
    assert second["run_id"] != first["run_id"]
    assert sorted(path.name for path in out.iterdir()) == sorted(
        [*second["files"], "metrics.json"])
    assert not (out / "latent_scatter.png").exists()


@needs_mnist
def test_ctrl_c_while_the_figures_are_drawn_ends_with_one_line(tmp_path, capsys, monkeypatch):
    module = load_experiment("dae_mnist.py")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module.plotting, "image_grid_figure", interrupted)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--quick", "--no-progress", "--blas-threads", "1", "--out", str(tmp_path)])
    assert exit_.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("interrupted")
    assert not (tmp_path / "metrics.json").exists()  # an unfinished run says so


@needs_mnist
@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_interp.py"])
def test_arch_conv_runs_resumes_and_is_recorded(tmp_path, name):
    """--arch conv: the same files and metrics as the dense model, the architecture recorded
    and kept on --resume, and a dense --resume of a convolutional checkpoint refused."""
    out = tmp_path / "conv"
    metrics = quick_run(name, out, "--arch", "conv", "--channels", "4", "8",
                        "--blas-threads", "1")
    dense = quick_run(name, tmp_path / "dense", "--blas-threads", "1")
    assert set(metrics["files"]) == set(dense["files"])
    assert metrics["settings"]["arch"] == "conv" and metrics["settings"]["channels"] == [4, 8]
    assert dense["settings"]["channels"] is None
    # The defaults of --arch conv: a Dense layer between the convolutions and the code, and
    # (for the VAE) twice Adam's learning rate.
    conv_defaults = {"dae_mnist.py": ([256], 1e-3), "vae_interp.py": ([512], 2e-3)}[name]
    assert (metrics["settings"]["hidden"], metrics["settings"]["lr"]) == conv_defaults
    assert dense["settings"]["lr"] == 1e-3
    with np.load(out / "model.npz") as params:
        assert params["encoder.1.W"].shape == (3, 3, 1, 4)  # the first Conv2D
    again = run_script(name, "--quick", "--no-progress", "--out", str(out), "--resume",
                       "--epochs", "2", "--arch", "conv", "--channels", "4", "8")
    assert again.returncode == 0, again.stderr
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["history"]["train_loss"][0] == metrics["history"]["train_loss"][0]
    assert len(resumed["history"]["train_loss"]) == 2
    other = run_script(name, "--quick", "--no-progress", "--out", str(out), "--resume",
                       "--epochs", "3")
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "arch: 'conv' -> None" in other.stderr


@needs_mnist
@pytest.mark.parametrize("name,args", [("dae_mnist.py", ["--hidden", "100000000", "100"]),
                                       ("vae_interp.py", ["--latent", "100000000"]),
                                       ("vae_interp.py", ["--arch", "conv", "--channels",
                                                          "100000", "100000"]),
                                       ("vae_likelihood.py", ["--objective", "iwae", "--k",
                                                              "10000000"])])
def test_a_model_too_large_for_memory_is_refused_before_it_is_allocated(tmp_path, name, args):
    result = run_script(name, "--quick", "--no-progress", "--out", str(tmp_path), *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "GiB of memory is free; choose smaller --hidden widths" in result.stderr


@needs_mnist
def test_a_test_set_without_pairs_is_refused_before_training(tmp_path, monkeypatch):
    """The VAE's figures need 10 pairs of test images of one digit and of two digits; a test
    set that cannot give them is found before the training, not after it."""
    vae = load_experiment("vae_interp.py")
    real = vae.load_data
    monkeypatch.setattr(vae, "load_data", lambda args: (*real(args)[:2], *(
        array[:5] for array in real(args)[2:])))
    with pytest.raises(SystemExit, match="cannot give the interpolation figures their pairs"):
        vae.main(["--quick", "--no-progress", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "checkpoint.npz").exists()


@needs_mnist
def test_a_training_set_smaller_than_a_batch_is_refused(tmp_path, monkeypatch):
    """As a modified data set loaded with --no-verify can be."""
    import npnet.cli

    real = npnet.cli.load_mnist
    monkeypatch.setattr(npnet.cli, "load_mnist", lambda split, **kw: tuple(
        array[:50] if split == "train" else array for array in real(split, **kw)))
    with pytest.raises(SystemExit, match="fewer than one batch"):
        load_experiment("dae_mnist.py").main(
            ["--no-progress", "--batch-size", "64", "--out", str(tmp_path)])


@needs_mnist
@pytest.mark.parametrize("name", ["dae_mnist.py", "vae_likelihood.py"])
def test_a_test_set_too_small_for_the_analysis_is_refused_before_training(
        tmp_path, monkeypatch, name):
    """With --no-verify, 1 or 2 test images trained for minutes and then failed in the PCA
    of the residuals (or the count of active units)."""
    import npnet.cli

    real = npnet.cli.load_mnist
    monkeypatch.setattr(npnet.cli, "load_mnist", lambda split, **kw: tuple(
        array[:2] if split == "test" else array for array in real(split, **kw)))
    with pytest.raises(SystemExit, match="the test set has 2 images; the analysis after"):
        load_experiment(name).main(["--quick", "--no-progress", "--no-verify", "--out",
                                    str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@needs_mnist
def test_overwrite_with_a_run_that_diverges_keeps_the_previous_run(tmp_path):
    """--overwrite deleted the earlier run's files at the start: a new run that then diverged
    in its first epoch left nothing. They stay until the new run has a checkpoint."""
    out = tmp_path / "out"
    quick_run("dae_mnist.py", out, "--blas-threads", "1")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    result = run_script("dae_mnist.py", "--quick", "--no-progress", "--out", str(out),
                        "--overwrite", "--lr", "10", "--blas-threads", "1")
    assert result.returncode == 1 and "has collapsed" in result.stderr
    assert "the previous run's files" in result.stderr and "as they were" in result.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@needs_mnist
def test_likelihood_quick_run_reports_log_px_and_active_units_and_resumes_to_reevaluate(
        tmp_path):
    """vae_likelihood.py trains IWAE (k = 2) on dynamically binarised images, then writes the
    test log p(x) (lower than the ELBO's bound: -log p(x) below the negative bound, up to
    noise), the active units and the times; --resume on the finished run trains nothing and
    evaluates again with another --eval-k."""
    out = tmp_path / "iwae"
    metrics = quick_run("vae_likelihood.py", out, "--objective", "iwae", "--k", "2",
                        "--epochs", "2", "--eval-k", "20", "--eval-images", "50")
    assert (out / "training_curves.png").stat().st_size > 0
    assert metrics["eval_k"] == 20 and metrics["eval_images"] == 50
    # The training curve's 500 test images include the 50 evaluated: the same 50, the same mean.
    assert metrics["curve_images"] == 50
    assert metrics["curve_images_negative_log_likelihood"] == metrics[
        "test_negative_log_likelihood"]
    assert 0 < metrics["test_negative_log_likelihood"] < 550  # 784 log 2 = 543 nats at p = 1/2
    assert 0 <= metrics["active_units"] <= 50 and len(metrics["active_unit_variances"]) == 50
    assert metrics["paper_negative_log_likelihood"] is None  # the paper has no k = 2 row
    assert metrics["settings"]["binarize"] == "dynamic"
    assert len(metrics["history"]["test_loss"]) == 2

    again = run_script("vae_likelihood.py", "--quick", "--no-progress", "--out", str(out),
                       "--objective", "iwae", "--k", "2", "--epochs", "2", "--eval-k", "40",
                       "--eval-images", "50", "--resume")
    assert again.returncode == 0, again.stderr
    reevaluated = json.loads((out / "metrics.json").read_text())
    assert reevaluated["history"] == metrics["history"]  # nothing trained
    assert reevaluated["eval_k"] == 40
    assert reevaluated["test_negative_log_likelihood"] != metrics["test_negative_log_likelihood"]


@needs_mnist
def test_likelihood_no_fast_gives_the_same_numbers(tmp_path):
    """The log p(x) on every core (npnet.fast.likelihood) is the core's, bit for bit, as the
    training is, with one BLAS thread."""
    args = ["--epochs", "1", "--eval-k", "30", "--eval-images", "30", "--blas-threads", "1"]
    fast = quick_run("vae_likelihood.py", tmp_path / "fast", *args)
    core = quick_run("vae_likelihood.py", tmp_path / "core", *args, "--no-fast")
    for metrics in (fast, core):
        del metrics["eval_seconds"], metrics["training_seconds"]
    assert_same_results(fast, core, tmp_path / "fast", tmp_path / "core")


@needs_mnist
@pytest.mark.parametrize("name,args", [
    ("vae_interp.py", ["--binarize", "static", "--log-likelihood-k", "10"]),
    ("dae_mnist.py", ["--binarize", "dynamic"]),
])
def test_binarized_runs_train_on_binary_images_and_resume(tmp_path, name, args):
    """--binarize static or dynamic trains (and the VAE reports log p(x) on the fixed binary
    test set); the setting is part of what a checkpoint must agree on to be resumed."""
    out = tmp_path / "run"
    metrics = quick_run(name, out, *args)
    assert metrics["settings"]["binarize"] == args[1]
    if name == "vae_interp.py":
        assert metrics["test_nats_per_image"]["negative_log_likelihood"] > 0
    other = run_script(name, "--quick", "--no-progress", "--out", str(out), "--resume",
                       "--epochs", "2")
    assert other.returncode != 0 and "binarize" in other.stderr
