# Every target that runs code depends on the venv stamp, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench torture clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tts-pipeline run jobs/sample.yaml --local

# pytest exits 5 when it collected no test; that is a failure here, not a pass.
# The long torture runs (marked slow) are `make torture`, kept out of CI's time budget.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no test ran" >&2; exit 1; fi; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/mypy --strict pipeline

bench: $(STAMP)
	$(BIN)/python -m bench

torture: $(STAMP)
	$(BIN)/python -m pytest -q -m slow --timeout=1800 tests/torture tests/manifest/test_fuzz_manifest.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
