"""Train a denoising autoencoder on MNIST and analyse the residuals of the test images.

    python experiments/dae_mnist.py               # the full run, into results/dae/
    python experiments/dae_mnist.py --quick       # a smoke test, into results/dae-quick/
    python experiments/dae_mnist.py --arch conv   # the convolutional DAE, into results/dae-conv/
    python experiments/dae_mnist.py --help        # every option, and the run times

Writes to --out (by default the folders above): residuals_shared_scale.png (figure A: mean residual
and PC1-PC5 on one shared signed gray scale), residuals_own_scale.png (figure B: each on its
own scale), examples.png, training_curves.png, metrics.json, model.npz, checkpoint.npz.
"""

from __future__ import annotations

import signal
import sys


def interrupted_while_starting(signum, frame):
    print("\ninterrupted (Ctrl-C) while starting", file=sys.stderr)
    sys.exit(130)


# Ctrl-C while the modules below load ends the script quietly too; exits_cleanly takes over
# once main runs. (The imports below come after this line on purpose.)
signal.signal(signal.SIGINT, interrupted_while_starting)

import numpy as np

from npnet import analysis, plotting
from npnet.autoencoder import CORRUPTIONS, DenoisingAutoencoder
from npnet.cli import (
    ArgumentParser,
    Run,
    add_common_arguments,
    check_model_fits,
    describe_arch,
    exits_cleanly,
    load_data,
    make_optimizer,
    positive_int,
    resolve_arch,
)
from npnet.losses import squared_error_per_image

# Measured: README, "Run times" (the commands and the machine).
RUN_TIMES = ("Run times on a 2-core machine, about: the full run 3 to 6 minutes, --arch conv "
             "9 to 11 minutes, --quick a few seconds; longer while other programs use the cores "
             "(README, \"Run times\").")
DEFAULT_LR = {"adam": 1e-3, "sgd": 3e-3}
N_COMPONENTS = 5
COLLAPSED = 1e-3  # reconstructions whose spread is this small a fraction of the images'
CHECKED_IMAGES = 1000  # test images whose reconstructions are checked after every epoch


def parse_args(argv=None):
    parser = ArgumentParser(prog="dae_mnist.py",
                            description=__doc__.split("\n\n")[0] + " " + RUN_TIMES)
    model = add_common_arguments(
        parser, epochs=20, batch_size=128, optimizer="adam", lr=DEFAULT_LR, out="results/dae",
        conv_epochs=15, conv_hidden=[256], hidden=[512, 128],
    )
    model.add_argument("--code", type=positive_int, default=16,
                       help="width of the code (bottleneck)")
    model.add_argument("--noise", choices=sorted(CORRUPTIONS), default="gaussian",
                       help="corruption of the training inputs")
    model.add_argument("--noise-level", type=float, default=0.3,
                       help="noise std (gaussian) or probability a pixel is hit (others)")
    model.add_argument("--pc-scale", choices=["std", "unit"], default="std",
                       help="draw each principal component scaled by the standard deviation "
                       "of the residuals along it (pixel units, like the mean, so that figure "
                       "A's shared scale compares like with like), or as a unit vector")
    args = parser.parse_args(argv)
    resolve_arch(args, parser)
    gaussian = args.noise == "gaussian"  # a standard deviation; the others, a probability
    if not 0 <= args.noise_level <= (sys.float_info.max if gaussian else 1):  # nan, inf: no
        kind = "a standard deviation >= 0" if gaussian else "a probability in [0, 1]"
        parser.error(f"--noise-level for --noise {args.noise} must be {kind}, "
                     f"got {args.noise_level}")
    if args.arch == "dense" and len(args.hidden) < 2:
        parser.error("--hidden needs at least two widths: with the code layer, that makes the "
                     "three layers per side the assignment asks for")
    if args.arch == "conv" and len(args.channels) + len(args.hidden) < 2:
        parser.error("--arch conv needs at least two --channels (or one and a --hidden width): "
                     "with the code layer, that makes the three layers per side the "
                     "assignment asks for")
    return args, parser


def collapse(model: DenoisingAutoencoder, x: np.ndarray) -> str | None:
    """None, or a sentence if the reconstructions of the images ``x`` (N, D) are all about
    the same image: a DAE trained with too large a learning rate can end with dead units
    that draw one blob for every digit, at a loss that looks merely mediocre."""
    spread = float(model.reconstruct(x).std(axis=0).max())  # over images; the widest pixel
    if spread > COLLAPSED * float(x.std(axis=0).max()):
        return None
    return (f"the model has collapsed: its reconstructions of {len(x)} test images are all "
            f"the same image (the largest standard deviation of a pixel across them is "
            f"{spread:.2g})")


