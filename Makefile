# Two commands set up everything on a fresh machine:
#   make demo   - create .venv, install Flightlog and its server, record the demo into
#                 ./flightlog-demo/ (its own store and flightlog.toml)
#   make test   - create .venv, install Flightlog with every extra and test tool, run all tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test install install-test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/flightlog demo

test: install-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install-test
	$(PY) bench/sdk_overhead.py
	$(PY) bench/store_throughput.py

clean:
	rm -rf $(VENV) flightlog-demo flightlog.db flightlog.db-wal flightlog.db-shm
