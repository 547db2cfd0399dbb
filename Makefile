# Each target creates .venv and installs into it, so it works on a fresh machine
# with only Python 3.10+ and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test test-slow lint types pytest bench bench-quick docs clean test-setup browser speedscope-schema

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(PY) examples/multi_agent_pipeline.py
	$(VENV)/bin/tokenmeter html usage.json -o usage.html

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check tokenmeter pytest_tokenmeter.py tests benchmarks examples
	$(PY) -m ruff format --check tokenmeter pytest_tokenmeter.py tests benchmarks examples
	$(PY) tests/test_layers.py

types: $(VENV)/.installed-dev
	$(PY) -m mypy

pytest: $(VENV)/.installed-dev test-setup
	$(PY) -m pytest -n 2 --dist loadfile

# The long versions of tests that `make pytest` runs at a smaller size (marked `slow`).
test-slow: $(VENV)/.installed-dev test-setup
	$(PY) -m pytest -n 2 --dist loadfile -m slow

# What some tests need beyond Python packages, fetched once: a headless Chromium for the
# HTML report (Debian's package, driven by Playwright), and speedscope's published JSON
# schema (from its npm package) to validate exports against. Neither is committed.
SPEEDSCOPE_VERSION := 1.25.0
SPEEDSCOPE_SCHEMA  := .cache/speedscope/package/dist/release/file-format-schema.json

test-setup: browser speedscope-schema

browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

speedscope-schema: $(SPEEDSCOPE_SCHEMA)

$(SPEEDSCOPE_SCHEMA):
	command -v npm >/dev/null || (apt-get update && apt-get install -y npm)
	mkdir -p .cache/speedscope
	cd .cache/speedscope && npm pack --silent speedscope@$(SPEEDSCOPE_VERSION) \
		&& tar xzf speedscope-$(SPEEDSCOPE_VERSION).tgz
	test -f $@ && touch $@

# Every benchmark case and probe once, tiny counts: they cannot rot. Writes nothing in docs/.
bench-quick: $(VENV)/.installed-dev
	$(PY) benchmarks/run.py --quick --results $(VENV)/bench-quick.json --render $(VENV)/bench-quick.md

test: lint types pytest bench-quick docs matrix

# The documentation site (mkdocs-material, API reference from docstrings), offline.
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# The full run: the working tree against BENCH_BASELINE in the same run, each change listed
# in benchmarks/changes.json against its parent; writes the results file and renders the page.
# About 23 minutes on 2 cores (23m17s for the page's run: 25 rounds with fresh worker
# processes each, about 10 minutes; then the probes and 29 per-change pairs). Run it on a quiet
# machine: the page's rows whose code is the same in both versions show how quiet it was.
BENCH_BASELINE ?= 336164a
bench: $(VENV)/.installed-dev
	$(PY) benchmarks/run.py --baseline $(BENCH_BASELINE) --changes benchmarks/changes.json \
		--results benchmarks/results.json --render docs/performance.md

# The version matrix: tokenmeter's LiteLLM tests against the oldest supported LiteLLM and
# releases in between (the newest is what .venv resolves to, tested by `make pytest`), and the
# whole suite on other Pythons. Each environment is made once, with uv, under .venv-matrix/
# (keyed by version, remade when pyproject.toml changes), and runs only what differs.
MATRIX_LITELLM ?= 1.80.0 1.90.7 1.106.0
MATRIX_PYTHONS ?= 3.10 3.13
LITELLM_TESTS  := tests/test_compat.py tests/test_litellm.py tests/test_litellm_wire.py \
                  tests/test_streams_hardening.py tests/test_calls_hardening.py \
                  tests/test_deferred.py tests/test_fakeproviders.py tests/test_cost_figures.py \
                  tests/test_litellm_estimates.py
MATRIX := .venv-matrix
UV     := $(MATRIX)/tools/bin/uv
export UV_PYTHON_INSTALL_DIR := $(CURDIR)/$(MATRIX)/pythons

$(UV):
	$(PYTHON) -m venv $(MATRIX)/tools
	$(MATRIX)/tools/bin/pip install --quiet uv

$(MATRIX)/litellm-%/.installed: pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(MATRIX)/litellm-$*
	VIRTUAL_ENV=$(MATRIX)/litellm-$* $(UV) pip install --quiet -e '.[dev]' 'litellm==$*'
	touch $@

# The interpreter: one already on the machine (pyenv's, the system's), else a build uv downloads.
$(MATRIX)/python-%/.installed: pyproject.toml | $(UV)
	py=$$(ls -d $$HOME/.pyenv/versions/$*.*/bin/python$* /usr/local/bin/python$* /usr/bin/python$* \
		2>/dev/null | head -n 1); \
	if [ -z "$$py" ]; then $(UV) python install --quiet $* && py=$*; fi; \
	$(UV) venv --quiet --allow-existing --python "$$py" $(MATRIX)/python-$* \
	&& VIRTUAL_ENV=$(MATRIX)/python-$* $(UV) pip install --quiet -e '.[dev]' \
	&& touch $@

matrix-litellm-%: $(MATRIX)/litellm-%/.installed
	@start=$$(date +%s); \
	$(MATRIX)/litellm-$*/bin/python -m pytest -q -n 2 --dist loadfile $(LITELLM_TESTS) \
	&& echo "== LiteLLM $*: LiteLLM tests passed in $$(( $$(date +%s) - start )) s"

# A Python neither on the machine nor downloadable by uv is reported, not failed.
matrix-python-%: | $(UV)
	@if $(MAKE) --no-print-directory $(MATRIX)/python-$*/.installed; then \
		$(MAKE) --no-print-directory test-setup \
		&& start=$$(date +%s) \
		&& $(MATRIX)/python-$*/bin/python -m pytest -q -n 2 --dist loadfile \
		&& echo "== Python $*: whole suite passed in $$(( $$(date +%s) - start )) s" ; \
	else echo "== Python $*: NOT TESTED: no Python $* on this machine and uv could not download one"; fi

.PRECIOUS: $(MATRIX)/litellm-%/.installed $(MATRIX)/python-%/.installed

matrix: $(addprefix matrix-litellm-,$(MATRIX_LITELLM)) $(addprefix matrix-python-,$(MATRIX_PYTHONS))

clean:
	rm -rf $(VENV) $(MATRIX) build dist site .mypy_cache .ruff_cache .pytest_cache usage.json usage.html .cache
