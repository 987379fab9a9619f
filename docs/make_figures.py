"""Regenerate the figures and numbers that docs/ shows: diagrams, and real runs of the experiments.

    python docs/make_figures.py                      # train all six (~25 min + ~1.5 h)
    python docs/make_figures.py --dae-run results/dae --vae-run results/vae \
        --conv-dae-run results/conv_dae --conv-vae-run results/conv_vae \
        --likelihood-vae-run results/likelihood/vae_short \
        --likelihood-iwae-run results/likelihood/iwae5_short         # reuse runs
    python docs/make_figures.py --diagrams-only                        # no training (seconds)

First the diagrams of the computation (``docs/figures/diagram_*.png``) are drawn by
``docs/diagrams.py``, which needs no run (chapter 10's pictures train a small VAE on the
MNIST files); ``--diagrams-only`` stops there.

Without ``--dae-run`` / ``--vae-run`` the experiment scripts run with their default settings
(``--out <results>/dae`` and ``--out <results>/vae``, plus ``--seed`` if given), and without
``--conv-dae-run`` / ``--conv-vae-run`` again with ``--arch conv`` (``<results>/conv_dae``,
``<results>/conv_vae``; chapter 9), and without ``--likelihood-vae-run`` /
``--likelihood-iwae-run`` chapter 10's two runs of ``experiments/vae_likelihood.py``, the VAE
and the IWAE with k = 5 (``<results>/likelihood_vae``, ``<results>/likelihood_iwae5``; the
longest: about 20 and 45 minutes of training and 5 of evaluation each, on one core). Then
the figures the docs show are copied into ``docs/figures/``, downscaled where they are large,
the two likelihood runs' training curves are drawn on one figure
(``likelihood_training_curves.png``), and ``docs/figures/run_summary.json`` records the
numbers the chapters quote (from each run's ``metrics.json``) with the command that produced
them.

Nothing beyond npnet's own dependencies: ``matplotlib.image.imread`` reads a PNG, block
averaging in NumPy shrinks it if it is wider than ``MAX_WIDTH``, and the figures, which are
all gray, are written as 8-bit grayscale PNGs by ``write_png`` of ``docs/diagrams.py`` (the
standard library's ``zlib``), about a third of the size of matplotlib's RGBA files. A figure
with colour in it is written by ``matplotlib.image.imsave`` instead.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from diagrams import make_diagrams, png_size, write_png  # docs/ is sys.path[0] in a script
from matplotlib import image as mpimg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {
    "dae": ("residuals_shared_scale.png", "residuals_own_scale.png", "examples.png"),
    "vae": ("interpolation_same_digit.png", "interpolation_different_digits.png"),
    "likelihood": (),  # their training curves are drawn together: likelihood_curves_figure
}
SCRIPTS = {"dae": "experiments/dae_mnist.py", "vae": "experiments/vae_interp.py",
           "likelihood": "experiments/vae_likelihood.py"}
# The runs the docs show: each experiment with its default (dense) model, and with --arch conv
# (chapter 9). A run's figures are copied as <run>_<figure name>.
RUNS = {"dae": ("dae", []), "vae": ("vae", []),
        "conv_dae": ("dae", ["--arch", "conv"]), "conv_vae": ("vae", ["--arch", "conv"]),
        "likelihood_vae": ("likelihood", []),
        "likelihood_iwae5": ("likelihood", ["--objective", "iwae", "--k", "5"])}
MAX_WIDTH = 900  # pixels; wider figures are shrunk by an integer factor


def shrink(pixels: np.ndarray, max_width: int = MAX_WIDTH) -> np.ndarray:
    """Average ``f x f`` blocks of an (H, W, C) image, f the smallest factor giving W <= max."""
    factor = -(-pixels.shape[1] // max_width)  # ceiling division
    if factor <= 1:
        return pixels
    h = pixels.shape[0] // factor * factor
    w = pixels.shape[1] // factor * factor
    blocks = pixels[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3))


def copy_figure(source: Path, target: Path) -> tuple[int, int]:
    """Copy a PNG, shrunk if wider than MAX_WIDTH, gray if it is; returns (width, height)."""
    pixels = mpimg.imread(source)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] == 4:
        if not np.all(pixels[..., 3] == 1):
            raise ValueError(f"{source} is not opaque; docs figures are drawn on white")
        pixels = pixels[..., :3]
    small = np.clip(shrink(pixels), 0.0, 1.0)
    if np.all(small == small[..., :1]):
        write_png(target, small[..., 0])
    else:
        mpimg.imsave(target, small)
    return small.shape[1], small.shape[0]


def run_experiment(run: str, out: Path, args) -> list[str]:
    """Run one experiment script with its default settings (and the run's own options, such as
    ``--arch conv``); returns the command."""
    kind, options = RUNS[run]
    # --overwrite: regenerating replaces the run that an earlier regeneration left there.
    command = [sys.executable, SCRIPTS[kind], *options, "--out", str(out), "--no-progress",
               "--overwrite", "--blas-threads", args.blas_threads]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    if args.quick:
        command.append("--quick")
    print("+", shlex.join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"error: {SCRIPTS[kind]} failed with exit status {result.returncode}")
    return ["python", *command[1:]]


def command_of(kind: str, settings: dict) -> str:
    """The command line that reproduces a finished run, from its recorded settings."""
    command = ["python", SCRIPTS[kind], "--out", str(settings["out"])]
    if settings.get("arch", "dense") != "dense":
        command += ["--arch", settings["arch"]]
    if settings.get("objective", "elbo") != "elbo":
        command += ["--objective", settings["objective"], "--k", str(settings["k"])]
    if settings.get("data_dir"):
        command += ["--data-dir", str(settings["data_dir"])]
    if settings.get("seed", 0) != 0:
        command += ["--seed", str(settings["seed"])]
    if settings.get("quick"):
        command.append("--quick")
    if isinstance(settings.get("blas_threads"), int):  # the count changes the last bits
        command += ["--blas-threads", str(settings["blas_threads"])]
    return shlex.join(command) + "  (other options: see settings)"


def summarise(kind: str, metrics: dict) -> dict:
    """The numbers the docs quote from one run's metrics.json."""
    if kind == "dae":
        pca = metrics["residual_pca"]
        return {
            "test_squared_error_per_image": metrics["test_squared_error_per_image"],
            "test_squared_error_per_pixel": metrics["test_squared_error_per_pixel"],
            "residual_pca_explained_variance_ratio": pca["explained_variance_ratio"],
            "residual_pca_explained_variance": pca["explained_variance"],
            "mean_residual_abs_max": pca["mean_residual_abs_max"],
            "final_train_loss": metrics["history"]["train_loss"][-1],
            "epochs": len(metrics["history"]["train_loss"]),
            "wall_seconds": metrics["wall_seconds"],
        }
    if kind == "likelihood":
        names = ("test_negative_log_likelihood", "standard_error", "eval_k", "eval_images",
                 "curve_images_negative_log_likelihood", "curve_images", "active_units",
                 "paper_negative_log_likelihood", "training_seconds", "eval_seconds",
                 "wall_seconds")
        return {
            **{name: metrics[name] for name in names},
            "final_train_loss": metrics["history"]["train_loss"][-1],
            "final_curve_images_loss": metrics["history"]["test_loss"][-1],
            "epochs": len(metrics["history"]["train_loss"]),
        }
    return {
        "test_nats_per_image": metrics["test_nats_per_image"],
        "pairs": metrics["pairs"],
        "final_train_loss": metrics["history"]["train_loss"][-1],
        "epochs": len(metrics["history"]["train_loss"]),
        "wall_seconds": metrics["wall_seconds"],
    }


