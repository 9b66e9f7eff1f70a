# Two set-up commands (README): `make audit` and `make test`. Both install first, into the current Python.
PYTHON ?= python3
# CPU build on our machines (a local wheel). An already installed torch, CPU or CUDA, is kept.
TORCH_SPEC ?= torch==2.13.0
TORCHATTACKS_SPEC ?= torchattacks==3.5.1

# Development tools, installed by the targets that use them (not runtime dependencies of art_ssl).
SPHINX_SPEC ?= sphinx>=7.2
# ruff is pinned: `ruff format --check` is part of lint, and formatting changes between versions.
RUFF_SPEC ?= ruff==0.17.6
CODESPELL_SPEC ?= codespell>=2.2
MYPY_SPEC ?= mypy==2.4.1
IMPORT_LINTER_SPEC ?= import-linter>=2.0

.PHONY: install audit test lint format imports docs wheel-smoke mutate report-check

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "$(TORCH_SPEC)"
	$(PYTHON) -m pip install -q -e ".[test]"
	@# torchattacks declares torchvision and requests~=2.25.1, which it never imports.
	$(PYTHON) -m pip install -q --no-deps "$(TORCHATTACKS_SPEC)"

# The reduced default audit (simclr_r18 and its backdoored copy, shipped Fashion-MNIST subset); prints where the
# report is. AUDIT_ARGS adds or overrides options, e.g. make audit AUDIT_ARGS="--encoder my.safetensors".
AUDIT_ARGS ?=
audit: install
	$(PYTHON) -m art_ssl audit --out audit $(AUDIT_ARGS)

test: install
	$(PYTHON) -m pytest -q

LINT_PATHS = art_ssl tests evaluations docs tools
lint: imports
	$(PYTHON) -m ruff check $(LINT_PATHS)
	$(PYTHON) -m ruff format --check $(LINT_PATHS)
	$(PYTHON) -m codespell_lib $(LINT_PATHS) README.md CHANGELOG.md
	$(PYTHON) tools/mypy_ratchet.py

# Rewrites the code in the project's format (what `make lint` checks).
format:
	$(PYTHON) -m pip install -q "$(RUFF_SPEC)"
	$(PYTHON) -m ruff format $(LINT_PATHS)

# Layering contracts (.importlinter): core < models < estimators < data | ssl | zoo < attacks | defences < evaluation.
imports:
	$(PYTHON) -m pip install -q "$(RUFF_SPEC)" "$(IMPORT_LINTER_SPEC)" "$(CODESPELL_SPEC)" "$(MYPY_SPEC)"
	@# lint-imports' console script may not be on PATH for this Python; its click command is.
	$(PYTHON) -c "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c(['--config', '.importlinter', '--no-cache']))"

# API reference (docs/_build/html), warnings as errors; the doctest builder runs the pages' examples.
docs:
	$(PYTHON) -m pip install -q "$(SPHINX_SPEC)"
	$(PYTHON) -m sphinx -b html -W --keep-going -q docs docs/_build/html
	$(PYTHON) -m sphinx -b doctest -W --keep-going -q docs docs/_build/doctest

# `python -m build` -> wheel + sdist, each installed into a fresh venv and smoke-tested.
wheel-smoke:
	.ci/wheel_smoke.sh $(PYTHON)

# Hand-written mutants of the core algorithms, each in a temporary copy of the tree; reports how many the tests kill.
MUTATE_ARGS ?=
mutate:
	$(PYTHON) tools/mutate.py $(MUTATE_ARGS)

# Open $(REPORT)/report.html in headless Chromium (Debian's `chromium`, installed with apt-get if missing) and fail on
# a broken image, a table wider than the window or a console error; saves the page as $(REPORT)/report.png.
REPORT ?= audit
report-check:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -q && apt-get install -y -q chromium; } || \
		{ sudo apt-get update -q && sudo apt-get install -y -q chromium; }
	$(PYTHON) evaluations/report_check.py $(REPORT) --screenshot $(REPORT)/report.png
