"""`suite sweep`: an Optuna study whose trials are MLflow child runs of one study run. The only Optuna code.

Who does what:

- **Optuna storage** (SQLite beside the MLflow store by default, any RDB URL such as PostgreSQL for many
  machines) is the source of truth for trials. It is created, with the study, once before any worker starts
  (storage.py).
- **MLflow** holds the study run (found again by its tags, so a rerun reuses it) and one child run per trial
  (runs.py), trained by `suite.train.run.train` exactly as `suite run` does, plus the tags `suite.sweep.study` /
  `suite.sweep.trial`, the sampled values as params `trial.<key>`, and the objective as metric `sweep/objective`
  (objective.py).
- **Workers** (`--workers K` processes here, the same command on other machines) share the storage and stop
  exactly at the budget (worker.py).

The modules, one job each: spec.py (the sweep file, typed and validated), sampler.py (trial n draws with seed + n),
storage.py, runs.py, objective.py, worker.py, summary.py (the study run's summary, plots), study.py (the command;
budget rules in its docstring), context.py (what every worker is told).
"""

from __future__ import annotations


def main(args) -> int:
    """`suite sweep FILE ...` (suite/sweep/study.py); imported on call, so that `import suite.sweep` stays light."""
    from suite.sweep.study import main as sweep_main

    return sweep_main(args)
