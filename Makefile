# Two commands: `make run` (open the app on sample data) and `make test`.
# Both create or reuse .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/annotator open

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	mkdir -p bench-results
	$(BIN)/annotator bench graphcut --json bench-results/graphcut.json --md bench-results/graphcut.md

clean:
	rm -rf $(VENV) build *.egg-info
