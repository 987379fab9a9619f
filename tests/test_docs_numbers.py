"""The numbers the docs quote are the numbers npnet computes.

Each test reads a table or a sentence of a chapter, takes the figures out of it, and compares
them with what they describe:

* counts (parameters, multiply-adds, steps, shapes) with npnet's models, built as the
  chapter says, or with the arithmetic the sentence states;
* results of real runs (losses, nats, explained variance) with the committed run summary
  ``docs/figures/run_summary.json``, which ``docs/make_figures.py`` writes from the runs'
  ``metrics.json``, at the precision the chapter prints.

A number edited by hand, a model whose size changes, or a rerun whose summary moves, and the
test names the sentence and both values. Figures that no committed file holds (the numbers
chapters 6 and 8 compute from the runs' ``model.npz``) are not checked here; the chapters give
the command that reproduces them.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from npnet.autoencoder import DenoisingAutoencoder
from npnet.conv import Conv2D, ConvTranspose2D
from npnet.layers import Dense
from npnet.train import BURDA_STAGES
from npnet.vae import VAE

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SUMMARY = json.loads((DOCS / "figures" / "run_summary.json").read_text(encoding="utf-8"))


def chapter(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def number(text: str) -> float:
    """'3,283,753', '51{,}380{,}224', '**6.63**', '1.5 %' -> a number."""
    cleaned = re.sub(r"\{,\}|,|\*|%|\$|\s", "", text)
    return float(cleaned)


def find(text: str, pattern: str) -> tuple[str, ...]:
    """The groups of the one match of ``pattern`` (any whitespace may break a line)."""
    regex = re.compile(pattern.replace(" ", r"\s+"))
    matches = regex.findall(text)
    assert len(matches) == 1, f"expected one match of {pattern!r}, found {len(matches)}"
    found = matches[0]
    return found if isinstance(found, tuple) else (found,)


def table(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def parameters(model) -> int:
    return sum(value.size for value in model.params.values())


def model_of_run(run: str):
    """The model a run of the summary trained, built from the settings it recorded."""
    settings = SUMMARY[run]["settings"]
    shape = dict(hidden=tuple(settings["hidden"]), arch=settings.get("arch", "dense"),
                 channels=tuple(settings.get("channels") or (32, 64)), rng=0)
    if "code" in settings:
        return DenoisingAutoencoder(code=settings["code"], **shape)
    return VAE(latent=settings["latent"], **shape)


def multiply_adds(sequential, width: int) -> int:
    """Multiply-adds of one image's forward products (each weight once per use)."""
    total, h = 0, np.zeros((1, width), np.float32)
    for layer in sequential.layers:
        before, h = h.shape, layer.forward(h)
        if isinstance(layer, Conv2D):
            total += layer.params["W"].size * h.shape[1] * h.shape[2]
        elif isinstance(layer, ConvTranspose2D):
            total += layer.params["W"].size * before[1] * before[2]
        elif isinstance(layer, Dense):
            total += layer.params["W"].size
    return total


def test_number_reads_the_docs_formats():
    assert number("3,283,753") == 3283753
    assert number("51{,}380{,}224") == 51380224
    assert number("**6.63**") == 6.63 and number("7.1 %") == 7.1


# Chapter 9 -----------------------------------------------------------------------------

RESULT_ROWS = {  # the rows of chapter 9's results table, and the run each one reports
    "PCA, 16 components (linear)": None,
    "dense DAE, 784-512-128-16": "dae",
    "conv DAE, 784-conv32-conv64-256-16": "conv_dae",
    "dense VAE, 784-512-256-20": "vae",
    "conv VAE, 784-conv32-conv64-512-20": "conv_vae",
}


def test_chapter_9_results_table_matches_the_models_and_the_run_summary():
    rows = table(chapter("09-convolutions.md"), "| model | epochs | parameters |")
    assert [row[0] for row in rows] == list(RESULT_ROWS)
    for (name, epochs, params, clean, corrupted, elbo), run in zip(rows, RESULT_ROWS.values(),
                                                                    strict=True):
        if run is None:  # PCA: only its error, from the DAE run's summary
            pca = SUMMARY["dae"]["test_squared_error_per_image"]["pca_16_components"]
            assert number(clean) == round(pca, 2), name
            continue
        summary, settings = SUMMARY[run], SUMMARY[run]["settings"]
        # The name's architecture is the run's: 784, the channels, the hidden widths, the code.
        widths = name.split(", ")[1].split("-")
        convs = settings["channels"] if settings.get("arch") == "conv" else []
        code = settings.get("code", settings.get("latent"))
        expected = ["784", *(f"conv{c}" for c in convs), *map(str, settings["hidden"]), str(code)]
        assert widths == expected, (name, expected)
        assert int(epochs) == summary["epochs"], name
        count = parameters(model_of_run(run))
        assert number(params) == count, (name, count)
        if "dae" in run:
            errors = summary["test_squared_error_per_image"]
            assert number(clean) == round(errors["dae_clean_input"], 2), name
            assert number(corrupted) == round(errors["dae_corrupted_input"], 2), name
        else:
            nats = summary["test_nats_per_image"]
            parts = re.fullmatch(r"\**([\d.]+)\** \(([\d.]+) \+ ([\d.]+)\)", elbo)
            total, recon, kl = parts.groups()
            assert float(total) == round(nats["negative_elbo"], 2), name
            assert float(recon) == round(nats["reconstruction"], 2), name
            assert float(kl) == round(nats["kl"], 2), name


