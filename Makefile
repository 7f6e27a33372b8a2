# The course's commands. Only Python 3 (with venv) and make are needed; everything else goes into .venv.
#   make lessons   run every lesson (notebooks/NN_*.ipynb) headless on the synthetic data (quick settings)
#   make test      unit tests + every notebook under papermill and nbval + ruff + notebook/package drift check
#   make test-fast the quick tests only: nothing that trains a model, runs a notebook or launches processes
#   make bench     loader speed and memory benchmark: runs/bench/*.json, then the page docs/benchmark.md
#   make lab       open the notebooks in JupyterLab
#   make export    generate seedlings_utils/<module>.py from the notebooks' `#| export` cells (the notebooks are the source)
#   make site      the lessons as `make lessons` executed them, as a static site: build/site/html/index.html
#   make site-check  open every page of that site in headless Chromium; screenshots in build/site/screenshots
#   make browser   install the Chromium the browser check drives, if missing (.ci/install-browser; apt-get, root)
#   make test-oldest  the lowest versions the requirement files allow, on Python 3.11: every test and lesson
# Any notebook parameter can be set: make lessons DATA_SOURCE=local SOURCE_PATH=~/seedlings.zip EPOCHS=20

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := .ci/constraints.txt
# The learner's package's requirements, and the maintainer's tools: each listed once (pyproject.toml reads both).
REQUIREMENTS := requirements.txt requirements-dev.txt

# Notebook parameters passed through from the command line (docs/parameters.md says what each does).
PARAMETERS := DATA_DIR COURSE_DIR DATA_SOURCE SOURCE_PATH SOURCE_SHA256 SYNTHETIC_PER_CLASS IMAGE_SIZE BATCH_SIZE EPOCHS SEED \
              VAL_FRACTION WORKERS USE_MULTIPROCESSING BASE_FILTERS LEARNING_RATE FLATTEN_METHOD MAKE_ZIP SPEED_BATCHES \
              SHARD_SIZE DETERMINISTIC TIMED_EPOCHS DEMO_EPOCHS RESULTS_DIR SHUFFLE_BUFFER \
              WEIGHTS HEAD_EPOCHS FINE_TUNE_EPOCHS FINE_TUNE_LAYERS FINE_TUNE_LEARNING_RATE MIXED_PRECISION WAIT_REPEATS \
              DISTRIBUTED_EPOCHS NUM_PROCESSES AUGMENT CRASH_DEMO JOB_TIMEOUT RUN_TF_ATTEMPT \
              RESUME_EPOCHS SAVE_EVERY KILL_AFTER_BATCH GRAIN_WORKERS GOING_DEEPER FIRST_EPOCHS FIRST_IMAGE_SIZE
# Quick settings for `make lessons` on a laptop CPU; the notebooks' own defaults are the full recipe.
SYNTHETIC_PER_CLASS ?= 60
IMAGE_SIZE ?= 64
EPOCHS ?= 20
BASE_FILTERS ?= 16
# A first, plain fit (lesson 01's first model, lesson 06's first version); EPOCHS is lesson 06's recipe.
FIRST_EPOCHS ?= 2
# Lesson 09 offline: random weights (WEIGHTS=imagenet downloads them), few epochs; lesson 10: three epochs a job;
# lesson 11: one Grain worker process.
WEIGHTS ?= None
HEAD_EPOCHS ?= 4
FINE_TUNE_EPOCHS ?= 2
DISTRIBUTED_EPOCHS ?= 3
GRAIN_WORKERS ?= 1
param_args = $(foreach p,$(PARAMETERS),$(if $(strip $($(p))),-p $(p) '$($(p))'))

.PHONY: venv browser lessons test test-fast bench export lab lint lock clean help site site-check test-oldest
help:  # the comment block at the top of this file
	@sed -n '2,/^$$/p' Makefile | sed -e '/^$$/d' -e 's/^# \{0,1\}//'

# The environment is rebuilt only when a requirements file changed (or .venv is missing or broken).
$(STAMP): $(REQUIREMENTS) pyproject.toml $(CONSTRAINTS)
	@$(BIN)/python -c "" 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) $(addprefix -r ,$(REQUIREMENTS))
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (seedlings course)" >/dev/null
	$(BIN)/python -m tools.check_env
	@touch $(STAMP)

