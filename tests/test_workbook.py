"""The student workbook (npnet/workbook.py): the copy with the gradients left out, and its grading.

One copy of today's core, every piece left out, is made per test session; the tests write
code into its pieces the way a student does (replacing a stub) and run the copy's own
``python -m npnet.workbook grade`` on the pieces they need. Each test puts the copy's core
back as it was made.
"""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from npnet import workbook
from npnet.workbook import BY_NAME, PIECES, choose_pieces, fill_in, left_out, locate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def made(tmp_path_factory):
    """A student copy of today's project with every piece left out (made once)."""
    return workbook.make_workbook(tmp_path_factory.mktemp("workbook") / "student")


@pytest.fixture
def student(made):
    """The session's copy, with its npnet/*.py put back as made after the test."""
    files = {path: path.read_text("utf-8") for path in (made / "npnet").glob("*.py")}
    yield made
    for path, text in files.items():
        path.write_text(text, "utf-8")


def write(root: Path, name: str, code: str) -> None:
    """Replace the stub of piece ``name`` in the copy at ``root`` by ``code``."""
    piece = BY_NAME[name]
    path = root / locate([piece], root)[name]
    path.write_text(fill_in(path.read_text("utf-8"), piece, code), "utf-8")


def put_back(root: Path, name: str) -> None:
    """Write npnet's own code for piece ``name`` into the copy at ``root``."""
    piece = BY_NAME[name]
    original = (ROOT / locate([piece])[name]).read_text("utf-8")
    write(root, name, left_out(original, piece))


def grade(root: Path, *args: str) -> str:
    """The output of the copy's ``python -m npnet.workbook grade ARGS`` (run in the copy)."""
    done = subprocess.run([sys.executable, "-m", "npnet.workbook", "grade", *args], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def formula(name: str, text: str) -> str:
    """The line of npnet's docstring of piece ``name``'s owner that holds ``text``."""
    piece = BY_NAME[name]
    source = (ROOT / locate([piece])[name]).read_text("utf-8")
    doc = ast.get_docstring(workbook.find_definition(ast.parse(source), piece.owner))
    return next(line.strip() for line in doc.splitlines() if text in line)


def lines_under(output: str, name: str) -> list[str]:
    """The lines under piece ``name``'s row of a ``grade --tests`` table: one per test."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[1:2] == [name])
    under = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        under.append(line)
    return under


def result_of(output: str, name: str) -> str:
    """The result column of piece ``name`` in the grading table."""
    for line in output.splitlines():
        fields = line.split(maxsplit=2)
        if len(fields) == 3 and fields[1] == name and fields[0].isdigit():
            return fields[2]
    raise AssertionError(f"no line for {name} in:\n{output}")


# ------------------------------------------------------------------ the pieces


@pytest.mark.parametrize("piece", PIECES, ids=lambda p: p.name)
def test_every_piece_has_its_tests_and_a_chapter_that_derives_it(piece):
    """Each piece is a function of the core with a docstring that names existing tests, and
    its chapter has the section the grading table names."""
    path = locate([piece])[piece.name]
    source = (ROOT / path).read_text("utf-8")
    assert isinstance(workbook.find_definition(ast.parse(source), piece.name), ast.FunctionDef)
    refs = workbook.tested_by(source, piece)
    assert refs and not workbook._missing_tests(ROOT, refs)
    headings = [line.lstrip("#").strip() for line in
                (ROOT / workbook.CHAPTERS[piece.chapter]).read_text("utf-8").splitlines()
                if line.startswith("#")]
    assert piece.section in headings, f"{workbook.CHAPTERS[piece.chapter]}: {headings}"


def test_the_core_carries_no_workbook_markers():
    """The stubs are cut from the syntax tree: nothing in the core points at the workbook."""
    core = [path for path in (ROOT / "npnet").glob("*.py") if path.stem != "workbook"
            and path.stem not in ("data", "io", "train", "analysis", "plotting", "cli",
                                  "__init__")]
    assert len(core) >= 10
    for path in core:
        text = path.read_text("utf-8")
        assert "workbook" not in text and "not yet written" not in text, path.name


# ------------------------------------------------------------------ making the copy


def test_the_copy_leaves_every_piece_out_and_keeps_its_docstring(made):
    assert sorted(p.name for p in workbook.handed_out(made)) == sorted(BY_NAME)
    for piece in PIECES:
        path = locate([piece], made)[piece.name]
        copy = (made / path).read_text("utf-8")
        original = (ROOT / path).read_text("utf-8")
        assert workbook.is_stub(copy, piece) and not workbook.is_stub(original, piece)
        function = workbook.find_definition(ast.parse(copy), piece.name)
        before = workbook.find_definition(ast.parse(original), piece.name)
        assert ast.get_docstring(function) == ast.get_docstring(before)
        assert ast.get_docstring(workbook.find_definition(ast.parse(copy), piece.owner)) == \
            ast.get_docstring(workbook.find_definition(ast.parse(original), piece.owner))
    layers = (made / "npnet" / "layers.py").read_text("utf-8")
    assert "dL/dW = x^T dout" in layers and "x.T @ dout" not in layers
    losses = (made / "npnet" / "losses.py").read_text("utf-8")
    assert "loss = float(np.sum(diff**2)) / n" in losses  # the value stays, the gradient goes
    assert "(2 / n) * diff" not in losses
    assert "python -m npnet.workbook grade" in (made / "README.md").read_text("utf-8")
    for name in ("setup.py", "pyproject.toml", "tests/conftest.py", "experiments/dae_mnist.py",
                 "docs/02-dense-backprop.md", "npnet/fast/__init__.py"):
        assert (made / name).is_file(), name


def test_the_copys_experiments_train_without_the_fast_path(made):
    """--no-fast is the copy's default: the fast path computes Dense's and Adam's products
    with its own code, which would bypass the student's."""
    tree = ast.parse((made / "npnet" / "cli.py").read_text("utf-8"))
    option = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and node.args and isinstance(node.args[0], ast.Constant)
                  and node.args[0].value == "--no-fast")
    assert {k.arg: ast.literal_eval(k.value) for k in option.keywords}["default"] is True


