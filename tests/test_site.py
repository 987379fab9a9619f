"""The docs as a site: mkdocs builds it in strict mode, every formula of the chapters is
rendered to MathML, and every page is opened in a real browser (headless Chromium, driven
by Playwright) with no network.

In the browser, for every page: no console error; no raw ``$$``, ``\\frac`` or other TeX
in the rendered text; every image loaded; every internal link (and its #anchor) resolves;
no request leaves the machine. A search for "reparameterisation" finds chapter 7. A
math-heavy and a figure-heavy page are kept as screenshots, in ``$NPNET_ARTIFACTS`` if set,
else in pytest's temporary folder (the path is printed).

Without Debian's chromium (``apt-get install chromium``), Playwright (``pip install -e
'.[test]'``) or the docs tools (``pip install -e '.[docs]'``), these tests are skipped
with the reason, unless ``NPNET_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which makes a
missing tool a failure.
"""

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = Path(os.environ.get("NPNET_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("NPNET_REQUIRE_BROWSER") == "1"
# The flags of a browser on a machine without a network, with a fresh profile.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
MATH_PAGE, FIGURE_PAGE = "07-vae", "06-denoising-and-residuals"

# Formulas as a code host reads them: $...$ outside code, and ```math blocks.
FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,}).*?^\1\2[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?![\s$])((?:\\.|[^\\$])+?)(?<![\s\\])\$(?!\$)")
DISPLAY_MATH = re.compile(r"^[ \t]*```math[ \t]*$", re.MULTILINE)
PAGES_WITH_MATH = sorted(DOCS.glob("*.md"))


def missing(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (NPNET_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def count_formulas(markdown: Path) -> tuple[int, int]:
    text = markdown.read_text(encoding="utf-8")
    display = len(DISPLAY_MATH.findall(text))
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    return len(INLINE_MATH.findall(prose)), display


@pytest.fixture(scope="module")
def formulas() -> dict[str, tuple[int, int]]:
    """(inline, display) per Markdown page, counted just before the build reads them."""
    return {markdown.name: count_formulas(markdown) for markdown in PAGES_WITH_MATH}


@pytest.fixture(scope="module")
def site(tmp_path_factory, formulas) -> Path:
    """The site, built by the README's command (strict mode) into a temporary folder."""
    for module, package in [("mkdocs", "mkdocs"), ("material", "mkdocs-material"),
                            ("mkdocstrings_handlers.python", "mkdocstrings[python]"),
                            ("pypandoc", "pypandoc-binary")]:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            missing(f"{package} is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site") / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_every_formula_is_rendered_to_mathml(site, formulas):
    """The build converted each $...$ and ```math block of every page (counted here from
    the Markdown, independently of the build) into one <math> element, and left no TeX."""
    counts = json.loads((site / "math-counts.json").read_text())["pages"]
    for markdown in PAGES_WITH_MATH:
        inline, display = formulas[markdown.name]
        assert tuple(counts[markdown.name]) == (inline, display), markdown.name
        page = site / ("index.html" if markdown.name == "README.md"
                       else f"{markdown.stem}/index.html")
        text = page.read_text(encoding="utf-8")
        assert text.count("<math display=\"inline\"") == inline, markdown.name
        assert text.count("<math display=\"block\"") == display, markdown.name
        assert not re.search(r'<(?:span|div) class="arithmatex">', text), markdown.name


def test_chapter_links_to_code_land_on_the_documented_object(site):
    page = (site / "02-dense-backprop" / "index.html").read_text(encoding="utf-8")
    assert 'href="../api/layers/#npnet.layers.Dense.backward"' in page
    api = (site / "api" / "layers" / "index.html").read_text(encoding="utf-8")
    assert 'id="npnet.layers.Dense.backward"' in api
    assert "Source code in" in api  # each object shows its source
    test = "source/tests/test_layers.py/#tests/test_layers.py::test_dense_gradients"
    assert f'href="../../{test}"' in api  # its "Tested by" line links the test's source


@pytest.fixture(scope="module")
def server(site):
    handler = partial(QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Chromium and Playwright, or a skip that says what to install (before the build)."""
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    if importlib.util.find_spec("playwright") is None:
        missing("playwright is not installed: pip install -e '.[test]'")
    return CHROMIUM


@pytest.fixture
def browser(chromium, tmp_path):
    """Runs ``visit(context)``, a coroutine function, in a fresh headless Chromium (a new
    profile each time); returns what it returns."""
    from playwright.async_api import async_playwright

    async def session(visit):
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM),
                headless=True, args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900})
            try:
                return await visit(context)
            finally:
                await context.close()

    return lambda visit: asyncio.run(session(visit))


PAGE_REPORT = """() => {
  const article = document.querySelector("article") || document.body;
  const images = [...document.images].map(i => ({src: i.currentSrc || i.src,
      ok: i.complete && i.naturalWidth > 0}));
  const links = [...document.querySelectorAll("a[href]")].map(a => a.href);
  const ids = [...document.querySelectorAll("[id]")].map(e => e.id);
  const maths = [...article.querySelectorAll("math")];
  const empty = maths.filter(m => {const r = m.getBoundingClientRect();
      return m.closest("details:not([open])") === null && (r.width === 0 || r.height === 0);});
  const text = article.innerText;
  for (const code of article.querySelectorAll("pre, code")) code.style.display = "none";
  const prose = article.innerText;
  return {images, links, ids, text, prose, math: maths.length, unrendered: empty.length};
}"""
TEX = re.compile(r"\$\$|\\frac|\\\(|\\\[|\\[a-zA-Z]{2,}\{|\$[^$\s][^$]*\\[a-zA-Z]+[^$]*\$")


def site_pages(site: Path) -> list[str]:
    return sorted(p.parent.relative_to(site).as_posix() + "/" for p in site.rglob("index.html"))


def test_every_page_in_a_browser(chromium, site, server, browser, formulas):
    pages = site_pages(site)
    reports, errors, outside = browser(partial(visit_pages, server=server, paths=pages))
    problems = []
    for path, report in reports.items():
        problems += [f"{path}: image did not load: {i['src']}" for i in report["images"]
                     if not i["ok"]]
        for match in TEX.finditer(report["prose"]):
            problems.append(f"{path}: raw TeX in the text: {match.group(0)[:60]!r}")
        if report["unrendered"]:
            problems.append(f"{path}: {report['unrendered']} formulas have no size")
    problems += broken_links(reports, server, site)
    assert not errors, "console errors:\n" + "\n".join(errors[:20])
    assert not outside, f"requests that would leave the machine: {outside[:10]}"
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"
    assert len(reports) == len(pages) > 60
    for markdown in PAGES_WITH_MATH:  # each formula is one <math> element, and has a size
        url_path = "/" if markdown.name == "README.md" else f"/{markdown.stem}/"
        assert reports[url_path]["math"] == sum(formulas[markdown.name]), url_path


async def visit_pages(context, server: str, paths: list[str], tabs: int = 4):
    """Open every page (several tabs at a time); a report of each, the console errors, and
    the requests to anywhere but the local server."""
    reports, errors, outside = {}, [], []
    queue = list(paths)

    async def tab():
        page = await context.new_page()
        page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        page.on("request", lambda r: r.url.startswith((server, "data:", "blob:"))
                or outside.append(r.url))
        while queue:
            path = queue.pop()
            url = f"{server}/{path}".replace("/./", "/")
            response = await page.goto(url, wait_until="load")
            assert response is not None and response.ok, url
            reports[urlsplit(url).path] = await page.evaluate(PAGE_REPORT)
        await page.close()

    await asyncio.gather(*(tab() for _ in range(tabs)))
    return reports, errors, outside


def broken_links(reports: dict, server: str, site: Path) -> list[str]:
    """Internal links whose page (or file) does not exist, or whose #anchor is no id on it."""
    ids = {path: set(report["ids"]) for path, report in reports.items()}
    broken = []
    for source, report in reports.items():
        for link in set(report["links"]):
            if not link.startswith(server):
                continue  # external links are not followed offline
            target, anchor = urldefrag(link)
            path = urlsplit(target).path
            if path in ids:
                if anchor and unquote(anchor) not in ids[path]:
                    broken.append(f"{source}: {link}: no #{anchor} there")
            elif not (site / path.lstrip("/")).is_file():
                broken.append(f"{source}: {link}: no such page or file")
    return broken


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = os.environ.get("NPNET_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_search_finds_the_vae_chapter(chromium, site, server, browser):
    async def search(context):
        page = await context.new_page()
        await page.goto(f"{server}/", wait_until="load")
        await page.keyboard.press("/")  # Material's shortcut to the search box
        await page.locator("input.md-search__input").fill("reparameterisation")
        await page.wait_for_selector(".md-search-result__item a", timeout=20_000)
        return await page.eval_on_selector_all(".md-search-result__item a",
                                               "els => els.map(e => e.href)")

    hrefs = browser(search)
    assert any("/07-vae/" in h for h in hrefs), hrefs


def test_screenshots_of_a_math_page_and_a_figure_page(chromium, site, server, browser,
                                                      artifacts):
    async def shoot(context):
        page = await context.new_page()
        written = []
        for name, selector in [(MATH_PAGE, ".math-display"), (FIGURE_PAGE, "article img")]:
            await page.goto(f"{server}/{name}/", wait_until="load")
            await page.locator(selector).first.scroll_into_view_if_needed()
            await page.wait_for_timeout(500)  # the header's title fades in on scrolling
            path = artifacts / f"site-{name}.png"
            await page.screenshot(path=str(path))
            written.append(path)
        return written

    for path in browser(shoot):
        assert path.stat().st_size > 10_000, path  # a page, not a blank
        print("screenshot:", path)
