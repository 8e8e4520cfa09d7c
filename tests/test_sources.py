"""Checks on the MyST sources themselves: front matter, layout and code style."""

from __future__ import annotations

import re
import subprocess
import sys

import jupytext
import pytest
from conftest import NOTEBOOK_DIR, ROOT, notebook_names, read_source

NAMES = notebook_names()


@pytest.mark.parametrize("name", NAMES)
def test_front_matter(name):
    nb = read_source(name)
    kernelspec = nb.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3", f"notebooks/{name}.md: kernelspec {kernelspec}"
    fmt = nb.metadata.get("jupytext", {}).get("text_representation", {})
    assert fmt.get("format_name") == "myst", f"notebooks/{name}.md: jupytext format {fmt}"


@pytest.mark.parametrize("name", NAMES)
def test_label_before_title(name):
    text = (NOTEBOOK_DIR / f"{name}.md").read_text(encoding="utf-8")
    match = re.search(r"^\((?P<label>[\w-]+)\)=\n# \S", text, flags=re.MULTILINE)
    assert match, f"notebooks/{name}.md: the H1 title needs a `(label)=` line right above it"
    assert match.group("label") == f"ch-{name}", (
        f"notebooks/{name}.md: label {match.group('label')!r}, expected 'ch-{name}'"
    )


# A cell installs packages through IPython's %pip or !pip, or by running pip as a program. A
# string that shows the reader a pip command (the setup cells' missing-package error) is no install.
PIP_INSTALL = re.compile(
    r"^\s*[%!]\s*(python3? -m )?pip3?\s+install"
    r"|-m\s+pip\s+install"
    r"|[\"']-m[\"'],\s*[\"']pip[\"']"
    r"|(os\.system|subprocess\.\w+)\(.*\bpip3?\b",
    re.MULTILINE,
)


@pytest.mark.parametrize("name", NAMES)
def test_no_hidden_pip_installs(name):
    for cell in read_source(name).cells:
        if cell.cell_type == "code":
            match = PIP_INSTALL.search(cell.source)
            assert match is None, (
                f"notebooks/{name}.md installs packages in a cell ({match[0]!r}); "
                "list them in requirements.txt instead"
            )


def test_ruff_clean(tmp_path):
    """Lint every chapter's code cells, exported as Python scripts, with the ruff settings here."""
    for name in NAMES:
        nb = read_source(name)
        # Prose would be linted as long comment lines, so only code cells are exported.
        nb.cells = [cell for cell in nb.cells if cell.cell_type == "code"]
        jupytext.write(nb, tmp_path / f"{name}.py", fmt="py:percent")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"), "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, "ruff found problems in notebook code cells:\n" + result.stdout