venv: $(STAMP)

# The site's browser check drives the system's Chromium (Playwright downloads no browser). Installing it is CI's
# job, done by this script (apt-get as root when it is missing; a no-op when it is there), never by a test.
browser:
	@.ci/install-browser

lessons: $(STAMP)
	$(BIN)/python -m tools.lessons run $(param_args)

# nbval runs copies of the notebooks prepared by tests/conftest.py (each alone, on its core path) in a folder
# of this run's own. Two pytest-xdist workers, each file kept in one (tests/conftest.py says why): a lesson's
# kernel leaves the second core idle much of the time. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	@nbval=build/nbval-$$$$; $(BIN)/python -m pytest tests $$nbval --nbval-lax -n $(TEST_WORKERS) --dist loadfile \
	   --no-loadscope-reorder --durations=15; status=$$?; \
	 rm -rf $$nbval; exit $$status

# The tests not marked slow (under two minutes on 2 cores): whatever trains a model, runs a notebook, launches
# processes or builds a big data set is marked slow and left to make test.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" -n $(TEST_WORKERS) --dist loadfile

# The loader and memory benchmark: figures to runs/bench/bench.json and bench.png, then lesson 10's (1 and 2
# processes) to runs/bench/distributed.json and distributed.png, then the page generated from both JSON files,
# docs/benchmark.md with its plots in docs/benchmark/ (commit them). BENCH_ARGS=--quick for a tiny run (its page
# goes to runs/bench/benchmark.md instead); e.g. BENCH_ARGS="--scales 2000 20000" to skip the 100k-image scale.
bench: $(STAMP)
	$(BIN)/python -m tools.bench $(BENCH_ARGS)
	$(BIN)/python -m tools.bench_distributed $(filter --quick,$(BENCH_ARGS))
	$(BIN)/python -m tools.bench_page $(if $(filter --quick,$(BENCH_ARGS)),--out runs/bench/benchmark.md)

# Generate each exported module whole from the notebooks' `#| export` cells; refuses a package-side edit (FORCE=1 overrides).
export: $(STAMP)
	$(BIN)/python -m tools.export $(if $(FORCE),--force)

# The course site, from the notebooks `make lessons` executed into DATA_DIR/executed_notebooks (never re-run).
SITE := build/site
site: $(STAMP)
	$(BIN)/python -m tools.site build --out $(SITE) $(if $(strip $(DATA_DIR)),--executed '$(DATA_DIR)/executed_notebooks')

# Every page of the built site in headless Chromium (see browser).
site-check: $(STAMP) browser
	$(BIN)/python -m tools.site check --out $(SITE) --screenshots $(SITE)/screenshots

# The floors of the requirement files are facts: install exactly those versions (tools/versions.py floors)
# on the oldest Python pyproject.toml allows, and run every test and lesson there. Slow (a fresh TensorFlow).
OLDEST_PYTHON ?= python3.11
OLDEST := build/oldest
test-oldest: browser
	rm -rf $(OLDEST) && mkdir -p $(OLDEST) && $(OLDEST_PYTHON) -m venv $(OLDEST)/venv
	$(OLDEST_PYTHON) -m tools.versions floors $(REQUIREMENTS) > $(OLDEST)/floors.txt
	$(OLDEST)/venv/bin/python -m pip install -q --upgrade pip
	$(OLDEST)/venv/bin/python -m pip install -q -r $(OLDEST)/floors.txt
	$(OLDEST)/venv/bin/python -m pip install -q --no-deps -e .
	$(OLDEST)/venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(OLDEST)/venv/bin/python -m tools.check_env
	$(OLDEST)/venv/bin/python -m pip freeze --exclude-editable > $(OLDEST)/installed.txt
	$(OLDEST)/venv/bin/python -m pytest tests -p no:cacheprovider --durations=10

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

lint: $(STAMP)
	$(BIN)/ruff check seedlings_utils tools tests notebooks

# Re-pin .ci/constraints.txt to the newest versions within the requirement files' ranges.
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install -q $(addprefix -r ,$(REQUIREMENTS))
	{ echo "# Exact versions that 'make' installs and CI tests. Regenerate with 'make lock'."; \
	  build/lock-venv/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS)
	rm -rf build/lock-venv

clean:
	rm -rf build .pytest_cache
