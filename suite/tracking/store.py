"""Every operation the suite does on an MLflow store, by name; the MLflow client itself stays in here.

The URI is always passed explicitly to MLflow (a bare client falls back on the removed file store). The
database and the experiment are created once, under a file lock, before any run starts, so concurrent first
starts do not race on the schema migration (docs/tracking.md, pitfall P2).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from suite.errors import TrackingError
from suite.tracking import ui
from suite.tracking.probe import check_reachable
from suite.tracking.uris import artifact_root, mask, sqlite_path
from tasks.filelock import file_lock

warnings.filterwarnings("ignore", message=".*noload loader strategy.*")
# MLflow's INFO lines when it creates or migrates a store ("Creating initial MLflow database tables...",
# alembic's steps): nothing to act on; warnings and errors still show.
for _name in ("mlflow.store.db.utils", "alembic.runtime.migration", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    if urlsplit(uri).password:  # MLflow prints "View run at <uri with password>" when a run ends; not with ours
        import os

        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    return MlflowClient(tracking_uri=uri)


# ------------------------------------------------------------------------------------------------
# Experiments
# ------------------------------------------------------------------------------------------------


def ensure_experiment(uri: str, name: str) -> str:
    """Create the store (once) and the experiment if missing; return the experiment id."""
    db = sqlite_path(uri)
    check_reachable(uri)
    try:
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(db.with_name(db.name + ".lock")):
                return _get_or_create(uri, name)
        return _get_or_create(uri, name)
    except TrackingError:
        raise
    except Exception as exc:  # mlflow raises many types for an unreachable or broken store
        raise TrackingError(
            f"cannot use the MLflow store {mask(uri)}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            hint="check --tracking-uri / MLFLOW_TRACKING_URI (a server must be running for http:// URIs)",
        ) from None


def _get_or_create(uri: str, name: str) -> str:
    c = _client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        root = artifact_root(uri)
        experiment_id = c.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
        tags: dict[str, str] = {}
    else:
        experiment_id, tags = exp.experiment_id, exp.tags
    mark_experiment(uri, experiment_id, tags)
    return experiment_id


def mark_experiment(uri: str, experiment_id: str, tags: dict[str, str] | None = None) -> None:
    """Make the experiment a model-training one with the suite's saved view and a description (suite/tracking/ui.py;
    each written only when missing or out of date). `tags`: the experiment's tags if the caller has them."""
    c = _client(uri)
    if tags is None:
        tags = c.get_experiment(experiment_id).tags
    for key, value in ui.experiment_marks(tags).items():
        c.set_experiment_tag(experiment_id, key, value)


def save_view(uri: str, experiment_id: str, key: str, name: str, state: dict[str, Any]) -> None:
    """Write the saved view `key` (shown as `name` in the UI's Views menu) on the experiment, replacing an older
    one of the same key."""
    _client(uri).set_experiment_tag(experiment_id, *ui.view_tag(key, name, state))


def prepare_ui(uri: str) -> list[tuple[str, str]]:
    """Mark every active experiment of the store as the suite does its own (`mark_experiment`), the Default one
    included when it holds runs; return (id, name) of those with runs. A store MLflow cannot read: nothing."""
    try:
        c = _client(uri)
        found = []
        for exp in c.search_experiments():
            if not c.search_runs([exp.experiment_id], max_results=1):
                continue
            mark_experiment(uri, exp.experiment_id, exp.tags)
            found.append((exp.experiment_id, exp.name))
        return found
    except Exception as exc:  # the UI itself reports what is wrong with the store
        import sys

        print(f"note: could not prepare the experiments of {mask(uri)} for the UI ({type(exc).__name__})",
              file=sys.stderr)
        return []


def experiment_id(uri: str, name: str) -> str | None:
    """The id of the experiment called `name`, None if the store has none. Creates nothing; whatever MLflow
    raises for a store it cannot read (not an MLflow database, a server that refuses) propagates."""
    exp = _client(uri).get_experiment_by_name(name)
    return None if exp is None else exp.experiment_id


def experiment_ids(uri: str) -> list[str]:
    """The ids of every active experiment in the store."""
    return [e.experiment_id for e in _client(uri).search_experiments()]


def experiment_names(uri: str) -> list[str]:
    """The names of every experiment in the store, sorted."""
    return sorted(e.name for e in _client(uri).search_experiments())


def experiment_name(uri: str, experiment_id: str) -> str:
    """The name of the experiment with id `experiment_id`."""
    return _client(uri).get_experiment(experiment_id).name


# ------------------------------------------------------------------------------------------------
# Writing a run
# ------------------------------------------------------------------------------------------------


def start_run(uri: str, experiment_id: str, run_name: str | None, tags: dict[str, str]) -> str:
    run = _client(uri).create_run(experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


def log_params(uri: str, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, param_value(v)) for k, v in params.items()]
    c = _client(uri)
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def param_value(v: Any) -> str:
    """A value as the run's param holds it: `null` for None, a URI with its password masked."""
    text = "null" if v is None else str(v)
    return mask(text) if "://" in text else text


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    c = _client(uri)
    for k, v in tags.items():
        c.set_tag(run_id, k, v)


