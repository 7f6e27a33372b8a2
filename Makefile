# The course's commands. Only Python 3 (with venv) and make are needed; everything else goes into .venv.
#   make lessons   run every lesson (notebooks/NN_*.ipynb) headless on the synthetic data (quick settings)
#   make test      unit tests + every notebook under papermill and nbval + ruff + notebook/package drift check
#   make test-fast the quick tests only: nothing that trains a model, runs a notebook or launches processes
#   make bench     loader speed and memory benchmark: runs/bench/*.json, then the page docs/benchmark.md
#   make lab       open the notebooks in JupyterLab
#   make export    generate seedlings_utils/<module>.py from the notebooks' `#| export` cells, and the README's table of
#                  lessons from their titles (the notebooks are the source)
#   make site      the lessons as `make lessons` executed them, as a static site: build/site/html/index.html
#   make site-check  open every page of that site in headless Chromium; screenshots in build/site/screenshots
#   make browser   install the Chromium the browser check drives, if missing (.ci/install-browser; apt-get, root)
#   make test-oldest  the lowest versions the requirement files allow, on Python 3.11: every test and lesson
# Any knob (docs/parameters.md) can be set: make lessons DATA_SOURCE=local SOURCE_PATH=~/seedlings.zip EPOCHS=20

PYTHON ?= python3
# Another Python: make test PYTHON=python3.13 VENV=.venv-3.13 (a second environment beside the first).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := .ci/constraints.txt
# The learner's package's requirements, and the maintainer's tools: each listed once (pyproject.toml reads both).
REQUIREMENTS := requirements.txt requirements-dev.txt

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

# The quick settings (the quick values of seedlings_utils/parameters.py's KNOBS; the notebooks' own defaults are the
# full recipe), and over them every knob named on the command line: make lessons EPOCHS=3 DATA_DIR=runs/x
lessons: $(STAMP)
	$(BIN)/python -m tools.lessons run --quick --from-make '$(subst ','\'',$(MAKEOVERRIDES))'

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
	$(BIN)/python -m tools.pages

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
