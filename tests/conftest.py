"""Shared paths, notebook discovery and the regression comparison used by every test."""

from __future__ import annotations

import copy
import functools
import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from pytest_notebook.diffing import diff_notebooks, diff_to_string, filter_diff
from pytest_notebook.post_processors import coalesce_streams

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
REFERENCE_DIR = ROOT / "tests" / "references"
HTML_DIR = ROOT / "_build" / "html"

# Masking rule, in one place. The regression comparison ignores exactly these paths:
#   /metadata                       kernel and language versions of the executing machine
#   /cells/*/id                     jupytext assigns new cell ids on every read
#   /cells/*/metadata/execution     nbclient's execution timestamps
#   /cells/*/outputs/*/traceback    frames of a deliberate error (cells tagged raises-exception)
#                                   name the virtual environment's path; the exception's
#                                   name and message (ename, evalue) are still compared
# and, for code cells tagged `timing-output`, the values of their outputs (text and data):
# those cells print wall-clock measurements. Their output count and output types are still
# compared, so a timing cell that stops producing output fails the test.
# MASKED_CELLS lists every cell that either rule touches, with its reason.
TIMING_TAG = "timing-output"
ERROR_TAG = "raises-exception"
DIFF_IGNORE = (
    "/metadata",
    "/cells/*/id",
    "/cells/*/metadata/execution",
    "/cells/*/outputs/*/traceback",
)

# Every code cell whose outputs are partly masked, keyed by (chapter, a text that occurs in that
# code cell only), with what is masked and why. tests/test_regression_guard.py checks that these
# are exactly the cells tagged `timing-output` or `raises-exception`.
MASKED_CELLS = {
    ("energy", "TIMING_RUNS = 10"): (
        "values: median wall-clock latency of the float32 and int8 encoder and generator, "
        "and the speed-up ratios and verdicts derived from it"
    ),
    ("energy", 'glue("energy_fig_quant_latency"'): (
        "values: bar chart of those latencies (the glued figure's PNG)"
    ),
    ("energy", "prune_latency_ratio = ("): (
        "values: wall-clock latency ratio of the 90% sparse and the dense encoder"
    ),
    ("energy", "THREAD_COUNTS = [1, 2]"): (
        "values: wall-clock latency with 1 and 2 threads, the machine's CPU count and its "
        "1-minute load average, and the bar chart of the latencies"
    ),
    ("energy", "CPU_ASSUMED_POWER_W = 20"): (
        "values: CPU energy estimates computed from the measured latencies"
    ),
    ("gpt", "outputs = model.generate(input_ids, max_length=50, num_return_sequences=5)"): (
        "traceback frames of the deliberate ValueError, which name the virtual environment's "
        "path; the exception's name and message are compared"
    ),
}


def pytest_addoption(parser):
    parser.addoption(
        "--regen-references",
        action="store_true",
        help="Execute every notebook and overwrite its reference in tests/references/.",
    )


@dataclass(frozen=True)
class TocEntry:
    """One `file:` entry of _toc.yml, resolved to its source file."""

    docname: str
    source: Path

    @property
    def is_notebook(self) -> bool:
        return self.source.parent == NOTEBOOK_DIR


def _walk_toc(node, found: list[str]) -> None:
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(node[key])
        for value in node.values():
            _walk_toc(value, found)
    elif isinstance(node, list):
        for item in node:
            _walk_toc(item, found)


