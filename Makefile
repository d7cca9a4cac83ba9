# Two commands do all set-up on a fresh machine: `make book` and `make test`.
# CPU torch is pinned here (a wheel already on disk); pyproject.toml keeps ranges loose for GPU users.
PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
PROFILE   ?= default
PIP       := $(BIN)/pip --disable-pip-version-check -q

.PHONY: install test book budget site publish smoke-book clean-book bench soak help

help:
	@echo "make site                           render the committed book (book/*.ipynb) into _build/html: no training"
	@echo "make book [FRESH=1]                 bring the default book up to date: re-execute the stale chapters, render"
	@echo "make book PROFILE=smoke             the CI-size book, in _build/smoke/ (site: _build/smoke/_build/html)"
	@echo "make budget [PROFILE=...]           what the book costs from a cold store, from the chapters' ledgers"
	@echo "make publish                        the built site (_build/html) to the gh-pages branch, pushed (ghp-import)"
	@echo "make test                           run the test suite"
	@echo "make bench                          stage timings of the default preset (benchmarks/)"
	@echo "make soak                           SIGKILL a smoke GRPO run 10 times, resume, compare byte for byte"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH_PIN)
	$(PIP) install -e '.[test]'
	# verl only for its config file (tests check the exported overrides against it); --no-deps:
	# verl 0.9.1 pins transformers < 5.11, and nothing here imports verl
	$(PIP) install --no-deps verl==0.9.1
	$(BIN)/python -c "import torch, transformers, unlearnability"
	touch $@

test: install
	$(BIN)/python -m pytest -q

FRESH     ?=
# Two workers make the default book's runs side by side (plan.py, Dask); the smoke book is faster serially (measured).
WORKERS   ?= $(if $(filter smoke,$(PROFILE)),1,2)
# Timed: a build that made every artifact (a cold store) is recorded in book.json (benchmarks/book_budget.py).
book: install
	@start=$$(date +%s); \
	$(BIN)/unlearn book --profile $(PROFILE) --workers $(WORKERS) $(if $(FRESH),--fresh) && \
	$(BIN)/python benchmarks/book_budget.py --profile $(PROFILE) --cold-since $$start --wall-seconds $$(( $$(date +%s) - start ))

budget: install
	$(BIN)/python benchmarks/book_budget.py --profile $(PROFILE)

site: install
	$(BIN)/unlearn site

soak: install
	$(BIN)/python benchmarks/soak_resume.py

# The Jupyter Book convention (ghp-import -n -p -f): commit _build/html to gh-pages and push it.
# GHP_FLAGS= (empty) commits to the local gh-pages branch only, without pushing.
GHP_FLAGS ?= --push --force
publish: install
	@test -f _build/html/index.html || { echo "no built site in _build/html: run 'make book' (or 'make site') first"; exit 2; }
	$(BIN)/ghp-import --no-jekyll $(GHP_FLAGS) --message "Publish the book from $$(git rev-parse --short HEAD)" _build/html

smoke-book:
	$(MAKE) book PROFILE=smoke

bench: install
	$(BIN)/python benchmarks/stage_times.py --preset default

# The committed book (book/*.ipynb, book/*.json) is kept: it is the published result.
clean-book:
	rm -rf _build
