"""What the experiment scripts share: command-line options, data, optimizer, the training run.

``experiments/dae_mnist.py`` and ``experiments/vae_interp.py`` are thin: each builds its own
model and figures, and leaves everything they have in common to this module, so the two
behave the same way (``--quick``, ``--resume``, ``--seed``, ``--no-fast``, progress, Ctrl-C,
the files written and the summary printed at the end).

An output folder holds one run: a run refuses to start in a folder that holds another unless
told ``--resume`` (continue it) or ``--overwrite`` (delete it first), in a line or two (never
argparse's usage block). The default folders keep a ``--quick`` run (``results/dae-quick``)
and an ``--arch conv`` run (``results/dae-conv``) out of the full run's way (``results/dae``),
and a run that fails before writing anything leaves no empty folder behind. Each run has an id
(seed, start time, random suffix), recorded in its checkpoint and in metrics.json, which is
written last and lists the run's files: a folder without metrics.json holds an unfinished
run, and a file that metrics.json does not list is not from that run.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import math
import os
import platform
import secrets
import signal
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import data as mnist
from . import fast
from .autoencoder import ARCHITECTURES
from .data import (
    BINARIZATIONS,
    TEST_BINARIZATION_SEED,
    MNISTError,
    MNISTNotFoundError,
    binarize,
    load_mnist,
)
from .fast.likelihood import log_likelihood as fast_log_likelihood
from .fast.optim import numba_available
from .fast.parallel import MAX_THREADS_PER_CORE, available_cores
from .fast.threads import MODES, BlasThreads
from .io import read_json, remove_stale_temporaries, save_params, write_json
from .optim import SGD, Adam
from .train import (
    CheckpointError,
    burda_schedule,
    checkpoint_config,
    checkpoint_meta,
    cosine_decay,
    fit,
)

__all__ = ["ArgumentParser", "HelpFormatter", "add_common_arguments", "load_data",
           "make_optimizer", "Run", "exits_cleanly", "duration", "check_model_fits",
           "resolve_arch", "describe_arch", "estimate_test_log_likelihood"]

QUICK_TRAIN, QUICK_TEST = 2000, 500  # --quick: a slice of MNIST for smoke tests
CONV_CHANNELS = [32, 64]  # --arch conv: 28x28x1 -> 14x14x32 -> 7x7x64
RUN_FILES = ("checkpoint.npz", "model.npz", "metrics.json")  # what every run writes
# --lr-schedule: a learning-rate multiplier of the fraction of training done (None: constant)
LR_SCHEDULES = {"constant": None, "cosine": cosine_decay, "burda": burda_schedule}


_interrupted = False  # Ctrl-C was pressed (exits_cleanly's handler)
# Folders this run created (--out and the folders above it), deepest last: a run that ends
# in an error removes those it left empty (exits_cleanly), so that it leaves nothing behind.
_created_folders: list[Path] = []
# This run's hold on its --out folder (Run.__init__): its lock file, open and locked.
_out_lock: list = []
# --overwrite: the previous run's files, set aside until this run has something to put in
# their place ((aside folder, --out, this run's id); exits_cleanly settles it).
_set_aside: list[tuple[Path, Path, str]] = []
MIN_TEST_IMAGES = 100  # the analyses: 5 principal components, 10 pairs of each kind, ...
LOCK_NAME = ".npnet-run.lock"
# A disk or quota that is full, a file too large, a read-only file system: the run cannot go
# on, and exits_cleanly says so in one line.
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _on_ctrl_c(signum, frame):
    """Remember Ctrl-C, then raise KeyboardInterrupt as Python's own handler does. Where
    Python swallows the exception (in a callback of a garbage-collected object, as matplotlib
    has), the flag still stops the run at its next figure (:meth:`Run.figure`)."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _unraisable_hook(unraisable):
    """Python's hook for exceptions it cannot raise, quiet about Ctrl-C: ``_interrupted``
    carries that one to the next figure."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def exits_cleanly(main):
    """Decorate a script's ``main(argv=None)``: Ctrl-C at any moment (loading the data,
    training, drawing the figures) ends it with one line and exit status 130."""

    @functools.wraps(main)
    def main_without_traceback(argv=None):
        global _interrupted
        _interrupted, previous, finished = False, None, False
        _created_folders.clear()
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, _on_ctrl_c)
        hook, sys.unraisablehook = sys.unraisablehook, _unraisable_hook
        try:
            result = main(argv)
            finished = True
            return result
        except KeyboardInterrupt:
            print("\ninterrupted (Ctrl-C); every file written so far is whole: rerun with "
                  "--resume to finish the run", file=sys.stderr)
            sys.exit(130)
        except OSError as error:
            if error.errno not in WRITE_ERRORS:
                raise
            sys.exit(f"error: cannot write {error.filename or 'a file'}: {error.strerror}. "
                     "Every file written before is whole (npnet writes atomically); free "
                     "some space or give another --out, then rerun with --resume")
        finally:
            _settle_set_aside(finished)
            _release_out_lock()
            if not finished:
                _remove_empty_folders(_created_folders)
            _created_folders.clear()
            sys.unraisablehook = hook
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    return main_without_traceback


def _folders_to_create(folder: Path) -> list[Path]:
    """The folders that creating ``folder`` (with its parents) would create, outermost
    first."""
    missing = []
    for path in [folder, *folder.parents]:
        if path.exists() or path.is_symlink():
            break
        missing.append(path)
    return missing[::-1]


def _remove_empty_folders(folders: list[Path]) -> None:
    """Remove each of ``folders`` (outermost first) that is empty, innermost first; a folder
    that holds anything is kept, and with it every folder above it."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty, or not ours to remove: keep it and the folders above
            return


