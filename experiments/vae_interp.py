"""Train a variational autoencoder on MNIST and interpolate between the codes of test digits.

    python experiments/vae_interp.py               # the full run, into results/vae/
    python experiments/vae_interp.py --quick       # a smoke test, into results/vae-quick/
    python experiments/vae_interp.py --arch conv   # the convolutional VAE, into results/vae-conv/
    python experiments/vae_interp.py --help        # every option, and the run times

Writes to --out (by default the folders above): interpolation_same_digit.png and
interpolation_different_digits.png (10 x 9: test image, 7 decoded interpolates, test image),
prior_samples.png, reconstructions.png, training_curves.png, with --latent 2 also
latent_manifold.png and latent_scatter.png; metrics.json (with the pairs' test indices),
model.npz, checkpoint.npz.
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
from npnet.cli import (
    ArgumentParser,
    Run,
    add_common_arguments,
    check_model_fits,
    describe_arch,
    estimate_test_log_likelihood,
    exits_cleanly,
    load_data,
    make_optimizer,
    non_negative_int,
    positive_int,
    resolve_arch,
)
from npnet.vae import VAE

# Measured: README, "Run times" (the commands and the machine).
RUN_TIMES = ("Run times on a 2-core machine, about: the full run 3.5 to 5 minutes, --arch conv "
             "8 to 18 minutes, --quick a few seconds; longer while other programs use the "
             "cores (README, \"Run times\").")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-3}
# The convolutional VAE tolerates twice Adam's step, and needs it to beat the dense model
# within its shorter run (3 epochs: test negative ELBO 106.1 against 108.5 with 1e-3).
CONV_LR = {"adam": 2e-3, "sgd": 1e-3}
N_PAIRS, N_INTERPOLATES = 10, 7


def parse_args(argv=None):
    parser = ArgumentParser(prog="vae_interp.py",
                            description=__doc__.split("\n\n")[0] + " " + RUN_TIMES)
    model = add_common_arguments(
        parser, epochs=30, batch_size=128, optimizer="adam", lr=DEFAULT_LR, out="results/vae",
        conv_epochs=12, conv_hidden=[512], conv_lr=CONV_LR, hidden=[512, 256],
    )
    model.add_argument("--latent", type=positive_int, default=20, help="latent dimension J")
    model.add_argument("--beta", type=float, default=1.0,
                       help="weight of the KL term (1 = the ELBO)")
    parser.add_argument("--log-likelihood-k", type=non_negative_int, default=0,
                        help="after training, estimate the test log p(x) with this many "
                        "importance samples per image (5000 as papers do; needs --binarize "
                        "dynamic or static; docs/10-likelihoods.md) (default: 0, none)")
    args = parser.parse_args(argv)
    resolve_arch(args, parser)
    if not 0 <= args.beta < float("inf"):
        parser.error(f"--beta must be a number >= 0, got {args.beta}")
    if args.log_likelihood_k and args.binarize == "none":
        parser.error("--log-likelihood-k: log p(x) of a Bernoulli decoder is only defined "
                     "for binary images; add --binarize dynamic (or static)")
    return args, parser


def interpolation_rows(model: VAE, images: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(P, 2 + 7, D): for each pair (a, b), image a, the decoded interpolates, image b."""
    codes, _ = model.encode(images[pairs.ravel()])  # the code of an image is its mean mu
    codes = codes.reshape(len(pairs), 2, -1)
    between = analysis.interpolate_codes(codes[:, 0], codes[:, 1], N_INTERPOLATES)  # (P, 7, J)
    decoded = model.decode(between.reshape(-1, between.shape[-1]))
    decoded = decoded.reshape(len(pairs), N_INTERPOLATES, -1)
    return np.concatenate([images[pairs[:, :1]], decoded, images[pairs[:, 1:]]], axis=1)


def figure_pairs(y_test: np.ndarray, seed: int, same_label: bool) -> np.ndarray:
    """The figure's N_PAIRS pairs of test images, drawn before training: a test set that
    cannot give them (too few images or digits) is an error before any time is spent."""
    rng = np.random.default_rng([seed, 3, int(same_label)])
    try:
        return analysis.sample_pairs(y_test, N_PAIRS, same_label=same_label, rng=rng)
    except ValueError as error:
        sys.exit(f"error: the test set ({len(y_test)} images, digits "
                 f"{sorted(set(y_test.tolist()))}) cannot give the interpolation figures "
                 f"their pairs: {error}")


