# `make verify` and `make test` work from a fresh clone: they create .venv if it is missing and install the
# pinned stack of pyproject.toml (the one place versions are pinned) before running.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= out
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: install reference-env verify verify-quick test test-thorough bench bench-newer-jax test-newer-jax figures mutants clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned environment into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install -e '.[test]' > $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }
	@$(PY) -m pip check
	@touch $(STAMP)

install: $(STAMP)

# The reference environment $(NT_VENV) (issue 16): neural-tangents 0.6.5 on jax 0.4.25, without TensorFlow, for
# reference/nt_ntk.py, which tests/test_neural_tangents.py runs to compare kernels.ntk_matrix with every one of
# neural-tangents' NTK implementations. Python version and pins: [tool.ntkprefix.reference] of pyproject.toml; the
# interpreter is python<version> from PATH, else pyenv's newest <version>.x. `make test` creates it.
NT_VENV ?= .venv-nt
NT_STAMP := $(NT_VENV)/.installed-stamp
export NT_VENV
NT_TABLE = $(PYTHON) -c 'import sys, tomllib; t = tomllib.load(open("pyproject.toml", "rb"))["tool"]["ntkprefix"]["reference"][sys.argv[1]]; print(t if isinstance(t, str) else " ".join(t))'

$(NT_STAMP): pyproject.toml
	@v=$$($(NT_TABLE) python); \
	if ! $(NT_VENV)/bin/python -c "import sys; sys.exit(sys.version.split()[0].rsplit('.', 1)[0] != '$$v')" 2>/dev/null; then \
		interp=$$(command -v python$$v 2>/dev/null || ls -d $$HOME/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | sort -V | tail -n 1); \
		test -n "$$interp" || { echo "the reference environment needs Python $$v: python$$v on PATH or pyenv's $$v.x"; exit 1; }; \
		rm -rf $(NT_VENV); $$interp -m venv $(NT_VENV) || exit 1; \
	fi
	@echo "installing the reference environment into $(NT_VENV) (log: $(NT_VENV)/install.log)"
	@{ $(NT_VENV)/bin/python -m pip install $$($(NT_TABLE) requirements) && \
	   $(NT_VENV)/bin/python -m pip install --no-deps $$($(NT_TABLE) no-deps); } \
		> $(NT_VENV)/install.log 2>&1 || { tail -n 40 $(NT_VENV)/install.log; exit 1; }
	@$(NT_VENV)/bin/python reference/nt_ntk.py --versions
	@touch $(NT_STAMP)

reference-env: $(NT_STAMP)

verify: $(STAMP)
	$(PY) -m verify --all --out $(OUT)

verify-quick: $(STAMP)
	$(PY) -m verify --all --quick --controls --out $(OUT)

test: $(STAMP) $(NT_STAMP)
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

# bench/attention.py (sections 1-3) and the library's unit tests on the newer jax of pyproject.toml's
# [tool.ntkprefix.newer-jax], in its own environment $(NEWER_VENV) (neural-tangents pins the main one to jax 0.4.25):
# what moving the pin would buy, and what it would break. The tests that need neural-tangents are left out by name.
NEWER_VENV ?= .venv-newer-jax
NEWER_STAMP := $(NEWER_VENV)/.installed-stamp

$(NEWER_STAMP): pyproject.toml
	@test -x $(NEWER_VENV)/bin/python || $(PYTHON) -m venv $(NEWER_VENV)
	@echo "installing the newer-jax environment into $(NEWER_VENV) (log: $(NEWER_VENV)/install.log)"
	@$(NEWER_VENV)/bin/python -m pip install $$($(PYTHON) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["ntkprefix"]["newer-jax"]["requirements"]))') \
		> $(NEWER_VENV)/install.log 2>&1 || { tail -n 40 $(NEWER_VENV)/install.log; exit 1; }
	@touch $(NEWER_STAMP)

bench-newer-jax: $(NEWER_STAMP)
	PYTHONPATH=$(CURDIR) $(NEWER_VENV)/bin/python bench/attention.py --skip-stream

NEWER_TESTS := tests/test_attention.py tests/test_reduction.py tests/test_features.py tests/test_numerics.py \
	tests/test_model.py tests/test_bounds.py tests/test_depth.py tests/test_kernels.py tests/test_perturbation.py \
	tests/test_batched.py tests/test_sampling.py tests/test_validation.py

test-newer-jax: $(NEWER_STAMP)
	PYTHONPATH=$(CURDIR) $(NEWER_VENV)/bin/python -m pytest -p no:cacheprovider $(NEWER_TESTS) \
		-k "not neural_tangents and not ntk_linearized_outputs and not linearized_prediction_equals and not linearized_prediction_tracks"

# Plant each fault of verify/mutants.py in a temporary copy; every one must change a verdict or fail a test.
mutants: $(STAMP)
	$(PY) -m verify.mutants

figures: $(STAMP)
	$(PY) -m figures --all --out $(OUT)/figures

clean:
	rm -rf $(OUT) .pytest_cache .hypothesis