def likelihood_curves_figure(runs: dict[str, dict], target: Path) -> None:
    """Chapter 10's runs on one figure: each run's negative training bound per epoch, on the
    training batches (solid) and on the test images of its training curve (dashed).

    ``runs`` maps a label to the run's ``metrics.json``; the y-axis starts below the lowest
    value and ends at the highest from epoch 3 on, so that the schedule's stages show.
    """
    fig = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    shown = []
    for (label, metrics), colour in zip(runs.items(), ("tab:blue", "tab:orange"), strict=True):
        history, images = metrics["history"], metrics["curve_images"]
        for key, style, where in (("train_loss", "-", "training batches"),
                                  ("test_loss", "--", f"first {images:,} test images")):
            values = np.asarray(history[key], dtype=np.float64)
            ax.plot(np.arange(1, values.size + 1), values, style, color=colour,
                    label=f"{label}, {where}")
            shown.append(values[min(2, values.size - 1):])  # from epoch 3, or the last
    shown = np.concatenate(shown)
    ax.set_ylim(np.floor(shown.min()) - 1, np.ceil(shown.max()))
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative bound, nats per image")
    ax.set_title("Burda et al.'s dense 784-200-200-50 model on binarised MNIST:\n"
                 "the negative ELBO (VAE) and -L_5 (IWAE) during training")
    ax.grid(alpha=0.3)
    ax.legend()
    with tempfile.TemporaryDirectory() as folder:
        drawn = Path(folder) / target.name
        fig.savefig(drawn)
        copy_figure(drawn, target)


