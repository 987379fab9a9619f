"""The docs cannot rot: their code runs, their references resolve, the API is documented.

* Every ```python block of a chapter in docs/ (the numbered chapters and the appendices,
  ``docs/appendix-*.md``) runs, in order, in one namespace per chapter.
* Every relative Markdown link and image in docs/*.md and README.md points at a file that
  exists (and a #anchor at a heading), every repository path written as inline code exists,
  and every ``path.py::name`` reference names a function, class, method or constant that is
  defined in that file. Each chapter from 2 on, and each appendix, cites both library code
  and a test, and docs/README.md links every one of them.
* The numbered chapters teach; figures of one machine's speed live in benchmarks/ (an
  appendix may name such things, without a machine's numbers).
* Every public function and class of npnet (its modules' ``__all__``) and every public
  method of a public class has a docstring.
* The committed figures stay small.
"""

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import npnet

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NUMBERED = sorted(DOCS.glob("[0-9][0-9]-*.md"))
APPENDICES = sorted(DOCS.glob("appendix-*.md"))
CHAPTERS = [*NUMBERED, *APPENDICES]  # an appendix is a chapter without a number
MARKDOWN = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]

SNIPPET = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"([\w./-]+\.py)::([\w.]+)")
# A repository path written as inline code, e.g. `npnet/layers.py` or `docs/figures/x.png`.
# Paths under results/ are what the experiments write, so they are not checked.
REPO_PATH = re.compile(r"`((?:npnet|tests|experiments|docs|benchmarks|\.ci)/[\w./-]*\w)`")


def snippets(chapter: Path) -> list[str]:
    return SNIPPET.findall(chapter.read_text(encoding="utf-8"))


def test_docs_have_chapters_and_a_table_of_contents():
    assert len(NUMBERED) >= 8 and APPENDICES, [c.name for c in CHAPTERS]
    contents = (DOCS / "README.md").read_text(encoding="utf-8")
    for chapter in CHAPTERS:
        assert f"({chapter.name})" in contents, f"docs/README.md does not link {chapter.name}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_snippets_run(chapter, tmp_path, monkeypatch):
    """A chapter's snippets, top to bottom, in one namespace: what a reader would type."""
    code = snippets(chapter)
    if not code:
        pytest.skip(f"{chapter.name} has no python snippets")
    monkeypatch.chdir(tmp_path)  # anything a snippet writes lands in a scratch folder
    namespace = {"__name__": f"docs_{chapter.stem.replace('-', '_')}"}
    for number, source in enumerate(code, start=1):
        compiled = compile(source, f"{chapter.name} snippet {number}", "exec")
        exec(compiled, namespace)


# Words that only one machine's measurements give meaning to (see benchmarks/README.md).
ONE_MACHINE = re.compile(
    r"samples/s|GFLOP|slow mode|fast mode|slow spell|huge page|peak memory", re.IGNORECASE
)


@pytest.mark.parametrize("chapter", NUMBERED, ids=lambda p: p.name)
def test_numbered_chapters_quote_no_machine_speed(chapter):
    text = chapter.read_text(encoding="utf-8")
    found = sorted({match.group(0) for match in ONE_MACHINE.finditer(text)})
    assert not found, f"{chapter.name} talks about one machine's speed: {found}"


def links(markdown: Path) -> list[str]:
    text = markdown.read_text(encoding="utf-8")
    return [target for target in LINK.findall(text)
            if "://" not in target and not target.startswith("mailto:")]


def heading_anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file: lower case, punctuation dropped,
    spaces turned into hyphens."""
    text = re.sub(r"^```.*?^```", "", markdown.read_text(encoding="utf-8"),
                  flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#+\s+(.*?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(markdown):
    """Relative links and images point at existing files, and their #anchors at headings."""
    broken = []
    for target in links(markdown):
        file, _, anchor = target.partition("#")
        path = (markdown.parent / file).resolve() if file else markdown
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
            broken.append(target)
    assert not broken, f"{markdown.relative_to(ROOT)} has broken links: {broken}"


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_exist(markdown):
    text = markdown.read_text(encoding="utf-8")
    missing = sorted({path for path in REPO_PATH.findall(text) if not (ROOT / path).exists()})
    assert not missing, f"{markdown.relative_to(ROOT)} names paths that do not exist: {missing}"