def toc_entries() -> list[TocEntry]:
    """Return every page listed in _toc.yml, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    docnames: list[str] = []
    _walk_toc(toc, docnames)
    entries = []
    for docname in docnames:
        matches = [ROOT / f"{docname}{suffix}" for suffix in (".md", ".ipynb")]
        source = next((m for m in matches if m.exists()), matches[0])
        entries.append(TocEntry(docname, source))
    return entries


def notebook_names() -> list[str]:
    """Return the stem of every MyST notebook in notebooks/, sorted."""
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("*.md"))


def read_source(name: str) -> nbformat.NotebookNode:
    """Read notebooks/<name>.md as a notebook (no outputs)."""
    return jupytext.read(NOTEBOOK_DIR / f"{name}.md")


def code_cell_index(name: str, text: str) -> int:
    """Return the index among code cells of the one code cell of notebooks/<name>.md with text."""
    cells = [cell for cell in read_source(name).cells if cell.cell_type == "code"]
    found = [index for index, cell in enumerate(cells) if text in cell.source]
    assert len(found) == 1, f"notebooks/{name}.md: {text!r} is in code cells {found}, not one"
    return found[0]


def timing_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Return the indices of code cells tagged `timing-output`."""
    return [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and TIMING_TAG in cell.get("metadata", {}).get("tags", [])
    ]


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy holding only the code cells, with consecutive stream outputs merged.

    Prose is not part of the regression, so a prose-only edit needs no new reference and cell
    numbers in diffs count code cells only. The kernel may split one cell's stdout into several
    messages depending on timing. The number of stream outputs is therefore unstable, but their
    concatenated text is stable.
    """
    code_only = copy.deepcopy(nb)
    code_only.cells = [cell for cell in code_only.cells if cell.cell_type == "code"]
    merged, _ = coalesce_streams(code_only, {})
    return merged


def _changed_cells(diff) -> list[int]:
    for entry in diff:
        if entry["key"] == "cells" and entry["op"] == "patch":
            return sorted({sub["key"] for sub in entry["diff"]})
    return []


def compare_notebooks(expected, actual, *, use_color: bool = False) -> str:
    """Return a readable diff of two executed notebooks after masking; empty when they match."""
    expected = normalise(expected)
    actual = normalise(actual)
    ignore = set(DIFF_IGNORE)
    for index in timing_cells(expected):
        ignore.add(f"/cells/{index}/outputs/*/text")
        ignore.add(f"/cells/{index}/outputs/*/data")
    diff = filter_diff(diff_notebooks(expected, actual), ignore)
    if not diff:
        return ""
    headers = []
    for index in _changed_cells(diff):
        if index < len(expected.cells):
            first_line = expected.cells[index].source.strip().splitlines()[0][:80]
            headers.append(f"/cells/{index} is code cell {index + 1}, which starts: {first_line}")
    details = diff_to_string(expected, diff, use_color=use_color)
    return "\n".join(headers) + "\n" + details


def strip_execution_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop timestamps and random cell ids, so committed references change only with outputs."""
    nb = normalise(nb)
    for index, cell in enumerate(nb.cells):
        cell.get("metadata", {}).pop("execution", None)
        cell["id"] = f"code-{index + 1}"
    return nb


def first_number_in_outputs(nb: nbformat.NotebookNode) -> tuple[int, int, str] | None:
    """Return (cell index, output index, field) of the first printed text containing a digit.

    The field is "text" for a stream output and "text/plain" for a displayed value. Cells tagged
    `timing-output` are passed over because their values are masked.
    """
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or index in timing_cells(nb):
            continue
        for position, output in enumerate(cell.get("outputs", [])):
            if output.get("output_type") == "stream":
                field, text = "text", output.get("text", "")
            else:
                field, text = "text/plain", output.get("data", {}).get("text/plain", "")
            if re.search(r"\d", text):
                return index, position, field
    return None


@pytest.fixture(scope="session")
def regen(request) -> bool:
    return request.config.getoption("--regen-references")


# ---------------------------------------------------------------------------------------------
# Browser tests: the built site is served from 127.0.0.1 and read by Debian's chromium through
# Playwright. Playwright never downloads a browser here; CHROMIUM overrides the executable.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Playwright itself adds --headless and a fresh, temporary --user-data-dir to every launch.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one folder; keeps the test log free of per-request lines."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        # GitHub Pages serves these types; Python's table may lack them.
        ".js": "application/javascript",
        ".mjs": "application/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
    }

    def log_message(self, format, *args):  # noqa: A002 (the base class names it so)
        pass


