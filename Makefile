# propensity: `make help` lists the targets. Each target does one thing; `install` is implied.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(PYTHON) -m uv

.DEFAULT_GOAL := help
.PHONY: help install install-pip demo test test-fast lint bench features kpis docs train serve mlflow-ui

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with the locked dependencies (uv; installs uv if missing)

# EXTRAS: optional dependency groups; `spark` adds pyspark (needs Java 17) for --engine spark.
EXTRAS ?= dev spark
$(VENV)/.installed: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --compile-bytecode $(addprefix --extra ,$(EXTRAS))
	@touch $@

install-pip: ## fallback without uv: plain pip into .venv (unlocked versions)
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -e '.[dev,spark]' && touch $(VENV)/.installed

demo: install ## the main job end to end on generated data (data/ by default)
	$(BIN)/propensity demo

test: install ## the whole test suite
	$(BIN)/pytest -n 2 --dist loadfile

test-fast: install ## tests without the slow marker
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow"

lint: install ## ruff
	$(BIN)/ruff check features training serving tests notebooks bench propensity_cli.py

bench: install ## benchmarks: generation, feature build (three sizes), training (100k accounts), Spark vs DuckDB (1M)
	$(BIN)/python -m bench.features $(BENCH_ARGS)
	$(BIN)/python -m bench.training $(BENCH_TRAIN_ARGS)
	$(BIN)/python -m bench.serving $(BENCH_SERVING_ARGS)
	$(BIN)/python -m bench.spark $(BENCH_SPARK_ARGS)

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
