"""The built site as a reader's browser renders it: Debian's chromium, driven by Playwright.

The site is served from 127.0.0.1 (fixture `site_url`); nothing else is contacted.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote, urlsplit

import nbformat
import pytest
from conftest import NOTEBOOK_DIR, read_source, site_pages, toc_entries
from nbclient import NotebookClient
from PIL import Image, ImageStat

PAGES = site_pages()
# The search page with a query, so that Pagefind's UI has loaded its index and shows results.
SEARCH_PAGE = f"search.html?q={quote('差分隐私')}"
NOTEBOOK_PAGES = [entry.docname for entry in toc_entries() if entry.is_notebook]
PHONE = {"width": 375, "height": 812}


def _open(page, url: str) -> None:
    page.goto(url, wait_until="networkidle")


def test_no_request_leaves_the_site(page, site_url):
    """Loading any page requests only files of the site itself (no CDN, fonts or trackers)."""
    base = urlsplit(site_url)
    offsite: dict[str, set[str]] = {}
    requested = 0
    current = {"page": ""}

    def record(request):
        nonlocal requested
        requested += 1
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob"):
            return
        if (url.scheme, url.netloc) != (base.scheme, base.netloc):
            offsite.setdefault(current["page"], set()).add(request.url)

    page.on("request", record)
    for path in [*PAGES, SEARCH_PAGE]:
        current["page"] = path
        _open(page, site_url + path)
        # MathJax fetches its fonts and components lazily, after the first typesetting pass.
        page.wait_for_timeout(300)
    assert requested > len(PAGES), "no request was recorded: the listener is not attached"
    assert not offsite, "pages requested files from other hosts:\n" + "\n".join(
        f"{path}: {', '.join(sorted(urls))}" for path, urls in offsite.items()
    )


MATH_PAGES = [path for path in PAGES if "notebooks/" in path]


@pytest.mark.parametrize("path", MATH_PAGES, ids=[Path(p).stem for p in MATH_PAGES])
def test_math_is_typeset(page, site_url, path):
    """Every $...$ and $$...$$ on the page has been rendered by the site's own MathJax."""
    _open(page, site_url + path)
    sources = page.locator("span.math, div.math").count()
    if sources == 0:
        pytest.skip(f"{path} has no math")
    page.wait_for_function(
        "n => document.querySelectorAll('mjx-container').length >= n", arg=sources, timeout=15000
    )
    errors = page.locator("mjx-merror").count()
    assert errors == 0, f"{path}: MathJax reported {errors} TeX error(s)"
    # Typeset output has real size (a missing font would leave empty boxes of zero width).
    width = page.locator("mjx-container").first.bounding_box()["width"]
    assert width > 5, f"{path}: the first formula is {width}px wide"


@pytest.mark.parametrize("docname", NOTEBOOK_PAGES, ids=[Path(d).stem for d in NOTEBOOK_PAGES])
def test_answers_are_folded(page, site_url, docname):
    """Each question shows first; its 答案/解析/参考答案 open only when the reader clicks."""
    _open(page, f"{site_url}{docname}.html")
    folds = page.locator("details.sd-dropdown")
    if Path(docname).stem in ("introduction", "conclusion"):
        assert folds.count() == 0
        return
    assert folds.count() >= 3, f"{docname}: expected answer, analysis and exercise dropdowns"
    titles = [folds.nth(i).locator("summary").inner_text().strip() for i in range(folds.count())]
    assert {"答案", "解析"} <= set(titles), f"{docname}: dropdown titles {titles}"
    for i in range(folds.count()):
        fold = folds.nth(i)
        body = fold.locator(".sd-summary-content")
        assert fold.get_attribute("open") is None, f"{docname}: dropdown {titles[i]} starts open"
        assert not body.is_visible(), f"{docname}: the text of {titles[i]} shows before a click"
    first = folds.first
    first.locator("summary").click()
    assert first.locator(".sd-summary-content").is_visible()