@pytest.mark.skipif(not os.environ.get("NPNET_DATA"),
                    reason="set NPNET_DATA to the folder with the MNIST files")
def test_the_copys_dae_trains_on_the_students_code(student, tmp_path):
    """With every piece of the DAE but Dense.backward written, the copy's DAE stops at its
    first step, saying that Dense.backward is not yet written; with it and Adam written, one
    quick epoch trains."""
    def quick_dae(out):
        env = {**os.environ, "PYTHONPATH": str(student)}  # the copy's npnet, not this one
        return subprocess.run([sys.executable, "experiments/dae_mnist.py", "--quick",
                               "--no-progress", "--blas-threads", "1", "--out", str(out)],
                              cwd=student, env=env, capture_output=True, text=True, timeout=300)

    for name in ("mse_loss", "Sequential.backward", "ReLU.backward", "Sigmoid.backward"):
        put_back(student, name)
    stopped = quick_dae(tmp_path / "stopped")
    assert stopped.returncode != 0
    assert "Dense.backward is not yet written" in stopped.stdout + stopped.stderr
    for name in ("Dense.backward", "Adam._update"):
        put_back(student, name)
    trained = quick_dae(tmp_path / "trained")
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "trained" / "metrics.json").is_file()


def test_chapter_and_only_choose_the_pieces_left_out(tmp_path):
    pieces = choose_pieces([2], ["Adam._update"])
    assert [p.name for p in pieces] == ["Dense.backward", "Sequential.backward", "Adam._update"]
    copy = workbook.make_workbook(tmp_path / "chapter2", pieces)
    assert [p.name for p in workbook.handed_out(copy)] == [p.name for p in pieces]
    for piece in PIECES:
        source = (copy / locate([piece], copy)[piece.name]).read_text("utf-8")
        assert workbook.is_stub(source, piece) == (piece in pieces), piece.name
    for module in ("conv", "vae", "importance", "patches", "checks", "gradcheck"):
        assert (copy / f"npnet/{module}.py").read_bytes() == \
            (ROOT / f"npnet/{module}.py").read_bytes()


@pytest.mark.parametrize("argv, message", [
    (["--chapter", "4"], "chapter 4 has no piece to write"),
    (["--chapter", "11"], "there is no chapter 11"),
    (["--only", "Dense.backwards"], "did you mean Dense.backward"),
])
def test_unknown_chapters_and_pieces_are_refused(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        workbook.main(["make", str(tmp_path / "copy"), *argv])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "copy").exists()


def test_a_folder_with_files_is_refused_and_nothing_in_it_is_replaced(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    with pytest.raises(SystemExit):
        workbook.main(["make", str(folder), "--chapter", "2"])
    assert "is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --force, but the copy has a README.md too
        workbook.main(["make", str(folder), "--chapter", "2", "--force"])
    assert "never replaces a file" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["README.md"]
    assert (folder / "README.md").read_text() == "my notes"
    (folder / "README.md").rename(folder / "notes.txt")
    assert workbook.main(["make", str(folder), "--chapter", "2", "--force"]) == 0
    assert (folder / "notes.txt").read_text() == "my notes"
    assert (folder / "npnet" / "layers.py").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine.")]  # no leftovers


# ------------------------------------------------------------------ grading


def test_todays_workbook_has_every_piece_not_yet_written(made):
    """Every piece is "not yet written", and its own tests really stop in its stub."""
    output = grade(made, "--tests")
    for i, piece in enumerate(PIECES):
        assert result_of(output, piece.name) == "not yet written"
        # Its tests stop in its stub, or in that of a piece it needs, which comes before it.
        stops = [line.split("stopped in ")[1].split(",")[0]
                 for line in lines_under(output, piece.name) if "stopped in" in line]
        assert stops and set(stops) <= {p.name for p in PIECES[: i + 1]}, (piece.name, stops)
    assert "stopped in Reparameterize.backward" not in output  # kl_divergence comes first
    assert "0 of 16 pieces pass" in output
    assert "Next: Dense.backward (npnet/layers.py), chapter 2" in output


def test_putting_npnets_own_code_back_passes_every_piece(student):
    for piece in PIECES:
        put_back(student, piece.name)
    output = grade(student)
    for piece in PIECES:
        assert result_of(output, piece.name) == "passed", output
    assert "16 of 16 pieces pass" in output


DENSE_WITH_EINSUM_AND_A_LOOP = """
x = self.cache
dout = np.asarray(dout, dtype=self.dtype)
self.grads["W"] = np.einsum("ni,no->io", x, dout)
self.grads["b"] = np.zeros(self.out_features, self.dtype)
for row in dout:  # the sum over the batch, one example at a time
    self.grads["b"] += row
return np.einsum("no,io->ni", dout, self.params["W"])
"""

ADAM_IN_THE_PAPERS_EFFICIENT_FORM = """
if self.weight_decay:
    grad = grad + self.weight_decay * param
state, t = self._state_of(name), self.steps
state["m"] += (1 - self.beta1) * (grad - state["m"])
state["v"] += (1 - self.beta2) * (grad * grad - state["v"])
correction = np.sqrt(1 - self.beta2**t)
step = self.lr * correction / (1 - self.beta1**t)
param -= step * state["m"] / (np.sqrt(state["v"]) + self.eps * correction)
"""

CONV2D_AS_A_LOOP_OVER_OUTPUT_PIXELS = """
cols, (n, h, w, c) = self.cache
k, s, p = self.kernel_size, self.stride, self.padding
ho, wo, f = self.output_shape(h, w)
patches = cols.reshape(n, ho, wo, k, k, c)
W = self.params["W"]
dW, dxp = np.zeros_like(W), np.zeros((n, h + 2 * p, w + 2 * p, c), self.dtype)
for r in range(ho):
    for q in range(wo):
        g = dout[:, r, q, :]  # (N, F)
        dW += np.einsum("nijc,nf->ijcf", patches[:, r, q], g)
        dxp[:, r * s : r * s + k, q * s : q * s + k, :] += np.einsum("ijcf,nf->nijc", W, g)
self.grads["W"] = dW
self.grads["b"] = dout.sum(axis=(0, 1, 2))
return dxp[:, p : p + h, p : p + w, :]
"""


def test_correct_code_written_differently_passes(student):
    """einsum and a loop for Dense; Adam with the bias correction folded into the step size
    (Kingma and Ba's section 2); Conv2D one output pixel at a time."""
    write(student, "Dense.backward", DENSE_WITH_EINSUM_AND_A_LOOP)
    write(student, "Adam._update", ADAM_IN_THE_PAPERS_EFFICIENT_FORM)
    write(student, "Conv2D.backward", CONV2D_AS_A_LOOP_OVER_OUTPUT_PIXELS)
    put_back(student, "SGD._update")  # test_adam_refuses_float16_parameters builds an SGD too
    output = grade(student, "--only", "Dense.backward", "--only", "Adam._update",
                   "--only", "Conv2D.backward")
    for name in ("Dense.backward", "Adam._update", "Conv2D.backward"):
        assert result_of(output, name) == "passed", output


def dense_with(weight: str, bias: str) -> str:
    return f"""
x = self.cache
self.grads["W"] = {weight}
self.grads["b"] = {bias}
return dout @ self.params["W"].T
"""


ADAM_WITHOUT_BIAS_CORRECTION = """
state = self._state_of(name)
m, v = state["m"], state["v"]
m[...] = self.beta1 * m + (1 - self.beta1) * grad
v[...] = self.beta2 * v + (1 - self.beta2) * grad**2
param -= self.lr * m / (np.sqrt(v) + self.eps)
"""

KL_GRADIENT_WITHOUT_ONE_HALF = """
dkl = float(dkl) if np.ndim(dkl) == 0 else np.asarray(dkl)[:, None]
return dkl * mu, dkl * (np.exp(logvar) - 1)
"""

# npnet's Conv2D.backward with the kernel used as it is where the flipped kernel belongs: for
# stride 1, dL/dx is the full convolution of dout with W rotated by 180 degrees.
CONV2D_WITHOUT_THE_FLIPPED_KERNEL = """
cols, (n, h, w, c) = self.cache
k, p = self.kernel_size, self.padding
ho, wo, f = self.output_shape(h, w)
d = dout.reshape(-1, f)
self.grads["W"] = (cols.T @ d).reshape(self.params["W"].shape)
self.grads["b"] = d.sum(axis=0)
unflipped = self.params["W"][::-1, ::-1].reshape(k * k * c, f)
dxp = col2im((d @ unflipped.T).reshape(n, ho, wo, k, k, c), (h + 2 * p, w + 2 * p), self.stride)
return crop(dxp, p)
"""


@pytest.mark.parametrize("name, code, expected, formula_text", [
    pytest.param("Dense.backward", dense_with("dout.T @ x", "dout.sum(axis=0)"),
                 ["test_dense_gradients", "dL/dW has shape"], "dL/dW =",
                 id="transposed-weight-gradient"),
    pytest.param("Dense.backward", dense_with("x.T @ dout", "dout"),
                 ["test_dense_gradients", "dL/db has shape"], "dL/db =",
                 id="bias-gradient-without-the-batch-sum"),
    pytest.param("kl_divergence_backward", KL_GRADIENT_WITHOUT_ONE_HALF,
                 ["test_kl_divergence_gradients", "wrong: dL/dlogvar", "right: mu"],
                 "dL/dlogvar_nj =", id="kl-gradient-without-one-half"),
    pytest.param("Adam._update", ADAM_WITHOUT_BIAS_CORRECTION,
                 ["test_adam_by_hand[Adam]", "test_adam_first_step_moves_by_lr[Adam]"],
                 "(bias correction)", id="adam-without-bias-correction"),
    pytest.param("Conv2D.backward", CONV2D_WITHOUT_THE_FLIPPED_KERNEL,
                 ["test_conv2d_gradients", "wrong: dL/dx", "right: W, b"], "dL/dx =",
                 id="convolution-backward-without-the-flipped-kernel"),
])
def test_typical_mistakes_fail_and_point_at_the_formula(student, name, code, expected,
                                                        formula_text):
    """Each mistake fails its gradient check (or the update computed by hand), and the
    table names the test, the wrong gradient, and shows the docstring's line of the formula."""
    write(student, name, code)
    needed = {"Adam._update": "SGD._update", "kl_divergence_backward": "kl_divergence"}
    if name in needed:  # what the piece's tests use besides it
        put_back(student, needed[name])
    output = grade(student, "--only", name)
    assert result_of(output, name) == "FAILED", output
    piece = BY_NAME[name]
    assert f"{name} FAILED (derived in {piece.where_derived})" in output
    assert f"the formula, in the docstring of {piece.owner}:" in output
    for text in [*expected, formula(name, formula_text)]:
        assert text in output, output
    assert "Traceback" not in output


def test_a_piece_that_uses_an_unwritten_piece_says_which(student):
    """Sequential.backward, written, is graded by a check through Dense and Sigmoid layers:
    while they are not yet written, the table says that it needs them."""
    write(student, "Sequential.backward", """
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout
    """)
    output = grade(student, "--only", "Sequential.backward")
    assert result_of(output, "Sequential.backward") == "needs Sigmoid.backward first"
    put_back(student, "Sigmoid.backward")
    output = grade(student, "--only", "Sequential.backward")
    assert result_of(output, "Sequential.backward") == "needs Dense.backward first"
    assert "Next: Sequential.backward" in output


def test_grading_shows_the_error_and_the_line_of_code_that_raised_it(student):
    write(student, "Tanh.backward", "return dout * (1 - self.cahce**2)\n")
    output = grade(student, "--only", "Tanh.backward")
    assert result_of(output, "Tanh.backward") == "FAILED"
    assert "AttributeError: 'Tanh' object has no attribute 'cahce'" in output
    assert "raised at npnet/layers.py:" in output and "self.cahce**2" in output


def test_a_written_piece_passes_in_a_chapter_copy(tmp_path):
    """The first step of docs/workbook.md: a copy of chapter 2, Dense.backward written from
    the chapter's formulas, graded: passed, while Sequential.backward is not yet written."""
    copy = workbook.make_workbook(tmp_path / "chapter2", choose_pieces([2]))
    write(copy, "Dense.backward", textwrap.dedent("""
        x = self.cache
        self.grads["W"] = x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T
    """))
    output = grade(copy)
    assert result_of(output, "Dense.backward") == "passed"
    assert result_of(output, "Sequential.backward") == "not yet written"
    assert "1 of 2 pieces pass" in output
