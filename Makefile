# Two commands do all the set-up: `make bench` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
comma := ,

GPU ?= auto
PRESET ?= quick
DATA ?=
ARGS ?=
PYTEST_ARGS ?=
# The extras installed: every Keras backend (TensorFlow's is the tf extra), DALI and submitit, so that
# `make test` tests them all, as builds that reach the GPU: chosen from the CUDA version the driver runs
# (nvidia-smi), one CUDA major for every backend and DALI; CPU builds without a GPU (scripts/install_plan.sh).
# CUDA=12|13|cpu overrides the choice, EXTRAS=... the extras (EXTRAS=test,jax,torch: no TensorFlow);
# DRIVER_CUDA=12.4 and GPU_CC=9.0 stand in for nvidia-smi. Each is asked once, when first used
# (`once`: a recursive variable that makes itself simple), never at each use.
CUDA ?= auto
once = $(eval $(1) := $$(shell $(2)))$($(1))
ifeq ($(origin DRIVER_CUDA),undefined)
DRIVER_CUDA = $(call once,DRIVER_CUDA,nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9.]*\).*/\1/p' | head -n 1)
endif
# The highest compute capability of the GPUs: Blackwell (10, 12) needs torch's cu128 build.
ifeq ($(origin GPU_CC),undefined)
GPU_CC = $(call once,GPU_CC,nvidia-smi --query-gpu=compute_cap --format=csv$(comma)noheader 2>/dev/null | sort -n | tail -n 1)
endif
# Whether PyTorch's index answers (asked on Linux, where a plan takes torch from it: cpu, cu126 or
# cu128, one host); TORCH_INDEX_REACHABLE=no stands in.
ifeq ($(origin TORCH_INDEX_REACHABLE),undefined)
TORCH_INDEX_REACHABLE = $(if $(filter Linux,$(UNAME_S)),$(if $(filter 13,$(CUDA)),yes,$(call once,TORCH_INDEX_REACHABLE,$(PYTHON) -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cu126/torch/', timeout=5)" >/dev/null 2>&1 && echo yes || echo no)),yes)
endif
UNAME_S := $(shell uname -s)
UNAME_M := $(shell uname -m)
# The plan's answer $(1) with the index reachable or not ($(2)): the extras do not depend on it, so
# that only an install (or install-plan) asks PyTorch's index.
PLAN = sh scripts/install_plan.sh $(1) "$(DRIVER_CUDA)" "$(CUDA)" "$(UNAME_S)" "$(UNAME_M)" "$(2)" "$(GPU_CC)"
ifeq ($(origin EXTRAS),undefined)
EXTRAS = $(call once,EXTRAS,$(call PLAN,extras,yes) 2>/dev/null)
endif
ASKED_EXTRAS = $(filter command line environment,$(origin EXTRAS))
TORCH_INDEX = $(if $(ASKED_EXTRAS),,$(call once,TORCH_INDEX,$(call PLAN,index,$(TORCH_INDEX_REACHABLE)) 2>/dev/null))
CONSTRAINTS = $(if $(ASKED_EXTRAS),constraints.txt,$(call once,CONSTRAINTS,$(call PLAN,constraints,$(TORCH_INDEX_REACHABLE)) 2>/dev/null))
# What a make started from this one is given, so that it asks nvidia-smi and PyTorch's index nothing again.
ASKED = DRIVER_CUDA="$(DRIVER_CUDA)" GPU_CC="$(GPU_CC)" TORCH_INDEX_REACHABLE="$(TORCH_INDEX_REACHABLE)"
# One stamp per set of extras: other extras remake the venv.
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: bench test test-fast dry-run regress microbench honesty honesty-user tune-vs-grid quick-vs-full help install-plan gpu-check user-jobs

help:
	@echo "make bench [GPU=auto|<label>] [PRESET=quick|smoke|<file.toml>] [DATA=<dir>] [ARGS='--set batch=8,16']"
	@echo "make test  [PYTEST_ARGS='-k parity']"
	@echo "make test-fast              what gpubench decides: no process, training run or framework model"
	@echo "make dry-run [PRESET=...]   print the grid, run nothing"
	@echo "make regress [GPU=...]      the ci preset, compared with results/baselines/<gpu>/ci.csv"
	@echo "make microbench             pytest-benchmark micro-benchmarks against the saved baseline"
	@echo "make honesty                the suite's measured fit against a plain fit (jax), recorded"
	@echo "make tune-vs-grid           gpubench tune against the quick grid: runs, time, best setting of each"
	@echo "make quick-vs-full          quick (repeats as needed) against every point twice: time and bounds"
	@echo "make gpu-check              first on a new GPU machine: doctor, gpu-quick per backend on the GPU, loud checks"
	@echo "make install-plan [CUDA=12|13|cpu] [DRIVER_CUDA=12.4]   the builds make would install, installing nothing"

# What `make` would install here, in one line; nothing is installed.
install-plan:
	@$(if $(ASKED_EXTRAS),echo "installing extras $(EXTRAS) (EXTRAS asked)",$(call PLAN,says,$(TORCH_INDEX_REACHABLE)))

# The virtual environment, made again whenever pyproject.toml or the pins change, and made anew
# when the extras change (a venv of other extras holds builds for another CUDA).
$(STAMP): pyproject.toml constraints.txt constraints-torch-pypi-cuda12.txt
	@$(MAKE) --no-print-directory install-plan $(ASKED)
	for stamp in $(VENV)/.installed-*; do [ ! -e "$$stamp" ] || [ "$$stamp" = "$(STAMP)" ] || rm -rf $(VENV); done
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -e '.[$(EXTRAS)]'
	touch $(STAMP)
	$(BIN)/python -m bench.run.doctor --check

bench: $(STAMP)
	$(BIN)/gpubench sweep --preset $(PRESET) --gpu $(GPU) $(if $(DATA),--data $(DATA)) $(ARGS)

# A dry run needs the venv to exist, not to be newer than every file: a fresh clone's files are
# newer than a venv made before it, and a dry run imports nothing that a reinstall would change.
$(BIN)/gpubench:
	$(MAKE) $(STAMP) $(ASKED)

dry-run: | $(BIN)/gpubench
	$(BIN)/gpubench sweep --preset $(PRESET) --dry-run $(ARGS)

# The tests run in TEST_WORKERS processes (pytest-xdist), each test handed to whichever is free, but
# the tests that share one costly fixture (a real sweep, a trained model) kept together on one
# (@pytest.mark.xdist_group), so that such a fixture runs once, not once a worker (pytest below 9.2:
# constraints.txt); none can be failed by load (the house rule). The ten slowest are listed at the end.
# Three workers on CI's 2 cores: the real sweeps wait on their runs' processes (a start, a kill, a
# timeout) and a third worker fills those waits (5:00 to 4:31 on the 2-core machine, the same CPU
# time); test-fast waits on nothing, and a third worker's start costs it more than it saves.
TEST_WORKERS ?= 3
FAST_TEST_WORKERS ?= 2
# The tests write compiled modules (__pycache__, ignored by git) even where the environment says not
# to: the suite's many processes (workers, servers, runs) then read them instead of each compiling the
# project's modules, and pytest rewrites each test module once, not in every worker.
PYTEST = env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest --benchmark-skip --dist loadgroup --durations=10
test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(PYTEST) -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(PYTEST) -n $(FAST_TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

# The regression gate: a fresh run of the ci preset against the stored baseline of this GPU label;
# what the noise cannot decide is measured again (up to the preset's max_repeats), and exit 3
# ("cannot judge") fails as a regression does. --gpu auto's label (bench/run/label.py), asked once; its
# refusal (NVML failing beside NVIDIA devices, CUDA_VISIBLE_DEVICES naming a device NVML does not see)
# stops make in one line, never `cpu`.
AUTO_LABEL = $(eval AUTO_LABEL := $$(shell $(BIN)/python -m bench.run.label 2>/dev/null))$(if $(word 2,$(AUTO_LABEL)),$(error $(AUTO_LABEL)),$(or $(AUTO_LABEL),$(error --gpu auto: `$(BIN)/python -m bench.run.label` said nothing)))
REGRESS_LABEL = $(if $(filter auto,$(GPU)),$(AUTO_LABEL),$(GPU))
regress: $(STAMP)
	$(BIN)/gpubench sweep --preset ci --gpu $(REGRESS_LABEL) --out results/$(REGRESS_LABEL)/ci --force $(ARGS)
	$(BIN)/gpubench compare results/baselines/$(REGRESS_LABEL)/ci.csv results/$(REGRESS_LABEL)/ci --preset ci --remeasure

# Micro-benchmarks of what sets the pipeline's speed; fails when one is 25% slower than the saved run.
MICRO_BASELINE := .benchmarks
microbench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --benchmark-only --benchmark-autosave \
		$(if $(wildcard $(MICRO_BASELINE)/*/*.json),--benchmark-compare --benchmark-compare-fail=mean:25%) $(PYTEST_ARGS)

# Instruments must not slow what they measure: the suite's fit against a plain fit of the same work,
# timed alternately (tests/plain_fit.py), each result appended to .benchmarks/honesty.jsonl; fails
# beyond 10%. A ratio of timings is a benchmark, not a test: the tests count what the fit does.
HONESTY_DATA := data/honesty
honesty: $(STAMP)
	test -d $(HONESTY_DATA) || $(BIN)/gpubench data $(HONESTY_DATA) --train 12 --val 4 --classes 2 --image-size 64x48 --seed 1
	mkdir -p $(MICRO_BASELINE)
	$(BIN)/python -m tests.plain_fit check jax $(HONESTY_DATA) $(MICRO_BASELINE)/honesty.jsonl

# A user's pipeline as gpubench measures it against a plain fit of the same pipeline (tests/user_fit.py):
# PyDataset workers 1, 2, 4 (threads and processes) and tf.data, on TensorFlow; fails beyond 10%.
USER_FIT_DATA := data/user-fit
honesty-user: $(STAMP)
	test -d $(USER_FIT_DATA) || $(BIN)/gpubench data $(USER_FIT_DATA) --train 1024 --val 32 --classes 2 --image-size 96x72 --seed 1
	mkdir -p $(MICRO_BASELINE)
	KERAS_BACKEND=tensorflow $(BIN)/python -m tests.user_fit check tensorflow $(USER_FIT_DATA) $(MICRO_BASELINE)/user-fit.jsonl

# The tuner against the quick grid it saves (tests/benchmarks/tune_vs_grid.py): runs, wall time, the
# best setting and images/s of each, appended to $(TUNE_VS_GRID)/tune-vs-grid.jsonl; fails unless the
# tuner comes within 5% of the grid's best in a third of the grid's runs or fewer (counted to the first setting that did).
TUNE_VS_GRID ?= results/cpu/tune-vs-grid
tune-vs-grid: $(STAMP)
	$(BIN)/python -m tests.benchmarks.tune_vs_grid $(TUNE_VS_GRID) $(ARGS)

# quick as it runs (repeats as needed) against the full grid, every point twice
# (tests/benchmarks/quick_vs_full.py): runs, wall time, measured share and every bound of each,
# appended to $(QUICK_VS_FULL)/quick-vs-full.jsonl; fails where a bound differs.
QUICK_VS_FULL ?= results/cpu/quick-vs-full
quick-vs-full: $(STAMP)
	$(BIN)/python -m tests.benchmarks.quick_vs_full $(QUICK_VS_FULL) $(ARGS)

# The first command on a new GPU machine (docs/backends.md): the doctor, a short gpu-quick (the model
# alone) on each backend that reaches the GPU, then checks that fail naming their rows (bench/gpucheck.py):
# train_device names the GPU, utilisation above 0, datasheet MFU of the model alone within 2-80%, the
# label NVML's. Results in results/reference/<gpu>/gpu-check/<backend>/ (sweep.json holds the command).
GPU_CHECK_SET ?= --set pipeline=synthetic --set checkpoint=false --no-ceilings
GPU_CHECK_LABEL = $(AUTO_LABEL)
GPU_CHECK_BACKENDS = $(call once,GPU_CHECK_BACKENDS,$(BIN)/python -c "from bench.run import doctor; print(' '.join(b for b, a in doctor.ask(doctor.installed_backends()).items() if a.get('platform') == 'gpu'))" 2>/dev/null)
gpu-check: $(STAMP)
	$(BIN)/python -m bench.run.doctor --check
	test -n "$(GPU_CHECK_BACKENDS)" || { echo "gpu-check: no backend reaches a GPU here (see gpubench doctor)" >&2; exit 1; }
	for b in $(GPU_CHECK_BACKENDS); do $(BIN)/gpubench sweep --preset gpu-quick --set backend=$$b $(GPU_CHECK_SET) \
		--out results/reference/$(GPU_CHECK_LABEL)/gpu-check/$$b --force || exit 1; done
	$(BIN)/python -m bench.gpucheck $(foreach b,$(GPU_CHECK_BACKENDS),results/reference/$(GPU_CHECK_LABEL)/gpu-check/$(b))

# A user's own job five ways (its own batch size, image size, classes): each configuration's bound and
# the shape its model ceiling ran at (tests/benchmarks/user_jobs.py)
USER_JOBS ?= results/user-jobs
user-jobs: $(STAMP)
	$(BIN)/python -m tests.benchmarks.user_jobs $(USER_JOBS)
