"""Reproduce Burda et al.'s VAE and IWAE on binarised MNIST, and estimate the test log p(x).

    python experiments/vae_likelihood.py                       # VAE (k = 1), shortened schedule
    python experiments/vae_likelihood.py --objective iwae --k 5 --out results/iwae5
    python experiments/vae_likelihood.py --epochs 3280         # the paper's whole schedule
    python experiments/vae_likelihood.py --quick               # a smoke test
    python experiments/vae_likelihood.py --help

The protocol of Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders* (2015),
section 5 and appendix: 784-200-200-50 with tanh units, a Bernoulli decoder whose output
bias starts at the logit of the mean training image, training images binarised afresh for
every batch, Adam (beta1 0.9, beta2 0.999, eps 1e-4), batch 20, and their schedule: stage
i = 0..7 of 3^i epochs at learning rate 0.001 * 10^(-i/7), 3,280 epochs in all. The default
here keeps the schedule's shape over 240 epochs (about a fourteenth). After training, the test
log-likelihood log p(x) is estimated with k = 5000 importance samples on the 10,000 test
images (one fixed binarisation), and the active latent units are counted
(docs/10-likelihoods.md). The paper's Table 1: VAE 86.76 nats, IWAE k = 5 85.54, k = 50
84.78.

Writes to --out (default results/likelihood/, results/likelihood-quick/ with --quick):
metrics.json (test log p(x), its standard error, the same estimate on the training
curve's 1,000 test images, active units, wall times),
training_curves.png, prior_samples.png, model.npz, checkpoint.npz. An interrupted run
continues with --resume; --resume on a finished run evaluates it again (with another
--eval-k, say).
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
    duration,
    estimate_test_log_likelihood,
    exits_cleanly,
    load_data,
    make_optimizer,
    positive_int,
    resolve_arch,
)
from npnet.vae import OBJECTIVES, VAE

# Measured: README, "Run times" (the commands and the machine).
RUN_TIMES = ("Run times on a 2-core machine, about: the default run half an hour, --objective "
             "iwae --k 5 an hour (training, then log p(x) with k = 5000), --quick a few seconds "
             "(README, \"Run times\").")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-3}
TEST_CURVE_IMAGES = 1000  # test images evaluated after every epoch (the training curve)
ADAM_EPS = 1e-4  # Burda et al.'s, against Adam's usual 1e-8
PAPER_NATS = {("elbo", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78}  # Table 1
SHORT_EPOCHS, PAPER_EPOCHS = 240, 3280
QUICK_EVAL_K = 50


def parse_args(argv=None):
    parser = ArgumentParser(prog="vae_likelihood.py",
                            description=__doc__.split("\n\n")[0] + " " + RUN_TIMES)
    model = add_common_arguments(
        parser, epochs=SHORT_EPOCHS, batch_size=20, optimizer="adam", lr=DEFAULT_LR,
        out="results/likelihood", conv_epochs=SHORT_EPOCHS, conv_hidden=[200],
        hidden=[200, 200], lr_schedule="burda", binarize="dynamic", conv=False,
    )
    model.add_argument("--latent", type=positive_int, default=50, help="latent dimension J")
    model.add_argument("--activation", choices=["tanh", "relu"], default="tanh",
                       help="hidden units (default: %(default)s)")
    model.add_argument("--objective", choices=OBJECTIVES, default="elbo",
                       help="elbo = the VAE's bound (k = 1); iwae = the importance-weighted "
                       "bound with --k samples per image (default: %(default)s)")
    model.add_argument("--k", type=positive_int, default=None,
                       help="samples per image for --objective iwae (default: 5)")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--eval-k", type=positive_int, default=None,
                            help="importance samples per test image for log p(x) (default: "
                            f"5000; {QUICK_EVAL_K} with --quick)")
    evaluation.add_argument("--eval-images", type=positive_int, default=None,
                            help="estimate log p(x) on the first this many test images "
                            "(default: all)")
    args = parser.parse_args(argv)
    resolve_arch(args, parser)
    if args.arch != "dense":
        parser.error(f"--arch {args.arch}: the protocol is Burda et al.'s dense model, whose "
                     "decoder ends in a Dense layer with one output bias per pixel (set to the "
                     "logit of the mean image): this script trains that model only; leave "
                     "--arch out")
    if args.k is None:
        args.k = 5 if args.objective == "iwae" else 1
    if args.objective == "elbo" and args.k != 1:
        parser.error(f"--k {args.k} is for --objective iwae; the ELBO takes one sample "
                     "per image (add --objective iwae)")
    if args.binarize == "none":
        parser.error("--binarize none: log p(x) of a Bernoulli decoder is only defined for "
                     "binary images; use --binarize dynamic (the paper's) or static")
    if args.eval_k is None:
        args.eval_k = QUICK_EVAL_K if args.quick else 5000
    return args, parser


@exits_cleanly
def main(argv=None) -> None:
    args, parser = parse_args(argv)
    run = Run(args, parser)
    x_train, _, x_test, _ = load_data(args)
    if args.eval_images is not None:
        x_eval = x_test[: args.eval_images]
    else:
        x_eval = x_test

    pixels = x_train.shape[1]
    check_model_fits(args, pixels, 2 * args.latent, args.latent)
    model = VAE(pixels, tuple(args.hidden), args.latent, activation=args.activation,
                rng=args.seed, arch=args.arch, channels=args.channels,
                objective=args.objective, k=args.k)
    model.init_output_bias(x_train)
    optimizer = make_optimizer(args, model.params, DEFAULT_LR, adam_eps=ADAM_EPS)
    name = f"VAE {describe_arch(args, pixels, args.latent)}"  # in every figure's title
    print(f"{name} ({args.activation}), objective "
          f"{args.objective} k = {args.k}, {args.optimizer} lr {args.lr} "
          f"({args.lr_schedule} schedule), batch {args.batch_size}, "
          f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}, "
          f"{len(x_train)} training images binarised {args.binarize}")
    x_curve = x_test[:TEST_CURVE_IMAGES]
    history = run.train(model, optimizer, x_train, x_curve)
    training_seconds = float(np.sum(history["epoch_seconds"]))

    estimates, eval_seconds = estimate_test_log_likelihood(model, x_eval, args.eval_k, args)
    nll = -float(estimates.mean())
    # The same estimate on the test images of the training curve, beside their last bound.
    shared = min(len(x_curve), len(estimates))
    nll_curve_images = -float(estimates[:shared].mean())
    stderr = float(estimates.std(ddof=1) / np.sqrt(len(estimates))) if len(estimates) > 1 else None
    count, variances = analysis.active_units(model.encode(x_test)[0])

    rng = np.random.default_rng([args.seed, 4])
    samples = model.decode(rng.standard_normal((64, args.latent)).astype(np.float32))
    run.figure(plotting.image_grid_figure(samples.reshape(8, 8, -1),
                                          title=f"{name}:\nBernoulli means of z ~ N(0, I)"),
               "samples from the prior", "prior_samples.png")
    run.figure(
        plotting.training_curves_figure(
            {"train": history["train_loss"],
             f"test ({len(x_curve):,} images)": history["test_loss"]},
            title=f"{name}, {args.objective} k = {args.k}, on binarised MNIST",
            ylabel="negative bound, nats per image"),
        "training curves", "training_curves.png")

    paper = PAPER_NATS.get((args.objective, args.k))
    run.finish(
        {
            "test_negative_log_likelihood": nll,
            "standard_error": stderr,
            "curve_images_negative_log_likelihood": nll_curve_images,
            "curve_images": shared,
            "eval_k": args.eval_k,
            "eval_images": len(x_eval),
            "eval_seconds": eval_seconds,
            "training_seconds": training_seconds,
            "active_units": count,
            "active_unit_variances": variances.tolist(),
            "paper_negative_log_likelihood": paper,
        },
        f"test -log p(x) {nll:.2f} nats (k = {args.eval_k}, {len(x_eval)} test images"
        + (f", standard error {stderr:.2f}" if stderr is not None else "") + ")"
        + (f"; Burda et al.'s Table 1: {paper}" if paper is not None else "")
        + f"\nactive units {count} of {args.latent}; training {duration(training_seconds)}, "
        f"log p(x) {duration(eval_seconds)}",
    )


if __name__ == "__main__":
    main()