def draw_interpolations(model, run, x_test, y_test, pairs, same_label: bool, name: str,
                        model_name: str) -> dict:
    kind = "same digit" if same_label else "different digits"
    run.figure(
        plotting.image_grid_figure(
            interpolation_rows(model, x_test, pairs),
            row_labels=[f"{y_test[a]} -> {y_test[b]}" for a, b in pairs],
            column_titles=["test A"] + [f"{k}/8" for k in range(1, 8)] + ["test B"],
            title=f"{model_name} latent interpolation,\n{N_PAIRS} pairs of {kind}",
            caption="Columns 1 and 9: real test images. Columns 2-8: decoded from "
                    "z = (1 - tau) mu_A + tau mu_B, tau = i/8 (Bernoulli means)."),
        f"interpolation, {kind}", name,
    )
    return {
        "test_indices": pairs,
        "labels": y_test[pairs],
    }


@exits_cleanly
def main(argv=None) -> None:
    args, parser = parse_args(argv)
    run = Run(args, parser)
    x_train, _, x_test, y_test = load_data(args)

    pixels = x_train.shape[1]
    check_model_fits(args, pixels, 2 * args.latent, args.latent)
    model = VAE(pixels, tuple(args.hidden), args.latent, beta=args.beta, rng=args.seed,
                arch=args.arch, channels=args.channels)
    optimizer = make_optimizer(args, model.params, DEFAULT_LR, CONV_LR)
    name = f"VAE {describe_arch(args, pixels, args.latent)}"  # in every figure's title
    print(f"{name} (beta {args.beta}), {args.optimizer} lr {args.lr}, "
          f"{len(x_train)} training images")
    same, different = (figure_pairs(y_test, args.seed, same_label) for same_label in (True, False))
    history = run.train(model, optimizer, x_train, x_test)

    pairs = {
        "same_digit": draw_interpolations(
            model, run, x_test, y_test, same, True, "interpolation_same_digit.png", name),
        "different_digits": draw_interpolations(
            model, run, x_test, y_test, different, False, "interpolation_different_digits.png",
            name),
    }

    rng = np.random.default_rng([args.seed, 4])
    samples = model.decode(rng.standard_normal((64, args.latent)).astype(np.float32))
    run.figure(
        plotting.image_grid_figure(samples.reshape(8, 8, -1),
                                   title=f"{name}:\ndecoded samples z ~ N(0, I)"),
        "samples from the prior", "prior_samples.png",
    )
    shown = x_test[:12]
    run.figure(
        plotting.image_grid_figure(np.stack([shown, model.reconstruct(shown)]),
                                   row_labels=["test image", "decoded mu"],
                                   title=f"{name} reconstructions of test digits"),
        "test reconstructions", "reconstructions.png",
    )
    # The loss is the negative ELBO for beta = 1, recon + beta KL otherwise.
    loss = "negative ELBO" if args.beta == 1 else f"loss (recon. + {args.beta:g} KL)"
    run.figure(
        plotting.training_curves_figure(
            {f"test {loss}": history["test_loss"],
             "test reconstruction": history["test_recon"],
             "test KL": history["test_kl"],
             f"train {loss}": history["train_loss"]},
            title=f"{name} on MNIST", ylabel="nats per image"),
        "training curves", "training_curves.png",
    )
    if args.latent == 2:
        codes, _ = model.encode(x_test)
        run.figure(plotting.latent_scatter_figure(codes, y_test, title=f"{name}: test codes"),
                   "latent scatter", "latent_scatter.png")
        extent, side = (-2.5, 2.5, -2.5, 2.5), 15
        z = analysis.latent_grid(extent, side, side).reshape(-1, 2).astype(np.float32)
        run.figure(plotting.manifold_figure(model.decode(z).reshape(side, side, -1), extent,
                                            title=f"{name}: decoded 2-D latent grid"),
                   "decoded 2-D manifold", "latent_manifold.png")

    final = {name: history[f"test_{name}"][-1] for name in ("loss", "recon", "kl")}
    negative_elbo = final["recon"] + final["kl"]  # equals the training loss only for beta = 1
    nats = {"negative_elbo": negative_elbo, "reconstruction": final["recon"],
            "kl": final["kl"], "training_objective": final["loss"]}
    headline = (f"test negative ELBO {negative_elbo:.2f} nats/image "
                f"(reconstruction {final['recon']:.2f} + KL {final['kl']:.2f})")
    if args.log_likelihood_k:
        estimates, seconds = estimate_test_log_likelihood(model, x_test,
                                                          args.log_likelihood_k, args)
        nats["negative_log_likelihood"] = -float(estimates.mean())
        headline += (f"\ntest -log p(x) {nats['negative_log_likelihood']:.2f} nats/image "
                     f"(k = {args.log_likelihood_k}, {len(x_test)} binarised test images, "
                     f"{seconds:.0f} s)")
    run.finish({"test_nats_per_image": nats, "pairs": pairs}, headline)


if __name__ == "__main__":
    main()
