# make demo / make test work from a fresh clone: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed

.PHONY: install system-deps test test-fast test-compat system-test lint typecheck demo bench ocr-agreement ocr-synthetic emulator mutation dist docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI machines here) every Python process
# would otherwise compile Airflow from source again (about 5 CPU s per `import airflow.sdk`).
$(STAMP): pyproject.toml | $(PY)
	$(UV) pip install --python $(PY) --quiet --compile-bytecode -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the emulator uses when present: LibreOffice (office formats) and Korean OCR data.
system-deps:
	@bash scripts/system-deps.sh

test: install system-deps
	$(PY) -m ruff check provider tests benchmarks dags scripts
	$(PY) -m mypy
	$(PY) -m pytest

# The inner loop: parsers, documents, Parquet, hook, trigger and sensor tests (no DAG runs, no
# subprocess faults, no benchmark smoke pass). `make test` stays the whole suite; CI runs that.
FAST_TESTS := tests/test_models.py tests/test_columnar.py tests/test_documents.py tests/test_parquet.py \
	tests/test_provider_info.py tests/test_exceptions.py tests/hooks tests/triggers tests/sensors
test-fast: install
	$(PY) -m ruff check provider tests
	$(PY) -m pytest -q $(FAST_TESTS)

# The older Airflow minors on the other Pythons (scripts/compat.sh, docs/compatibility.md): Airflow
# 3.1 on Python 3.10 and 3.2 on Python 3.13, a venv each under .venv-compat/, the fast set and the
# dag.test() tests on each. `make test-compat COMPAT=af3.1` runs one entry.
test-compat: $(PY)
	FAST_TESTS="$(FAST_TESTS)" UV=$(UV) bash scripts/compat.sh $(COMPAT)

# Real api-server, scheduler, dag-processor and triggerer + PostgreSQL + the emulator on 127.0.0.1.
system-test: install
	bash scripts/system-test.sh

lint: install
	$(PY) -m ruff check provider tests benchmarks dags scripts
	$(PY) -m ruff format --check provider tests benchmarks dags

typecheck: install
	$(PY) -m mypy

demo: install system-deps
	$(PY) scripts/demo.py

# Not part of make test (a smoke run of it is): writes docs/performance.md and
# docs/performance/*.png. `$(PY) benchmarks/run.py NAME` re-runs one benchmark.
bench: install system-deps
	$(PY) benchmarks/run.py

ocr-agreement: install
	$(PY) benchmarks/ocr_agreement.py --turn 30 --turn -12

# The OCR on seeded synthetic documents the samples lack (receipt photos, angled receipts, ruled
# tables, 75-DPI scans, Korean pages), scored against the words drawn; SYNTHETIC_ARGS="--count 5
# --save /tmp/synthetic" to measure more or look at them.
ocr-synthetic: install system-deps
	$(PY) benchmarks/ocr_synthetic.py $(SYNTHETIC_ARGS)

emulator: install
	$(VENV)/bin/upstage-emulator --host 127.0.0.1 --port 8765

# Mutation testing with mutmut (docs/testing.md; not part of make test): mutates the two parsers
# (models.py, columnar.py) and the wire-format rules they share (wire.py) whole, and the document
# limits (documents/limits.py whole, plus the format and page-size checks they rely on), and runs
# tests/test_models.py, test_columnar.py, test_results.py, test_documents.py, test_wire_rules.py and
# test_document_limits.py against each mutant (Hypothesis and emulator tests left out, see
# [tool.mutmut] in pyproject.toml). One worker, about 2 mutants per second on a loaded 2-core
# machine, cut after MUTATION_TIMEOUT seconds; the cut run's unchecked mutants count as "not run".
# It works in a src-layout copy under build/mutation/ and prints the counts per module, then the
# survivors.
MUTATION_DIR := build/mutation
MUTATION_TIMEOUT ?= 2400
MUTATION_JOBS ?= 1
MUTATION_TARGETS := 'upstage_provider.models.*' 'upstage_provider.columnar.*' 'upstage_provider.wire.*' \
	'upstage_provider.documents.limits.*' \
	'upstage_provider.documents.loading.x_prepare_document__mutmut_*' \
	'upstage_provider.documents.formats.x_detect_format__mutmut_*' \
	'upstage_provider.documents.pages.x__points_to_pixels__mutmut_*' \
	'upstage_provider.documents.pages.x__emu_to_pixels__mutmut_*'
mutation: install
	$(UV) pip install --python $(PY) --quiet -e '.[test,mutation]'
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)/src
	cp -r provider/upstage_provider $(MUTATION_DIR)/src/
	cp -r tests pyproject.toml $(MUTATION_DIR)/
	ln -s $(abspath ..)/shared $(MUTATION_DIR)/shared  # the samples, beside the repo as the tests expect
	cd $(MUTATION_DIR) && timeout $(MUTATION_TIMEOUT) $(abspath $(VENV))/bin/mutmut run --max-children $(MUTATION_JOBS) \
		$(MUTATION_TARGETS) > mutmut-run.log 2>&1 || test $$? -eq 124
	$(PY) scripts/mutation_summary.py $(MUTATION_DIR) $(MUTATION_TARGETS) --survivors

# The sdist and the wheel in dist/, `twine check --strict`, then the wheel installed next to a plain
# apache-airflow (the .venv's version; 3.3.x before `make install`) in a throw-away venv, where
# scripts/check_dist.py checks what `airflow providers` shows and what importing the provider loads.
# uv's shared cache makes that venv a few seconds; needs only the .venv's uv, not `make install`.
dist: | $(PY)
	$(PY) scripts/check_dist.py --uv $(UV) --out dist

# The docs site (Sphinx + MyST: the Markdown pages in docs/, the API reference from the docstrings)
# into build/docs. Strict: any warning fails the build (-W, all of them reported: --keep-going);
# -E rebuilds every page, so an unchanged page's warning is never skipped.
DOCS_OUT := build/docs
docs: install
	$(UV) pip install --python $(PY) --quiet --compile-bytecode -e '.[docs]'
	$(PY) -m sphinx -E -W --keep-going -q -b html docs $(DOCS_OUT)
	@echo "docs: $(DOCS_OUT)/index.html"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
