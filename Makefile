# The course's commands. Only Python 3 (with venv) and make are needed; everything else goes into .venv.
#   make lessons   run every lesson (notebooks/NN_*.ipynb) headless on the synthetic data (quick settings)
#   make test      unit tests + every notebook under papermill and nbval + ruff + notebook/package drift check
#   make test-fast the unit tests only, without notebooks and benchmark (a minute or two)
#   make bench     loader speed and memory benchmark, written to runs/bench/
#   make lab       open the notebooks in JupyterLab
#   make export    copy the notebooks' `#| export` cells into seedlings_utils/ (the notebooks are the source)
# Any notebook parameter can be set: make lessons DATA_SOURCE=local SOURCE_PATH=~/seedlings.zip EPOCHS=20

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := .ci/constraints.txt

# Notebook parameters passed through from the command line (see ../shared contract / README).
PARAMETERS := DATA_DIR DATA_SOURCE SOURCE_PATH SOURCE_SHA256 SYNTHETIC_PER_CLASS IMAGE_SIZE BATCH_SIZE EPOCHS SEED \
              VAL_FRACTION WORKERS USE_MULTIPROCESSING BASE_FILTERS LEARNING_RATE FLATTEN_METHOD MAKE_ZIP SPEED_BATCHES \
              SHARD_SIZE DETERMINISTIC TIMED_EPOCHS DEMO_EPOCHS RESULTS_DIR
# Quick settings for `make lessons` on a laptop CPU; the notebooks' own defaults are the full recipe.
SYNTHETIC_PER_CLASS ?= 60
IMAGE_SIZE ?= 64
EPOCHS ?= 20
BASE_FILTERS ?= 16
param_args = $(foreach p,$(PARAMETERS),$(if $(strip $($(p))),-p $(p) '$($(p))'))

.PHONY: venv lessons test test-fast bench export lab lint lock clean help
help:
	@sed -n '2,9p' Makefile

# The environment is rebuilt only when a requirements file changed (or .venv is missing or broken).
$(STAMP): requirements.txt pyproject.toml $(CONSTRAINTS)
	@$(BIN)/python -c "" 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (seedlings course)" >/dev/null
	$(BIN)/python -m seedlings_utils.env
	@touch $(STAMP)

venv: $(STAMP)

lessons: $(STAMP)
	$(BIN)/python -m seedlings_utils.lessons run $(param_args)

# nbval runs copies of the notebooks prepared by tests/conftest.py in a folder of this run's own.
test: $(STAMP)
	@nbval=build/nbval-$$$$; $(BIN)/python -m pytest tests $$nbval --nbval-lax --durations=10; status=$$?; \
	 rm -rf $$nbval; exit $$status

# The unit tests only (seconds to a minute or two): no notebooks, no benchmark.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

# The loader and memory benchmark: figures to runs/bench/bench.json and bench.png. BENCH_ARGS=--quick for a
# tiny run; e.g. BENCH_ARGS="--scales 2000 20000" to skip the 100k-image scale.
bench: $(STAMP)
	$(BIN)/python -m seedlings_utils.bench $(BENCH_ARGS)

# Copy the notebooks' `#| export` cells into seedlings_utils/ (the notebook is the source; `make test` checks both agree).
export: $(STAMP)
	$(BIN)/python -m seedlings_utils.export

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

lint: $(STAMP)
	$(BIN)/ruff check seedlings_utils tests

# Re-pin .ci/constraints.txt to the newest versions within requirements.txt's ranges.
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install -q -r requirements.txt
	{ echo "# Exact versions that 'make' installs and CI tests. Regenerate with 'make lock'."; \
	  build/lock-venv/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS)
	rm -rf build/lock-venv

clean:
	rm -rf build .pytest_cache
