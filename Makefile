# cmt-geo developer commands. Everything installs into .venv at the repository root.
#   make install   create .venv with Python 3.12 and install cmt-geo (editable) with its dev tools
#   make test      run the test suite (installs first when needed); this is what CI runs
#   make demo      install, then train on a synthetic scene and segment a held-out one (examples/demo.py, runs/demo)
#   make lint      ruff (lint + format check) and mypy
#   make bench     run the benchmark scripts under benchmarks/
#   make plugin    build the installable QGIS plugin zip in dist/
#   make qgis-test run the QGIS plugin tests under QGIS's Python (part of make test; skipped, saying why, without QGIS)
#   make qgis-install  install QGIS from the distribution's packages when it is missing (Debian/Ubuntu, as root; CI)
# Override the interpreter with `make PYTHON=/path/to/python3.12 install`.

SHELL := /bin/bash
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

# A working Python 3.12: $(PYTHON) if given (and then only it), else python3.12 on PATH, else one installed through pyenv.
define find_python
if [ -n "$(PYTHON)" ]; then candidates="$(PYTHON)"; \
else candidates="python3.12 $$(command -v pyenv >/dev/null && echo "$$(pyenv root)"/versions/3.12*/bin/python3.12)"; fi; \
for cand in $$candidates; do \
  if "$$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then \
    command -v "$$cand"; exit 0; \
  fi; \
done; \
if [ -n "$(PYTHON)" ]; then echo "error: PYTHON=$(PYTHON) is not a working Python 3.12; point it at one, or leave it out to search PATH and pyenv" >&2; exit 1; fi; \
echo "error: no working Python 3.12 found. Install one (Debian/Ubuntu: apt install python3.12 python3.12-venv; macOS: brew install python@3.12; or pyenv install 3.12) and rerun, or pass make PYTHON=/path/to/python3.12" >&2; \
exit 1
endef

# The QGIS plugin's tests run under QGIS's own Python (Debian: /usr/bin/python3 with python3-qgis), in a venv that
# sees its system packages and adds pytest-qgis.
QGIS_PYTHON ?= /usr/bin/python3
QGIS_VENV := .venv-qgis
QGIS_STAMP := $(QGIS_VENV)/.installed
QGIS_PYTEST_ARGS ?=
QGIS_APT_PACKAGES := python3-qgis qgis-providers qgis python3-venv

.PHONY: install test lint format bench clean plugin qgis-test qgis-install

install: $(STAMP)

$(STAMP): pyproject.toml
	@python=$$($(find_python)) && echo "Using $$python" && \
	  { [ -x $(VPY) ] && $(VPY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || { rm -rf $(VENV) && "$$python" -m venv $(VENV); }; }
	$(VPY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory qgis-test

# Writes runs/demo; an earlier demo's outputs there are replaced. DEMO_ARGS adds options, e.g. DEMO_ARGS="--steps 200".
DEMO_ARGS ?=
.PHONY: demo
demo: $(STAMP)
	$(VPY) examples/demo.py --output runs/demo --overwrite $(DEMO_ARGS)

plugin:
	python3 qgis_plugin/build_zip.py --output dist

qgis-install:
	@if QT_QPA_PLATFORM=offscreen $(QGIS_PYTHON) -c 'import qgis.core' >/dev/null 2>&1 && [ -x /usr/bin/qgis_process.bin ]; then \
	  echo "QGIS is installed"; \
	else \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(QGIS_APT_PACKAGES); \
	fi

$(QGIS_STAMP):
	$(QGIS_PYTHON) -m venv --system-site-packages $(QGIS_VENV)
	$(QGIS_VENV)/bin/python -m pip install --quiet "pytest>=8" "pytest-qgis>=5,<6"
	@touch $(QGIS_STAMP)

# Offscreen Qt; pytest-qgis keeps the QGIS settings in .qgis-settings/, away from the user's QGIS profile.
qgis-test: $(STAMP)
	@if ! QT_QPA_PLATFORM=offscreen $(QGIS_PYTHON) -c 'import qgis.core' >/dev/null 2>&1; then \
	  echo "SKIPPED the QGIS plugin tests (tests/qgis_plugin): $(QGIS_PYTHON) has no qgis module. Install QGIS" \
	    "(Debian/Ubuntu: apt-get install --no-install-recommends $(QGIS_APT_PACKAGES)) and rerun make test."; \
	else \
	  $(MAKE) -s --no-print-directory $(QGIS_STAMP) && \
	  QT_QPA_PLATFORM=offscreen $(QGIS_VENV)/bin/python -m pytest tests/qgis_plugin --confcutdir=tests/qgis_plugin $(QGIS_PYTEST_ARGS); \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(VPY) "$$script" || exit 1; done

clean:
	rm -rf $(VENV) $(QGIS_VENV) .qgis-settings build *.egg-info .pytest_cache .mypy_cache .ruff_cache
