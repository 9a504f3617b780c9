# The two commands of the README: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INDEX ?= data/index

.PHONY: run test test-slow index serve clean browser

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

# The editors' page is tested in Debian's Chromium; installed here when missing and we are root on Debian.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and chromium-driver for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "note: could not install chromium; the browser test will be skipped"; \
	else echo "note: no chromium/chromedriver and not root: the browser test will be skipped (apt-get install chromium chromium-driver)"; fi

test: $(STAMP) browser
	$(BIN)/python -m pytest
	if [ -n "$$CI" ]; then $(MAKE) test-slow; fi

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) data .pytest_cache
