"""The only MLflow code of the suite, one job per module:

- uris.py: where a store is (absolute URIs, the SQLite file and artifact folder, masked passwords);
- probe.py: whether the store answers, within seconds;
- store.py: every operation on a store, by name (experiments, runs, params, tags, metrics, artifacts);
- ui.py: what the MLflow UI shows (experiment kind, saved views, links) and the `mlflow ui` command;
- liveness.py: owner tags, /proc liveness, stale runs;
- provenance.py: the git commit and the device a run's tags name.

The names below are re-exported for modules not moved to the submodules yet (suite/train/run.py); new code imports
the submodule it needs.
"""

from suite.tracking.liveness import failure_tags, owner_alive, owner_tags
from suite.tracking.probe import check_reachable
from suite.tracking.provenance import device_name, git_commit
from suite.tracking.store import (
    download_artifact,
    ensure_experiment,
    find_run,
    log_artifact,
    log_metrics,
    log_params,
    metric_histories,
    reopen_run,
    run_experiment_id,
    set_description,
    set_tags,
    set_terminated,
    start_run,
)
from suite.tracking.ui import NOTE_TAG, runs_url
from suite.tracking.uris import mask, resolve_uri, sqlite_path

__all__ = [
    "NOTE_TAG", "check_reachable", "device_name", "download_artifact", "ensure_experiment", "failure_tags",
    "find_run", "git_commit", "log_artifact", "log_metrics", "log_params", "mask", "metric_histories", "owner_alive",
    "owner_tags", "reopen_run", "resolve_uri", "run_experiment_id", "runs_url", "set_description", "set_tags",
    "set_terminated", "sqlite_path", "start_run",
]
