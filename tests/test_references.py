"""Tests of the reader-facing reference apparatus: anchors, figures, glossary and bibliography.

The HTML tests read the built site in _build/html, so run `make book` first. The last two tests
read the Markdown sources.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pybtex.database
import pytest
from conftest import HTML_DIR, NOTEBOOK_DIR, ROOT, TocEntry, toc_entries

ENTRIES = toc_entries()
CHAPTERS = [e for e in ENTRIES if e.is_notebook]
BIB_FILE = ROOT / "book" / "references.bib"
BIBLIOGRAPHY_PAGE = "book/bibliography"
GLOSSARY_PAGE = "book/glossary"

# Original sources behind the book's claims. Each must be in the bibliography.
REQUIRED_KEYS = [
    "vaswani2017attention",  # Transformer
    "devlin2019bert",  # BERT
    "radford2019language",  # GPT-2
    "brown2020language",  # GPT-3
    "child2019generating",  # Sparse Transformer
    "liu2019roberta",  # RoBERTa
    "wang2020minilm",  # MiniLM
    "reimers2019sentencebert",  # Sentence-BERT
    "allal2025smollm2",  # SmolLM2
    "bates2015fitting",  # lme4, the source of the InstEval data
    "mcmahan2017communication",  # FedAvg
    "abadi2016deep",  # DP-SGD
    "mironov2017renyi",  # Rényi DP, used by the RDP accountant
    "sundararajan2017axiomatic",  # Integrated Gradients
    "jain2019attention",  # Attention is not Explanation
    "wiegreffe2019attention",  # Attention is not not Explanation
    "jacob2018quantization",  # integer quantization
    "hinton2015distilling",  # knowledge distillation
    "han2015learning",  # magnitude pruning
]

# Terms the chapters use that the glossary must define (matched against any term line).
REQUIRED_TERMS = [
    "BERT", "Transformer", "token", "词片", "embedding", "句向量", "自注意力", "掩码语言模型",
    "下一句预测", "自回归", "温度", "top-k 采样", "top-p 采样", "微调", "预训练", "联邦学习",
    "FedAvg", "差分隐私", "DP-SGD", "隐私预算", "k-匿名", "可解释性", "积分梯度", "代理模型",
    "量化", "剪枝", "知识蒸馏", "RMSE", "协同过滤",
]

HEADING_TAGS = {"h1", "h2", "h3"}
SERIAL_ID = re.compile(r"id\d+")
CJK = re.compile(r"[\u4e00-\u9fff]")


class AnchorParser(HTMLParser):
    """Collect sections with their headings, figures, links, ids and glossary entries."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, list[str]]] = []  # (href, classes)
        self.headings: list[tuple[str, str | None, str]] = []  # (tag, section id, text)
        self.figures: list[dict] = []
        self.glossary: list[dict] = []  # {"terms": [...], "ids": [...], "definition": "..."}
        self._sections: list[str | None] = []
        self._open: list[str] = []
        self._heading: list | None = None
        self._figure: dict | None = None
        self._caption_part: str | None = None
        self._caption_depth = 0
        self._article_depth: int | None = None
        self._in_glossary = False
        self._dt: list[str] | None = None
        self._dd: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag in ("br", "img", "meta", "link", "input", "hr", "wbr", "source"):
            return
        self._open.append(tag)
        if tag == "article" and self._article_depth is None:
            self._article_depth = len(self._open)
        if tag == "section":
            self._sections.append(attrs.get("id"))
        elif tag in HEADING_TAGS and self._article_depth is not None:
            # Only the page content: the theme repeats the title in a print-only header.
            section = self._sections[-1] if self._sections else None
            self._heading = [tag, section, ""]
        elif tag == "a" and attrs.get("href"):
            self.links.append((attrs["href"], classes))
        elif tag == "figure":
            self._figure = {"id": attrs.get("id"), "number": "", "caption": ""}
        elif tag == "span" and self._figure is not None and self._caption_part is None:
            parts = {"caption-number": "number", "caption-text": "caption"}
            for css_class, part in parts.items():
                if css_class in classes:
                    self._caption_part = part
                    self._caption_depth = len(self._open)
        elif tag == "dl" and "glossary" in classes:
            self._in_glossary = True
        elif tag == "dt" and self._in_glossary:
            if self._dd is not None or not self.glossary:
                self.glossary.append({"terms": [], "ids": [], "definition": ""})
                self._dd = None
            self.glossary[-1]["ids"].append(attrs.get("id"))
            self._dt = []
        elif tag == "dd" and self._in_glossary:
            self._dd = []

    def handle_endtag(self, tag):
        if tag not in self._open:
            return
        while self._open and self._open.pop() != tag:
            pass
        if self._article_depth is not None and len(self._open) < self._article_depth:
            self._article_depth = None
        if tag == "section" and self._sections:
            self._sections.pop()
        elif tag in HEADING_TAGS and self._heading:
            self.headings.append((self._heading[0], self._heading[1], self._heading[2].strip()))
            self._heading = None
        elif tag == "span" and len(self._open) < self._caption_depth:
            # the caption span closed (glued values inside it are nested spans)
            self._caption_part = None
            self._caption_depth = 0
        elif tag == "figure" and self._figure is not None:
            self.figures.append(self._figure)
            self._figure = None
        elif tag == "dl" and self._in_glossary:
            self._in_glossary = False
        elif tag == "dt" and self._dt is not None:
            self.glossary[-1]["terms"].append("".join(self._dt).replace("#", "").strip())
            self._dt = None
        elif tag == "dd" and self._dd is not None:
            self.glossary[-1]["definition"] = "".join(self._dd).strip()

    def handle_data(self, data):
        if self._heading is not None:
            self._heading[2] += data
        if self._figure is not None and self._caption_part:
            self._figure[self._caption_part] += data
        if self._dt is not None:
            self._dt.append(data)
        if self._dd is not None:
            self._dd.append(data)


def parse(docname: str) -> AnchorParser:
    path = HTML_DIR / f"{docname}.html"
    if not path.exists():
        pytest.fail(f"{docname}: no page at {path}; run `make book` first")
    parser = AnchorParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def links_to(page: AnchorParser, target_docname: str, prefix: str) -> list[str]:
    """Return the anchors of links from page to target_docname.html#<prefix>…"""
    target = Path(target_docname).name + ".html#" + prefix
    return [href.split("#", 1)[1] for href, _ in page.links if target in href]


def bib_keys() -> list[str]:
    return list(pybtex.database.parse_file(BIB_FILE).entries)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.docname)
def test_section_ids_readable(entry: TocEntry):
    page = parse(entry.docname)
    assert page.headings, f"{entry.docname}: no h1-h3 headings on the page"
    for tag, section_id, text in page.headings:
        where = f"{entry.docname}: <{tag}> {text!r}"
        assert section_id, f"{where} is not inside a <section> with an id"
        assert section_id.isascii(), f"{where} has the non-ASCII id {section_id!r}"
        assert not SERIAL_ID.fullmatch(section_id), (
            f"{where} has the generated id {section_id!r}; put a (sec-…)= label before it"
        )


@pytest.mark.parametrize("entry", CHAPTERS, ids=lambda e: e.docname)
def test_figures_numbered_and_referenced(entry: TocEntry):
    page = parse(entry.docname)
    referenced = {
        href[1:] for href, classes in page.links
        if href.startswith("#") and "headerlink" not in classes
    }
    for figure in page.figures:
        name = figure["id"] or f"figure captioned {figure['caption']!r}"
        assert figure["id"], f"{entry.docname}: {name} has no :name:, so it cannot be referenced"
        assert figure["number"].startswith("图 "), f"{entry.docname}: {name} is not numbered"
        assert CJK.search(figure["caption"]), f"{entry.docname}: {name} has no Chinese caption"
        assert figure["id"] in referenced, (
            f"{entry.docname}: no link to figure {name}; cite it with {{numref}}`{name}`"
        )


def test_glossary_entries_complete():
    page = parse(GLOSSARY_PAGE)
    assert len(page.glossary) >= 50, f"only {len(page.glossary)} glossary entries"
    for entry in page.glossary:
        terms = entry["terms"]
        assert any(t.isascii() for t in terms), f"glossary entry {terms} has no English term"
        assert CJK.search(entry["definition"]), f"glossary entry {terms} has no Chinese definition"
    defined = {t for entry in page.glossary for t in entry["terms"]}
    missing = [t for t in REQUIRED_TERMS if t not in defined]
    assert not missing, f"terms missing from the glossary: {missing}"


