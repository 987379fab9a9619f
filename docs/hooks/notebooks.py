"""Every chapter as a Jupyter notebook, generated from its Markdown (nothing is committed).

    python docs/hooks/notebooks.py                 # all chapters -> notebooks/*.ipynb
    python docs/hooks/notebooks.py --out DIR docs/07-vae.md

Each top-level ```` ```python ```` block of a chapter becomes a code cell, in order (the
blocks tests/test_docs.py runs, one namespace per chapter, so they run top to bottom); the
text between them becomes Markdown cells, with the ```` ```math ```` blocks as ``$$``
(which Jupyter renders), the figures embedded as attachments (the notebook stands alone),
links to other chapters pointing at their notebooks, and the other relative links
re-pointed from the notebook's folder. Open one with ``jupyter lab notebooks/`` (or VS
Code), or download it from the chapter's page on the site.

As an MkDocs hook (mkdocs.yml), it puts the notebooks into the site, at
``notebooks/<chapter>.ipynb``, and links each chapter's page to its notebook.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# The blocks tests/test_docs.py runs: ```python at the start of a line.
SNIPPET = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MATH = re.compile(r"^(?P<indent>[ \t]*)```math[ \t]*\n(?P<tex>.*?)^(?P=indent)```[ \t]*$",
                  re.MULTILINE | re.DOTALL)
LINK = re.compile(r"(?P<bang>!?)(?P<label>\[(?:[^\[\]]|\[[^\]]*\])*\])\((?P<target>[^)\s]+)\)")


def chapters() -> list[Path]:
    """The numbered chapters and the appendices, in reading order."""
    return [*sorted(DOCS.glob("[0-9][0-9]-*.md")), *sorted(DOCS.glob("appendix-*.md"))]


def markdown_cell(text: str, out_dir: Path) -> dict | None:
    text = text.strip("\n")
    if not text.strip():
        return None
    text = MATH.sub(lambda m: f"{m['indent']}$$\n{m['tex'].rstrip()}\n{m['indent']}$$", text)
    attachments = {}

    def link(match: re.Match) -> str:
        target = match["target"]
        file, _, anchor = target.partition("#")
        if not file or "://" in file or file.startswith("mailto:"):
            return match.group(0)
        path = (DOCS / file).resolve()
        if match["bang"] and path.suffix == ".png" and path.is_file():
            attachments[path.name] = {
                "image/png": base64.b64encode(path.read_bytes()).decode("ascii")}
            return f"![{match['label'][1:-1]}](attachment:{path.name})"
        if path in chapters():
            new = path.with_suffix(".ipynb").name
        else:
            new = Path(os.path.relpath(path, out_dir.resolve())).as_posix()
            if path.is_dir():
                new += "/"
        return f"{match['bang']}{match['label']}({new}{'#' + anchor if anchor else ''})"

    text = LINK.sub(link, text)
    cell = {"cell_type": "markdown", "metadata": {}, "source": text}
    if attachments:
        cell["attachments"] = attachments
    return cell


def code_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": source.rstrip("\n")}


def chapter_notebook(chapter: Path, out_dir: Path) -> dict:
    """The chapter as an nbformat-4 notebook (a dict; json.dump writes it)."""
    text = chapter.read_text(encoding="utf-8")
    intro = (f"*This notebook is [`docs/{chapter.name}`]"
             f"({Path(os.path.relpath(chapter, out_dir.resolve())).as_posix()}), made by "
             f"`python docs/hooks/notebooks.py`. Run it top to bottom (Run > Run All Cells) "
             f"with npnet installed (`pip install -e .` in the repository).*")
    # Its link already points from out_dir: it must not be read again as a chapter's link.
    cells = [{"cell_type": "markdown", "metadata": {}, "source": intro}]
    last = 0
    for match in SNIPPET.finditer(text):
        cells.append(markdown_cell(text[last:match.start()], out_dir))
        cells.append(code_cell(match.group(1)))
        last = match.end()
    cells.append(markdown_cell(text[last:], out_dir))
    return {
        "cells": [c for c in cells if c is not None],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "npnet": {"source": f"docs/{chapter.name}"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_json(chapter: Path, out_dir: Path) -> str:
    notebook = chapter_notebook(chapter, out_dir)
    for number, cell in enumerate(notebook["cells"]):
        cell["id"] = f"cell-{number}"
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def write_notebooks(out_dir: Path, which: list[Path] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for chapter in which or chapters():
        path = out_dir / chapter.with_suffix(".ipynb").name
        path.write_text(notebook_json(chapter, out_dir), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapters (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks",
                        help="where to write them (default: notebooks/ in the repository)")
    args = parser.parse_args(argv)
    for path in write_notebooks(args.out, [c.resolve() for c in args.chapters] or None):
        print(path)
    return 0


# ------------------------------------------------------------------ as an MkDocs hook

def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    site_notebooks = Path(config.site_dir) / "notebooks"  # links relative to the site's copy
    for chapter in chapters():
        files.append(File.generated(config, f"notebooks/{chapter.stem}.ipynb",
                                    content=notebook_json(chapter, site_notebooks)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    path = Path(page.file.abs_src_path or "")
    if page.file.generated_by or path not in chapters():
        return markdown
    note = (f"*This chapter as a Jupyter notebook: [{path.stem}.ipynb]"
            f"(notebooks/{path.stem}.ipynb) (run it top to bottom; "
            f"[how](01-reading-path.md#the-chapters-as-notebooks)).*\n\n")
    # after the chapter's title
    title, newline, rest = markdown.partition("\n")
    return f"{title}{newline}\n{note}{rest}" if title.startswith("# ") else note + markdown


if __name__ == "__main__":
    sys.exit(main())