def test_chapter_9_conv_dae_layer_table_is_the_model():
    rows = table(chapter("09-convolutions.md"), "| layer | output shape | parameters |")
    rows = [row for row in rows if not row[0].startswith("**")]  # the encoder/decoder headings
    model = DenoisingAutoencoder(arch="conv", rng=0)
    layers, h = [], np.zeros((1, 784), np.float32)
    for layer in model.encoder.layers + model.decoder.layers:
        h = layer.forward(h)
        if layer.params or type(layer).__name__ in ("Reshape", "Flatten"):
            layers.append((type(layer).__name__, h.shape[1:], parameters(layer)))
    assert len(rows) == len(layers)
    for (name, shape, params), (kind, out_shape, count) in zip(rows, layers, strict=True):
        assert re.match(rf"`{kind}[(`]", name), (name, kind)
        sides = tuple(int(v) for v in re.findall(r"\d+", shape))
        assert sides == out_shape, (name, sides, out_shape)
        assert number(params.split("=")[-1]) == count, (name, count)
        if "=" in params:  # the sum written out, such as 3 . 3 . 1 . 32 + 32 = 320, adds up
            terms = params.split("=")[0].strip("$ ").replace(r"\cdot", "*").replace("{,}", "")
            assert re.fullmatch(r"[\d *+]+", terms), terms
            assert eval(terms) == count, (name, terms)  # digits, * and + only


def test_chapter_9_counts_in_the_prose():
    text = chapter("09-convolutions.md")
    dense, conv = DenoisingAutoencoder(rng=0), DenoisingAutoencoder(arch="conv", rng=0)
    ratio, dense_part, total, convolutions = find(
        text, r"The convolutional DAE has ([\d.]+) times fewer parameters than the dense one, "
              r"and three quarters of those it has \(([\d,]+) of ([\d,]+)\) are in the two Dense "
              r"layers beside the code; the four convolutions hold ([\d,]+)")
    layers = conv.encoder.layers + conv.decoder.layers
    in_dense = sum(parameters(layer) for layer in layers if isinstance(layer, Dense))
    in_convs = sum(parameters(layer) for layer in layers
                   if isinstance(layer, Conv2D | ConvTranspose2D))
    assert number(total) == parameters(conv)
    assert number(dense_part) == in_dense and 0.7 < in_dense / parameters(conv) < 0.8
    assert number(convolutions) == in_convs
    assert number(ratio) == round(parameters(dense) / parameters(conv), 1)

    work_dense = multiply_adds(dense.encoder, 784) + multiply_adds(dense.decoder, 16)
    work_conv = multiply_adds(conv.encoder, 784) + multiply_adds(conv.decoder, 16)
    assert 2 < work_conv / work_dense < 3, "more than twice the arithmetic per image"
    second, uses2, first, uses1 = find(
        text, r"the second convolution's ([\d,]+) weights are each used at (\d+) positions, "
              r"the first one's ([\d,]+) at (\d+),")
    conv1, conv2 = [layer for layer in conv.encoder.layers if isinstance(layer, Conv2D)]
    x = np.zeros((1, 28, 28, 1), np.float32)
    out1 = conv1.forward(x)
    out2 = conv2.forward(out1)
    assert number(first) == conv1.params["W"].size and int(uses1) == np.prod(out1.shape[1:3])
    assert number(second) == conv2.params["W"].size and int(uses2) == np.prod(out2.shape[1:3])


