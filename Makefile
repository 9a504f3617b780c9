# The two commands of the README: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INDEX ?= data/index

.PHONY: run test test-slow index serve clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build; anything else would pull a CUDA build of several GB.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

index: $(STAMP)
	$(BIN)/recommender index corpus --index $(INDEX)

serve: $(STAMP)
	$(BIN)/recommender serve --index $(INDEX)

run: index serve

test: $(STAMP)
	$(BIN)/python -m pytest
	if [ -n "$$CI" ]; then $(MAKE) test-slow; fi

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) data .pytest_cache