def _int_at_least(text: str, low: int, what: str) -> int:
    value = int(text)
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def blas_threads_value(text: str) -> str | int:
    if text in MODES:
        return text
    try:
        return positive_int(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"must be auto, adapt or a positive integer, got {text}") from None


def out_folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string (use "
                                         "--out . for the current folder)")
    return Path(text)


def momentum_value(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, except where there is none to show: options
    whose default is None say in their own words what happens without them, and flags are
    off unless given."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:  # False: a flag's "off"
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """The experiment scripts' parser: ``--help`` through :class:`HelpFormatter`, and a
    refusal (a bad option, or a run that cannot start) printed as ``prog: error: ...``
    alone, without argparse's usage block, which ``--help`` shows; exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: dict[str, float],
    out: str,
    hidden: list[int],
    conv_epochs: int,
    conv_hidden: list[int],
    conv_lr: dict[str, float] | None = None,
    lr_schedule: str = "cosine",
    binarize: str = "none",
    conv: bool = True,
):
    """Options both experiments take, with each experiment's own defaults.

    ``out`` is the full dense run's folder; a ``--quick`` run writes to ``out-quick``, an
    ``--arch conv`` run to ``out-conv`` (``out-conv-quick`` with both), so that a smoke run
    or a convolutional run never stands in the way of the full dense run. ``conv=False``: the
    script trains the dense model only, and ``--help`` does not offer ``--arch`` (the script
    refuses it, saying why).

    Returns the "model" argument group, which already holds ``--hidden``, for the script to
    add its own model options to.
    """
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=positive_int, default=None,
                       help="passes over the 60,000 training images (default: "
                       + (f"{epochs}, {conv_epochs} with --arch conv" if conv else f"{epochs}")
                       + "; 1 with --quick)")
    # Resolved, then removed, by Run:
    parser.set_defaults(full_run_epochs={"dense": epochs, "conv": conv_epochs})
    train.add_argument("--batch-size", type=positive_int, default=batch_size,
                       help="images per SGD step (default: %(default)s)")
    train.add_argument("--optimizer", choices=["sgd", "adam"], default=optimizer,
                       help="sgd = SGD with Nesterov momentum, adam = Adam "
                       "(default: %(default)s)")
    train.add_argument("--lr", type=positive_float, default=None,
                       help="learning rate (default: "
                       + ", ".join(f"{v:g} for {k}" for k, v in lr.items())
                       + ("; with --arch conv " + ", ".join(
                           f"{v:g} for {k}" for k, v in conv_lr.items()) if conv_lr else "")
                       + ")")
    train.add_argument("--lr-schedule", choices=list(LR_SCHEDULES), default=lr_schedule,
                       help="constant; cosine decay of the learning rate to 0 over the run; "
                       "or burda: Burda et al.'s 8 stages, stage i (3^i/3280 of the run) at "
                       "10^(-i/7) times --lr (default: %(default)s)")
    train.add_argument("--momentum", type=momentum_value, default=0.9,
                       help="momentum for --optimizer sgd (default: %(default)s)")
    train.add_argument("--no-fast", action="store_true",
                       help="train on the readable core alone, without npnet.fast: the same "
                       "numbers, more slowly")
    train.add_argument("--threads", type=positive_int, default=1,
                       help="split every batch into this many shards, trained on as many "
                       "threads (npnet.fast.DataParallel, docs/appendix-fast-path.md); "
                       "changes the noise draws; "
                       f"{available_cores()} cores here (default: %(default)s)")
    train.add_argument("--blas-threads", type=blas_threads_value, default="auto",
                       help="threads of NumPy's matrix products: auto = the fastest count "
                       "at the start, kept for the run (printed at the end and recorded in "
                       "metrics.json: that number repeats a run bit for bit on the same kind "
                       "of processor, while another count gives slightly different results); "
                       "adapt = also re-timed during the run, switching when the machine's "
                       "load changes; or a number (npnet/fast/threads.py; default: "
                       "%(default)s)")
    train.add_argument("--binarize", choices=BINARIZATIONS, default=binarize,
                       help="none = gray pixels in [0, 1]; dynamic = a fresh 0/1 draw "
                       "(pixel = 1 with probability its gray value) of every training batch; "
                       "static = one draw of the training set (seeded by --seed). Except with "
                       "none, the test set is one fixed draw, the same in every run "
                       f"(seed {TEST_BINARIZATION_SEED}) (default: %(default)s)")
    train.add_argument("--seed", type=non_negative_int, default=0,
                       help="seed of every random choice: weights, batches, noise, pairs "
                       "(default: %(default)s)")
    run = parser.add_argument_group("files and running")
    run.add_argument("--data-dir", default=None,
                     help="folder with the four MNIST files (flat, or torchvision's "
                     "MNIST/raw/); default: $NPNET_DATA, then data_mnist/ beside the project, "
                     "then ~/.cache/npnet/mnist")
    run.add_argument("--out", type=out_folder, default=None,
                     help="output folder for figures, metrics.json, checkpoint and model "
                     f"(default: {out}; {out}-quick with --quick"
                     + (f", {out}-conv with --arch conv, {out}-conv-quick with both"
                        if conv else "") + ")")
    parser.set_defaults(default_out=out)  # resolved, then removed, by Run
    run.add_argument("--no-verify", action="store_true",
                     help="load MNIST files that are not the originals (deliberately modified "
                     "data) without refusing them; by default the image counts and the files' "
                     "checksums are checked")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from the checkpoint in --out (or "
                       "train a finished one further with a larger --epochs)")
    again.add_argument("--overwrite", action="store_true",
                       help="delete the run already in --out (its checkpoint, model, metrics "
                       "and the files its metrics.json lists) and start afresh")
    run.add_argument("--quick", action="store_true",
                     help=f"smoke test: {QUICK_TRAIN:,} training and {QUICK_TEST} test images, "
                     "1 epoch unless --epochs is given (a few seconds): checks that "
                     "everything runs, not a trained model")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=list(ARCHITECTURES), default="dense",
                       help="dense = Dense layers only; conv = 3x3 stride-2 convolutions "
                       "first (28x28 -> 14x14 -> 7x7), transposed convolutions back "
                       "(docs/09-convolutions.md) (default: %(default)s)"
                       if conv else argparse.SUPPRESS)
    model.add_argument("--channels", type=positive_int, nargs="+", default=None,
                       help="with --arch conv: the convolutions' output channels, encoder "
                       f"order (default: {' '.join(map(str, CONV_CHANNELS))})"
                       if conv else argparse.SUPPRESS)
    model.add_argument("--hidden", type=positive_int, nargs="*", default=None,
                       help="encoder hidden Dense widths, outermost first; the decoder "
                       f"mirrors them (default: {' '.join(map(str, hidden))}"
                       + (f" for --arch dense; {' '.join(map(str, conv_hidden))} for --arch "
                          "conv, between the last convolution and the code" if conv else "")
                       + "; --hidden alone: none)")
    # Resolved, then removed, by resolve_arch:
    parser.set_defaults(default_hidden={"dense": hidden, "conv": conv_hidden})
    return model


def resolve_arch(args, parser: argparse.ArgumentParser) -> None:
    """Fill in the defaults of ``--hidden`` and ``--channels`` that depend on ``--arch``."""
    default_hidden = vars(args).pop("default_hidden")[args.arch]
    args.hidden = default_hidden if args.hidden is None else args.hidden
    if args.arch == "dense" and args.channels is not None:
        parser.error("--channels sets the convolutions of --arch conv; add --arch conv, "
                     "or drop --channels")
    if args.arch == "conv" and args.channels is None:
        args.channels = list(CONV_CHANNELS)


def load_data(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST (x_train, y_train, x_test, y_test), binarised as ``--binarize`` says (the test set
    with :data:`npnet.data.TEST_BINARIZATION_SEED`), sliced for ``--quick``; exits on bad
    data."""
    try:  # (a download that fails removes the folders it created: npnet.data)
        x_train, y_train = load_mnist("train", data_dir=args.data_dir, verify=not args.no_verify)
        x_test, y_test = load_mnist("test", data_dir=args.data_dir, verify=not args.no_verify)
    except MNISTNotFoundError as error:
        sys.exit(_mnist_not_found(error, args.data_dir))
    except MNISTError as error:
        sys.exit(f"error: {error}")
    if args.binarize != "none":  # before --quick's slice: the same test images either way
        x_test = binarize(x_test, TEST_BINARIZATION_SEED)
    if args.binarize == "static":
        x_train = binarize(x_train, [args.seed, 5])
    if args.quick:
        x_train, y_train = x_train[:QUICK_TRAIN], y_train[:QUICK_TRAIN]
        x_test, y_test = x_test[:QUICK_TEST], y_test[:QUICK_TEST]
    if len(x_train) < args.batch_size:
        sys.exit(f"error: the training set has {len(x_train)} images, fewer than one batch "
                 f"(--batch-size {args.batch_size}); choose a smaller --batch-size")
    if len(x_test) < MIN_TEST_IMAGES:  # checked before training, not after it
        sys.exit(f"error: the test set has {len(x_test)} images; the analysis after training "
                 "(the residuals' principal components, the interpolation's pairs, the active "
                 f"units) needs at least {MIN_TEST_IMAGES} (MNIST's has 10,000): give the real "
                 "files")
    return x_train, y_train, x_test, y_test


def _mnist_not_found(error: MNISTNotFoundError, data_dir: str | None) -> str:
    """The message of a run that found no MNIST files: first what to type, then what
    load_mnist searched and why its download failed (without its advice to Python callers,
    which a script's user does not make)."""
    beside, cache = mnist.BESIDE_PROJECT_DIR, mnist._download_dir(None)
    if data_dir is not None:
        fix = (f"error: --data-dir {data_dir} does not hold the MNIST files (and downloading "
               "them there failed). Give --data-dir the folder that holds the four files, or "
               f"leave it out to search $NPNET_DATA, {beside} and {cache}.")
    else:
        fix = ("error: the MNIST files were not found, and downloading them failed. Rerun "
               "with --data-dir FOLDER, the folder that holds the four files (or set "
               f"NPNET_DATA=FOLDER), or put them in {beside}/; with a network connection, "
               f"the same command downloads them into {cache}.")
    details = [line for line in str(error).splitlines()
               if not line.startswith("load_mnist(") and line != mnist.HOW_TO_POINT_AT_FILES]
    return "\n".join([fix, "", *details])


def estimate_test_log_likelihood(model, x: np.ndarray, k: int, args) -> tuple[np.ndarray, float]:
    """The importance-sampled log p(x) of every image of x (binary), k samples each, 100
    images at a time, each block seeded by ``--seed`` and its position (so a run repeats its
    numbers); on every core (:mod:`npnet.fast.likelihood`) unless ``--no-fast``, which gives
    the same numbers with ``--blas-threads 1``. Returns the (N,) estimates and the seconds."""
    if args.no_fast:
        limits = threadpool_limits(args.blas_threads, user_api="blas") if isinstance(
            args.blas_threads, int) else contextlib.nullcontext()
        with limits:
            return _log_likelihood_in_blocks(model.log_likelihood, x, k, args)
    return _log_likelihood_in_blocks(functools.partial(fast_log_likelihood, model), x, k, args)


def _log_likelihood_in_blocks(estimate, x, k: int, args) -> tuple[np.ndarray, float]:
    started, block = time.perf_counter(), 100
    estimates = np.empty(len(x))
    for start in tqdm(range(0, len(x), block), desc=f"log p(x), k = {k}", unit="block",
                      disable=args.no_progress, leave=False, dynamic_ncols=True):
        estimates[start : start + block] = estimate(x[start : start + block], k=k,
                                                    rng=[args.seed, 6, start])
    return estimates, time.perf_counter() - started


def describe_arch(args, pixels: int, code: int) -> str:
    """The encoder in one line: ``784-512-128-16``, or ``784-conv32-conv64-16``."""
    convs = [f"conv{c}" for c in args.channels] if args.arch == "conv" else []
    return "-".join(map(str, [pixels, *convs, *args.hidden, code]))


def check_model_fits(args, pixels: int, encoder_out: int, decoder_in: int) -> None:
    """Exit with a message, before anything is allocated, if the model of ``--arch``,
    ``--hidden`` and ``--channels`` cannot fit in the memory this machine has free."""
    n_params, per_image = _model_size(args, pixels, encoder_out, decoder_in)
    # float32 parameters, their gradients, Adam's m and v, and a copy while checkpointing;
    # each layer's activations and their gradients for a batch, a few arrays of each (the
    # IWAE decodes k codes per image: a batch of batch_size * k).
    codes = args.batch_size * (getattr(args, "k", None) or 1)
    needed = 4 * (5 * n_params + 4 * codes * per_image)
    free = _free_memory()
    if free is not None and needed > free:
        what = "--hidden widths" + (" or --channels" if args.arch == "conv" else "") + (
            ", or a smaller --k" if (getattr(args, "k", None) or 1) > 1 else "")
        sys.exit(f"error: this model has {n_params:,} parameters and needs about "
                 f"{needed / 2**30:.1f} GiB to train, but {free / 2**30:.1f} GiB of memory "
                 f"is free; choose smaller {what} (or --code / --latent)")


def _model_size(args, pixels: int, encoder_out: int, decoder_in: int) -> tuple[int, int]:
    """(parameters, numbers kept per image for one direction) of the encoder and decoder."""
    chains = [[pixels, *args.hidden, encoder_out], [decoder_in, *args.hidden[::-1], pixels]]
    per_image = 0
    conv_params = 0
    if args.arch == "conv":
        side = math.isqrt(pixels)
        if side * side != pixels:
            sys.exit(f"error: --arch conv reads images of {pixels} pixels as squares, "
                     f"but {pixels} is not a square number")
        channels = [1, *args.channels]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            side = (side + 1) // 2  # 3x3 kernel, stride 2, padding 1
            conv_params += 2 * 9 * c_in * c_out + c_out + c_in  # and its transposed mirror
            per_image += 2 * side * side * (9 * c_in + c_out)  # patches and outputs, both ways
        flat = side * side * channels[-1]
        chains = [[flat, *args.hidden, encoder_out], [decoder_in, *args.hidden[::-1], flat]]
    n_params = conv_params + sum(a * b + b for chain in chains
                                     for a, b in zip(chain[:-1], chain[1:], strict=True))
    return n_params, per_image + sum(map(sum, chains))


def _free_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def make_optimizer(args, params: dict, default_lr: dict[str, float],
                   conv_lr: dict[str, float] | None = None, adam_eps: float = 1e-8):
    """The optimizer named by ``--optimizer``; ``--lr`` or that optimizer's tuned default
    (``conv_lr``'s, where given, for ``--arch conv``); Adam with ``adam_eps``."""
    if conv_lr is not None and args.arch == "conv":
        default_lr = conv_lr
    lr = args.lr if args.lr is not None else default_lr[args.optimizer]
    args.lr = lr  # recorded in metrics.json as used
    if args.optimizer == "sgd":
        return SGD(params, lr=lr, momentum=args.momentum, nesterov=args.momentum > 0)
    return Adam(params, lr=lr, eps=adam_eps)


def _check_writable(folder: Path, parser: argparse.ArgumentParser) -> None:
    """Create ``--out`` and make sure files can be written there, before any training. The
    folders created are recorded, for a run that fails to remove them (:func:`exits_cleanly`)."""
    if folder.exists() and not folder.is_dir():
        parser.error(f"--out {folder} is a file; give a folder (it is created if missing)")
    try:
        created = _folders_to_create(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _created_folders.extend(created)
        # Named like atomic_write's temporaries (".NAME.npnet-", 8 random characters, ".tmp"),
        # so that a kill leaves nothing for good: the next run's remove_stale_temporaries
        # clears it.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test.npnet-",
                                         suffix=".tmp"):
            pass
    except OSError as error:
        parser.error(f"cannot write to --out {folder}: {error.strerror or error}; "
                     "give a folder you can write to")


def _check_one_run(args, parser: argparse.ArgumentParser) -> None:
    """Refuse to start over the run already in ``--out`` unless told what to do with it."""
    held = [name for name in RUN_FILES if (args.out / name).exists()]
    # A folder named like a file the run writes (examples.png/) would stop it after training.
    folders = sorted(path.name for path in args.out.iterdir()
                     if path.suffix in (".png", ".npz", ".json") and not path.is_file())
    if folders:
        parser.error(f"--out {args.out} holds {', '.join(folders)}, named like files a run "
                     "writes but not files (folders?); move them out of --out or give another "
                     "--out")
    if held and not (args.resume or args.overwrite):
        parser.error(f"--out {args.out} already holds a run ({', '.join(held)}).\nAdd --resume "
                     "to continue it (or to redraw its figures), --overwrite to replace it, or "
                     "give another --out.")
    if held and args.resume and "checkpoint.npz" not in held:
        parser.error(f"--out {args.out} holds a run ({', '.join(held)}) but no checkpoint.npz "
                     "to resume; pass --overwrite to delete it and start afresh, or give "
                     "another --out")


def _lock_out(folder: Path, parser: argparse.ArgumentParser) -> None:
    """Hold ``--out`` for this run: a second run started into it, even a moment later, is
    refused instead of writing over this one's files. The lock is the OS's (flock), so a run
    that is killed holds nothing; exits_cleanly removes the lock file."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one run per folder is then up to the user
        return
    handle = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        parser.error(f"--out {folder} is in use by another run that is still going; wait for "
                     "it to end, or give another --out")
    _out_lock.append((handle, folder / LOCK_NAME))


def _release_out_lock() -> None:
    for handle, path in _out_lock:
        with contextlib.suppress(OSError):
            path.unlink()
        handle.close()
    _out_lock.clear()


def _run_files(folder: Path) -> list[str]:
    """The files of the run in ``folder``: its checkpoint, model and metrics.json, and the
    files that metrics.json lists (only files directly in ``folder``)."""
    names = set(RUN_FILES)
    try:
        listed = read_json(folder / "metrics.json").get("files", [])
        names |= {name for name in listed if isinstance(name, str) and Path(name).name == name}
    except (OSError, ValueError, AttributeError):  # no metrics.json, or not one of ours
        pass
    return [name for name in sorted(names) if (folder / name).is_file()]


def _set_aside_run(folder: Path, run_id: str) -> None:
    """--overwrite: move the previous run's files into a hidden folder of ``folder``. They
    are deleted once this run has written a checkpoint of its own to put in their place,
    and put back if it ends before that (exits_cleanly)."""
    names = _run_files(folder)
    if not names:
        return
    aside = folder / f".npnet-replaced-{run_id}"
    aside.mkdir()
    for name in names:
        os.replace(folder / name, aside / name)
    _set_aside.append((aside, folder, run_id))
    print(f"--overwrite: the previous run's {', '.join(names)} will be replaced once this "
          "run has written its first checkpoint")


def _settle_set_aside(finished: bool) -> None:
    """Delete the set-aside files of the run --overwrite replaced if this run finished or
    wrote a checkpoint; otherwise put them back where they were."""
    for aside, folder, run_id in _set_aside:
        try:
            replaced = finished or checkpoint_meta(folder / "checkpoint.npz").get(
                "run_id") == run_id
        except CheckpointError:
            replaced = False
        for path in sorted(aside.iterdir()):
            if replaced:
                path.unlink()
            else:
                os.replace(path, folder / path.name)
        aside.rmdir()
        if not replaced:
            print(f"the previous run's files in {folder} are as they were: this run ended "
                  "before it had a checkpoint to put in their place", file=sys.stderr)
    _set_aside.clear()


class Run:
    """One experiment run: its settings, training, the files it writes, and its summary.

    An experiment script builds its model and optimizer, then calls :meth:`train`, writes its
    figures with :meth:`figure`, and ends with :meth:`finish`, which writes metrics.json and
    prints what was written.
    """

    def __init__(self, args, parser: argparse.ArgumentParser):
        full_run_epochs = vars(args).pop("full_run_epochs")  # not a setting to record
        default_out = vars(args).pop("default_out")
        if args.epochs is None:
            args.epochs = 1 if args.quick else full_run_epochs[args.arch]
        if args.out is None:  # a smoke run and a conv run do not stand in the full run's way
            args.out = Path(default_out + ("-conv" if args.arch == "conv" else "")
                            + ("-quick" if args.quick else ""))
        if args.batch_size > (QUICK_TRAIN if args.quick else 60000):
            parser.error(f"--batch-size {args.batch_size} is larger than the training set")
        if args.threads > args.batch_size:
            parser.error(f"--threads {args.threads} is more than --batch-size "
                         f"{args.batch_size}: every thread needs at least one image of a batch")
        if args.threads > MAX_THREADS_PER_CORE * available_cores():
            parser.error(f"--threads {args.threads} is more than {MAX_THREADS_PER_CORE} per "
                         f"core ({available_cores()} here): each thread copies the model, and "
                         "more threads than cores only take turns")
        if args.threads > 1 and args.no_fast:
            parser.error("--threads trains through the fast path (npnet.fast.DataParallel); "
                         "drop --no-fast, or use --threads 1")
        if args.threads > 1 and args.blas_threads != "auto":
            parser.error(f"--threads {args.threads} gives every shard its share of the BLAS "
                         f"threads; drop --blas-threads {args.blas_threads}")
        _check_writable(args.out, parser)
        _lock_out(args.out, parser)  # before anything else looks: one run per folder
        _check_one_run(args, parser)
        stale = remove_stale_temporaries(args.out)
        if stale:
            print(f"removed {len(stale)} temporary files of a save that was killed: "
                  + ", ".join(path.name for path in stale))
        self.args = args
        self.started = time.perf_counter()
        self.written: list[tuple[str, Path]] = []
        self.run_id = self._resumed_run_id() or (
            f"{args.seed}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}")
        if args.overwrite:
            _set_aside_run(args.out, self.run_id)

    def _resumed_run_id(self) -> str | None:
        """The id of the run in the checkpoint that ``--resume`` continues, if it has one."""
        checkpoint = self.args.out / "checkpoint.npz"
        if not (self.args.resume and checkpoint.exists()):
            return None
        try:
            return checkpoint_meta(checkpoint).get("run_id")
        except CheckpointError as error:
            sys.exit(f"error: {error}")

    def train(self, model, optimizer, x_train, x_test, check_model=None) -> dict:
        """:func:`npnet.train.fit` with the script's options, then model.npz; returns the
        history. Through :func:`npnet.fast.enable` unless ``--no-fast``. Ctrl-C, a
        checkpoint that does not fit and a run that diverged (or failed ``check_model``,
        see ``fit``) end the script with a message."""
        args = self.args
        try:
            trainer = self.trainer(model, optimizer, x_train)
        except CheckpointError as error:
            sys.exit(f"error: {error}")
        try:
            history = fit(
                trainer,
                optimizer,
                x_train,
                x_eval=x_test,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                checkpoint=args.out / "checkpoint.npz",
                resume=args.resume,
                config=self.resume_config(),
                lr_schedule=LR_SCHEDULES[args.lr_schedule],
                check_model=check_model,
                batch_transform=binarize if args.binarize == "dynamic" else None,
                run_id=self.run_id,
                progress=not args.no_progress,
            )
        except KeyboardInterrupt:
            sys.exit(130)
        except (CheckpointError, FloatingPointError) as error:  # a mismatch is one too
            sys.exit(f"error: {error}")
        finally:
            if trainer is not model:
                trainer.close()
        # A resumed finished run: its old metrics go first, so that until the new ones are
        # written last, the folder does not claim to hold a finished run.
        (args.out / "metrics.json").unlink(missing_ok=True)
        save_params(self.wrote("model parameters", args.out / "model.npz"), model.params)
        self.wrote("checkpoint (for --resume)", args.out / "checkpoint.npz")
        self.history = history
        return history

    def trainer(self, model, optimizer, x_train):
        """What to train: the model through :func:`npnet.fast.enable` (or the model alone for
        ``--no-fast``), with ``--blas-threads``. A run resumed with ``auto`` keeps the
        checkpoint's count; a new ``auto`` run chooses its count here and records it as the
        setting, so that metrics.json and the checkpoint say what repeats the run."""
        args = self.args
        log = tqdm.write  # keeps a progress bar intact
        if args.threads > 1:
            return fast.enable(model, optimizer, threads=args.threads)
        checkpoint = args.out / "checkpoint.npz"
        if args.resume and args.blas_threads == "auto" and checkpoint.exists():
            # An older checkpoint has no count: it trained with the BLAS's default.
            args.blas_threads = checkpoint_config(checkpoint).get("blas_threads")
            log(f"BLAS threads: {args.blas_threads or 'the BLAS default'}, as the checkpoint "
                "was trained (another count would give slightly different numbers)")
        if args.no_fast:
            trainer = model if args.blas_threads is None else BlasThreads(
                model, args.blas_threads, log=log)
        else:
            trainer = fast.enable(model, optimizer, blas_threads=args.blas_threads, log=log)
        if args.blas_threads == "auto":
            batch = x_train[: args.batch_size]
            if args.binarize == "dynamic":  # what the training steps will see
                batch = binarize(batch, [args.seed, 7])
            args.blas_threads = trainer.choose(batch)
        return trainer

    def figure(self, fig, description: str, name: str) -> None:
        """Save a figure as ``--out``/name, listed in the summary under ``description``."""
        from . import plotting  # matplotlib, only once there are figures

        if _interrupted:  # a Ctrl-C that a callback swallowed while the last figure closed
            raise KeyboardInterrupt
        if self.args.quick:
            plotting.mark_smoke_test(fig, self.smoke_test_note())
        plotting.save_figure(fig, self.wrote(description, self.args.out / name),
                             run_id=self.run_id)

    def smoke_test_note(self) -> str:
        """What a ``--quick`` run's figures say of it."""
        epochs = self.history_epochs()
        return (f"SMOKE TEST (--quick): {_plural(epochs, 'epoch')} on {QUICK_TRAIN:,} "
                "images, not a trained model")

    def history_epochs(self) -> int:
        """Epochs trained (as the history says), or --epochs before training."""
        history = getattr(self, "history", None) or {}
        return len(history.get("train_loss", [])) or self.args.epochs

    def finish(self, metrics: dict, headline: str) -> None:
        """Write metrics.json (``metrics`` plus the history, wall time, settings and
        environment), then print the headline, the wall time and every file written."""
        if _interrupted:
            raise KeyboardInterrupt
        metrics = {"run_id": self.run_id, **metrics, "history": self.history,
                   "wall_seconds": self.seconds, "settings": self.settings(),
                   "environment": self.environment(),
                   "files": [path.name for _, path in self.written]}
        write_json(self.wrote("metrics", self.args.out / "metrics.json"), metrics)
        print()
        if self.args.quick:  # first: the numbers below are not a trained model's
            print(self.smoke_test_summary())
        print(headline)
        print(self.blas_summary(metrics["environment"]))
        print(f"wall time {duration(self.seconds)}; wrote:")
        width = max(len(d) for d, _ in self.written)
        for description, path in self.written:
            print(f"  {description:<{width}}  {path}")

    def smoke_test_summary(self) -> str:
        """The summary's lines for a ``--quick`` run: a smoke test, not a trained model."""
        return (f"SMOKE TEST (--quick): {_plural(self.history_epochs(), 'epoch')} on "
                f"{QUICK_TRAIN:,} training images. The numbers below show that everything "
                "runs, not what the model learns:\na model trained this briefly is expected to "
                "do badly (a DAE worse than the noisy input, a VAE drawing gray blobs). For the "
                "real run, drop --quick.")

    def blas_summary(self, environment: dict) -> str:
        """Which BLAS, kernels and thread count computed the numbers (as metrics.json's
        environment and settings record them): another count or processor gives slightly
        different ones (README, "Reproducibility")."""
        blas = environment.get("blas") or []
        library = ", ".join(
            " ".join(str(part) for part in (pool.get("library"), pool.get("version")) if part)
            + (f" ({pool['kernels']} kernels)" if pool.get("kernels") else "")
            for pool in blas) or "NumPy's BLAS"
        count = self.args.blas_threads
        if self.args.threads > 1:
            threads, repeat = (f"{self.args.threads} shards (--threads), each with its share "
                               "of the threads", "The same command")
        elif isinstance(count, int):
            threads = _plural(count, "thread")
            repeat = f"The same command with --blas-threads {count}"
        elif count == "adapt":
            return (f"BLAS: {library}, a thread count re-timed during the run (--blas-threads "
                    "adapt).\nAnother run may switch at other steps and differ slightly; "
                    "--blas-threads N repeats a run bit for bit (README: Reproducibility).")
        else:  # resumed from a checkpoint that trained with the BLAS's default
            default = blas[0].get("default_threads") if blas else None
            threads = "the BLAS's default count of threads" + (f" ({default})" if default else "")
            repeat = "The same command"
        return (f"BLAS: {library}, {threads} (metrics.json: environment, settings).\n"
                f"{repeat} repeats these numbers bit for bit on this kind of processor; another "
                "count or processor moves them slightly (README: Reproducibility).")

    def settings(self) -> dict:
        """Every option, as recorded in metrics.json."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.args).items()}

    def resume_config(self) -> dict:
        """The options a checkpoint must agree on to be resumed: all that change the model or
        its training, but not --epochs (resuming with more epochs trains further), where
        files are, --no-fast (the same numbers either way), nor how a finished model is
        evaluated (--eval-k, --eval-images)."""
        where = ("resume", "overwrite", "no_progress", "out", "data_dir", "no_verify", "epochs",
                 "no_fast", "eval_k", "eval_images")
        config = {k: v for k, v in self.settings().items() if k not in where}
        if config.get("blas_threads", "") is None:  # resuming a checkpoint from before it
            del config["blas_threads"]
        if config.get("arch") == "dense":  # as checkpoints from before --arch say it
            del config["arch"], config["channels"]
        if config.get("binarize") == "none":  # as checkpoints from before --binarize say it
            del config["binarize"]
        return config

    def environment(self) -> dict:
        """Python, NumPy, its BLAS, processor and the fast path, recorded in metrics.json."""
        from threadpoolctl import threadpool_info

        blas = [{"library": pool.get("internal_api"), "version": pool.get("version"),
                 "kernels": pool.get("architecture"), "default_threads": pool.get("num_threads")}
                for pool in threadpool_info() if pool.get("user_api") == "blas"]
        return {"python": platform.python_version(), "numpy": np.__version__,
                "machine": platform.machine(), "cores": available_cores(), "blas": blas,
                "fast_path": not self.args.no_fast,
                "numba": version("numba") if numba_available() else None}

    def wrote(self, description: str, path: Path) -> Path:
        """Record a file for the end-of-run summary; returns ``path`` (to pass on as is)."""
        self.written.append((description, Path(path)))
        return Path(path)

    @property
    def seconds(self) -> float:
        """Wall time since the run started."""
        return time.perf_counter() - self.started


def _plural(count: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def duration(seconds: float) -> str:
    """A time for a person: ``0.4 s``, ``12 s``, ``5.4 min``, ``1 h 05 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"
