"""Seeds: every random draw in the book is fixed, and a random cell reproduces on its own.

Audit of the chapters' randomness. Each random cell seeds its own generator. The global seeds of
the setup cell are a safety net for library code that draws from the global state.

- bert: DataCollatorForLanguageModeling picks and replaces MLM tokens (`seed=SEED`). The
  randomly initialised BertModel is only counted, never run.
- gpt: sampled generation (`transformers.set_seed(SEED)` before each `generate`). The randomly
  initialised GPT2LMHeadModel is only counted.
- recommender: the train/validation/test split (`default_rng(SEED)`), Keras initialisers
  (`seed=`), and `model.fit(shuffle=True)` (`keras.utils.set_random_seed` in `train_recommender`,
  with TensorFlow op determinism on).
- privacy: the split, model initialisation, minibatch order, federated clients, DP-SGD sampling
  and noise, the salt and the linkage attack each use `torch.Generator().manual_seed(...)` or
  `default_rng(SEED)`.
- explainability: the split and shuffled labels (`default_rng(SEED)`), model initialisation
  (`torch.manual_seed(SEED)` in `build_recommender`), minibatch order (a seeded generator), PCA
  and the decision tree (`random_state=SEED`).
- energy: the split (`default_rng(SEED)`), matrix-factorisation initialisation and minibatch
  order (seeded generators); generation is greedy.
- introduction, conclusion: no randomness.

`test_setup_cell_sets_seeds` checks that every chapter that imports a random library seeds it in
its setup cell. `test_random_cell_reruns_identically` runs, for each chapter with random cells,
the setup cell, the cells one random cell depends on and then that cell twice, in a fresh
kernel, and compares both runs with the cell's stored reference output. Cells that it skips
would have advanced a global generator, so a cell that drew from global state would differ.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import re
import time
from dataclasses import dataclass

import nbformat
import pytest
from conftest import (
    NOTEBOOK_DIR,
    REFERENCE_DIR,
    code_cell_index,
    compare_notebooks,
    notebook_names,
    read_source,
)
from nbclient import NotebookClient
from test_regression import CELL_TIMEOUT

# At most this many kernels run at once; each uses up to two threads.
PARALLEL_KERNELS = 2

# (import that makes the library available, the seed call its setup cell must contain)
SEED_CALLS = (
    (r"^import random$", "random.seed(SEED)"),
    (r"^import numpy as np$", "np.random.seed(SEED)"),
    (r"^import torch$", "torch.manual_seed(SEED)"),
    (r"^import (keras|tensorflow as tf)$", "keras.utils.set_random_seed(SEED)"),
    (r"^import transformers$", "transformers.set_seed(SEED)"),
)
# Code that draws random numbers, in any cell but the setup cell.
RANDOM_USE = re.compile(
    r"default_rng|manual_seed|set_seed|set_random_seed|do_sample=True|\"do_sample\": True"
    r"|random_state=|shuffle=True|randperm|torch\.randn?\(|DataCollatorForLanguageModeling"
)


@dataclass(frozen=True)
class RandomCell:
    """A random cell to re-run, found by a text that occurs in that code cell only."""

    notebook: str
    cell: str
    # Texts of the code cells it needs, besides the setup cell, in notebook order
    needs: tuple[str, ...]


RANDOM_CELLS = (
    RandomCell(
        "bert", "collator = DataCollatorForLanguageModeling(", ("BertModel.from_pretrained",)
    ),
    RandomCell(
        "gpt",
        "do_sample=True,\n    pad_token_id=PAD_ID",
        ("def load_causal_lm", "load_causal_lm()", 'PROMPT = "Once upon a time"'),
    ),
    RandomCell(
        "recommender",
        "model, history, log_lines, best_epoch = train_recommender()",
        (
            'load_dataset("InstEval")',
            "order = rng.permutation",
            "def rmse",
            "def build_recommender",
        ),
    ),
    RandomCell(
        "privacy", "linkage_rng = np.random.default_rng(SEED)", ('load_dataset("InstEval")',)
    ),
    RandomCell(
        "explainability",
        "PCA(n_components=2, random_state=SEED).fit(sentence_vecs)",
        ("def embed_sentences",),
    ),
    RandomCell("energy", "order = np.random.default_rng(SEED).permutation", ()),
)


def code_cells(name: str) -> list[nbformat.NotebookNode]:
    return [cell for cell in read_source(name).cells if cell.cell_type == "code"]


def without_execution_counts(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a one-cell notebook of cell with its execution counts removed.

    The re-run executes fewer cells than the reference run, so its counts are smaller.
    """
    cell = copy.deepcopy(cell)
    cell.execution_count = None
    for output in cell.get("outputs", []):
        if "execution_count" in output:
            output.execution_count = None
    return nbformat.v4.new_notebook(cells=[cell])


