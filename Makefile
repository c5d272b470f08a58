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
# The extras installed: every Keras backend, DALI and submitit, so that `make test` tests them
# all. On a GPU machine, EXTRAS=test,gpu,dali,fleet installs the CUDA builds (README).
EXTRAS ?= test,jax,torch,dali,fleet

.PHONY: bench test dry-run regress microbench help

help:
	@echo "make bench [GPU=auto|<label>] [PRESET=quick|smoke|<file.toml>] [DATA=<dir>] [ARGS='--set batch=8,16']"
	@echo "make test  [PYTEST_ARGS='-k parity']"
	@echo "make dry-run [PRESET=...]   print the grid, run nothing"
	@echo "make regress [GPU=...]      the ci preset, compared with results/baselines/<gpu>/ci.csv"
	@echo "make microbench             pytest-benchmark micro-benchmarks against the saved baseline"

# The virtual environment, made again whenever pyproject.toml or the pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/gpubench sweep --preset $(PRESET) --gpu $(GPU) $(if $(DATA),--data $(DATA)) $(ARGS)

# A dry run needs the venv to exist, not to be newer than every file: a fresh clone's files are
# newer than a venv made before it, and a dry run imports nothing that a reinstall would change.
$(BIN)/gpubench:
	$(MAKE) $(STAMP)

dry-run: | $(BIN)/gpubench
	$(BIN)/gpubench sweep --preset $(PRESET) --dry-run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest --benchmark-skip $(PYTEST_ARGS)

# The regression gate: a fresh run of the ci preset against the stored baseline of this GPU label.
REGRESS_LABEL = $(if $(filter auto,$(GPU)),$(shell $(BIN)/python -c "from bench.env import auto_label; print(auto_label())" 2>/dev/null),$(GPU))
regress: $(STAMP)
	$(BIN)/gpubench sweep --preset ci --gpu $(REGRESS_LABEL) --out results/$(REGRESS_LABEL)/ci --force $(ARGS)
	$(BIN)/gpubench compare results/baselines/$(REGRESS_LABEL)/ci.csv results/$(REGRESS_LABEL)/ci --preset ci

# Micro-benchmarks of what sets the pipeline's speed; fails when one is 25% slower than the saved run.
MICRO_BASELINE := .benchmarks
microbench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --benchmark-only --benchmark-autosave \
		$(if $(wildcard $(MICRO_BASELINE)/*/*.json),--benchmark-compare --benchmark-compare-fail=mean:25%) $(PYTEST_ARGS)
