# Every target that runs code depends on the stamp of what it needs, so a fresh clone needs
# nothing else. One stamp per extra: `make run` installs only the runtime dependencies, and a
# later `make test` adds only the dev extras on top.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.stamp-runtime
DEV_STAMP := $(VENV)/.stamp-dev
BENCH_STAMP := $(VENV)/.stamp-bench

.PHONY: run test lint bench torture clean

$(BIN)/python:
	@echo "make: creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing runtime dependencies (first run: about a minute)"
	@$(PIP) -e .
	@# An editable install leaves pipeline/ without bytecode, and with PYTHONDONTWRITEBYTECODE
	@# set every start compiles it again (about a fifth of the start-up's CPU).
	@$(BIN)/python -m compileall -q pipeline
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP)
	@echo "make: installing test and lint tools (the dev extras)"
	@$(PIP) -e '.[dev]'
	@touch $@

$(BENCH_STAMP): $(RUNTIME_STAMP)
	@echo "make: installing benchmark tools (the bench extras)"
	@$(PIP) -e '.[dev,bench]'
	@touch $@

run: $(RUNTIME_STAMP)
	@echo "make: synthesizing jobs/sample.yaml on the local server into out/sample/"
	$(BIN)/tts-pipeline run jobs/sample.yaml --local

# pytest exits 5 when it collected no test; that is a failure here, not a pass.
# The long torture runs (marked slow) are `make torture`, kept out of CI's time budget.
test: $(DEV_STAMP)
	@echo "make: running the tests (a few minutes)"
	$(BIN)/python -m pytest -q -m "not slow"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no test ran" >&2; exit 1; fi; exit $$status

lint: $(DEV_STAMP)
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/mypy --strict pipeline

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

torture: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m slow --timeout=1800 tests/torture tests/manifest/test_fuzz_manifest.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
