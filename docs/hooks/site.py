"""MkDocs hook: the docs/ chapters, unchanged, as a site (see mkdocs.yml).

What the build adds to the Markdown as it is read on a code host:

* **The API reference**: one page per npnet module, ``api/<module>.md``, whose body is
  mkdocstrings' ``::: npnet.module`` (the docstrings, with each object's source).
* **Source pages** for the other repository files the chapters and docstrings link to (the
  tests, the experiment scripts, the worked solutions, benchmarks/README.md):
  ``source/<path>.md``, the file's text highlighted, one heading per top-level function or
  class so that ``tests/test_x.py::test_y`` has somewhere to land.
* **Links**: a chapter's ``[`npnet/layers.py::Dense.backward`](../npnet/layers.py)`` points,
  on a code host, at the file; on the site it points at
  ``api/layers.md#npnet.layers.Dense.backward``.
  Links to tests, scripts and solutions go to their source pages. The chapters keep their
  relative links; they are rewritten here, as each page is read.
* **Math**: every ``$...$`` and ```` ```math ```` block, which pymdownx.arithmatex marks,
  is turned into MathML by pandoc (pypandoc-binary) when the page is built, so the site
  needs no script and no network to show a formula. A formula pandoc cannot convert fails
  the build; so does a formula left unconverted.
"""

from __future__ import annotations

import ast
import html
import json
import logging
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.npnet")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "npnet"

# The API reference in the README's order: the teaching core, the plumbing, the fast path.
CORE = ["layers", "losses", "optim", "autoencoder", "reparameterize", "vae", "importance",
        "patches", "conv", "gradcheck", "checks"]
PLUMBING = ["data", "train", "analysis", "plotting", "io", "cli", "workbook"]

# Repository files outside docs/ that get a source page even if no chapter links them (the
# docstrings' "Tested by" lines link the tests).
SOURCE_GLOBS = ["tests/*.py", "experiments/*.py", "benchmarks/README.md",
                "docs/diagrams.py", "docs/make_figures.py"]
SOLUTIONS = DOCS / "solutions"  # all on one page, source/docs/solutions/index.md

FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,}).*?^\1\2[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"(?P<label>!?\[(?:[^\[\]]|\[[^\]]*\])*\])"
                  r"\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"`([\w./-]+\.(?:py|md))::([\w.]+)`")


# ---------------------------------------------------------------------------- pages

def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def api_uri(path: Path) -> str:
    """docs-relative path of the API page of npnet/<...>.py."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    if rel.name == "__init__":
        rel = rel.parent / "index"
    return f"api/{rel.as_posix()}.md"


def source_uri(rel: str) -> str:
    return f"source/{rel}.md"


def api_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
                  and p.name != "__main__.py")


def api_page(path: Path) -> str:
    name = module_name(path)
    if name == "npnet":
        rows = "\n".join(
            f"| [`{m.relative_to(ROOT).as_posix()}`]"
            f"({Path(api_uri(m)).relative_to('api').as_posix()}) | {first_line(m)} |"
            for m in api_modules() if m != path)
        return (f"# API reference\n\nnpnet's public functions and classes, from their docstrings: "
                f"the formulas with their shapes, the tests that prove them, and each object's "
                f"source (unfold *Source code*). The same text is in the code; "
                f"`help(npnet.layers.Dense)` prints it.\n\n| module | what it holds |\n"
                f"| --- | --- |\n{rows}\n")
    return f"::: {name}\n"


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ").replace("|", "\\|")


def top_level_names(text: str) -> list[tuple[int, str]]:
    """(line index, name) of each top-level function and class of a Python file."""
    tree = ast.parse(text)
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            out.append((first - 1, node.name))
    return out


def source_page(rel: str) -> str:
    text = (ROOT / rel).read_text(encoding="utf-8")
    language = {".py": "python", ".md": "markdown"}.get(Path(rel).suffix, "text")
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    # Searching finds the chapters and the API; the code of the tests, scripts and
    # solutions would triple the index that each page's search loads.
    head = (f"---\nsearch:\n  exclude: true\n---\n\n# `{rel}`\n\n"
            f"The source of `{rel}`, as the chapters and the docstrings cite it. "
            f"{_run_hint(rel)}\n\n")
    if language != "python":
        return head + f"{fence}{language}\n{text}\n{fence}\n"
    lines = text.split("\n")
    starts: list[tuple[int, str | None]] = [(0, None)]
    for line, name in top_level_names(text):
        # the comments just above a definition belong to it
        while line > starts[-1][0] and lines[line - 1].lstrip().startswith("#"):
            line -= 1
        starts.append((line, name))
    ends = [s for s, _ in starts[1:]] + [len(lines)]
    body = []
    for (start, name), end in zip(starts, ends, strict=True):
        code = "\n".join(lines[start:end]).strip("\n")
        if name is not None:
            body.append(f"## `{name}` {{#{rel}::{name}}}\n")
        if code:
            body.append(f'{fence}python linenums="{start + 1}"\n{code}\n{fence}\n')
    return head + "\n".join(body)


def _run_hint(rel: str) -> str:
    if rel.startswith("tests/"):
        return f"Run it with `python -m pytest {rel}`."
    if rel.startswith(("experiments/", "docs/solutions/")):
        return f"Run it with `python {rel}`."
    return ""


def solutions_index() -> str:
    """The worked solutions, one section each (a chapter's link lands on its section)."""
    sections = []
    for path in sorted(SOLUTIONS.glob("*.py")):
        text = path.read_text(encoding="utf-8").strip("\n")
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
        sections.append(f"## `{path.name}` {{#{path.name}}}\n\n{first_line(path)} "
                        f"Run it with `python docs/solutions/{path.name}`.\n\n"
                        f"{fence}python\n{text}\n{fence}\n")
    return ("---\nsearch:\n  exclude: true\n---\n\n# Worked solutions\n\nThe worked "
            "solutions of the chapters' exercises. Each is a script that checks its own answer; "
            "`tests/test_solutions.py` runs them all.\n\n" + "\n".join(sections))


def source_files() -> list[str]:
    found = {p.relative_to(ROOT).as_posix() for pattern in SOURCE_GLOBS for p in ROOT.glob(pattern)}
    for page in DOCS.glob("*.md"):  # and whatever else a chapter links outside docs/
        for target in chapter_link_targets(page):
            path = (page.parent / target).resolve()
            outside = not path.is_relative_to(DOCS) and not path.is_relative_to(PACKAGE)
            if path.is_file() and outside:
                found.add(path.relative_to(ROOT).as_posix())
    return sorted(found)


def chapter_link_targets(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    targets = [m.group("target") for m in LINK.finditer(text)]
    return [t.partition("#")[0] for t in targets
            if "://" not in t and not t.startswith(("#", "mailto:"))]


def on_config(config, **kwargs):
    nav = config.nav
    api = [{"Overview": "api/index.md"}]
    api.append({"The teaching core": [{f"npnet.{m}": f"api/{m}.md"} for m in CORE]})
    api.append({"The plumbing": [{f"npnet.{m}": f"api/{m}.md"} for m in PLUMBING]})
    fast = [{f"npnet.fast{'' if p.name == '__init__.py' else '.' + p.stem}": api_uri(p)}
            for p in sorted((PACKAGE / "fast").glob("*.py"))
            if p.name != "__main__.py"]
    fast.sort(key=lambda d: next(iter(d)) != "npnet.fast")
    api.append({"The fast path": fast})
    listed = set(CORE + PLUMBING)
    rest = [p for p in PACKAGE.glob("*.py") if p.stem not in listed and p.name != "__init__.py"
            and p.name != "__main__.py"]
    if rest:  # a new module is in the reference even before it is put in a group
        api.append({"Other modules": [{f"npnet.{p.stem}": api_uri(p)} for p in sorted(rest)]})
    nav.append({"API reference": api})
    groups: dict[str, list] = {"Tests": [], "Experiments": [], "Other files": []}
    for rel in source_files():
        group = ("Tests" if rel.startswith("tests/") else
                 "Experiments" if rel.startswith("experiments/") else "Other files")
        groups[group].append({Path(rel).name: source_uri(rel)})
    sources = [{"Worked solutions": "source/docs/solutions/index.md"}]
    nav.append({"Source files": sources + [{k: v} for k, v in groups.items() if v]})
    return config


def on_files(files, config, **kwargs):
    """Add the generated pages (in memory: nothing is written into docs/)."""
    for path in api_modules():
        files.append(File.generated(config, api_uri(path), content=api_page(path)))
    for rel in source_files():
        files.append(File.generated(config, source_uri(rel), content=source_page(rel)))
    files.append(File.generated(config, "source/docs/solutions/index.md",
                                content=solutions_index()))
    return files


# ---------------------------------------------------------------------------- links

@lru_cache(maxsize=1)
def package_tree():
    import griffe

    return griffe.load("npnet", search_paths=[str(ROOT)], resolve_aliases=False)


def npnet_anchor(module: str, dotted: str) -> str:
    """The id of the deepest object of ``module.dotted`` that the API page shows."""
    obj = package_tree()[module.removeprefix("npnet.")] if module != "npnet" else package_tree()
    anchor = ""
    for part in dotted.split("."):
        member = obj.members.get(part)
        if member is None or member.is_alias or part.startswith("_"):
            break
        obj = member
        anchor = obj.path
    return anchor


def site_target(page_file: Path, target: str, label: str) -> str | None:
    """Where a chapter's link goes on the site, as a path relative to the page's source
    (MkDocs then turns .md into URLs and checks them); None to leave it as it is."""
    file, _, anchor = target.partition("#")
    if not file or "://" in file or file.startswith("mailto:"):
        return None
    path = (page_file.parent / file).resolve()
    reference = REFERENCE.search(label)
    if path.is_relative_to(PACKAGE) and path.suffix == ".py":
        new = api_uri(path)
        if reference and not anchor:
            anchor = npnet_anchor(module_name(path), reference.group(2))
    elif path == SOLUTIONS:
        new = "source/docs/solutions/index.md"
    elif path.parent == SOLUTIONS and path.suffix == ".py":
        new = "source/docs/solutions/index.md"
        anchor = anchor or path.name
    elif path.is_relative_to(DOCS) and path.suffix != ".py":
        return None
    elif path.is_file():
        rel = path.relative_to(ROOT).as_posix()
        new = source_uri(rel)
        if reference and not anchor and path.suffix == ".py":
            name = reference.group(2).split(".")[0]
            if name in {n for _, n in top_level_names(path.read_text(encoding="utf-8"))}:
                anchor = f"{rel}::{name}"
    else:
        return None
    page_dir = page_file.parent.relative_to(DOCS)
    relative = Path(*[".."] * len(page_dir.parts), new).as_posix()
    return relative + (f"#{anchor}" if anchor else "")


def rewrite_links(markdown: str, page_file: Path) -> str:
    def link(match: re.Match) -> str:
        new = site_target(page_file, match.group("target"), match.group("label"))
        if new is None:
            return match.group(0)
        return f"{match.group('label')}({new}{match.group('title') or ''})"

    out, last = [], 0
    for fence in FENCE.finditer(markdown):
        out.append(LINK.sub(link, markdown[last:fence.start()]))
        out.append(fence.group(0))
        last = fence.end()
    out.append(LINK.sub(link, markdown[last:]))
    return "".join(out)


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.generated_by:
        return markdown
    markdown = fold_details(indent_list_continuations(markdown))
    return rewrite_links(markdown, Path(page.file.abs_src_path))


LIST_ITEM = re.compile(r"^(?:\d+\.|[*+-])[ ]+(?=\S)")


def indent_list_continuations(markdown: str) -> str:
    """A code host continues a list item (``1. `` or ``* ``) with any line indented as far
    as the item's text (3 or 2 spaces); Python-Markdown wants 4. Indent the continuation
    of each top-level item to 4, so an exercise's paragraphs, code and answer stay in it."""
    out = []
    shift = 0
    for line in markdown.split("\n"):
        item = LIST_ITEM.match(line)
        if item:
            shift = max(0, 4 - item.end())
        elif line.strip() and not line[:1].isspace():
            shift = 0  # anything unindented ends the list
        elif shift and line.strip():
            line = " " * shift + line
        out.append(line)
    return "\n".join(out)


DETAILS = re.compile(r"^(?P<indent>[ \t]*)<details><summary>(?P<title>.*?)</summary>[ \t]*\n"
                     r"(?P<body>.*?)^[ \t]*</details>[ \t]*$", re.MULTILINE | re.DOTALL)


def fold_details(markdown: str) -> str:
    """The exercises' answers fold away in ``<details>``, whose content a code host reads as
    Markdown but Python-Markdown does not (in a list item): make them pymdownx.details'
    ``??? question "Answer"`` blocks, which fold the same way and render their math."""
    def fold(match: re.Match) -> str:
        indent = match.group("indent")
        lines = []
        for line in match.group("body").split("\n"):
            if line.strip():
                line = line[len(indent):] if line.startswith(indent) else line.lstrip()
                lines.append(f"{indent}    {line}")
            else:
                lines.append("")
        title = match.group("title").replace('"', "'")
        return f'{indent}??? question "{title}"\n\n' + "\n".join(lines).rstrip() + "\n"
    return DETAILS.sub(fold, markdown)


# ---------------------------------------------------------------------------- math

# What pymdownx.arithmatex (generic mode) leaves in the HTML.
INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.DOTALL)
DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.DOTALL)


@lru_cache(maxsize=1)
def pandoc() -> tuple[str, list]:
    try:
        import pypandoc
    except ImportError as error:
        raise PluginError("the docs need pypandoc-binary: pip install -e '.[docs]'") from error
    path = pypandoc.get_pandoc_path()
    api = json.loads(subprocess.run([path, "-f", "markdown", "-t", "json"], input="",
                                    capture_output=True, text=True, check=True).stdout)
    return path, api["pandoc-api-version"]


def to_mathml(formulas: list[tuple[str, str]], where: str) -> list[str]:
    """MathML for each (kind, TeX), kind "InlineMath" or "DisplayMath": one pandoc run for
    all the formulas of a page."""
    if not formulas:
        return []
    path, api = pandoc()
    doc = {"pandoc-api-version": api, "meta": {}, "blocks": [
        {"t": "Para", "c": [{"t": "Math", "c": [{"t": kind}, tex]}]} for kind, tex in formulas]}
    run = subprocess.run([path, "-f", "json", "-t", "html", "--mathml", "--wrap=none"],
                         input=json.dumps(doc), capture_output=True, text=True)
    if run.returncode or "WARNING" in run.stderr:
        raise PluginError(f"{where}: pandoc cannot render a formula:\n{run.stderr}")
    out = re.findall(r"<p>(.*?)</p>", run.stdout, re.DOTALL)
    if len(out) != len(formulas):
        raise PluginError(f"{where}: {len(formulas)} formulas in, {len(out)} out of pandoc")
    for (_, tex), mathml in zip(formulas, out, strict=True):
        if not mathml.startswith("<math") or not mathml.endswith("</math>"):
            raise PluginError(f"{where}: pandoc left this formula as TeX: {tex}")
    return out


def render_math(content: str, where: str) -> tuple[str, int, int]:
    spans = [(m.start(), m.end(), "InlineMath", m.group(1)) for m in INLINE.finditer(content)]
    spans += [(m.start(), m.end(), "DisplayMath", m.group(1)) for m in DISPLAY.finditer(content)]
    spans.sort()
    mathml = to_mathml([(kind, html.unescape(tex)) for _, _, kind, tex in spans], where)
    out, last = [], 0
    for (start, end, kind, _), formula in zip(spans, mathml, strict=True):
        out.append(content[last:start])
        if kind == "DisplayMath":
            out.append(f'<div class="math-display">{formula}</div>')
        else:
            out.append(formula)
        last = end
    out.append(content[last:])
    content = "".join(out)
    if re.search(r'<(?:span|div) class="arithmatex">', content):
        raise PluginError(f"{where}: a formula was left unconverted")
    inline = sum(kind == "InlineMath" for *_, kind, _ in spans)
    return content, inline, len(spans) - inline


MATH_COUNTS: dict[str, tuple[int, int]] = {}


def on_page_content(html_content, page, config, files, **kwargs):
    # The API's source listings fold away, and stay out of the search index.
    html_content = html_content.replace('<details class="mkdocstrings-source"',
                                        '<details class="mkdocstrings-source" data-search-exclude')
    content, inline, display = render_math(html_content, page.file.src_uri)
    MATH_COUNTS[page.file.src_uri] = (inline, display)
    return content


def on_post_build(config, **kwargs):
    """Write how many formulas each page has (site/math-counts.json, read by the tests)."""
    total_inline = sum(i for i, _ in MATH_COUNTS.values())
    total_display = sum(d for _, d in MATH_COUNTS.values())
    summary = {"pages": dict(sorted(MATH_COUNTS.items())),
               "inline": total_inline, "display": total_display}
    Path(config.site_dir, "math-counts.json").write_text(json.dumps(summary, indent=1))
    log.info("math: %d inline formulas and %d display blocks rendered to MathML",
             total_inline, total_display)
    MATH_COUNTS.clear()
