# ssm-suite: every target works from a fresh clone; the first one that needs Python builds .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUITE  := $(BIN)/suite

.PHONY: install test demo ui list bench clean-results help

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

install: $(STAMP)  ## create .venv and install the suite with its pinned dependencies

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,keops]'
	@touch $@
	@echo "installed: $(SUITE)  (activate with: source $(BIN)/activate)"

test: $(STAMP)  ## the whole test suite (what .ci/run calls)
	$(BIN)/python -m pytest -q

demo: $(STAMP)  ## the main job: S4D on generated ListOps (smoke preset), logged to results/mlflow.db
	$(SUITE) run --task listops --model s4d --preset smoke

ui: $(STAMP)  ## MLflow UI on results/mlflow.db at http://127.0.0.1:5000
	$(SUITE) ui

bench: $(STAMP)  ## layer benchmark of the four models (needs a GPU for meaningful numbers)
	$(SUITE) bench

list: $(STAMP)  ## registered tasks, models and presets
	$(SUITE) list

clean-results:  ## delete the local MLflow store, its artifacts and checkpoints
	rm -rf results/mlflow.db results/mlflow.db.lock results/mlruns results/checkpoints
