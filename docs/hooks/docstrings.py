"""A griffe extension: npnet's docstrings, written for reading in the source (reST-flavoured
numpydoc), rendered as Markdown by mkdocstrings.

* ``text::`` and the indented literal block after it (the formulas) become ``text:`` and a
  fenced code block;
* ``:func:`x```, ``:class:`x```, ``:meth:`x```, ``:mod:`x``` ... become links to x's entry
  in the API reference when x is documented there, else code;
* ``Tested by: tests/test_x.py::test_y`` lines link each test to its source page
  (``source/tests/test_x.py``, built by ``docs/hooks/site.py``).

Only the rendered text changes; the docstrings in ``npnet/`` stay as they are.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parents[2]

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc):`~?([\w.]+)(?:\(\))?`")
TEST_REF = re.compile(r"\b(tests/[\w/]+\.py)::([\w.]+)")


def source_anchor(file: str, name: str) -> str:
    """The autorefs identifier of ``name`` (a top-level function or class) on the source
    page of ``file``; docs/hooks/site.py gives each such heading this id."""
    return f"{file}::{name.split('.')[0]}"


@cache
def top_level_names(file: str) -> frozenset[str]:
    path = ROOT / file
    if not path.is_file():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.name for node in tree.body
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))


def is_rendered(obj) -> bool:
    """Whether mkdocstrings shows obj with mkdocs.yml's options (public names, no aliases)."""
    while obj is not None:
        if obj.is_alias or (obj.name.startswith("_") and obj.parent is not None
                            and not obj.is_module):
            return False
        obj = obj.parent
    return True


def resolve(obj, name: str):
    """The object that ``name``, written in obj's docstring, means; None if none is found."""
    module = obj.module
    package = module.package
    candidates = []
    scope = obj if obj.is_class else obj.parent
    while scope is not None:
        candidates.append(f"{scope.path}.{name}")
        scope = scope.parent
    candidates += [f"{package.path}.{name}", name]
    for path in candidates:
        try:
            target = package.modules_collection[path]
        except (KeyError, ValueError, griffe.AliasResolutionError):
            continue
        try:
            if target.is_alias:
                target = target.final_target
        except griffe.AliasResolutionError:
            return None
        return target
    return None


def literal_blocks(text: str) -> str:
    """reST ``paragraph::`` + indented block -> ``paragraph:`` + fenced block."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            stripped = line.rstrip()[:-2]
            out.append(stripped.rstrip() + (":" if stripped and not stripped.endswith(" ") else ""))
            base = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block = []
            while j < len(lines) and (not lines[j].strip()
                                      or len(lines[j]) - len(lines[j].lstrip()) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
                pad = " " * base
                out += ["", pad + "```text", *(pad + b[indent:] for b in block), pad + "```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


MATH_ROLE = re.compile(r":math:`([^`]+)`")
MATH_DIRECTIVE = re.compile(r"^([ \t]*)\.\. math::[ \t]*(.*)$")


def math_markup(text: str) -> str:
    """reST math, ``:math:`tex``` and ``.. math::`` blocks, as the chapters write it:
    ``$tex$`` and ```` ```math ```` blocks (docs/hooks/site.py renders both to MathML)."""
    text = MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = MATH_DIRECTIVE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group(1)
        body = [match.group(2)] if match.group(2).strip() else []
        j = i + 1
        while j < len(lines) and (not lines[j].strip()
                                  or len(lines[j]) - len(lines[j].lstrip()) > len(indent)):
            body.append(lines[j].strip())
            j += 1
        tex = [line for line in body if line]
        out += ["", f"{indent}```math", *(indent + line for line in tex), f"{indent}```", ""]
        i = j
    return "\n".join(out)


HEADER_RULE = re.compile(r"\s*-{3,}\s*")


def free_text_as_sections(text: str) -> str:
    """numpydoc reads every unindented line of a Parameters (or Returns ...) section as an
    item, so the "Tested by:" line or a remark written after the last item would become a
    parameter. Give each such paragraph its own section, which mkdocstrings shows as a box."""
    lines = text.split("\n")
    headers = [i for i in range(len(lines) - 1)
               if lines[i].strip() and HEADER_RULE.fullmatch(lines[i + 1])]
    if not headers:
        return text
    out = lines[: headers[0]]
    i, previous_blank = headers[0], False
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and HEADER_RULE.fullmatch(lines[i + 1]):
            out += [line, lines[i + 1]]
            i, previous_blank = i + 2, False
            continue
        free = previous_blank and line[:1].strip() and (
            line.startswith(("Tested by:", "``"))
            or (len(line.split()) >= 4 and " : " not in line))
        if free:
            if line.startswith("Tested by:"):
                title, _, rest = line.partition(":")
            else:
                title, rest = "Note", line
            out += [title, "-" * len(title), rest.strip()]
        else:
            out.append(line)
        previous_blank = not line.strip()
        i += 1
    return "\n".join(out)


class NpnetDocstrings(griffe.Extension):
    """Rewrites every docstring of the loaded package once it is fully loaded (so that
    cross-references can be resolved)."""

    def on_package(self, *, pkg, **kwargs) -> None:  # griffe >= 1.0 hook
        self._drop_reexports(pkg)
        self._walk(pkg, seen=set())

    def _drop_reexports(self, module) -> None:
        """A name a module imports from another (``npnet.vae`` re-exports ``kl_divergence``)
        is documented once, where it is defined."""
        for name, member in list(module.members.items()):
            if member.is_alias:
                del module.members[name]
            elif member.is_module:
                self._drop_reexports(member)

    def _walk(self, obj, seen: set) -> None:
        if obj.is_alias or obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = self.rewrite(obj, obj.docstring.value)
        for member in obj.members.values():
            self._walk(member, seen)

    def rewrite(self, obj, text: str) -> str:
        text = free_text_as_sections(literal_blocks(math_markup(text)))

        def role(match: re.Match) -> str:
            name = match.group(1)
            target = resolve(obj, name)
            if target is not None and is_rendered(target):
                return f"[`{name}`][{target.path}]"
            return f"`{name}`"

        def test_ref(match: re.Match) -> str:
            file, name = match.groups()
            if name.split(".")[0] not in top_level_names(file):
                return f"`{file}::{name}`"  # an example, not a real test
            return f"[`{file}::{name}`][{source_anchor(file, name)}]"

        parts = re.split(r"(```.*?```)", text, flags=re.DOTALL)  # leave code blocks alone
        for k in range(0, len(parts), 2):
            parts[k] = TEST_REF.sub(test_ref, ROLE.sub(role, parts[k]))
        return "".join(parts)