def test_every_glossary_entry_linked():
    linked = set()
    for chapter in CHAPTERS:
        linked.update(links_to(parse(chapter.docname), GLOSSARY_PAGE, "term-"))
    unused = [e["terms"] for e in parse(GLOSSARY_PAGE).glossary if not linked & set(e["ids"])]
    assert not unused, f"glossary entries that no chapter links with {{term}}: {unused}"


@pytest.mark.parametrize("entry", CHAPTERS, ids=lambda e: e.docname)
def test_chapter_links_glossary(entry: TocEntry):
    page = parse(entry.docname)
    anchors = links_to(page, GLOSSARY_PAGE, "term-")
    assert anchors, f"{entry.docname}: no {{term}} link to the glossary"
    glossary_ids = parse(GLOSSARY_PAGE).ids
    unknown = sorted(set(anchors) - glossary_ids)
    assert not unknown, f"{entry.docname}: glossary links to missing anchors {unknown}"


def test_bibliography_has_required_entries():
    page = parse(BIBLIOGRAPHY_PAGE)
    keys = bib_keys()
    missing_in_bib = [k for k in REQUIRED_KEYS if k not in keys]
    assert not missing_in_bib, f"required keys missing from {BIB_FILE.name}: {missing_in_bib}"
    missing_on_page = [k for k in REQUIRED_KEYS if f"cite-{k}" not in page.ids]
    assert not missing_on_page, (
        f"required entries not on the bibliography page (cite them): {missing_on_page}"
    )


def test_every_bib_entry_cited():
    cited = Counter()
    for entry in ENTRIES:
        if entry.docname != BIBLIOGRAPHY_PAGE:
            cited.update(links_to(parse(entry.docname), BIBLIOGRAPHY_PAGE, "cite-"))
    unused = [k for k in bib_keys() if cited[f"cite-{k}"] == 0]
    assert not unused, f"entries in {BIB_FILE.name} that no page cites: {unused}"
    entries_on_page = parse(BIBLIOGRAPHY_PAGE).ids
    dangling = sorted(a for a in cited if a not in entries_on_page)
    assert not dangling, f"citations that link to no bibliography entry: {dangling}"


@pytest.mark.parametrize("entry", CHAPTERS, ids=lambda e: e.docname)
def test_chapter_has_citation(entry: TocEntry):
    anchors = links_to(parse(entry.docname), BIBLIOGRAPHY_PAGE, "cite-")
    assert anchors, f"{entry.docname}: no {{cite}} link to the bibliography"


SOURCES = sorted(NOTEBOOK_DIR.glob("*.md")) + sorted((ROOT / "book").glob("*.md"))
LABEL_LINE = re.compile(r"^\(([^)\s]+)\)=\s*$")
HEADING_LINE = re.compile(r"^#{1,6} \S")
READABLE_LABEL = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def heading_labels(path: Path) -> list[tuple[int, str, str | None]]:
    """Return (line number, heading, label or None) for each Markdown heading outside fences."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found, fence = [], None
    for number, line in enumerate(lines, start=1):
        marker = re.match(r"^(`{3,}|~{3,})", line)
        if marker:
            if fence is None:
                fence = marker.group(1)
            elif line.strip() == fence:
                fence = None
            continue
        if fence is None and HEADING_LINE.match(line):
            previous = lines[number - 2] if number >= 2 else ""
            label = LABEL_LINE.match(previous)
            found.append((number, line, label.group(1) if label else None))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_headings_have_labels(path: Path):
    for number, heading, label in heading_labels(path):
        where = f"{path.relative_to(ROOT)}:{number} {heading!r}"
        assert label, f"{where} has no (label)= line before it, e.g. (sec-<chapter>-<topic>)="
        assert READABLE_LABEL.fullmatch(label), (
            f"{where}: label {label!r} should be lowercase ASCII words joined by hyphens"
        )


def test_heading_labels_unique():
    labels = Counter(
        label for path in SOURCES for _, _, label in heading_labels(path) if label
    )
    duplicates = sorted(label for label, count in labels.items() if count > 1)
    assert not duplicates, f"heading labels used more than once: {duplicates}"
