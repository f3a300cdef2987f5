# Every target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test compiled test-compiled lint grammar bench bench-options clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## The main job: the SIP server on 127.0.0.1:5060, UDP and TCP (stop with Ctrl-C).
run: $(BIN)/.installed
	$(BIN)/sipactors serve

## The whole test suite (needs ../shared beside the checkout, as in CI).
test: $(BIN)/.installed
	$(BIN)/python -m pytest

## The optional compiled build: mypyc compiles the hot path in place (setup.py, [tool.sipactors] compiled in
## pyproject.toml); `make clean` returns to pure Python.
compiled: $(BIN)/.installed
	$(BIN)/pip install --quiet 'mypy>=2.4' 'setuptools>=77'
	find sipactors -name '*.so' -delete  # a module dropped from the list must not stay compiled
	SIPACTORS_MYPYC=1 $(BIN)/pip install --quiet --no-build-isolation --no-deps -e .

## The test suite on the compiled build (tests/test_build.py checks that it is compiled throughout).
test-compiled: compiled
	SIPACTORS_MYPYC=1 $(BIN)/python -m pytest

## House style (also checked by the test suite).
lint: $(BIN)/.installed
	$(BIN)/python -m ruff check sipactors tests benchmarks

## Regenerate grammar/sip.lark from spec/abnf/ and grammar/sip-syntax.lark.
grammar: $(BIN)/.installed
	$(BIN)/python -m sipactors.grammar

## Parser throughput (messages/s), hot path and oracle.
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/parse.py

## OPTIONS/s of `sipactors serve` under SIPp beside a SIPp UAS (the ceiling), on core 1; REPS=3 for medians.
bench-options: $(BIN)/.installed
	benchmarks/options.sh -n $(or $(REPS),1)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis .mypy_cache
	find sipactors -name '*.so' -delete
