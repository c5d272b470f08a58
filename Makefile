# Two commands do all the set-up: `make bench` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

GPU ?= auto
PRESET ?= quick
DATA ?=
ARGS ?=
PYTEST_ARGS ?=

.PHONY: bench test dry-run help

help:
	@echo "make bench [GPU=auto|<label>] [PRESET=quick|smoke|<file.toml>] [DATA=<dir>] [ARGS='--set batch=8,16']"
	@echo "make test  [PYTEST_ARGS='-k parity']"
	@echo "make dry-run [PRESET=...]   print the grid, run nothing"

# The virtual environment, made again whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/gpubench sweep --preset $(PRESET) --gpu $(GPU) $(if $(DATA),--data $(DATA)) $(ARGS)

dry-run: $(STAMP)
	$(BIN)/gpubench sweep --preset $(PRESET) --dry-run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