def test_chapter_9_settings_and_results_in_the_prose():
    text = chapter("09-convolutions.md")
    conv_dae, conv_vae = SUMMARY["conv_dae"], SUMMARY["conv_vae"]
    dae_width, vae_width = find(
        text, r"by default one, of width (\d+) in the DAE and (\d+) in the VAE")
    assert [int(dae_width)] == conv_dae["settings"]["hidden"]
    assert [int(vae_width)] == conv_vae["settings"]["hidden"]
    lr, = find(text, r"trains with Adam's step at \$([\d.]+) \\cdot 10\^\{-3\}\$")
    assert float(lr) * 1e-3 == conv_vae["settings"]["lr"]
    epochs = find(
        text, r"fewer epochs than the dense models \((\d+) and (\d+) against (\d+) and (\d+)\)")
    assert [int(e) for e in epochs] == [SUMMARY[run]["epochs"]
                                        for run in ("conv_dae", "conv_vae", "dae", "vae")]
    gain, = find(text, r"The VAE's gain is smaller, ([\d.]+) nats")
    elbo = {run: SUMMARY[run]["test_nats_per_image"] for run in ("vae", "conv_vae")}
    assert float(gain) == round(elbo["vae"]["negative_elbo"] - elbo["conv_vae"]["negative_elbo"], 1)
    kl_conv, kl_dense = find(text, r"KL term is slightly \*larger\* \(([\d.]+) against ([\d.]+)\)")
    assert float(kl_conv) == round(elbo["conv_vae"]["kl"], 2)
    assert float(kl_dense) == round(elbo["vae"]["kl"], 2)
    conv_mean, dense_mean = find(text, r"is at most ([\d.]+) per pixel against ([\d.]+):")
    assert float(conv_mean) == round(conv_dae["mean_residual_abs_max"], 3)
    assert float(dense_mean) == round(SUMMARY["dae"]["mean_residual_abs_max"], 3)
    low, high = find(text, r"Each component still explains only ([\d.]+)-([\d.]+)% of the residual")
    ratios = 100 * np.array(conv_dae["residual_pca_explained_variance_ratio"])
    assert (float(low), float(high)) == (round(ratios.min(), 1), round(ratios.max(), 1))


# Chapter 6 -----------------------------------------------------------------------------

def test_chapter_6_squared_errors_and_explained_variance_are_the_runs():
    text, run = chapter("06-denoising-and-residuals.md"), SUMMARY["dae"]
    per_image, per_pixel = run["test_squared_error_per_image"], run["test_squared_error_per_pixel"]
    rows = table(text, "| squared error on the 10,000 test images")
    keys = ["corrupted_input_itself", "dae_corrupted_input", "dae_clean_input", "pca_16_components"]
    assert len(rows) == len(keys)
    for (name, image, pixel), key in zip(rows, keys, strict=True):
        assert number(image) == round(per_image[key], 2), (name, per_image[key])
        assert number(pixel) == float(f"{per_pixel[key]:.3g}"), (name, per_pixel[key])

    summary_line, = find(text, r"\ntest squared error per image: ([^\n]+)\n")
    quoted = dict(item.split() for item in summary_line.split(", "))
    assert {key: float(value) for key, value in quoted.items()} == {
        key: round(value, 2) for key, value in per_image.items()}
    ratios = 100 * np.array(run["residual_pca_explained_variance_ratio"])
    percents, = find(text, r"residual PCs explain ([\d.%, ]+) of the residual variance")
    assert [number(p) for p in percents.split(", ")] == [round(r, 1) for r in ratios]
    for component, percent in re.findall(r"PC (\d) \(([\d.]+) %\)", text):
        assert float(percent) == round(ratios[int(component) - 1], 1), component
    together, = find(text, r"Together the five explain only \*\*([\d.]+) %\*\*")
    assert float(together) == round(ratios.sum(), 1)
    mean, = find(
        text, r"The \*\*mean residual\*\* is the faintest panel: its largest value is ([\d.]+)")
    assert float(mean) == round(run["mean_residual_abs_max"], 3)
    short, long = find(
        text, r"lengths \$\\sqrt\{\\lambda_j\}\$ of ([\d.]+) to ([\d.]+) pixel units")
    lengths = np.sqrt(run["residual_pca_explained_variance"])
    assert (float(short), float(long)) == (round(lengths.min(), 2), round(lengths.max(), 2))
    worse, = find(text, r"The linear baseline with the same code size is ([\d.]+) times worse")
    assert float(worse) == round(per_image["pca_16_components"] / per_image["dae_clean_input"], 1)


# Chapters 7, 8 and 10: the VAE run's negative ELBO ---------------------------------------

ELBO_SENTENCES = [
    ("07-vae.md", r"ends at a test negative ELBO of ([\d.]+) nats per image: reconstruction "
                  r"([\d.]+) plus KL ([\d.]+)\."),
    ("08-latent-interpolation.md", r"test negative ELBO ([\d.]+) nats/image \(reconstruction "
                                   r"([\d.]+) \+ KL ([\d.]+)\)"),
]