@pytest.fixture(scope="session")
def site_url() -> str:
    """Base URL (ending in /) of _build/html served on a free port of 127.0.0.1."""
    if not (HTML_DIR / "index.html").is_file():
        pytest.fail(f"{HTML_DIR} has no built site: run `make book` first.")
    handler = functools.partial(_QuietHandler, directory=str(HTML_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    """One headless Debian chromium for the whole session, driven by Playwright."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"No browser at {CHROMIUM}: install Debian's chromium and fonts-noto-cjk "
            "(apt-get install chromium fonts-noto-cjk), or set CHROMIUM to its path."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page per test (no shared cookies or storage)."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()


def site_pages() -> list[str]:
    """Every HTML page a reader can reach from the table of contents, as paths under html/."""
    return [f"{entry.docname}.html" for entry in toc_entries()]


# ---------------------------------------------------------------------------------------------
# One cold build of a copy of the book per test session, in a network namespace when the machine
# allows one (tests/isolation.py). test_regression.py compares its executed notebooks with the
# references, and test_offline.py with the repository's own build, so `make test` executes each
# chapter once more after `make book`, not twice.
BOOK_SOURCES = ("notebooks", "book", "_config.yml", "_toc.yml", "requirements.txt")
# The slowest chapter runs for about 1 minute; the limit only stops a hung build.
COLD_BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class ColdBuild:
    book: Path
    result: object  # test_failures.BuildResult
    isolated: bool  # built inside a network namespace with loopback only
    outer_port: int | None  # the port the namespace must not reach; None when not isolated
    why_not_isolated: str


@pytest.fixture(scope="session")
def cold_build(tmp_path_factory) -> ColdBuild:
    """Build a copy of the book's sources with an empty execution and model cache."""
    from isolation import netns_command, outer_listener, unshare_prefix
    from test_failures import build_book

    book = tmp_path_factory.mktemp("cold") / "book"
    book.mkdir()
    for name in BOOK_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, book / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, book / name)
    caches = tmp_path_factory.mktemp("cold-caches")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LLMBOOK_MODELS", "HF_HUB_OFFLINE")
    }
    # Empty caches: the build converts the GGUF file again and cannot use a downloaded model.
    env.update(LLMBOOK_CACHE=str(caches / "llmbook"), HF_HOME=str(caches / "huggingface"))
    build_tmp = tmp_path_factory.mktemp("cold-tmp")
    prefix, why_not = unshare_prefix()
    if prefix is None:
        result = build_book(book, build_tmp, env=env, timeout=COLD_BUILD_TIMEOUT_S)
        print(f"\ncold build (not isolated: {why_not}): {result.seconds:.0f} s")
        return ColdBuild(book, result, False, None, why_not)
    with outer_listener() as port:
        result = build_book(
            book, build_tmp, prefix=netns_command(port), env=env, timeout=COLD_BUILD_TIMEOUT_S
        )
    print(f"\ncold build in a network namespace: {result.seconds:.0f} s")
    return ColdBuild(book, result, True, port, "")


def executed_notebook(book: Path, name: str) -> nbformat.NotebookNode:
    """Return notebooks/<name>.md of book with the outputs stored in book's execution cache.

    In cache mode myst-nb 1.4 writes notebooks without outputs to _build/jupyter_execute/, so
    the executed notebooks are read from the execution cache, as myst-nb itself does.
    """
    from jupyter_cache import get_cache

    source = jupytext.read(book / "notebooks" / f"{name}.md")
    cache = get_cache(book / "_build" / ".jupyter_cache")
    try:
        _, executed = cache.merge_match_into_notebook(source)
    except KeyError:
        pytest.fail(
            f"{book}/_build/.jupyter_cache holds no execution of the current "
            f"notebooks/{name}.md: run `make book` first."
        )
    return executed
