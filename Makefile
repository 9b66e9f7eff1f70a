# Two set-up commands (README): `make audit` and `make test`. Both install first, into the current Python.
PYTHON ?= python3
# CPU build on our machines (a local wheel). An already installed torch, CPU or CUDA, is kept.
TORCH_SPEC ?= torch==2.13.0
TORCHATTACKS_SPEC ?= torchattacks==3.5.1

.PHONY: install audit test lint report-check

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

lint:
	$(PYTHON) -m ruff check art_ssl tests evaluations

# Open $(REPORT)/report.html in headless Chromium (Debian's `chromium`, installed with apt-get if missing) and fail on
# a broken image, a table wider than the window or a console error; saves the page as $(REPORT)/report.png.
REPORT ?= audit
report-check:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -q && apt-get install -y -q chromium; } || \
		{ sudo apt-get update -q && sudo apt-get install -y -q chromium; }
	$(PYTHON) evaluations/report_check.py $(REPORT) --screenshot $(REPORT)/report.png