@pytest.mark.parametrize(("name", "pattern"), ELBO_SENTENCES, ids=[n for n, _ in ELBO_SENTENCES])
def test_the_vae_runs_negative_elbo_is_quoted_as_the_summary_has_it(name, pattern):
    nats = SUMMARY["vae"]["test_nats_per_image"]
    total, recon, kl = find(chapter(name), pattern)
    assert (float(total), float(recon), float(kl)) == (
        round(nats["negative_elbo"], 2), round(nats["reconstruction"], 2), round(nats["kl"], 2))


def test_the_negative_elbo_quoted_elsewhere():
    nats = SUMMARY["vae"]["test_nats_per_image"]
    elbo = round(nats["negative_elbo"], 2)
    total, = find(chapter("10-likelihoods.md"), r"reported a test negative ELBO of ([\d.]+) nats")
    assert float(total) == elbo
    recon, above = find(chapter("08-latent-interpolation.md"),
                        r"The reconstruction term, ([\d.]+) nats, is about (\d+) nats above "
                        r"the floor of 45.5")
    assert float(recon) == round(nats["reconstruction"], 2)
    assert int(above) == round(nats["reconstruction"] - 45.5)
    kl, = find(chapter("07-vae.md"),
               r"how does it compare with the ([\d.]+) nats per image of the experiment's run")
    assert float(kl) == round(nats["kl"], 2)


# Chapter 3: the entropy floor of gray MNIST ----------------------------------------------

@pytest.mark.skipif(not os.environ.get("NPNET_DATA"), reason="needs the MNIST files (NPNET_DATA)")
def test_chapter_3_entropy_floor_of_the_test_images():
    from npnet.data import load_mnist

    floor, gray, nonzero = find(chapter("03-activations-and-losses.md"),
                                r"this floor is \*\*([\d.]+) nats per image\*\* on average "
                                r"\((\d+) of the (\d+) non-zero pixels")
    x = load_mnist("test")[0].astype(np.float64)
    inner = np.where((x > 0) & (x < 1), x, 0.5)
    bernoulli = -(inner * np.log(inner) + (1 - inner) * np.log(1 - inner))
    entropy = np.where((x > 0) & (x < 1), bernoulli, 0)
    assert float(floor) == round(entropy.sum(axis=1).mean(), 1)
    assert int(nonzero) == round((x > 0).sum(axis=1).mean())
    assert int(gray) == round(((x > 0) & (x < 1)).sum(axis=1).mean())


# Chapter 2 and the appendix: multiply-adds of a Dense layer and of the default DAE -------

def test_chapter_2_multiply_adds_of_the_first_layer():
    count, = find(chapter("02-dense-backprop.md"),
                  r"N D_\{in\} D_\{out\} = 128 \\cdot 784 \\cdot 512 = ([\d{},]+)\$")
    assert number(count) == 128 * 784 * 512


def test_appendix_first_layer_saving():
    saved, total = find(chapter("appendix-fast-path.md"),
                        r"it saves ([\d,]+) of the ([\d,]+) multiply-adds per image of a "
                        r"training step")
    model = DenoisingAutoencoder(rng=0)
    dense = [layer for layer in model.encoder.layers + model.decoder.layers
             if isinstance(layer, Dense)]
    assert number(saved) == dense[0].params["W"].size
    # three products per layer: x W, x^T dout and dout W^T
    assert number(total) == 3 * sum(layer.params["W"].size for layer in dense)
    assert round(number(total) / number(saved)) == 7, "one seventh"


# Chapter 10: Burda et al.'s schedule, stretched over 240 epochs -------------------------

def test_chapter_10_stretched_schedule():
    text = chapter("10-likelihoods.md")
    first_steps, paper_steps, last_epochs, paper_epochs = find(
        text, r"The first stage is now (\d+) steps instead of ([\d,]+), and the last (\d+) epochs "
              r"instead of ([\d,]+)\.")
    stages, steps_per_epoch = np.array(BURDA_STAGES), 60_000 // 20
    assert number(paper_steps) == stages[0] * steps_per_epoch
    assert number(paper_epochs) == stages[-1]
    assert int(first_steps) == round(240 * stages[0] / stages.sum() * steps_per_epoch)
    assert int(last_epochs) == round(240 * stages[-1] / stages.sum())
    logits, = find(text, r"for each of 10,000 images are \$(\d) \\cdot 10\^\{10\}\$ logits")
    assert int(logits) == round(5000 * 784 * 10_000 / 1e10)


