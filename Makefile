# The two commands of the README: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INDEX ?= data/index

.PHONY: run test test-slow index serve clean test-tools

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

# Programs the tests drive: Debian's Chromium (editors' page), wrk (load tests), PostgreSQL (the shared store
# of replicas: the tests start their own server in a temporary folder). Installed when missing and we are root
# on Debian, so that nothing is skipped on a fresh machine. PostgreSQL's server programs are outside PATH on
# Debian (/usr/lib/postgresql/N/bin), and its package would make and start a cluster of its own: told not to.
TEST_TOOLS := chromium:chromium chromedriver:chromium-driver wrk:wrk
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing for the tests"; \
	  case "$$missing" in *postgresql*) mkdir -p /etc/postgresql-common/createcluster.d; \
	    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/recommender-tests.conf;; esac; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	  || { echo "error: could not install$$missing"; exit 1; }; \
	else echo "note: missing$$missing and not root: the tests that need them are skipped (apt-get install$$missing)"; fi

test: $(STAMP) test-tools
	$(BIN)/python -m pytest
	if [ -n "$$CI" ]; then $(MAKE) test-slow; fi

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) data .pytest_cache
