"""docs/make_figures.py: what it records of a run of chapter 10, and the figure of the curves.

The full script trains for hours; here two ``--quick`` runs of ``experiments/vae_likelihood.py``
(the VAE and an IWAE) go through the same functions ``make_figures.main`` calls on each run:
``summarise`` (the numbers chapter 10's table and prose quote, which
``tests/test_docs_numbers.py`` compares with the chapter), ``command_of`` (the command that
repeats the run) and ``likelihood_curves_figure``.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colors
from matplotlib import image as mpimg
from script_helpers import have_mnist, load_experiment, load_script

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def make_figures():
    sys.path.insert(0, str(DOCS))  # make_figures imports docs/diagrams.py as ``diagrams``
    try:
        yield load_script(DOCS / "make_figures.py", "docs_make_figures")
    finally:
        sys.path.remove(str(DOCS))


@pytest.mark.skipif(not have_mnist(), reason="needs the MNIST files (NPNET_DATA)")
def test_likelihood_runs_are_summarised_repeatable_and_drawn(make_figures, tmp_path):
    script = ROOT / "experiments" / "vae_likelihood.py"
    experiment = load_experiment("vae_likelihood.py")
    runs = {}
    for label, options in (("VAE", []), ("IWAE k = 2", ["--objective", "iwae", "--k", "2"])):
        out = tmp_path / label.replace(" ", "_")
        result = subprocess.run(
            [sys.executable, str(script), "--quick", "--no-progress", "--out", str(out),
             "--epochs", "3", "--eval-k", "10", "--eval-images", "50", *options],
            capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        metrics = json.loads((out / "metrics.json").read_text())

        summary = make_figures.summarise("likelihood", metrics)
        for name in ("test_negative_log_likelihood", "standard_error", "active_units",
                     "curve_images_negative_log_likelihood", "eval_k", "eval_images"):
            assert summary[name] == metrics[name], name
        assert summary["epochs"] == 3
        assert summary["final_curve_images_loss"] == metrics["history"]["test_loss"][-1]
        assert summary["final_train_loss"] == metrics["history"]["train_loss"][-1]

        # The recorded command, read by the script's own parser, is the run's objective,
        # k, output folder and --quick.
        command = shlex.split(make_figures.command_of("likelihood", metrics["settings"])
                              .split("  (other options")[0])
        assert command[:2] == ["python", "experiments/vae_likelihood.py"]
        args, _ = experiment.parse_args(command[2:])
        settings = metrics["settings"]
        assert (args.objective, args.k, str(args.out), args.quick) == (
            settings["objective"], settings["k"], settings["out"], True)
        runs[label] = metrics

    target = tmp_path / "curves.png"
    make_figures.likelihood_curves_figure(runs, target)
    pixels = mpimg.imread(target)[..., :3]
    assert pixels.shape == (400, 640, 3)
    # Both runs are drawn: each one's colour is on the figure.
    for colour in ("tab:blue", "tab:orange"):
        rgb = np.array(colors.to_rgb(colour))
        assert np.any(np.all(np.abs(pixels - rgb) < 0.02, axis=-1)), colour