LIKELIHOOD_ROWS = {  # the rows of chapter 10's results table, and the run each one reports
    "VAE, 784-200-200-50": "likelihood_vae",
    "IWAE, 784-200-200-50": "likelihood_iwae5",
}


def test_chapter_10_results_table_is_the_runs():
    rows = table(chapter("10-likelihoods.md"), "| model | training objective | epochs |")
    assert [row[0] for row in rows] == list(LIKELIHOOD_ROWS)
    for (name, objective, epochs, nll, stderr, paper, active), run in zip(
            rows, LIKELIHOOD_ROWS.values(), strict=True):
        summary, settings = SUMMARY[run], SUMMARY[run]["settings"]
        widths = name.split(", ")[1].split("-")
        assert widths == ["784", *map(str, settings["hidden"]), str(settings["latent"])], name
        k, = re.findall(r"\\mathcal L_(\d+)", objective)
        assert int(k) == settings["k"], name
        assert ("ELBO" in objective) == (settings["objective"] == "elbo"), name
        assert int(epochs) == summary["epochs"] == settings["epochs"], name
        # The header's "k = 5000, all 10,000 test images"
        assert (summary["eval_k"], summary["eval_images"]) == (5000, 10_000), name
        assert number(nll) == round(summary["test_negative_log_likelihood"], 2), name
        assert number(stderr) == round(summary["standard_error"], 2), name
        assert number(paper) == summary["paper_negative_log_likelihood"], name
        assert int(active) == summary["active_units"], name


def test_chapter_10_prose_quotes_the_runs():
    text = chapter("10-likelihoods.md")
    vae, iwae = SUMMARY["likelihood_vae"], SUMMARY["likelihood_iwae5"]
    nll = {"vae": vae["test_negative_log_likelihood"],
           "iwae": iwae["test_negative_log_likelihood"]}
    behind_vae, behind_iwae = find(
        text, r"the VAE is ([\d.]+) nats behind the paper's fully trained one and the IWAE "
              r"([\d.]+) nats behind its own")
    assert float(behind_vae) == round(nll["vae"] - vae["paper_negative_log_likelihood"], 1)
    assert float(behind_iwae) == round(nll["iwae"] - iwae["paper_negative_log_likelihood"], 1)
    gap, paper_vae, paper_iwae, paper_gap = find(
        text, r"the IWAE is ([\d.]+) nats better than the VAE, close to the gap the paper "
              r"reports between them \(([\d.]+) - ([\d.]+) = ([\d.]+)\)")
    assert float(gap) == round(nll["vae"] - nll["iwae"], 2)
    assert (float(paper_vae), float(paper_iwae)) == (vae["paper_negative_log_likelihood"],
                                                      iwae["paper_negative_log_likelihood"])
    assert float(paper_gap) == round(float(paper_vae) - float(paper_iwae), 2)
    se_iwae, se_vae, se_both = find(
        text, r"\$\\sqrt\{([\d.]+)\^2 \+ ([\d.]+)\^2\} = ([\d.]+)\$")
    assert (float(se_iwae), float(se_vae)) == (round(iwae["standard_error"], 2),
                                               round(vae["standard_error"], 2))
    assert float(se_both) == round(np.hypot(float(se_iwae), float(se_vae)), 2)

    # On the training curve's 1,000 test images: the last bounds, and log p(x) on them.
    images, bound_iwae, bound_vae = find(
        text, r"bounds on the first ([\d,]+) test images ended at ([\d.]+) nats for the "
              r"IWAE's \$-\\mathcal L_5\$ and ([\d.]+) for the VAE's negative ELBO")
    assert number(images) == vae["curve_images"] == iwae["curve_images"]
    assert float(bound_iwae) == round(iwae["final_curve_images_loss"], 2)
    assert float(bound_vae) == round(vae["final_curve_images_loss"], 2)
    curve = {"vae": vae["curve_images_negative_log_likelihood"],
             "iwae": iwae["curve_images_negative_log_likelihood"]}
    on_iwae, off, on_vae, between, on_all = find(
        text, r"On those same images the IWAE's \$k = 5000\$ estimate is ([\d.]+)[\s\S]*?take "
              r"([\d.]+) nats off the 5-sample bound\. The VAE's is ([\d.]+): ([\d.]+) nats "
              r"between the two, against ([\d.]+) on all")
    assert float(on_iwae) == round(curve["iwae"], 2) and float(on_vae) == round(curve["vae"], 2)
    assert float(off) == round(iwae["final_curve_images_loss"] - curve["iwae"], 1)
    assert float(between) == round(curve["vae"] - curve["iwae"], 2)
    assert float(on_all) == round(nll["vae"] - nll["iwae"], 2)
