"""Notebook regression tests: a fresh execution of each chapter must match its reference.

References live in tests/references/<chapter>.ipynb. After an intended change, regenerate them
with `make references` and review the diff of the references before committing.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import (
    NOTEBOOK_DIR,
    REFERENCE_DIR,
    compare_notebooks,
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
def test_notebook_matches_reference(name, regen):
    reference_path = REFERENCE_DIR / f"{name}.ipynb"
    fresh = execute(name)

    if regen:
        REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
        nbformat.write(strip_execution_metadata(fresh), reference_path)
        return

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
