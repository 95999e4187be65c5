# The two commands a person types: `make run` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Inputs of `make run` (space-separated: folders, CSVs, .tgz archives or dataset names). The
# two test splits are also reported on their own: the full one (star ratings) for the four
# answers' targets, the polarity one as the boss-level benchmark.
DATA ?= ../shared/data/amazon_review_full ../shared/data/amazon_review_polarity
EVAL ?= ../shared/data/amazon_review_full/test.csv ../shared/data/amazon_review_polarity/test.csv
OUT ?= work
PYTEST_ARGS ?=

.PHONY: run test bench check prereqs venv browser spark-jars clean help

help:
	@echo "make run    - set up, run the whole pipeline on DATA=$(DATA), then serve the API and web page"
	@echo "make test   - set up and run the test suite"
	@echo "make bench  - run the benchmarks (prints ratios against their baselines)"
	@echo "make check  - ruff + mypy"

prereqs:
	@PYTHON=$(PYTHON) bash scripts/prereqs.sh

# The virtual environment is rebuilt when the package's build inputs change (the compiled core too).
$(BIN)/.installed: pyproject.toml setup.py src/sentiment/engine/_core.c src/sentiment/_text.c \
		src/sentiment/_sentences.c
	@PYTHON=$(PYTHON) bash scripts/prereqs.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# fasttext-modern (an earlier dependency) shares the import name `fasttext`: keep one.
	@$(BIN)/python -m pip uninstall --quiet --yes fasttext-modern 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

# Headless Chromium for the web-page tests (Debian's package; Playwright drives it).
browser:
	@bash scripts/ensure-chromium.sh

# Hadoop's S3 connector for Spark (hadoop-aws + the AWS SDK bundle), from a PyPI sdist into the
# cache (~/.cache/sentiment/spark-jars, ~190 MB; once): `prepare` with s3a:// paths needs them.
spark-jars: venv
	@$(BIN)/python -c 'from sentiment.prepare.s3a import main; main()' >/dev/null

run: prereqs venv
	$(BIN)/sentiment run $(foreach d,$(DATA),--input $(d)) $(foreach e,$(EVAL),--eval $(e)) --output $(OUT) $(RUN_ARGS)

test: prereqs venv browser spark-jars
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: prereqs venv
	@bash scripts/ensure-wrk.sh
	$(BIN)/python -m benchmarks

check: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache
