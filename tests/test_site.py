"""Tests of the built site in _build/html (run after `make book`)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from conftest import HTML_DIR, TocEntry, read_source, toc_entries

ENTRIES = toc_entries()
NOTEBOOK_ENTRIES = [e for e in ENTRIES if e.is_notebook]


class PageParser(HTMLParser):
    """Collect the facts the tests need from one built page."""

    VOID_TAGS = {
        "area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr",
    }

    def __init__(self):
        super().__init__()
        self.html_lang = None
        self.classes: list[str] = []
        self.images: list[str] = []
        self.text_parts: list[str] = []
        self.output_parts: list[str] = []
        self._skip = 0
        self._open: list[str] = []
        self._output_depth: int | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "html":
            self.html_lang = attrs.get("lang")
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        self.classes.extend(classes)
        if tag in self.VOID_TAGS:
            return
        self._open.append(tag)
        if self._output_depth is None and "cell_output" in classes:
            self._output_depth = len(self._open)

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if tag in self.VOID_TAGS or tag not in self._open:
            return
        while self._open and self._open.pop() != tag:
            pass
        if self._output_depth is not None and len(self._open) < self._output_depth:
            self._output_depth = None

    def handle_data(self, data):
        if self._skip:
            return
        self.text_parts.append(data)
        if self._output_depth is not None:
            self.output_parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def output_text(self) -> str:
        """Text inside executed cell outputs only (not code or prose)."""
        return "".join(self.output_parts)


def page_path(entry: TocEntry):
    return HTML_DIR / f"{entry.docname}.html"


def parse_page(entry: TocEntry) -> PageParser:
    path = page_path(entry)
    if not path.exists():
        pytest.fail(f"{entry.docname}: no page at {path}; run `make book` first")
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def figure_count(entry: TocEntry) -> int:
    """Count the figures a chapter declares with {glue:figure} in its source."""
    return entry.source.read_text(encoding="utf-8").count("{glue:figure}")


def raising_cells(entry: TocEntry) -> int:
    nb = read_source(entry.source.stem)
    return sum(
        "raises-exception" in c.get("metadata", {}).get("tags", [])
        for c in nb.cells
        if c.cell_type == "code"
    )


def has_code(entry: TocEntry) -> bool:
    return any(c.cell_type == "code" for c in read_source(entry.source.stem).cells)


def test_toc_sources_exist():
    missing = [e.docname for e in ENTRIES if not e.source.exists()]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_notebook_in_toc():
    listed = {e.source.name for e in NOTEBOOK_ENTRIES}
    on_disk = {p.name for p in (HTML_DIR.parents[1] / "notebooks").glob("*.md")}
    assert on_disk - listed == set(), f"notebooks missing from _toc.yml: {on_disk - listed}"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.docname)
def test_page_built_in_chinese(entry):
    page = parse_page(entry)
    assert page.html_lang == "zh-CN", f"{entry.docname}: <html lang={page.html_lang!r}>"
    chinese_chars = len(re.findall(r"[\u4e00-\u9fff]", page.text))
    assert chinese_chars >= 60, f"{entry.docname}: only {chinese_chars} Chinese characters"


@pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=lambda e: e.docname)
def test_code_page_has_outputs(entry):
    if not has_code(entry):
        pytest.skip(f"{entry.docname} has no code cells")
    page = parse_page(entry)
    assert "cell_output" in page.classes, f"{entry.docname}: no executed cell outputs on the page"


@pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=lambda e: e.docname)
def test_code_page_has_figures(entry):
    expected = figure_count(entry)
    if expected == 0:
        pytest.skip(f"{entry.docname} declares no figures")
    page = parse_page(entry)
    images = [src for src in page.images if src.startswith("../_images/")]
    assert len(images) >= expected, (
        f"{entry.docname}: {expected} figures declared, {len(images)} images on the page"
    )
    for src in images:
        image = (page_path(entry).parent / src).resolve()
        assert image.is_file(), f"{entry.docname}: image {src} missing from the site"
        assert image.stat().st_size > 2000, f"{entry.docname}: image {src} is nearly empty"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.docname)
def test_no_stderr_blocks(entry):
    page = parse_page(entry)
    assert "stderr" not in page.classes, f"{entry.docname}: a cell wrote to stderr"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.docname)
def test_tracebacks_only_where_intended(entry):
    page = parse_page(entry)
    tracebacks = page.text.count("Traceback (most recent call last)")
    allowed = raising_cells(entry) if entry.is_notebook else 0
    assert tracebacks <= allowed, (
        f"{entry.docname}: {tracebacks} tracebacks, {allowed} cells tagged raises-exception"
    )


@pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=lambda e: e.docname)
def test_no_warnings_or_progress_bars(entry):
    if not has_code(entry):
        pytest.skip(f"{entry.docname} has no code cells")
    page = parse_page(entry)
    assert page.output_text.strip(), f"{entry.docname}: no text in any cell output"
    for marker in ("Warning:", "WARNING", "oneDNN", "it/s]", "%|"):
        assert marker not in page.output_text, f"{entry.docname}: {marker!r} in a cell output"
