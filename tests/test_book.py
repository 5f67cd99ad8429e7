"""The rendered book: it builds offline without a warning, and in a browser every page of
the table of contents loads, math renders, figures load, nothing runs past the text
column, every chapter links to Colab, and the exercise solutions stay folded until
clicked."""

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.chapters import CONFIG, REPO, toc_files

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
WINDOW = {"width": 1400, "height": 900}  # a laptop's browser window

# Every block a reader must see whole, and how far (px) it runs past the text column:
# past its own box (scrolled or cut off) or past the column's right edge. Folded code
# is measured as laid out, hidden or not.
WIDER_THAN_THE_COLUMN = """() => {
  const edge = document.querySelector("article.bd-article").getBoundingClientRect().right;
  const blocks = {
    "output": "div.cell_output pre",
    "code": "div.cell_input pre",
    "equation": "div.math mjx-container",
    "table": "article table",
    "figure": "article img",
  };
  const wide = [];
  for (const [kind, selector] of Object.entries(blocks)) {
    for (const block of document.querySelectorAll(selector)) {
      const past = Math.max(block.scrollWidth - block.clientWidth,
                            block.getBoundingClientRect().right - edge);
      if (past > 1) {
        const text = (block.textContent || block.src || "").trim().slice(0, 60);
        wide.push(`${kind} ${Math.round(past)} px too wide: ${text}`);
      }
    }
  }
  return wide;
}"""


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The full build, as a reader or CI runs it, into a temporary folder."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"  # this environment's
    done = subprocess.run(
        [jupyter_book, "build", ".", "--all", "-W", "-n", "--keep-going", "--path-output", out],
        cwd=REPO, capture_output=True, text=True)
    return done, out / "_build" / "html"


def test_the_book_builds_offline_without_a_warning(build):
    done, html = build
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (html / "index.html").exists()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(build):
    """The built book served on a free localhost port."""
    done, html = build
    if done.returncode != 0:
        pytest.fail("the book did not build")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):  # .ci/run installs it: never skip there
            pytest.fail(f"no {CHROMIUM} in CI")
        pytest.skip(f"no {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def pages(site, browser):
    """Every page of the table of contents, loaded once: {file: what the tests look at}."""
    page = browser.new_page(viewport=WINDOW)
    outside = []  # what a page asked of the network (refused: the book must work offline)

    def local_only(route):
        if route.request.url.startswith(site):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    found = {}
    for file in toc_files():
        outside.clear()
        response = page.goto(f"{site}/{file}.html")
        assert response is not None and response.ok, file
        page.wait_for_load_state("load")  # MathJax, a deferred script, has started by now
        page.evaluate("() => window.MathJax?.startup?.promise")  # wait until it typeset
        found[file] = {
            "title": page.title(),
            "h1": page.get_by_role("heading", level=1).count(),
            "math": page.locator("span.math, div.math").count(),
            "typeset": page.locator("mjx-container").count(),
            "text": page.locator("article.bd-article").inner_text(),
            "images": page.evaluate(
                "() => [...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0])"),
            "colab": page.eval_on_selector_all(  # the launch button's link
                "a[href^='https://colab.research.google.com/github/']",
                "links => links.map(a => a.href)"),
            "too wide": page.evaluate(WIDER_THAN_THE_COLUMN),
            "split streams": page.locator(  # a cell's printed lines in two blocks or more
                "div.cell_output:has(div.output.stream ~ div.output.stream)").count(),
            "solutions": solutions_before_and_after_a_click(page),
            "network": list(outside),
        }
    page.close()
    return found


def solutions_before_and_after_a_click(page) -> list[tuple[str, bool, bool]]:
    """For every folded cell holding a solution: what its toggle says, and is its code
    visible, before and after a click on the toggle?"""
    states = []
    for fold in page.locator("details.hide").all():
        code = fold.locator("pre").first
        if "BEGIN SOLUTION" not in (code.text_content() or ""):
            continue
        label, before = fold.locator("summary").inner_text().strip(), code.is_visible()
        fold.locator("summary").click()
        states.append((label, before, code.is_visible()))
    return states


def test_every_page_of_the_table_of_contents_loads(pages):
    assert list(pages) == toc_files()
    for file, found in pages.items():
        assert found["h1"] >= 1 and CONFIG["title"] in found["title"], file


def test_no_page_needs_the_network(pages):
    for file, found in pages.items():
        assert found["network"] == [], file


def test_math_renders_offline(pages):
    assert sum(found["math"] for found in pages.values()) > 0  # the glossary has math
    for file, found in pages.items():
        assert found["typeset"] >= found["math"], file
        for raw in ("\\(", "\\[", "$$"):
            assert raw not in found["text"], f"{file}: raw {raw} left"


def test_every_figure_loads(pages):
    images = [image for found in pages.values() for image in found["images"]]
    assert images, "the book has no figure"
    assert [src for src, loaded in images if not loaded] == []


def test_nothing_runs_past_the_text_column(pages):
    """Printed outputs wrap, equations are split over lines, code lines are short: at a
    1400-px window no block is wider than the column, so no printed number is cut off."""
    assert {file: found["too wide"] for file, found in pages.items() if found["too wide"]} == {}


def test_each_cell_prints_in_one_block(pages):
    assert {file: found["split streams"] for file, found in pages.items()
            if found["split streams"]} == {}


def test_every_chapter_opens_its_notebook_and_its_student_copy_in_colab(pages):
    owner_repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    colab = CONFIG["launch_buttons"]["colab_url"]
    chapters = [file for file in pages if file.startswith("notebooks/")]
    assert chapters
    for file in chapters:
        assert (REPO / f"{file}.ipynb").exists()
        chapter = f"{colab}/github/{owner_repo}/blob/{branch}/{file}.ipynb"
        student = chapter.replace("/notebooks/", "/student/")  # the link under the title
        assert pages[file]["colab"] == [chapter, student], file
    for file in set(pages) - set(chapters):
        assert pages[file]["colab"] == [], file


def test_exercise_solutions_stay_hidden_until_clicked(pages):
    states = [state for found in pages.values() for state in found["solutions"]]
    assert states, "the book has no exercise solution"
    assert states == [("Show the solution", False, True)] * len(states)