def defined_names(path: Path) -> set[str]:
    """Top-level functions, classes and assignments of a Python file, and ``Class.member``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}.{member.name}")
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(f"{node.name}.{member.target.id}")  # dataclass fields
    return names


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_references_resolve(markdown):
    """``npnet/layers.py::Dense.backward`` and ``tests/test_x.py::test_y`` must exist."""
    text = markdown.read_text(encoding="utf-8")
    cache: dict[str, set[str] | None] = {}
    broken = []
    for file, name in REFERENCE.findall(text):
        if file not in cache:
            path = ROOT / file
            cache[file] = defined_names(path) if path.is_file() else None
        if cache[file] is None:
            broken.append(f"{file} (no such file)")
        elif name not in cache[file]:
            broken.append(f"{file}::{name}")
    assert not broken, f"{markdown.relative_to(ROOT)} cites what does not exist: {broken}"


def test_every_chapter_cites_code_and_tests():
    for chapter in CHAPTERS:
        files = {file for file, _ in REFERENCE.findall(chapter.read_text(encoding="utf-8"))}
        if chapter.name.startswith("01-"):
            continue  # the reading path cites modules, not formulas
        assert any(f.startswith("npnet/") for f in files), f"{chapter.name} cites no npnet code"
        assert any(f.startswith("tests/") for f in files), f"{chapter.name} cites no test"


def public_api():
    """(qualified name, object) for every public function, class and method of npnet."""
    for info in sorted(pkgutil.iter_modules(npnet.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"npnet.{info.name}")
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants such as ACTIVATIONS
            yield f"npnet.{info.name}.{name}", obj, None
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if member.startswith("_"):
                        continue
                    if isinstance(value, staticmethod | classmethod):
                        value = value.__func__
                    if inspect.isfunction(value) or isinstance(value, property):
                        yield f"npnet.{info.name}.{name}.{member}", value, obj


def has_docstring(obj, owner) -> bool:
    if isinstance(obj, property):
        # A property may be documented in the class's numpydoc "Attributes" section.
        name = obj.fget.__name__
        if obj.__doc__ or re.search(rf"\b{name}\b", inspect.getdoc(owner) or ""):
            return True
        return any(  # or by the property it overrides
            isinstance(vars(base).get(name), property) and vars(base)[name].__doc__
            for base in owner.__mro__[1:]
        )
    if owner is not None:
        # A method that overrides a documented one inherits its contract (inspect.getdoc).
        return bool(inspect.getdoc(getattr(owner, obj.__name__)))
    return bool(inspect.getdoc(obj))


def test_public_api_has_docstrings():
    missing = [name for name, obj, owner in public_api() if not has_docstring(obj, owner)]
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_committed_figures_stay_small():
    """A picture beside every hard idea, each small: a clone stays light."""
    figures = sorted((DOCS / "figures").glob("*.png"))
    large = [f"{f.name} ({f.stat().st_size / 1e3:.0f} kB)" for f in figures
             if f.stat().st_size > 150_000]
    assert not large, f"shrink these PNGs below 150 kB: {large}"
    total = sum(f.stat().st_size for f in figures)
    assert total < 1_200_000, f"docs/figures/ holds {total / 1e3:.0f} kB of PNGs; shrink them"


LINKED_REFERENCE = re.compile(r"\[`([\w./-]+\.py)::[\w.]+`\]\(([^)\s#]+)(?:#[^)\s]*)?\)")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_code_references_are_links_a_reader_can_click(chapter):
    """Outside code blocks, every ``path.py::name`` is written as a link to its file, such as
    [`npnet/layers.py::Dense`](../npnet/layers.py), which GitHub turns into the file's page."""
    text = re.sub(r"^```.*?^```", "", chapter.read_text(encoding="utf-8"),
                  flags=re.MULTILINE | re.DOTALL)
    linked = LINKED_REFERENCE.findall(text)
    wrong = [f"{file} -> {target}" for file, target in linked
             if (chapter.parent / target).resolve() != (ROOT / file).resolve()]
    assert not wrong, f"{chapter.name}: links that point at another file: {wrong}"
    bare = len(REFERENCE.findall(text)) - len(linked)
    assert bare == 0, f"{chapter.name}: {bare} code references are not links"
