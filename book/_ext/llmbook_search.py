"""Chinese full-text search for the built site, with Pagefind (extended build, 1.5.2).

After every successful HTML build this indexes the article text of each page into
``_build/html/pagefind/``, and ``search.html`` (book/_templates/search.html with
book/_static/llmbook-search.js) shows Pagefind's UI for the theme's ``?q=`` query.

Pagefind segments Chinese into words twice: with charabia when it indexes, and with the
browser's ``Intl.Segmenter`` when it reads a query. The two can split a compound such as 差分隐私
or 句向量 differently, and then the query finds nothing. The index is therefore built from a
staged copy of each page with a zero-width space (U+200B) between adjacent CJK characters:
every character becomes one indexed word. Pagefind removes U+200B from the words it stores, so
excerpts show the text without added spaces. The search page sends each query as an exact
phrase of single characters, which finds a page exactly when its article contains that
character sequence.

NOTE: exact phrases match whole Latin words only (``Fed`` finds FedAvg through Pagefind's
camel-case parts, ``token`` does not find ``tokens``), and a phrase does not match across two
block elements, because Pagefind puts a full stop between them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parents[1] / "_templates"
BUNDLE_DIR = "pagefind"
LANGUAGE = "zh-cn"

# sphinx-book-theme puts the page body in this element, without sidebars, header or footer.
ARTICLE_START = '<article class="bd-article"'
ROOT_SELECTOR = "article.bd-article"
# Page furniture inside the article: heading permalinks (#), the 显示代码 (show code)
# toggles of myst-nb's hide-input cells, and the child-page lists of the part overview pages.
EXCLUDE_SELECTORS = ("a.headerlink", "details.hide > summary", "div.toctree-wrapper")

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Two CJK characters are neighbours also when only tags separate them, as in 被<a …>反量化</a>:
# the reader sees 被反量化, and the tokenizer would otherwise glue 被反 into one word.
CJK_NEIGHBOURS = re.compile(f"(?<=[{CJK}])(?=(?:<[^<>]*>)*[{CJK}])")
ZERO_WIDTH_SPACE = "\u200b"
# The extended build's tokenizer (charabia) splits most punctuation marks off as words, which
# take up positions in the index. Listing the marks here keeps them in the index and in queries,
# so a phrase such as GPT-3, 2.1 or 私（DP） still matches word for word. The ASCII double
# quote is left out because Pagefind reads it as the exact-phrase syntax.
PUNCTUATION = "-.,:;!?'()[]{}/\\_&#%@*+=<>|~^`$，。、：；？！“”‘’（）《》【】「」…—·"

# Files of the bundle that search.html does not load (other UI flavours).
UNUSED_BUNDLE_FILES = (
    "pagefind-component-ui.css",
    "pagefind-component-ui.js",
    "pagefind-modular-ui.css",
    "pagefind-modular-ui.js",
    "pagefind-highlight.js",
)


def pagefind_executable() -> Path:
    """Return the extended Pagefind binary, which is the build that segments Chinese."""
    try:
        from pagefind_bin_extended import get_executable
    except ImportError as error:
        raise ExtensionError(
            "Search index: the Python package pagefind_bin_extended is missing, and only "
            "Pagefind's extended binary segments Chinese. Install requirements.txt again "
            "(rm .venv/.installed && make book)."
        ) from error
    return get_executable()


def reading_order(app: Sphinx) -> list[str]:
    """Return every document in table-of-contents order, then any others alphabetically."""
    includes = app.env.toctree_includes
    ordered: list[str] = []

    def visit(docname: str) -> None:
        if docname in ordered:
            return
        ordered.append(docname)
        for child in includes.get(docname, []):
            visit(child)

    visit(app.config.root_doc)
    ordered.extend(sorted(set(app.env.found_docs) - set(ordered)))
    return [doc for doc in ordered if doc in app.env.found_docs]


def stage_page(html: str, rank: int, source: Path) -> str:
    """Return the page as Pagefind should read it: one word per CJK character, with its rank.

    The rank becomes the sort key ``order``, so results are listed in reading order. It is
    zero-padded, so that sorting it as text or as a number gives the same order.
    """
    count = html.count(ARTICLE_START)
    if count != 1:
        raise ExtensionError(
            f"Search index: {source} has {count} {ARTICLE_START}> elements instead of one, so "
            "its article text cannot be told apart from the navigation. Check the html_theme "
            "and the page's template."
        )
    html = html.replace(ARTICLE_START, f'{ARTICLE_START} data-pagefind-sort="order:{rank:04d}"')
    return CJK_NEIGHBOURS.sub(ZERO_WIDTH_SPACE, html)


def run_pagefind(site: Path, bundle: Path) -> str:
    """Index the staged site into bundle and return Pagefind's output."""
    command = [
        str(pagefind_executable()),
        # The name=value form, because the punctuation value starts with a hyphen.
        f"--site={site}",
        f"--output-path={bundle}",
        f"--root-selector={ROOT_SELECTOR}",
        f"--exclude-selectors={', '.join(EXCLUDE_SELECTORS)}",
        f"--force-language={LANGUAGE}",
        f"--include-characters={PUNCTUATION}",
    ]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ExtensionError(
            f"Search index: could not run Pagefind ({command[0]}): {error}"
        ) from error
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise ExtensionError(
            f"Search index: Pagefind exited with status {completed.returncode}. "
            f"Its output:\n{output}"
        )
    return output