def delete_tags(uri: str, run_id: str, keys: tuple[str, ...] | list[str]) -> None:
    """Remove those of the tags `keys` the run has."""
    c = _client(uri)
    existing = c.get_run(run_id).data.tags
    for key in keys:
        if key in existing:
            c.delete_tag(run_id, key)


def set_description(uri: str, run_id: str, text: str) -> None:
    """The run's description (Markdown), shown on its page in the UI."""
    _client(uri).set_tag(run_id, ui.NOTE_TAG, text)


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    c = _client(uri)
    for k, v in metrics.items():
        c.log_metric(run_id, k, v, step=step or 0)


def log_artifact(uri: str, run_id: str, path: Path, folder: str | None = None) -> None:
    _client(uri).log_artifact(run_id, str(path), folder)


def set_status(uri: str, run_id: str, status: str) -> None:
    """Set the run's status (`RUNNING` again for a run that goes on) without ending it."""
    _client(uri).update_run(run_id, status=status)


def set_terminated(uri: str, run_id: str, status: str) -> None:
    _client(uri).set_terminated(run_id, status)


def end_run(uri: str, run_id: str, status: str, end_time: int | None = None) -> None:
    """Terminate the run with `status` at `end_time` (ms; now when None)."""
    _client(uri).set_terminated(run_id, status, end_time=end_time)


def reopen_run(uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set a terminated run back to RUNNING (resume), with fresh owner tags; stale/failure marks removed."""
    set_status(uri, run_id, "RUNNING")
    delete_tags(uri, run_id, ("suite.stale", "suite.failure"))
    set_tags(uri, run_id, tags)


def delete_run(uri: str, run_id: str) -> None:
    _client(uri).delete_run(run_id)


# ------------------------------------------------------------------------------------------------
# Reading runs
# ------------------------------------------------------------------------------------------------


def get_run(uri: str, run_id: str):
    """The MLflow run `run_id` (info, data.params, data.tags, data.metrics); TrackingError if there is none."""
    try:
        return _client(uri).get_run(run_id)
    except Exception as exc:  # MlflowException (RESOURCE_DOES_NOT_EXIST) or a malformed id
        raise TrackingError(
            f"no MLflow run '{run_id}' in {mask(uri)} ({type(exc).__name__}: {str(exc).splitlines()[0]}).",
            hint="copy the run id from `suite ui` or the `done: run ...` line of the training; pass the same "
                 "--tracking-uri / MLFLOW_TRACKING_URI the run was logged to",
        ) from None


def find_run(uri: str, run_id: str):
    """The MLflow run `run_id`, None when the store has no such run (or cannot say)."""
    try:
        return _client(uri).get_run(run_id)
    except Exception:  # MlflowException (RESOURCE_DOES_NOT_EXIST), a malformed id, another store
        return None


def run_status(uri: str, run_id: str) -> str:
    return _client(uri).get_run(run_id).info.status


def run_experiment_id(uri: str, run_id: str) -> str:
    """The id of the experiment the run belongs to."""
    return _client(uri).get_run(run_id).info.experiment_id


def search_runs(uri: str, experiment_ids: list[str], filter_text: str, order_by: list[str] | None = None,
                max_results: int = 1000) -> list:
    """Runs of the experiments matching `filter_text` (MLflow's search syntax), at most `max_results` (one page)."""
    return list(_client(uri).search_runs(experiment_ids, filter_string=filter_text, order_by=order_by,
                                         max_results=max_results))


def finished_runs(uri: str, experiment_id: str, filter_text: str | None = None) -> list:
    """Every FINISHED run of the experiment (MLflow `Run`s: info, data.tags, data.metrics), newest first, all
    pages read. `filter_text` narrows the search in MLflow's search syntax (e.g. `tags.suite.preset = 'paper'`);
    a filter MLflow cannot parse raises ConfigError."""
    from mlflow.exceptions import MlflowException

    c = _client(uri)
    query = "attributes.status = 'FINISHED'" + (f" and {filter_text}" if filter_text else "")
    found, token = [], None
    try:
        while True:
            page = c.search_runs([experiment_id], filter_string=query, max_results=1000,
                                 order_by=["attributes.start_time DESC"], page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                break
    except MlflowException as exc:  # a malformed filter
        if filter_text:
            from suite.errors import ConfigError

            raise ConfigError(f"MLflow cannot use --filter {filter_text!r}: {str(exc).splitlines()[0]}",
                              hint="MLflow search syntax, e.g. --filter \"tags.suite.preset = 'paper'\" or "
                                   "\"params.model.d_state = '64'\" (quote values, join with 'and')") from None
        raise
    return found


def metric_histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value), ...]} for every metric of the run, in step order."""
    c = _client(uri)
    keys = c.get_run(run_id).data.metrics.keys()
    return {k: sorted((m.step, m.value) for m in c.get_metric_history(run_id, k)) for k in keys}


# ------------------------------------------------------------------------------------------------
# Artifacts
# ------------------------------------------------------------------------------------------------


def download_artifact(uri: str, run_id: str, artifact_path: str, dst: Path) -> Path:
    """Download one artifact of a run (e.g. `checkpoints/best.ckpt`) into the folder `dst`; return its path."""
    try:
        return Path(_client(uri).download_artifacts(run_id, artifact_path, str(dst)))
    except Exception as exc:
        raise TrackingError(
            f"run {run_id} has no artifact '{artifact_path}' ({type(exc).__name__}: {str(exc).splitlines()[0]}).",
            hint="the run may have failed before its first validation, or its artifacts were deleted; "
                 "pick a finished run (status FINISHED in `suite ui`)",
        ) from None


def has_artifact(uri: str, run_id: str, artifact_path: str) -> bool:
    """Whether the run has the artifact `artifact_path` (e.g. `learning_curves.png`, `checkpoints/best.ckpt`).
    Whatever MLflow raises for an artifact store it cannot list propagates."""
    import posixpath

    folder = posixpath.dirname(artifact_path) or None
    return any(a.path == artifact_path for a in _client(uri).list_artifacts(run_id, folder))


def copy_artifact(uri: str, run_id: str, artifact_path: str, dest: Path) -> Path:
    """Download one artifact of the run and write it to the file `dest` (its folder must exist); return `dest`.
    Unlike `download_artifact`, MLflow's own exception propagates, for callers that fall back on their own."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(_client(uri).download_artifacts(run_id, artifact_path, tmp), dest)
    return dest


