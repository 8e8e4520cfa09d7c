"""Site search: search.html runs Pagefind over the index that book/_ext/llmbook_search.py builds.

The browser tests read _build/html through the `site_url` server with Debian's chromium, as a
reader would. The last tests index small hand-made sites and build the fixture book, to check
that a broken index stops the build with a message.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from conftest import HTML_DIR, ROOT, site_pages, toc_entries
from sphinx.errors import ExtensionError

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import llmbook_search  # noqa: E402 (book/_ext is not a package)

PAGES = site_pages()
DOCNAMES = [path.removesuffix(".html") for path in PAGES]
CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")

# Each query and the chapter where the term is a main topic, checked in notebooks/*.md and
# book/*.md. The test also requires every other page that contains a Chinese term. The comments
# name the pages that the site's former search (Sphinx's searchindex.js with jieba) returned.
QUERIES = {
    "自然语言处理": "notebooks/bert",  # Sphinx: bert only (title match), not gpt or introduction
    "句向量": "notebooks/bert",  # Sphinx: nothing
    "差分隐私": "notebooks/privacy",  # Sphinx: nothing
    "联邦学习": "notebooks/privacy",  # Sphinx: nothing
    "知识蒸馏": "notebooks/energy",  # Sphinx: nothing
    "可解释性": "notebooks/explainability",  # Sphinx: explainability only
    "积分梯度": "notebooks/explainability",  # Sphinx: nothing
    "推荐系统": "notebooks/recommender",  # Sphinx: recommender only
    "量化": "notebooks/energy",
    "隐私预算": "notebooks/privacy",  # Sphinx: nothing
    "余弦相似度": "notebooks/bert",  # Sphinx: nothing
    "BERT": "notebooks/bert",
    "FedAvg": "notebooks/privacy",
    "GPT-3": "notebooks/gpt",
    "DP-SGD": "notebooks/privacy",
}
# Not in the book. Pagefind's default search shortens an unknown word until something matches
# (asdfqwer finds "as"); the exact-phrase queries of search.html must not.
NONSENSE = ["asdfqwer", "量子纠缠态"]
# Text of the page around the article (navigation, prev/next links, skip link, code toggles).
CHROME = ["跳转至主要内容", "上一页", "显示代码", "CC BY 4.0"]
HEADING_PHRASES_PER_PAGE = 5

# True once the Pagefind UI shows the finished search for the query and has loaded every result.
RESULTS_READY = """(query) => {
  const message = document.querySelector("#llmbook-search .pagefind-ui__message");
  if (!message || !message.textContent.includes(`“${query}”`)) return false;
  const text = message.textContent.trim();
  if (text.startsWith("没有页面包含")) return true;
  const count = parseInt(text, 10);
  const links = document.querySelectorAll("#llmbook-search a.pagefind-ui__result-link");
  return links.length === count;
}"""

# The article text of a built page as Pagefind reads it: the raw HTML (MathJax has not run),
# without scripts and without the elements the index leaves out.
ARTICLE_TEXT = """async ([url, excluded]) => {
  const html = await (await fetch(url)).text();
  const doc = new DOMParser().parseFromString(html, "text/html");
  const article = doc.querySelector("article.bd-article");
  article.querySelectorAll(excluded + ", script, style").forEach((el) => el.remove());
  const paragraphs = Array.from(article.querySelectorAll("p"), (p) => p.textContent);
  return { text: article.textContent, paragraphs, html };
}"""


def search_url(site_url: str, query: str) -> str:
    return f"{site_url}search.html?q={quote(query)}"


def wait_for_results(page, query: str) -> list[str]:
    """Wait for the search for query to finish; return the result pages as docnames."""
    page.wait_for_function(RESULTS_READY, arg=query, timeout=15000)
    hrefs = page.eval_on_selector_all(
        "#llmbook-search a.pagefind-ui__result-link", "links => links.map(a => a.href)"
    )
    return [urlsplit(href).path.lstrip("/").removesuffix(".html") for href in hrefs]


def search(page, site_url: str, query: str) -> list[str]:
    """Search for query and return the result docnames.

    The first search opens search.html?q=query, as the theme's search box does. Later ones on
    the same page type into the search page's own box, which is faster than loading it again.
    """
    if urlsplit(page.url).path.endswith("/search.html"):
        page.locator("#llmbook-search input").fill(query)
    else:
        page.goto(search_url(site_url, query))
    return wait_for_results(page, query)


def without_spaces(text: str) -> str:
    return re.sub(r"\s+", "", text)


def is_chinese(query: str) -> bool:
    return re.fullmatch(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+", query) is not None


@pytest.fixture(scope="session")
def articles(browser, site_url) -> dict[str, dict]:
    """Article text, paragraphs and raw HTML of every page in the table of contents."""
    page = browser.new_page()
    try:
        page.goto(site_url + "genindex.html")
        excluded = ", ".join(llmbook_search.EXCLUDE_SELECTORS)
        return {
            docname: page.evaluate(ARTICLE_TEXT, [f"{site_url}{docname}.html", excluded])
            for docname in DOCNAMES
        }
    finally:
        page.close()


def pages_containing(articles: dict[str, dict], query: str) -> set[str]:
    """Pages whose article contains query, ignoring whitespace (and case, for Latin text)."""
    needle = without_spaces(query).casefold()
    return {
        docname
        for docname, article in articles.items()
        if needle in without_spaces(article["text"]).casefold()
    }


def heading_phrases(source: Path) -> list[str]:
    """The first Chinese runs of two or more characters in the Markdown headings of source."""
    phrases: list[str] = []
    fence = ""
    for line in source.read_text(encoding="utf-8").splitlines():
        marker = re.match(r"^(`{3,}|~{3,})", line)
        if marker and not fence:
            fence = marker.group(1)
            continue
        if fence:
            if line.strip() == fence[0] * len(line.strip()) and len(line.strip()) >= len(fence):
                fence = ""
            continue
        heading = re.match(r"^#{1,6}\s+(.*)", line)
        if heading:
            for phrase in CJK_RUN.findall(heading.group(1)):
                if phrase not in phrases:
                    phrases.append(phrase)
    return phrases[:HEADING_PHRASES_PER_PAGE]


def body_phrase(article: dict) -> str | None:
    """Four characters from inside the first long Chinese run of the article's paragraphs.

    They start at the run's fourth character, so they usually cut across words.
    """
    for paragraph in article["paragraphs"]:
        for run in CJK_RUN.findall(paragraph):
            if len(run) >= 8:
                return run[3:7]
    return None


# --- Queries --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", list(QUERIES))
def test_query_finds_its_chapter(page, site_url, articles, query):
    """The chapter is found, and so is every page with the term, and only such pages."""
    results = search(page, site_url, query)
    expected = QUERIES[query]
    containing = pages_containing(articles, query)

    assert expected in containing, f"fix QUERIES: {expected} does not contain {query!r}"
    assert expected in results, f"{query!r}: {expected} missing from the results {results}"
    assert set(results) <= containing, (
        f"{query!r}: these results do not contain the text: {sorted(set(results) - containing)}"
    )
    if is_chinese(query):
        assert set(results) == containing, (
            f"{query!r}: pages with the text but not found: {sorted(containing - set(results))}"
        )


@pytest.mark.parametrize("docname", DOCNAMES, ids=[Path(d).stem for d in DOCNAMES])
def test_page_found_by_its_own_phrases(page, site_url, articles, docname):
    """Chinese phrases of each page's headings, and a cut across words of its first long
    paragraph, each find that page."""
    entry = next(e for e in toc_entries() if e.docname == docname)
    phrases = heading_phrases(entry.source)
    assert phrases, f"{entry.source} has no Chinese heading phrase to search for"
    cut = body_phrase(articles[docname])
    if cut:
        phrases.append(cut)

    missed = {}
    for phrase in phrases:
        results = search(page, site_url, phrase)
        if docname not in results:
            missed[phrase] = results
    assert not missed, f"{docname} not found by: {missed}"


@pytest.mark.parametrize("query", NONSENSE)
def test_unknown_text_shows_no_results(page, site_url, articles, query):
    """Text that is in no page gives the UI's "no results" message, not an error."""
    assert not pages_containing(articles, query), f"fix NONSENSE: {query!r} is in the book"
    errors = []

    def record_error(message):
        if message.type == "error" and "pagefind" in message.text.lower():
            errors.append(message.text)

    page.on("console", record_error)

    results = search(page, site_url, query)

    assert results == []
    message = page.locator("#llmbook-search .pagefind-ui__message").inner_text()
    assert message == f"没有页面包含“{query}”"
    assert not errors, f"Pagefind logged errors: {errors}"