def check_bundle(bundle: Path, expected_pages: int, output: str) -> None:
    """Raise unless the bundle contains one Chinese index with every staged page."""
    entry_file = bundle / "pagefind-entry.json"
    try:
        languages = json.loads(entry_file.read_text(encoding="utf-8"))["languages"]
    except (OSError, ValueError, KeyError) as error:
        raise ExtensionError(
            f"Search index: Pagefind wrote no readable {entry_file.name} ({error}). "
            f"Its output:\n{output}"
        ) from error
    indexed = languages.get(LANGUAGE, {}).get("page_count")
    if list(languages) != [LANGUAGE] or indexed != expected_pages:
        raise ExtensionError(
            f"Search index: expected {expected_pages} pages in one {LANGUAGE} index, but "
            f"Pagefind wrote {json.dumps(languages)}. Pages without a {ROOT_SELECTOR} element "
            f"or without text are left out. Pagefind's output:\n{output}"
        )


def build_index(outdir: Path, pages: list[str]) -> None:
    """Index the given pages of the built site (paths under outdir) into outdir/pagefind."""
    target = outdir / BUNDLE_DIR
    with tempfile.TemporaryDirectory(prefix="llmbook-search-") as scratch:
        site = Path(scratch) / "site"
        bundle = Path(scratch) / "bundle"
        for rank, page in enumerate(pages):
            source = outdir / page
            staged = site / page
            staged.parent.mkdir(parents=True, exist_ok=True)
            html = source.read_text(encoding="utf-8")
            staged.write_text(stage_page(html, rank, source), encoding="utf-8")
        output = run_pagefind(site, bundle)
        check_bundle(bundle, len(pages), output)
        for name in UNUSED_BUNDLE_FILES:
            (bundle / name).unlink(missing_ok=True)
        # Replace the whole folder, so no index file of an earlier build is left behind.
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(bundle, target)


def index_site(app: Sphinx, exception: Exception | None) -> None:
    """Rebuild the search index after every successful build of the html builder."""
    if exception is not None or app.builder.name != "html":
        return
    start = time.perf_counter()
    pages = [app.builder.get_target_uri(doc) for doc in reading_order(app)]
    build_index(Path(app.outdir), pages)
    seconds = time.perf_counter() - start
    LOGGER.info(f"Search index: Pagefind indexed {len(pages)} pages in {seconds:.1f} s.")


def add_templates(app: Sphinx, config) -> None:
    """Put book/_templates first, so its search.html replaces the theme's."""
    config.templates_path.insert(0, str(TEMPLATES))


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", add_templates)
    app.connect("build-finished", index_site)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
