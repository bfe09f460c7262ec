# `make verify` and `make test` work from a fresh clone: they create .venv if it is missing and install the
# pinned stack of pyproject.toml (the one place versions are pinned) before running.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= out

.PHONY: install reference-env browser coverage verify verify-quick test test-python test-pythons test-thorough bench figures mutants clean

# The interpreter for Python version $$v: python$$v on PATH, else pyenv's newest $$v.x (empty if neither).
# (A candidate must run: pyenv's shim is on PATH for every version but fails for one not selected.)
FIND_PYTHON = for c in $$(command -v python$$v 2>/dev/null) $$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | sort -rV); do \
	$$c -c '' 2>/dev/null && { echo $$c; break; }; done

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
		interp=$$($(FIND_PYTHON)); \
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

# Headless Chromium for tests/test_report_html.py's browser test (issue 18): Debian's chromium, installed with apt
# when it is missing (as root, or through sudo where there is one; the package lists are refreshed if the first
# attempt fails). Log: .browser-install.log.
APT_CHROMIUM = apt-get install -y --no-install-recommends chromium
browser:
	@command -v chromium > /dev/null || { \
		echo "installing headless Chromium (Debian's chromium) for the browser test (log: .browser-install.log)"; \
		if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo > /dev/null; then sudo=sudo; \
		else echo "need root or sudo to install chromium (apt-get install chromium)"; exit 1; fi; \
		{ $$sudo $(APT_CHROMIUM) || { $$sudo apt-get update && $$sudo $(APT_CHROMIUM); }; } > .browser-install.log 2>&1 \
			|| { tail -n 20 .browser-install.log; exit 1; }; }

# Which paths of ntkprefix/ the checks reach: coverage.py over `verify --all --quick` (out/coverage/).
coverage: $(STAMP)
	$(PY) -m verify.library_coverage --out $(OUT)/coverage

verify: $(STAMP)
	$(PY) -m verify --all --out $(OUT)

verify-quick: $(STAMP)
	$(PY) -m verify --all --quick --controls --out $(OUT)

test: $(STAMP) $(NT_STAMP) browser
	$(PY) -m pytest

# The suite on one Python version, in its own environment .venv-py<version> (the same pins; the reference environment
# is shared): `make test-python V=3.12`. `make test-pythons` runs it on 3.11, 3.12 and 3.13 in turn and stops at the
# first failure.
V ?= 3.12
PYTHONS ?= 3.11 3.12 3.13
test-python:
	@v=$(V); interp=$$($(FIND_PYTHON)); \
	test -n "$$interp" || { echo "no Python $(V): python$(V) on PATH or pyenv's $(V).x"; exit 1; }; \
	echo "== Python $(V) ($$interp), environment .venv-py$(V)"; \
	$(MAKE) --no-print-directory test PYTHON=$$interp VENV=.venv-py$(V)

test-pythons:
	@for v in $(PYTHONS); do $(MAKE) --no-print-directory test-python V=$$v || exit 1; done

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
