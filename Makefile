# Two entry points for a fresh machine (see README.md):
#   make book   -- create .venv, install, build the HTML book into _build/html
#   make test   -- create .venv, install, run every check (unit tests, chapters, book build)
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

.PHONY: book test unit chapters build-book clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

book: $(STAMP) build-book

test: $(STAMP)
	$(MAKE) unit
	$(MAKE) chapters
	$(MAKE) build-book

unit:
	$(PY) -m pytest tests

chapters:
	$(PY) tools/check_chapters.py

build-book:
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . -n -W --keep-going
	test -f _build/html/index.html

clean:
	rm -rf _build .jupyter_cache
