# ssm-suite: every target works from a fresh clone; the first one that needs Python builds .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUITE  := $(BIN)/suite

# Knobs of the benchmark targets: make lra MODELS="s4d liquid_s4_pb" PRESET=smoke SEEDS="1 2 3"
#   MODELS  models to run (default: every registered model, `suite list`)
#   PRESET  paper (default) or smoke
#   SEEDS   seeds, one run each (default: each recipe's own seed)
#   SET     overrides for every run, e.g. SET="trainer.max_epochs=1 optim.lr=0.002"
MODELS ?=
PRESET ?= paper
SEEDS  ?=
SET    ?=
# The family comes first: --seeds takes every word after it. A failed run makes the target fail (after the
# table of what did finish is printed); a task skipped for want of data is not a failure.
BATCH   = $(SUITE) batch $(1) --preset $(PRESET) $(if $(strip $(MODELS)),--models "$(strip $(MODELS))") \
          $(foreach s,$(SET),--set $(s)) $(if $(strip $(SEEDS)),--seeds $(SEEDS))
FAMILY  = $(call BATCH,$(1)); status=$$?; $(SUITE) table $(1) || exit $$?; exit $$status

.PHONY: install test demo ui list bench clean-results help lra scifar speech bidmc tables report

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

install: $(STAMP)  ## create .venv and install the suite with its pinned dependencies

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --retries 10 --upgrade pip
	@# torch 2.11 brings about 3 GB of CUDA wheels: a dropped connection resumes the wheel, and if that
	@# fails the whole install is tried again (finished wheels come from pip's cache the second time)
	@for attempt in 1 2 3; do \
	  $(BIN)/python -m pip install --quiet --retries 10 --resume-retries 20 \
	    -c requirements.lock -e '.[dev,postgres,sysmetrics]' && break; \
	  if [ $$attempt = 3 ]; then echo "pip install failed 3 times: check the network and run 'make install' again" >&2; exit 1; fi; \
	  echo "pip install failed (attempt $$attempt of 3); trying again in 15 s" >&2; sleep 15; \
	done
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

lra: $(STAMP)  ## the six LRA tasks x MODELS (PRESET, SEEDS), then the LRA table
	$(call FAMILY,lra)

scifar: $(STAMP)  ## sequential CIFAR x MODELS, then its table
	$(call FAMILY,scifar)

speech: $(STAMP)  ## Speech Commands (16 kHz, with the 8 kHz zero-shot test) x MODELS, then its table
	$(call FAMILY,speech)

bidmc: $(STAMP)  ## BIDMC HR, RR, SpO2 x MODELS, then the table
	$(call FAMILY,bidmc)

tables: $(STAMP)  ## every table as Markdown, LaTeX and CSV into results/tables/
	@mkdir -p results/tables
	@for f in lra scifar speech bidmc; do \
	  $(SUITE) table $$f --format markdown --out results/tables/$$f.md && \
	  $(SUITE) table $$f --format latex --standalone --out results/tables/$$f.tex && \
	  $(SUITE) table $$f --format csv --out results/tables/$$f.csv || exit 1; \
	done; echo "wrote results/tables/{lra,scifar,speech,bidmc}.{md,tex,csv}"

report: $(STAMP)  ## one page with every table and the learning curves: results/report/
	$(SUITE) report

list: $(STAMP)  ## registered tasks, models and presets
	$(SUITE) list

# The Optuna studies go too: a study kept after its MLflow runs were deleted would resume and name a deleted run
# as its best. Tables and the report (results/tables, results/report) are kept: they are files a user may have
# shared, and `make tables` / `make report` rewrite them.
clean-results:  ## delete the local MLflow store, its artifacts, checkpoints, batch logs and the Optuna studies (results/optuna.db)
	rm -rf results/mlflow.db results/mlflow.db.lock results/mlruns results/checkpoints results/optuna.db results/optuna.db.*lock results/logs
	@echo "deleted the MLflow store, artifacts, checkpoints, batch logs and Optuna studies in results/; kept results/tables, results/report and the committed runs in results/reproduction"
