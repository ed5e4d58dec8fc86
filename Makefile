# Two entry points, each sets itself up on a fresh machine with Python 3.11:
#   make demo   short training + inference + evaluation of every bundle on phantoms, report in demo_output/
#   make test   the test suite
# Torch is installed first and separately, so that a plain `torch` requirement never pulls the CUDA wheels
# on a CPU machine. Override with e.g. `make test TORCH_SPEC="torch==2.13.0+cu128" TORCH_INDEX=...`.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null && echo "torch already installed: $$($(PY) -c 'import torch; print(torch.__version__)')" \
		|| $(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) scripts/demo.py --output demo_output

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf demo_output .pytest_cache

# consumer targets (zoo packages, MONAI Label, MONAI Deploy), one file each
-include mk/*.mk
