# Two commands on a fresh machine:  `make demo`  and  `make test`. Each does its own set-up from nothing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CUSTOMERS ?= 20000
DAYS      ?= 120
SEED      ?= 7
DEMO_DIR  ?= data/demo

.PHONY: setup demo test bench console clean

$(BIN)/cdp: setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(BIN)/cdp

.jars/.ok: $(BIN)/cdp
	$(BIN)/cdp setup-jars --jars-dir .jars
	touch .jars/.ok

setup: $(BIN)/cdp .jars/.ok

demo: setup
	$(BIN)/cdp generate --out $(DEMO_DIR)/landing --customers $(CUSTOMERS) --days $(DAYS) --seed $(SEED)
	$(BIN)/cdp run --landing $(DEMO_DIR)/landing --lake $(DEMO_DIR)/lake --date $$(cat $(DEMO_DIR)/landing/_end_date)

test: setup
	$(BIN)/python -m pytest -q -n 2

bench: setup
	$(BIN)/python -m benchmarks.harness --customers 100000

console: setup
	$(BIN)/cdp console --lake $(DEMO_DIR)/lake

clean:
	rm -rf $(VENV) .jars data .airflow .pytest_cache
