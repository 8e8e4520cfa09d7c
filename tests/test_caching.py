"""Execution cache of the fixture book, and the environment check of `make book`.

The fixture book uses `execute_notebooks: cache` like the book. Executions are counted twice:
from myst-nb's log lines and from jupyter-cache's records, whose id and creation time change
only when a notebook is executed and stored again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from jupyter_cache import get_cache
from test_failures import BuildResult, build_book, copy_fixture_book, make_book, replace_once

NOTEBOOKS = ("first", "second")
# myst-nb 1.4.0 logs one of these per notebook that Sphinx reads (myst_nb/core/execute/cache.py).
EXECUTING = re.compile(r"^(.+)\.md: Executing notebook using local CWD", re.M)
CACHE_HIT = re.compile(r"^(.+)\.md: Using cached notebook: ID=\d+", re.M)
MAKEFILE = ROOT / "Makefile"


def stems(pattern: re.Pattern, result: BuildResult | subprocess.CompletedProcess) -> list[str]:
    """Return the notebook names of the lines of a build's output that match pattern."""
    output = result.output if isinstance(result, BuildResult) else result.stdout
    return sorted(Path(path).name for path in pattern.findall(output))


def cache_records(book: Path) -> dict[str, tuple[int, object]]:
    """Return (record id, creation time) of each notebook in the book's execution cache."""
    cache = get_cache(book / "_build" / ".jupyter_cache")
    return {
        Path(record.uri).stem: (record.pk, record.created) for record in cache.list_cache_records()
    }


def read_page(book: Path, name: str) -> str:
    return (book / "_build" / "html" / "notebooks" / f"{name}.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def build_tmpdir(tmp_path_factory) -> Path:
    """Return a TMPDIR for the builds, so that Sphinx crash logs stay out of the system /tmp."""
    return tmp_path_factory.mktemp("build-tmp")


@pytest.fixture
def built_book(tmp_path, build_tmpdir) -> Path:
    """Return a copy of the fixture book after a first successful build."""
    book = copy_fixture_book(tmp_path)
    result = build_book(book, build_tmpdir)
    assert result.returncode == 0, result.log
    assert stems(EXECUTING, result) == ["first", "second"]
    assert sorted(cache_records(book)) == sorted(NOTEBOOKS)
    return book


@pytest.mark.slow
def test_prose_edit_executes_nothing(built_book, build_tmpdir):
    records_before = cache_records(built_book)
    replace_once(built_book / "notebooks" / "first.md", "这一段是正文。", "这一段正文改过了。")

    result = build_book(built_book, build_tmpdir)

    assert result.returncode == 0, result.log
    assert stems(EXECUTING, result) == []
    assert stems(CACHE_HIT, result) == ["first"]
    assert cache_records(built_book) == records_before
    page = read_page(built_book, "first")
    assert "这一段正文改过了。" in page
    assert "total = 45" in page


@pytest.mark.slow
def test_code_edit_executes_one_notebook(built_book, build_tmpdir):
    records_before = cache_records(built_book)
    replace_once(built_book / "notebooks" / "first.md", "sum(range(10))", "sum(range(11))")

    result = build_book(built_book, build_tmpdir)

    assert result.returncode == 0, result.log
    assert stems(EXECUTING, result) == ["first"]
    records_after = cache_records(built_book)
    assert records_after.get("second") == records_before["second"]
    assert records_after.get("first") != records_before["first"]
    assert "total = 55" in read_page(built_book, "first")


@pytest.mark.slow
def test_dropped_sphinx_env_reuses_cache(built_book, build_tmpdir):
    # `make book` removes _build/.doctrees and _build/html after a failed build, so that Sphinx
    # reads every page again. The notebooks must then come from the execution cache.
    records_before = cache_records(built_book)
    shutil.rmtree(built_book / "_build" / ".doctrees")
    shutil.rmtree(built_book / "_build" / "html")

    result = build_book(built_book, build_tmpdir)

    assert result.returncode == 0, result.log
    assert stems(EXECUTING, result) == []
    assert stems(CACHE_HIT, result) == ["first", "second"]
    assert cache_records(built_book) == records_before
    assert "sqrt(2) = 1.414" in read_page(built_book, "second")


@pytest.mark.slow
def test_changed_fingerprint_reexecutes_notebooks(tmp_path, build_tmpdir):
    """After requirements.txt changes, `make book` executes every notebook again.

    Emptying the execution cache alone is not enough: Sphinx finds no changed source in
    _build/.doctrees, reads no notebook, and the pages built under the old packages stay.
    """
    book = copy_fixture_book(tmp_path)
    first = make_book(book, build_tmpdir)
    assert first.returncode == 0, first.stdout
    assert stems(EXECUTING, first) == ["first", "second"]
    records_before = cache_records(book)

    unchanged = make_book(book, build_tmpdir)
    assert unchanged.returncode == 0, unchanged.stdout
    assert "Environment fingerprint changed" not in unchanged.stdout
    assert stems(EXECUTING, unchanged) == []
    assert cache_records(book) == records_before

    changed = make_book(book, build_tmpdir, requirements="numpy==2.4.6\n")

    assert changed.returncode == 0, changed.stdout
    assert "Environment fingerprint changed or missing: removing" in changed.stdout
    assert stems(EXECUTING, changed) == ["first", "second"]
    assert stems(CACHE_HIT, changed) == []
    records_after = cache_records(book)
    assert sorted(records_after) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        assert records_after[name] != records_before[name], f"{name} was not stored again"
    assert "total = 45" in read_page(book, "first")


def run_check_environment(directory: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    """Run the Makefile's check-environment target with directory as the book root."""
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(MAKEFILE),
            "check-environment",
            f"BIN={bin_dir}",
        ],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )


def fake_python(directory: Path, freeze_output: str) -> Path:
    """Create a stand-in bin/python that prints freeze_output for `-m pip freeze`.

    Return its bin folder. `--version` prints a fixed Python version.
    """
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "freeze.txt").write_text(freeze_output, encoding="utf-8")
    script = bin_dir / "python"
    script.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "Python 3.11.7"; '
        f'else cat "{bin_dir / "freeze.txt"}"; fi\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return bin_dir


@pytest.fixture
def checked_root(tmp_path) -> Path:
    """Return a book root with requirements.txt, an execution cache and a stored fingerprint."""
    (tmp_path / "requirements.txt").write_text("numpy==2.2.6\n", encoding="utf-8")
    first = run_check_environment(tmp_path, ROOT / ".venv" / "bin")
    assert first.returncode == 0, first.stdout
    assert (tmp_path / "_build" / ".environment-hash").is_file()
    (tmp_path / "_build" / ".jupyter_cache" / "executed").mkdir(parents=True)
    return tmp_path


def test_unchanged_environment_keeps_cache(checked_root):
    fingerprint = (checked_root / "_build" / ".environment-hash").read_text()

    result = run_check_environment(checked_root, ROOT / ".venv" / "bin")

    assert result.returncode == 0, result.stdout
    assert result.stdout == ""
    assert (checked_root / "_build" / ".jupyter_cache" / "executed").is_dir()
    assert (checked_root / "_build" / ".environment-hash").read_text() == fingerprint


def test_requirements_change_drops_cache(checked_root):
    fingerprint = (checked_root / "_build" / ".environment-hash").read_text()
    (checked_root / "requirements.txt").write_text("numpy==2.3.0\n", encoding="utf-8")

    result = run_check_environment(checked_root, ROOT / ".venv" / "bin")

    assert result.returncode == 0, result.stdout
    assert "removing _build/.jupyter_cache" in result.stdout
    assert len(result.stdout.splitlines()) == 1
    assert not (checked_root / "_build" / ".jupyter_cache").exists()
    assert (checked_root / "_build" / ".environment-hash").read_text() != fingerprint


def test_package_version_change_drops_cache(tmp_path):
    (tmp_path / "requirements.txt").write_text("torch==2.9.1\n", encoding="utf-8")
    bin_dir = fake_python(tmp_path, "torch==2.9.1\n")
    assert run_check_environment(tmp_path, bin_dir).returncode == 0
    cache = tmp_path / "_build" / ".jupyter_cache"
    cache.mkdir()

    same = run_check_environment(tmp_path, bin_dir)
    assert same.returncode == 0, same.stdout
    assert cache.is_dir()

    fake_python(tmp_path, "torch==2.9.2\n")
    changed = run_check_environment(tmp_path, bin_dir)
    assert changed.returncode == 0, changed.stdout
    assert "removing _build/.jupyter_cache" in changed.stdout
    assert not cache.exists()


def test_missing_fingerprint_drops_cache(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy==2.2.6\n", encoding="utf-8")
    cache = tmp_path / "_build" / ".jupyter_cache"
    cache.mkdir(parents=True)
    bin_dir = fake_python(tmp_path, "numpy==2.2.6\n")

    result = run_check_environment(tmp_path, bin_dir)

    assert result.returncode == 0, result.stdout
    assert "removing _build/.jupyter_cache" in result.stdout
    assert not cache.exists()
    assert (tmp_path / "_build" / ".environment-hash").is_file()


def test_failed_freeze_stops_check(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy==2.2.6\n", encoding="utf-8")
    bin_dir = fake_python(tmp_path, "")
    (bin_dir / "python").write_text("#!/bin/sh\nexit 3\n", encoding="utf-8")

    result = run_check_environment(tmp_path, bin_dir)

    assert result.returncode != 0, result.stdout
    assert not (tmp_path / "_build" / ".environment-hash").exists()