@pytest.mark.parametrize("text", CHROME)
def test_page_chrome_not_indexed(page, site_url, articles, text):
    """Navigation, footer and code toggles are on every page but are not searchable."""
    pages_with_text = [d for d, article in articles.items() if text in article["html"]]
    assert pages_with_text, f"fix CHROME: {text!r} is on no page"
    assert not pages_containing(articles, text), f"fix CHROME: {text!r} is in an article"

    assert search(page, site_url, text) == []


def test_results_link_to_pages(page, site_url):
    """Every result of a common word links to a page of the book that loads."""
    search(page, site_url, "模型")
    hrefs = page.eval_on_selector_all(
        "#llmbook-search a.pagefind-ui__result-link", "links => links.map(a => a.href)"
    )

    assert len(hrefs) >= 10
    for href in hrefs:
        target = urlsplit(href)
        assert f"{target.scheme}://{target.netloc}/" == site_url, f"{href} leaves the site"
        assert target.path.lstrip("/") in PAGES, f"{href} is not a page of the book"
        assert page.request.get(href).status == 200, f"{href} does not load"


def test_results_in_reading_order(page, site_url):
    """Results are sorted like the table of contents."""
    results = search(page, site_url, "模型")

    assert results == sorted(results, key=DOCNAMES.index)