@pytest.mark.parametrize("name", notebook_names())
def test_setup_cell_sets_seeds(name):
    cells = code_cells(name)
    if not cells:
        pytest.skip(f"notebooks/{name}.md has no code cells")
    code = "\n".join(cell.source for cell in cells)
    for import_pattern, seed_call in SEED_CALLS:
        if re.search(import_pattern, code, re.MULTILINE):
            assert "SEED = " in cells[0].source, f"notebooks/{name}.md: the setup cell sets no SEED"
            assert seed_call in cells[0].source, (
                f"notebooks/{name}.md imports the library of {seed_call} but its setup cell "
                f"does not call {seed_call}"
            )


def test_every_random_notebook_rerun():
    random_notebooks = {
        name
        for name in notebook_names()
        if any(RANDOM_USE.search(cell.source) for cell in code_cells(name)[1:])
    }
    assert random_notebooks == {case.notebook for case in RANDOM_CELLS}, (
        "RANDOM_CELLS must name one random cell of each chapter that draws random numbers"
    )


def rerun_notebook(case: RandomCell) -> nbformat.NotebookNode:
    """Return a notebook of the setup cell, the cells case needs, and case's cell twice."""
    indices = [0] + [code_cell_index(case.notebook, text) for text in case.needs]
    target = code_cell_index(case.notebook, case.cell)
    assert indices == sorted(indices), f"{case}: list the needed cells in notebook order"
    assert indices[-1] < target, f"{case}: a needed cell comes after the re-run cell"
    cells = code_cells(case.notebook)
    notebook = read_source(case.notebook)
    notebook.cells = [copy.deepcopy(cells[i]) for i in [*indices, target, target]]
    return notebook


async def _execute(notebook, semaphore) -> tuple[nbformat.NotebookNode | Exception, float]:
    async with semaphore:
        start = time.monotonic()
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            allow_errors=False,
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        )
        try:
            await client.async_execute()
        except Exception as error:  # reported by the test of that notebook
            return error, time.monotonic() - start
        return notebook, time.monotonic() - start


async def _execute_all(notebooks: dict) -> list:
    semaphore = asyncio.Semaphore(PARALLEL_KERNELS)
    return await asyncio.gather(*(_execute(nb, semaphore) for nb in notebooks.values()))


@pytest.fixture(scope="module")
def reruns() -> dict[str, tuple[nbformat.NotebookNode | Exception, float]]:
    """Execute every case's re-run notebook, PARALLEL_KERNELS at a time, keyed by notebook."""
    notebooks = {case.notebook: rerun_notebook(case) for case in RANDOM_CELLS}
    start = time.monotonic()
    # A thread of its own: the browser tests' Playwright keeps an event loop running in the
    # main thread for the whole session, and asyncio.run() refuses to start inside it.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        results = pool.submit(asyncio.run, _execute_all(notebooks)).result()
    print(f"\nre-ran {len(notebooks)} random cells in {time.monotonic() - start:.1f} s")
    return dict(zip(notebooks, results, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("case", RANDOM_CELLS, ids=lambda case: case.notebook)
def test_random_cell_reruns_identically(case, reruns):
    executed, seconds = reruns[case.notebook]
    if isinstance(executed, Exception):
        pytest.fail(f"notebooks/{case.notebook}.md: the re-run failed:\n{executed}")
    reference = nbformat.read(REFERENCE_DIR / f"{case.notebook}.ipynb", as_version=4)
    target = code_cell_index(case.notebook, case.cell)
    expected = without_execution_counts(reference.cells[target])

    for run, cell in enumerate(executed.cells[-2:], start=1):
        diff = compare_notebooks(expected, without_execution_counts(cell))
        assert not diff, (
            f"notebooks/{case.notebook}.md code cell {target + 1}, run {run} in a fresh kernel "
            f"({seconds:.0f} s), differs from tests/references/{case.notebook}.ipynb:\n{diff}"
        )
