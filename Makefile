# `make verify` and `make test` work from a fresh clone: they create .venv if it is missing and install the
# pinned stack of pyproject.toml (the one place versions are pinned) before running.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= out
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: install verify verify-quick test bench figures mutants clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned environment into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install -e '.[test]' > $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }
	@$(PY) -m pip check
	@touch $(STAMP)

install: $(STAMP)

verify: $(STAMP)
	$(PY) -m verify --all --out $(OUT)

verify-quick: $(STAMP)
	$(PY) -m verify --all --quick --controls --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/attention.py
	$(PY) bench/ntk.py

# Plant each fault of verify/mutants.py in a temporary copy; every one must change a verdict or fail a test.
mutants: $(STAMP)
	$(PY) -m verify.mutants

figures: $(STAMP)
	$(PY) -m figures --all --out $(OUT)/figures

clean:
	rm -rf $(OUT) .pytest_cache .hypothesis