# ------------------------------------------------------------------------------------------------
# Moving runs between stores (`suite export`, `suite import`: suite/bundle.py)
# ------------------------------------------------------------------------------------------------


def metric_records(uri: str, run_id: str) -> list[dict[str, Any]]:
    """Every logged value of every metric of the run: {key, value, step, timestamp} (timestamp in ms), ordered by
    key, step and timestamp: the whole history, as `import_run` restores it."""
    c = _client(uri)
    keys = c.get_run(run_id).data.metrics.keys()
    rows = [{"key": k, "value": m.value, "step": m.step, "timestamp": m.timestamp}
            for k in keys for m in c.get_metric_history(run_id, k)]
    return sorted(rows, key=lambda r: (r["key"], r["step"], r["timestamp"]))


def runs_from(uri: str, origin_run_id: str) -> list[str]:
    """Ids of the live (not deleted) runs in the store that are the run `origin_run_id` or an import of it (tag
    `suite.origin_run_id`), in any experiment."""
    c = _client(uri)
    ids = [e.experiment_id for e in c.search_experiments()]
    if not ids:
        return []
    found = [r.info.run_id for r in c.search_runs(ids, f"tags.`suite.origin_run_id` = '{origin_run_id}'",
                                                  max_results=1000)]
    try:
        if c.get_run(origin_run_id).info.lifecycle_stage == "active":
            found.insert(0, origin_run_id)
    except Exception:  # no such run here
        pass
    return found


def import_run(uri: str, experiment_id: str, run_name: str | None, tags: dict[str, str], params: dict[str, str],
               metrics: list[dict[str, Any]], start_time: int | None) -> str:
    """A new run holding exactly `params`, `tags` and the metric history `metrics` (rows of `metric_records`,
    timestamps kept), started at `start_time` (ms); it stays RUNNING until the caller terminates it."""
    from mlflow.entities import Metric, Param

    c = _client(uri)
    run_id = c.create_run(experiment_id, start_time=start_time, tags=tags, run_name=run_name).info.run_id
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])
    rows = [Metric(r["key"], float(r["value"]), int(r["timestamp"]), int(r["step"])) for r in metrics]
    for i in range(0, len(rows), 1000):
        c.log_batch(run_id, metrics=rows[i : i + 1000])
    return run_id


# ------------------------------------------------------------------------------------------------
# System metrics (CPU, memory, GPU) of a run, by MLflow's own monitor
# ------------------------------------------------------------------------------------------------


def system_metrics_monitor(uri: str, run_id: str, resume: bool, every_seconds: float = 10.0):
    """MLflow's `SystemMetricsMonitor` for the run (started), logging `system/*` metrics (CPU and memory use,
    disk, network; GPU utilisation and memory with nvidia-ml-py) every `every_seconds`; `resume` continues the
    run's earlier steps. Returns (monitor, None), or (None, why not) when psutil is not installed (the extra
    `sysmetrics`). MLflow's own INFO lines about it are kept out of the log."""
    import importlib.util

    if importlib.util.find_spec("psutil") is None:
        return None, "psutil not installed (pip install 'ssm-suite[sysmetrics]')"
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=every_seconds, resume_logging=resume, tracking_uri=uri)
    monitor.start()
    return monitor, None