# --- The search page --------------------------------------------------------------------------


def test_search_page_in_chinese(page, site_url):
    """The Pagefind UI shows the query in its box and speaks Chinese."""
    results = search(page, site_url, "差分隐私")
    search_box = page.locator("#llmbook-search input")

    assert search_box.input_value() == "差分隐私"
    assert search_box.get_attribute("placeholder") == "搜索本书"
    assert page.locator("#llmbook-search .pagefind-ui__message").inner_text() == (
        f"{len(results)} 个页面包含“差分隐私”"
    )
    assert page.locator("#llmbook-search .pagefind-ui__search-clear").inner_text() == "清除"
    assert page.title().startswith("搜索")


def test_typing_on_search_page(page, site_url):
    """A new query typed on the search page replaces the results and the address's ?q=."""
    search(page, site_url, "差分隐私")

    page.locator("#llmbook-search input").fill("积分梯度")
    results = wait_for_results(page, "积分梯度")

    assert "notebooks/explainability" in results
    assert "notebooks/privacy" not in results
    assert page.evaluate("new URLSearchParams(location.search).get('q')") == "积分梯度"


def test_theme_search_button_leads_to_results(page, site_url):
    """The search button in the page header opens the theme's dialog, which submits to
    search.html and shows Pagefind's results."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{site_url}notebooks/bert.html")
    page.locator(".search-button__button:visible").first.click()
    dialog_input = page.locator("#pst-search-dialog input[name=q]")
    dialog_input.fill("知识蒸馏")
    dialog_input.press("Enter")
    page.wait_for_url("**/search.html?q=*")
    results = wait_for_results(page, "知识蒸馏")

    assert "notebooks/energy" in results
    assert page.locator("#llmbook-search input").input_value() == "知识蒸馏"


def test_ctrl_k_dialog_leads_to_results(page, site_url):
    """Ctrl+K opens the theme's search dialog on any page; Enter shows the results."""
    page.goto(f"{site_url}notebooks/gpt.html")
    page.keyboard.press("Control+k")
    dialog_input = page.locator("#pst-search-dialog input[name=q]")
    dialog_input.wait_for(state="visible")
    page.keyboard.type("FedAvg")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search.html?q=*")
    results = wait_for_results(page, "FedAvg")

    assert "notebooks/privacy" in results


# --- The index --------------------------------------------------------------------------------


def test_index_lists_every_page():
    """The built bundle contains one zh-cn index with every page of the table of contents."""
    entry = json.loads((HTML_DIR / "pagefind" / "pagefind-entry.json").read_text())

    assert list(entry["languages"]) == ["zh-cn"]
    assert entry["languages"]["zh-cn"]["page_count"] == len(PAGES)


