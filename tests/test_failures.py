"""Build failures of the fixture book: each must fail the build and name its cause.

Two builds must succeed: a cell tagged `raises-exception`, and a build checked for leaving the
sources unchanged.

Every test copies tests/fixtures/book into a temporary folder, breaks the copy in one way and
runs `jupyter-book build --warningiserror --keep-going` on it, as `make book` does for the book.
The fixture's _config.yml mirrors the book's `execute` settings. The asserted texts are what
Jupyter Book 1.0.4, Sphinx 7.4.7, myst-nb 1.4.0, nbclient 0.11.0 and jupyter_client 8.10.0 print.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURE_BOOK = Path(__file__).resolve().parent / "fixtures" / "book"
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
# A fixture build took 4-8 s on a two-core machine. The limit only stops a hung build.
BUILD_TIMEOUT_S = 300
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class BuildResult:
    returncode: int
    output: str
    seconds: float

    @property
    def log(self) -> str:
        """Return the output without the two long parser-configuration lines, for messages."""
        return "\n".join(line for line in self.output.splitlines() if "ParserConfig(" not in line)


@pytest.fixture(scope="session")
def build_tmpdir(tmp_path_factory) -> Path:
    """Return a TMPDIR for the builds, so that Sphinx crash logs stay out of the system /tmp."""
    return tmp_path_factory.mktemp("build-tmp")


def copy_fixture_book(destination: Path) -> Path:
    """Copy the fixture book to destination/book and return that folder."""
    book = destination / "book"
    shutil.copytree(FIXTURE_BOOK, book)
    return book


def build_book(
    book: Path,
    tmpdir: Path,
    *,
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = BUILD_TIMEOUT_S,
) -> BuildResult:
    """Run `jupyter-book build --warningiserror --keep-going` on book, from inside book.

    The build runs from the book folder because myst-nb opens the execution cache path of
    _config.yml relative to the working directory, not to the book. prefix is put before the
    command (e.g. to run it in another namespace); env replaces the inherited environment.
    """
    env = dict(os.environ if env is None else env, TMPDIR=str(tmpdir))
    start = time.monotonic()
    completed = subprocess.run(
        [*prefix, str(JUPYTER_BOOK), "build", str(book), "--warningiserror", "--keep-going"],
        cwd=book,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - start
    return BuildResult(completed.returncode, ANSI_ESCAPE.sub("", completed.stdout), seconds)


def append_cell(notebook: Path, source: str, tags: list[str] | None = None) -> None:
    """Append a code cell with the given source (and tags) to a MyST notebook."""
    options = f":tags: [{', '.join(tags)}]\n\n" if tags else ""
    with notebook.open("a", encoding="utf-8") as handle:
        handle.write(f"\n```{{code-cell}} ipython3\n{options}{source}\n```\n")


def replace_once(path: Path, old: str, new: str) -> None:
    """Replace old, which must occur exactly once in path, with new."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    """Return the 1-based number of the first line of path that contains text."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not found in {path}")