def report(target: Path) -> None:
    """Print a written figure's path, size in pixels and in KiB."""
    width, height = png_size(target)
    print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
          f"{width} x {height} px, {target.stat().st_size / 1024:.0f} KiB")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="MNIST folder, passed to the scripts (default: their search "
                        "order: $NPNET_DATA, data_mnist/ beside the project, the user cache)")
    parser.add_argument("--results", type=Path, default=ROOT / "results",
                        help="where new runs go, as <results>/dae and <results>/vae "
                        "(default: %(default)s)")
    parser.add_argument("--dae-run", type=Path, default=None,
                        help="reuse this finished dae_mnist.py output folder instead of training")
    parser.add_argument("--vae-run", type=Path, default=None,
                        help="reuse this finished vae_interp.py output folder instead of training")
    parser.add_argument("--conv-dae-run", type=Path, default=None,
                        help="reuse this finished dae_mnist.py --arch conv output folder")
    parser.add_argument("--conv-vae-run", type=Path, default=None,
                        help="reuse this finished vae_interp.py --arch conv output folder")
    parser.add_argument("--likelihood-vae-run", type=Path, default=None,
                        help="reuse this finished vae_likelihood.py output folder (the VAE)")
    parser.add_argument("--likelihood-iwae-run", type=Path, default=None,
                        help="reuse this finished vae_likelihood.py --objective iwae --k 5 "
                        "output folder")
    parser.add_argument("--blas-threads", default="1",
                        help="passed to the scripts: 1 (the default) repeats the committed "
                        "runs bit for bit on the same kind of processor (README, "
                        "Reproducibility); auto is faster on several cores")
    parser.add_argument("--seed", type=int, default=None, help="passed to the scripts")
    parser.add_argument("--quick", action="store_true",
                        help="pass --quick to the scripts (a smoke test of this script; the "
                        "figures are then not the ones the docs describe)")
    parser.add_argument("--figures-dir", type=Path, default=ROOT / "docs" / "figures",
                        help="where the figures go (default: %(default)s)")
    parser.add_argument("--diagrams-only", action="store_true",
                        help="only draw the diagrams of the computation (docs/diagrams.py) "
                        "into --figures-dir, then stop: no training, no runs read")
    args = parser.parse_args(argv)

    args.figures_dir.mkdir(parents=True, exist_ok=True)
    for target in make_diagrams(args.figures_dir):
        report(target)
    if args.diagrams_only:
        return
    summary = {}
    reuse = {"dae": args.dae_run, "vae": args.vae_run, "conv_dae": args.conv_dae_run,
             "conv_vae": args.conv_vae_run, "likelihood_vae": args.likelihood_vae_run,
             "likelihood_iwae5": args.likelihood_iwae_run}
    likelihood_runs = {}
    for run, reused in reuse.items():
        kind = RUNS[run][0]
        if reused is None:
            run_dir = args.results / run
            command = shlex.join(run_experiment(run, run_dir, args))
        else:
            run_dir = reused
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.is_file():
            sys.exit(f"error: {metrics_path} not found; is {run_dir} a finished "
                     f"{SCRIPTS[kind]} run?")
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        if reused is not None:
            command = command_of(kind, metrics["settings"])
        summary[run] = {
            "command": command,
            "settings": metrics["settings"],
            "environment": metrics["environment"],
            **summarise(kind, metrics),
        }
        for name in FIGURES[kind]:
            target = args.figures_dir / f"{run}_{name}"
            copy_figure(run_dir / name, target)
            report(target)
        if kind == "likelihood":
            settings = metrics["settings"]
            label = "VAE" if settings["objective"] == "elbo" else f"IWAE k = {settings['k']}"
            likelihood_runs[label] = metrics
    target = args.figures_dir / "likelihood_training_curves.png"
    likelihood_curves_figure(likelihood_runs, target)
    report(target)
    summary_path = args.figures_dir / "run_summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {summary_path}")


if __name__ == "__main__":
    main()