def test_stage_page_splits_chinese_characters():
    """Staging puts U+200B between neighbouring CJK characters only, and the sort rank."""
    html = '<html><body><article class="bd-article"><p>差分隐私 DP-SGD，BERT模型</p>'
    staged = llmbook_search.stage_page(html + "</article></body></html>", 3, Path("x.html"))

    assert '<article class="bd-article" data-pagefind-sort="order:0003">' in staged
    assert "差\u200b分\u200b隐\u200b私 DP-SGD，BERT模\u200b型" in staged


def test_stage_page_splits_across_tags():
    """Characters that only tags separate are neighbours too: 被<a>反量化</a> reads 被反量化."""
    html = '<article class="bd-article"><p>被<a href="g.html"><span>反量化</span></a>为 x</p>'
    staged = llmbook_search.stage_page(html + "</article>", 1, Path("x.html"))

    assert '被\u200b<a href="g.html"><span>反\u200b量\u200b化\u200b</span></a>为 x' in staged


def test_stage_page_needs_one_article():
    """A page without the theme's article element stops the indexing and is named."""
    with pytest.raises(ExtensionError, match=r"broken\.html has 0 <article"):
        llmbook_search.stage_page(
            "<html><body><main>正文</main></body></html>", 0, Path("broken.html")
        )


def write_page(folder: Path, name: str, body: str) -> None:
    article = f'<article class="bd-article">{body}</article>'
    html = f'<!DOCTYPE html><html lang="zh-CN"><body>{article}</body></html>'
    (folder / name).write_text(html, encoding="utf-8")


def test_build_index_replaces_old_bundle(tmp_path):
    """Indexing writes a fresh bundle and removes files of the previous one."""
    write_page(tmp_path, "a.html", "<h1>甲</h1><p>差分隐私</p>")
    write_page(tmp_path, "b.html", "<h1>乙</h1><p>联邦学习</p>")
    stale = tmp_path / "pagefind" / "fragment" / "old.pf_fragment"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")

    llmbook_search.build_index(tmp_path, ["a.html", "b.html"])

    entry = json.loads((tmp_path / "pagefind" / "pagefind-entry.json").read_text())
    assert entry["languages"]["zh-cn"]["page_count"] == 2
    assert not stale.exists()
    assert (tmp_path / "pagefind" / "pagefind-ui.js").is_file()
    assert not (tmp_path / "pagefind" / "pagefind-modular-ui.js").exists()


def test_build_index_rejects_skipped_page(tmp_path):
    """A page that Pagefind skips (an empty article) makes the page count check fail."""
    write_page(tmp_path, "a.html", "<h1>甲</h1><p>差分隐私</p>")
    write_page(tmp_path, "empty.html", "")

    with pytest.raises(ExtensionError, match="expected 2 pages in one zh-cn index"):
        llmbook_search.build_index(tmp_path, ["a.html", "empty.html"])


def test_build_index_reports_pagefind_failure(tmp_path, monkeypatch):
    """A Pagefind run that exits with an error stops the indexing with its status."""
    write_page(tmp_path, "a.html", "<p>差分隐私</p>")
    monkeypatch.setattr(llmbook_search, "pagefind_executable", lambda: Path(shutil.which("false")))

    with pytest.raises(ExtensionError, match="Pagefind exited with status 1"):
        llmbook_search.build_index(tmp_path, ["a.html"])


def test_book_build_fails_when_index_fails(tmp_path):
    """The fixture book builds with the extension, and fails, naming the page, once a
    template drops the article element that the index reads."""
    from test_failures import build_book, copy_fixture_book, replace_once

    book = copy_fixture_book(tmp_path)
    replace_once(
        book / "_config.yml",
        "sphinx:\n  config:\n",
        "sphinx:\n  local_extensions:\n"
        f"    llmbook_search: {ROOT / 'book' / '_ext'}\n"
        "  config:\n    templates_path: [_templates]\n",
    )
    (book / "_templates").mkdir()
    build_tmpdir = tmp_path / "tmp"
    build_tmpdir.mkdir()

    first = build_book(book, build_tmpdir)
    assert first.returncode == 0, first.log
    assert (book / "_build" / "html" / "pagefind" / "pagefind-entry.json").is_file()

    (book / "_templates" / "page.html").write_text(
        '{% extends "!page.html" %}\n{% block docs_body %}<div>{{ body }}</div>{% endblock %}\n'
    )
    second = build_book(book, build_tmpdir)
    assert second.returncode != 0, second.log
    assert "Search index: " in second.output
    assert "notebooks/first.html has 0 <article" in second.output