def source_checksums(book: Path) -> dict[str, str]:
    """Return the sha256 of every file of the book outside _build, keyed by relative path."""
    checksums = {}
    for path in sorted(book.rglob("*")):
        relative = path.relative_to(book)
        if path.is_file() and relative.parts[0] != "_build":
            checksums[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return checksums


def test_build_leaves_sources_unchanged(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    append_cell(book / "notebooks" / "second.md", 'raise ValueError("演示")', ["raises-exception"])
    before = source_checksums(book)

    result = build_book(book, build_tmpdir)

    assert result.returncode == 0, result.log
    after = source_checksums(book)
    assert sorted(after) == sorted(before), "the build added or removed files outside _build"
    assert after == before, "the build changed a source file"
    page = (book / "_build" / "html" / "notebooks" / "second.html").read_text(encoding="utf-8")
    assert "sqrt(2) = 1.414" in page


def test_raising_cell_fails_build(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    notebook = book / "notebooks" / "second.md"
    append_cell(notebook, 'raise ValueError("输入数据为空")')

    result = build_book(book, build_tmpdir)

    assert result.returncode != 0, result.log
    assert f"{notebook}: WARNING: Executing notebook failed: CellExecutionError" in result.output
    # nbclient quotes the failing cell between dashed lines, then the traceback.
    assert (
        'following cell:\n------------------\nraise ValueError("输入数据为空")\n' in result.output
    )
    assert "ValueError: 输入数据为空" in result.output
    assert f"myst_nb.core.execute.base.ExecutionError: {notebook}" in result.output
    assert "There was an error in building your book. Look above for the cause." in result.output
    assert "build succeeded" not in result.output


def test_slow_cell_times_out(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    replace_once(book / "_config.yml", "  timeout: 60\n", "  timeout: 2\n")
    notebook = book / "notebooks" / "second.md"
    append_cell(notebook, "import time\n\ntime.sleep(30)")

    result = build_book(book, build_tmpdir)

    assert result.returncode != 0, result.log
    assert result.seconds < 25, f"the build waited for the cell: {result.seconds:.0f} s"
    assert f"{notebook}: WARNING: Executing notebook failed: CellTimeoutError" in result.output
    assert "A cell timed out while it was being executed, after 2 seconds." in result.output
    assert "contents:\n-------------------\nimport time\n\ntime.sleep(30)\n" in result.output
    assert f"myst_nb.core.execute.base.ExecutionError: {notebook}" in result.output


def test_missing_toc_file_fails_build(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    with (book / "_toc.yml").open("a", encoding="utf-8") as toc:
        toc.write("  - file: notebooks/missing\n")

    result = build_book(book, build_tmpdir)

    assert result.returncode != 0, result.log
    # Sphinx reports the entry against the root page that contains the generated toctree.
    root_page = book / "notebooks" / "first.md"
    expected = (
        f"{root_page}:: WARNING: toctree contains reference to nonexisting document "
        "'notebooks/missing' [etoc.ref]"
    )
    assert expected in result.output
    assert "build finished with problems, 1 warning." in result.output


def test_malformed_front_matter_fails_build(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    notebook = book / "notebooks" / "second.md"
    replace_once(notebook, "\nkernelspec:\n", "\nkernelspec: [python3\n")

    result = build_book(book, build_tmpdir)

    assert result.returncode != 0, result.log
    assert f"{notebook}:1: WARNING: Malformed YAML [myst.topmatter]" in result.output
    # Without front matter the file is read as plain Markdown, and myst-nb points at the first
    # code cell with a link to the text-notebook format.
    code_cell_line = line_of(notebook, "```{code-cell}")
    assert f"{notebook}:{code_cell_line}: WARNING: Found an unexpected `code-cell`" in result.output
    assert "Jupytext header content was missing" in result.output
    assert "https://myst-nb.readthedocs.io/en/latest/authoring/text-notebooks.html" in result.output


def test_unknown_kernel_fails_build(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    notebook = book / "notebooks" / "second.md"
    replace_once(notebook, "  name: python3\n", "  name: no-such-kernel\n")

    result = build_book(book, build_tmpdir)

    assert result.returncode != 0, result.log
    assert "NoSuchKernel: No such kernel named no-such-kernel" in result.output
    # The exception does not name the notebook. The last execution started before it does.
    before_error = result.output.split("NoSuchKernel", 1)[0]
    started = re.findall(r"^(.+): Executing notebook using local CWD", before_error, re.M)
    assert started, result.log
    assert started[-1] == str(notebook)


def test_stderr_output_fails_build(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    notebook = book / "notebooks" / "second.md"
    append_cell(notebook, 'import sys\n\nprint("数据不完整", file=sys.stderr)')

    result = build_book(book, build_tmpdir)

    assert result.returncode != 0, result.log
    match = re.search(
        r"^(.+):(\d+): WARNING: stderr was found in the cell outputs of cell (\d+) "
        r"\[mystnb.stderr\]",
        result.output,
        re.M,
    )
    assert match, result.log
    assert match[1] == str(notebook)
    # The reported line lies inside the appended cell, between its opening and closing fences.
    cell_start = line_of(notebook, "import sys")
    assert cell_start <= int(match[2]) <= cell_start + 3
    # Cells are counted from 1, Markdown cells included: heading/prose, first code cell, this one.
    assert match[3] == "3"
    assert "build finished with problems, 1 warning." in result.output


def test_tagged_raising_cell_passes(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    notebook = book / "notebooks" / "second.md"
    append_cell(notebook, 'raise ValueError("演示用的错误")', ["raises-exception"])

    result = build_book(book, build_tmpdir)

    assert result.returncode == 0, result.log
    assert "build succeeded." in result.output
    assert ": WARNING: " not in result.output
    page = (book / "_build" / "html" / "notebooks" / "second.html").read_text(encoding="utf-8")
    assert "演示用的错误" in page


MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def make_book(
    book: Path,
    tmpdir: Path,
    *,
    requirements: str = "# fixture: nothing to install\n",
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run the repository's `make book` on a fixture book, reusing this virtual environment.

    requirements is written to the book's requirements.txt, which the environment fingerprint
    covers. prefix and env work as in `build_book`. The returned stdout has ANSI colour codes
    removed.
    """
    (book / "requirements.txt").write_text(requirements, encoding="utf-8")
    env = dict(os.environ if env is None else env, TMPDIR=str(tmpdir))
    bin_dir = Path(sys.executable).parent
    completed = subprocess.run(
        [*prefix, "make", "-f", str(MAKEFILE), "book", f"BIN={bin_dir}", "STAMP="],
        cwd=book,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    completed.stdout = ANSI_ESCAPE.sub("", completed.stdout)
    return completed


def test_make_book_hints_raising_cell(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    append_cell(book / "notebooks" / "second.md", 'raise ValueError("输入数据为空")')

    result = make_book(book, build_tmpdir)

    assert result.returncode != 0, result.stdout
    assert "ValueError: 输入数据为空" in result.stdout
    assert "- A code cell raised" in result.stdout
    assert "tag it raises-exception" in result.stdout
    assert (book / "_build" / "build.log").is_file()
    assert not (book / "_build" / ".doctrees").exists(), "a failed build kept the Sphinx env"


def test_make_book_hints_stderr_and_toc(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)
    append_cell(book / "notebooks" / "second.md", 'import sys\n\nprint("x", file=sys.stderr)')
    with (book / "_toc.yml").open("a", encoding="utf-8") as toc:
        toc.write("  - file: notebooks/missing\n")

    result = make_book(book, build_tmpdir)

    assert result.returncode != 0, result.stdout
    assert "- A cell wrote to stderr" in result.stdout
    assert "- _toc.yml lists a file that does not exist" in result.stdout
    assert "- A code cell raised" not in result.stdout


def test_make_book_success_prints_no_hints(tmp_path, build_tmpdir):
    book = copy_fixture_book(tmp_path)

    result = make_book(book, build_tmpdir)

    assert result.returncode == 0, result.stdout
    assert "Build failed" not in result.stdout
    assert (book / "_build" / "html" / "notebooks" / "second.html").is_file()
