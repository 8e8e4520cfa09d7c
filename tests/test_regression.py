"""Notebook regression tests: a fresh execution of each chapter must match its reference.

The fresh executions are those of the session's cold build of a copy of the book (fixture
`cold_build` in tests/conftest.py: empty execution and model caches, no network where a namespace
can be made), compared with pytest-notebook's diff after the masking rule. tests/test_offline.py
compares the same executions with the repository's own build.

References live in tests/references/<chapter>.ipynb. After an intended change, regenerate them
with `make references`, which executes each chapter with pytest-notebook in a fresh kernel, and
review the diff of the references before committing.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import (
    NOTEBOOK_DIR,
    REFERENCE_DIR,
    compare_notebooks,
    executed_notebook,
    normalise,
    notebook_names,
    read_source,
    strip_execution_metadata,
)
from pytest_notebook.execution import execute_notebook

# Seconds one cell may run, the same limit as the book build (_config.yml execute.timeout).
CELL_TIMEOUT = 600


def execute(name: str) -> nbformat.NotebookNode:
    """Execute notebooks/<name>.md in a fresh kernel, in the notebooks/ folder like the build."""
    result = execute_notebook(
        read_source(name), cwd=str(NOTEBOOK_DIR), timeout=CELL_TIMEOUT, allow_errors=False
    )
    if result.exec_error is not None:
        pytest.fail(f"notebooks/{name}.md failed to execute:\n{result.exec_error}")
    return normalise(result.notebook)


@pytest.mark.slow
@pytest.mark.parametrize("name", notebook_names())
def test_notebook_matches_reference(name, regen, request):
    reference_path = REFERENCE_DIR / f"{name}.ipynb"
    if regen:
        REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
        nbformat.write(strip_execution_metadata(execute(name)), reference_path)
        return

    build = request.getfixturevalue("cold_build")
    if build.result.returncode != 0:
        pytest.fail(
            f"The cold build of a copy of the book failed ({build.book}):\n"
            + build.result.output[-4000:]
        )
    fresh = normalise(executed_notebook(build.book, name))

    assert reference_path.exists(), (
        f"No reference for notebooks/{name}.md at tests/references/{name}.ipynb."
        " Run `make references` to create it, then review and commit it."
    )
    reference = nbformat.read(reference_path, as_version=4)
    diff = compare_notebooks(reference, fresh)
    assert not diff, (
        f"notebooks/{name}.md no longer reproduces tests/references/{name}.ipynb.\n"
        "If the change is intended, run `make references` and review the diff.\n" + diff
    )