@exits_cleanly
def main(argv=None) -> None:
    args, parser = parse_args(argv)
    run = Run(args, parser)
    x_train, _, x_test, _ = load_data(args)

    check_model_fits(args, x_train.shape[1], args.code, args.code)
    model = DenoisingAutoencoder(
        x_train.shape[1], args.hidden, args.code, noise=args.noise,
        noise_level=args.noise_level, rng=args.seed, arch=args.arch, channels=args.channels,
    )
    optimizer = make_optimizer(args, model.params, DEFAULT_LR)
    name = f"DAE {describe_arch(args, x_train.shape[1], args.code)}"  # in every figure's title
    print(f"{name} "
          f"({args.noise} noise {args.noise_level}), {args.optimizer} lr {args.lr}, "
          f"{len(x_train)} training images")
    history = run.train(model, optimizer, x_train, x_test,
                        check_model=lambda: collapse(model, x_test[:CHECKED_IMAGES]))

    # The assignment's analysis: residuals of the clean test images, their mean and PCs.
    reconstruction = model.reconstruct(x_test)
    residual = analysis.residuals(x_test, reconstruction)
    pca = analysis.residual_pca(residual, N_COMPONENTS)
    components = pca.scaled_components if args.pc_scale == "std" else pca.components
    images = np.vstack([pca.mean[None, :], components])
    titles = plotting.residual_pca_titles(pca.explained_variance_ratio)
    caption = (
        f"Residuals r = x - reconstruction of the {len(x_test):,} clean MNIST test images. "
        "Gray = 0, darker = negative (reconstruction too bright), lighter = positive (too dark). "
        + ("All six images are in pixel units: the mean residual, and each PC scaled by the "
           "standard deviation of the residuals along it."
           if args.pc_scale == "std" else
           "The mean is in pixel units; the PCs are unit vectors (--pc-scale unit).")
    )
    run.figure(
        plotting.signed_images_figure(
            images, titles, shared=True, caption=caption,
            suptitle=f"{name} test residuals: one shared scale"),
        "figure A: shared scale", "residuals_shared_scale.png",
    )
    run.figure(
        plotting.signed_images_figure(
            images, titles, shared=False, caption=caption,
            suptitle=f"{name} test residuals: each image on its own scale"),
        "figure B: own scales", "residuals_own_scale.png",
    )

    # Baselines: the corrupted input itself, and PCA with as many components as the code.
    rng = np.random.default_rng([args.seed, 2])
    noisy_test = model.corrupt(x_test, rng)
    denoised = model.reconstruct(noisy_test)
    pca_k = analysis.fit_pca(x_train, args.code)
    pca_reconstruction = analysis.pca_reconstruct(pca_k, x_test)
    pixels = x_test.shape[1]
    errors = {
        "dae_clean_input": squared_error_per_image(x_test, reconstruction),
        "dae_corrupted_input": squared_error_per_image(x_test, denoised),
        "corrupted_input_itself": squared_error_per_image(x_test, noisy_test),
        f"pca_{args.code}_components": squared_error_per_image(x_test, pca_reconstruction),
    }

    examples = slice(0, 10)
    run.figure(
        plotting.image_grid_figure(
            np.stack([x_test[examples], noisy_test[examples], denoised[examples],
                      reconstruction[examples]]),
            row_labels=["clean", "corrupted", "denoised", "clean -> recon."],
            title=f"{name}, test digits: clean, corrupted, reconstruction of the\n"
                  "corrupted, reconstruction of the clean"),
        "example digits", "examples.png",
    )
    run.figure(
        plotting.training_curves_figure(
            {"train (corrupted input)": history["train_loss"],
             "test (corrupted input)": history["test_loss"],
             "test (clean input)": history["test_mse_clean"]},
            title=f"{name} training", ylabel="squared error per image"),
        "training curves", "training_curves.png",
    )

    run.finish(
        {
            "test_squared_error_per_image": errors,
            "test_squared_error_per_pixel": {k: v / pixels for k, v in errors.items()},
            "residual_pca": {
                "explained_variance_ratio": pca.explained_variance_ratio,
                "explained_variance": pca.explained_variance,
                "mean_residual_abs_max": float(np.abs(pca.mean).max()),
                "sign_rule": "each component's entry of largest absolute value is positive",
            },
        },
        "test squared error per image: "
        + ", ".join(f"{k} {v:.2f}" for k, v in errors.items())
        + "\nresidual PCs explain "
        + ", ".join(f"{100 * r:.1f}%" for r in pca.explained_variance_ratio)
        + " of the residual variance",
    )


if __name__ == "__main__":
    main()