@pytest.mark.parametrize(
    "path", [*PAGES, SEARCH_PAGE], ids=[*(Path(p).stem for p in PAGES), "search"]
)
def test_phone_viewport_has_no_sideways_scroll(browser, site_url, path):
    """At 375 px wide the page itself never scrolls sideways; wide blocks scroll inside."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    try:
        _open(page, site_url + path)
        page.wait_for_timeout(200)
        overflow = page.evaluate(
            """() => {
              const width = document.documentElement.clientWidth;
              const wide = [];
              for (const el of document.querySelectorAll('article *')) {
                const box = el.getBoundingClientRect();
                if (box.width === 0) continue;
                // Inside a box that scrolls on its own, overflow is intended.
                let scroller = el.parentElement, contained = false;
                while (scroller && scroller !== document.body) {
                  const style = getComputedStyle(scroller);
                  if (['auto', 'scroll', 'hidden'].includes(style.overflowX)) {
                    contained = true; break;
                  }
                  scroller = scroller.parentElement;
                }
                if (!contained && box.right > width + 1) {
                  wide.push(el.tagName.toLowerCase() + '.' + el.className + ' ' +
                            Math.round(box.right) + 'px');
                }
              }
              return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
            }"""
        )
        assert overflow["scroll"] <= overflow["width"], (
            f"{path} scrolls sideways at 375 px: page {overflow['scroll']} px wide; "
            f"first wide elements: {overflow['wide']}"
        )
        assert not overflow["wide"], f"{path}: elements stick out at 375 px: {overflow['wide']}"
    finally:
        context.close()


def _luminance(png: bytes) -> float:
    return ImageStat.Stat(Image.open(io.BytesIO(png)).convert("L")).mean[0]


FIGURE_PAGES = [
    d
    for d in NOTEBOOK_PAGES
    if "{glue:figure}" in (NOTEBOOK_DIR / f"{Path(d).stem}.md").read_text()
]


@pytest.mark.parametrize("docname", FIGURE_PAGES, ids=[Path(d).stem for d in FIGURE_PAGES])
def test_dark_mode_keeps_figures_readable(browser, site_url, docname):
    """With the reader's system in dark mode the page turns dark and figures keep their light
    background, so dark axis labels stay legible."""
    context = browser.new_context(color_scheme="dark", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        _open(page, f"{site_url}{docname}.html")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        figures = page.locator("figure img")
        assert figures.count() > 0, f"{docname}: no figure image"
        for i in range(figures.count()):
            image = figures.nth(i)
            image.scroll_into_view_if_needed()
            shot = image.screenshot()
            light = _luminance(shot)
            assert light > 150, (
                f"{docname}: figure {i + 1} renders with mean luminance {light:.0f} on a dark page "
                f"(body background {background}); its labels would be unreadable"
            )
    finally:
        context.close()


@pytest.mark.parametrize("docname", NOTEBOOK_PAGES[1:2], ids=["bert"])
def test_copy_button_copies_the_code(browser, site_url, docname):
    """Every code cell has a copy button, and it puts the cell's code on the clipboard."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        _open(page, f"{site_url}{docname}.html")
        cells = page.locator("div.cell_input")
        buttons = page.locator("div.cell_input button.copybtn")
        assert cells.count() > 0
        assert buttons.count() == cells.count(), "some code cells have no copy button"
        cell = cells.nth(1)
        cell.hover()
        cell.locator("button.copybtn").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        expected = cell.locator("pre").inner_text()
        assert copied.strip() == expected.strip()
        assert "import" in copied or "=" in copied
    finally:
        context.close()


@pytest.mark.parametrize("docname", NOTEBOOK_PAGES, ids=[Path(d).stem for d in NOTEBOOK_PAGES])
def test_download_executed_notebook(page, site_url, docname, tmp_path):
    """The page's download menu saves <chapter>.ipynb with outputs, and <chapter>.md."""
    stem = Path(docname).stem
    _open(page, f"{site_url}{docname}.html")
    saved = {}
    for label, suffix in (
        ("download-notebook-button", ".ipynb"),
        ("download-source-button", ".md"),
    ):
        page.locator(".dropdown-download-buttons > button").click()
        with page.expect_download() as info:
            page.locator(f"a.btn-{label}").click()
        download = info.value
        assert download.suggested_filename == f"{stem}{suffix}"
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        saved[suffix] = target
    assert saved[".md"].read_text(encoding="utf-8") == (NOTEBOOK_DIR / f"{stem}.md").read_text(
        encoding="utf-8"
    )
    notebook = nbformat.read(saved[".ipynb"], as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    source_code = [cell.source for cell in read_source(stem).cells if cell.cell_type == "code"]
    assert [cell.source for cell in code] == source_code, (
        "the download's code differs from the page"
    )
    if code:
        assert all(cell.get("execution_count") for cell in code), "a code cell was not executed"
        assert sum(len(cell.outputs) for cell in code) >= len(code) // 2, "outputs are missing"
    assert json.loads(saved[".ipynb"].read_text(encoding="utf-8"))["nbformat"] == 4
    # Glued figures carry a plain image type too, so Jupyter shows them.
    images = sum("image/png" in o.get("data", {}) for cell in code for o in cell.outputs)
    figures = (NOTEBOOK_DIR / f"{stem}.md").read_text(encoding="utf-8").count("{glue:figure}")
    assert images >= figures, f"{stem}.ipynb shows {images} images for {figures} figures"


def _printed(notebook) -> list[str]:
    """What each code cell printed, with the stream chunks joined."""
    return [
        "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for cell in notebook.cells
        if cell.cell_type == "code"
    ]


@pytest.mark.slow
def test_downloaded_notebook_runs_standalone(page, site_url, tmp_path):
    """A downloaded chapter runs in a fresh kernel in an empty folder, outside the repository."""
    _open(page, f"{site_url}notebooks/bert.html")
    page.locator(".dropdown-download-buttons > button").click()
    with page.expect_download() as info:
        page.locator("a.btn-download-notebook-button").click()
    target = tmp_path / "bert.ipynb"
    info.value.save_as(target)
    notebook = nbformat.read(target, as_version=4)
    expected = _printed(notebook)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    assert _printed(notebook) == expected
