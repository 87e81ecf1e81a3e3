# cmt-geo developer commands. Everything installs into .venv at the repository root.
#   make install   create .venv with Python 3.12 and install cmt-geo (editable) with its dev tools
#   make test      run the test suite (installs first when needed); this is what CI runs
#   make lint      ruff (lint + format check) and mypy
#   make bench     run the benchmark scripts under benchmarks/
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

.PHONY: install test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@python=$$($(find_python)) && echo "Using $$python" && \
	  { [ -x $(VPY) ] && $(VPY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || { rm -rf $(VENV) && "$$python" -m venv $(VENV); }; }
	$(VPY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest $(PYTEST_ARGS)

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
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
