# `make verify` and `make test` work from a fresh clone: they create .venv if it is missing and install the
# pinned stack of pyproject.toml (the one place versions are pinned) before running.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= out
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: install verify verify-quick test test-thorough bench figures mutants clean

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

# Every hypothesis property (pytest marks them "hypothesis") with the thorough profile: 2000 random examples each.
# The seed is printed first and in pytest's header; replay a run with `make test-thorough HYPOTHESIS_SEED=<seed>`.
test-thorough: $(STAMP)
	@seed=$${HYPOTHESIS_SEED:-$$($(PY) -c 'import random; print(random.getrandbits(32))')}; \
	echo "hypothesis profile thorough, seed $$seed (replay: make test-thorough HYPOTHESIS_SEED=$$seed)"; \
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -m hypothesis --hypothesis-seed=$$seed --hypothesis-show-statistics

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
