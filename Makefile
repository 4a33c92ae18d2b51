# Two entry points for a fresh machine (see README.md):
#   make book   -- create .venv, install, build the HTML book into _build/html
#   make test   -- create .venv, install, run every check (unit tests, chapters, book build, site)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hw2-installed

# Chapters run in their own folders: hand them an absolute path to the data.
ifdef HW2_CIFAR10
export HW2_CIFAR10 := $(abspath $(HW2_CIFAR10))
endif

.PHONY: book test system-deps unit chapters build-book site lab clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

book: $(STAMP) build-book

# Each chapter executes once: under nbval (`chapters`, two at a time), whose outputs
# the book build then renders (HW2_REUSE_EXECUTED, see book/_ext/hw2_site/reuse.py).
test: $(STAMP) system-deps
	$(MAKE) unit
	$(MAKE) chapters JOBS=2
	HW2_REUSE_EXECUTED=1 $(MAKE) build-book
	$(MAKE) site

system-deps:
	bash tools/system_deps.sh

# Two processes: the SLURM tests (one real cluster, mostly waiting on it) keep to one
# of them (their xdist_group), the rest share both.
unit:
	$(PY) -m pytest tests -n 2 --dist loadgroup

JOBS ?= 1
chapters:
	$(PY) tools/check_chapters.py --jobs $(JOBS)

build-book:
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . -n -W --keep-going
	test -f _build/html/index.html

# Every page of the built site in headless Chromium (Debian's `chromium`), at 1280 px and
# on a phone; then three downloaded notebooks run in a fresh environment (the wheel).
site:
	$(PY) -m pytest tests/site -p no:cacheprovider -n 2

# JupyterLab with the chapters opening as notebooks (jupytext) and their MyST rendered
# (jupyterlab-myst). As root (containers, Colab-like machines) it passes --allow-root.
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	mkdir -p $(VENV)/share/jupyter/lab/settings
	echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}}}' > $(VENV)/share/jupyter/lab/settings/overrides.json
	$(VENV)/bin/jupyter lab --LabApp.default_url=/lab/tree/book/intro.md \
	    $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

clean:
	rm -rf _build .jupyter_cache
