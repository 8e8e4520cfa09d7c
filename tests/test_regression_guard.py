"""Prove that the regression comparison can fail and masks only what the masking rule lists.

These tests execute nothing: they compare stored references with edited copies of themselves
through the same `compare_notebooks` that the regression tests use.
"""

from __future__ import annotations

import copy
import re

import nbformat
import pytest
from conftest import (
    ERROR_TAG,
    MASKED_CELLS,
    REFERENCE_DIR,
    TIMING_TAG,
    code_cell_index,
    compare_notebooks,
    first_number_in_outputs,
    notebook_names,
    read_source,
)


def load_reference(name: str) -> nbformat.NotebookNode:
    path = REFERENCE_DIR / f"{name}.ipynb"
    if not path.exists():
        pytest.fail(f"Missing reference {path.name}: run `make references`.")
    return nbformat.read(path, as_version=4)


def code_cell(source: str, outputs: list, tags: list[str] | None = None):
    cell = nbformat.v4.new_code_cell(source, outputs=outputs)
    if tags:
        cell.metadata["tags"] = tags
    return cell


def stream(text: str):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


@pytest.mark.parametrize("name", notebook_names())
def test_reference_sources_current(name):
    """A reference whose code cells or cell tags differ from its MyST source is stale."""

    def code_cells(nb):
        return [
            (c.source, c.get("metadata", {}).get("tags", []))
            for c in nb.cells
            if c.cell_type == "code"
        ]

    assert code_cells(load_reference(name)) == code_cells(read_source(name)), (
        f"tests/references/{name}.ipynb is stale: its code cells differ from "
        f"notebooks/{name}.md. Run `make references` and review the diff."
    )


@pytest.mark.parametrize("name", notebook_names())
def test_changed_output_value_fails(name):
    """Editing one printed value in a reference makes the comparison fail, naming the cell."""
    reference = load_reference(name)
    found = first_number_in_outputs(reference)
    if found is None:
        assert not any(c.cell_type == "code" for c in reference.cells), (
            f"{name}: code cells exist but none of their outputs contains a number to edit"
        )
        pytest.skip(f"notebooks/{name}.md has no code cells (prose-only chapter)")
    index, position, field = found

    edited = copy.deepcopy(reference)
    output = edited.cells[index].outputs[position]
    container = output if field == "text" else output["data"]
    text = container[field]
    digit = re.search(r"\d", text)
    new_digit = "7" if digit.group() != "7" else "3"
    container[field] = text[: digit.start()] + new_digit + text[digit.end() :]

    diff = compare_notebooks(edited, reference)
    assert diff, f"{name}: editing a printed value of cell {index} went unnoticed"
    assert f"cells/{index}/outputs" in diff, f"diff does not name cell {index}:\n{diff}"
    changed_line = next(
        line for line in container[field].splitlines() if line not in text.splitlines()
    )
    assert changed_line.strip() in diff, f"diff does not show the edited value:\n{diff}"


def test_masked_cells_listed():
    """MASKED_CELLS names exactly the cells whose outputs the masking rule touches."""
    tagged = set()
    for name in notebook_names():
        cells = [cell for cell in read_source(name).cells if cell.cell_type == "code"]
        for index, cell in enumerate(cells):
            if {TIMING_TAG, ERROR_TAG} & set(cell.get("metadata", {}).get("tags", [])):
                tagged.add((name, index))
    listed = {(name, code_cell_index(name, text)) for name, text in MASKED_CELLS}
    assert not tagged - listed, (
        f"tagged {TIMING_TAG} or {ERROR_TAG} but missing from MASKED_CELLS in tests/conftest.py "
        f"(chapter, code cell index): {sorted(tagged - listed)}"
    )
    assert not listed - tagged, f"listed in MASKED_CELLS but not tagged: {sorted(listed - tagged)}"


def test_masked_fields_ignored():
    expected = nbformat.v4.new_notebook(cells=[code_cell("print(1)", [stream("1\n")])])
    actual = copy.deepcopy(expected)
    actual.metadata["language_info"] = {"version": "3.99.0"}
    actual.cells[0]["id"] = "another-id"
    actual.cells[0].metadata["execution"] = {"iopub.status.busy": "2030-01-01T00:00:00Z"}
    assert compare_notebooks(expected, actual) == ""


def test_split_streams_compare_equal():
    whole = nbformat.v4.new_notebook(cells=[code_cell("x", [stream("a\nb\n")])])
    split = nbformat.v4.new_notebook(cells=[code_cell("x", [stream("a\n"), stream("b\n")])])
    assert compare_notebooks(whole, split) == ""


def test_timing_cell_values_masked():
    expected = nbformat.v4.new_notebook(
        cells=[code_cell("t()", [stream("中位延迟 12.3 ms\n")], tags=[TIMING_TAG])]
    )
    actual = copy.deepcopy(expected)
    actual.cells[0].outputs[0].text = "中位延迟 15.9 ms\n"
    assert compare_notebooks(expected, actual) == ""


def test_timing_cell_missing_output_fails():
    expected = nbformat.v4.new_notebook(
        cells=[code_cell("t()", [stream("中位延迟 12.3 ms\n")], tags=[TIMING_TAG])]
    )
    actual = copy.deepcopy(expected)
    actual.cells[0].outputs = []
    assert compare_notebooks(expected, actual) != ""


def test_untagged_cell_value_change_fails():
    expected = nbformat.v4.new_notebook(cells=[code_cell("t()", [stream("RMSE 0.9876\n")])])
    actual = copy.deepcopy(expected)
    actual.cells[0].outputs[0].text = "RMSE 0.9875\n"
    diff = compare_notebooks(expected, actual)
    assert "0.9875" in diff
    assert "0.9876" in diff


def error_cell(evalue: str, frames: list[str]):
    error = nbformat.v4.new_output("error", ename="ValueError", evalue=evalue, traceback=frames)
    return code_cell("raise ValueError()", [error], tags=["raises-exception"])


def test_traceback_frames_masked():
    expected = nbformat.v4.new_notebook(cells=[error_cell("bad", ["/work/a/.venv/x.py:810"])])
    actual = nbformat.v4.new_notebook(cells=[error_cell("bad", ["/tmp/b/.venv/x.py:810"])])
    assert compare_notebooks(expected, actual) == ""


def test_error_message_change_fails():
    expected = nbformat.v4.new_notebook(cells=[error_cell("got 5", ["frame"])])
    actual = nbformat.v4.new_notebook(cells=[error_cell("got 6", ["frame"])])
    assert "got 6" in compare_notebooks(expected, actual)
