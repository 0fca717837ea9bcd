# propensity: `make help` lists the targets. Each target does one thing; `install` is implied.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(PYTHON) -m uv

.DEFAULT_GOAL := help
.PHONY: help install install-spark bytecode install-pip demo test test-unit test-fast lint bench features kpis docs train serve mlflow-ui

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv: locked dependencies and dev tools, no Spark (uv; installs uv if missing)

install-spark: $(VENV)/.installed-spark ## install plus the `spark` extra (pyspark, 1.7 GB; Spark also needs Java 17)

# EXTRAS: optional dependency groups of `make install`: `dev` (test and lint tools) by default;
# EXTRAS="dev spark" is what `make install-spark` does. Syncs are --inexact: a later plain
# install keeps pyspark where it was added.
EXTRAS ?= dev
SYNC = UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact
$(VENV)/.installed: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || { echo "installing uv with pip ..."; $(PYTHON) -m pip install --quiet uv; }
	@echo "--- setting up $(VENV) (extras: $(EXTRAS)): about 120 packages, seconds from uv's cache, longer on a first download"
	$(SYNC) $(addprefix --extra ,$(EXTRAS))
	@$(MAKE) --no-print-directory bytecode
	@touch $@

$(VENV)/.installed-spark: $(VENV)/.installed
	@echo "--- adding the spark extra to $(VENV): pyspark, 1.7 GB built from its source archive, a few minutes"
	$(SYNC) $(addprefix --extra ,$(sort $(EXTRAS) spark))
	@$(MAKE) --no-print-directory bytecode
	@touch $@

bytecode:
	@echo "--- compiling bytecode once so commands start fast (about a minute the first time) ..."
	@start=$$(date +%s); $(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1; \
	  echo "--- done in $$(( $$(date +%s) - start )) s"

install-pip: ## fallback without uv: plain pip into .venv (unlocked versions, with Spark)
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -e '.[dev,spark]' \
	  && touch $(VENV)/.installed $(VENV)/.installed-spark

demo: install ## the main job end to end on generated data (data/ by default)
	$(BIN)/propensity demo

test: install-spark ## the whole test suite, as CI runs it (Spark and browser tests included)
	$(BIN)/pytest -n 2 --dist loadfile

test-unit: install ## the loop to run while working: no slow, spark or browser tests (~1 min)
	$(BIN)/pytest -n 2 -m "not slow and not spark and not browser"

test-fast: install-spark ## tests without the slow marker (includes the Spark tests, ~4 min)
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow"

lint: install ## ruff
	$(BIN)/ruff check features training serving simulator tests notebooks bench propensity_cli.py

bench: install-spark ## benchmarks: generation, feature build (three sizes), 48 weekly snapshots of an 18M-row book, training (100k accounts), oracle gap (3 seeds x 3 cut-offs), Spark vs DuckDB (1M), pull from PostgreSQL (10M rows), delivery of a 100k-account run
	$(BIN)/python -m bench.features $(BENCH_ARGS)
	$(BIN)/python -m bench.weekly $(BENCH_WEEKLY_ARGS)
	$(BIN)/python -m bench.training $(BENCH_TRAIN_ARGS)
	$(BIN)/python -m bench.models $(BENCH_MODELS_ARGS)
	$(BIN)/python -m bench.serving $(BENCH_SERVING_ARGS)
	$(BIN)/python -m bench.spark $(BENCH_SPARK_ARGS)
	$(BIN)/python -m bench.pull $(BENCH_PULL_ARGS)
	$(BIN)/python -m bench.delivery $(BENCH_DELIVERY_ARGS)

features: install ## monthly snapshot grid for the data in data/raw
	$(BIN)/propensity features build --from $(FROM) --to $(TO)

train: install ## train churn, upsell and cross-sell on the snapshots in data/
	$(BIN)/propensity train churn && $(BIN)/propensity train upsell && $(BIN)/propensity train cross-sell

serve: install ## the scoring API and the account managers' page on http://127.0.0.1:8000
	$(BIN)/propensity serve

mlflow-ui: install ## MLflow UI on http://127.0.0.1:5000 for the embedded store
	MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --workers 1 --backend-store-uri sqlite:///$(abspath data/mlflow/mlflow.db)

kpis: install ## account KPIs by month and segment
	$(BIN)/propensity kpis --by month,segment

docs: install ## regenerate the contract and feature docs from code
	$(BIN)/propensity data describe > docs/data-contract.md
	$(BIN)/propensity features describe > docs/features.md
