"""Everything that talks to MLflow.

One store for every command: a SQLite file at a fixed place (`results/mlflow.db`) unless
`--tracking-uri` or `MLFLOW_TRACKING_URI` says otherwise. The URI is always passed explicitly to
MLflow and to Lightning's logger (a bare `MLFlowLogger()` falls back to the removed file store).
The database and the experiment are created once, under a file lock, before any run starts, so
concurrent first starts do not race on the schema migration (docs/tracking.md, pitfall P2).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from suite.errors import TrackingError
from suite.paths import PROJECT_ROOT, default_tracking_uri
from tasks.cache import file_lock

warnings.filterwarnings("ignore", message=".*noload loader strategy.*")
# MLflow's INFO lines when it creates or migrates a store ("Creating initial MLflow database tables...",
# alembic's steps): nothing to act on; warnings and errors still show.
for _name in ("mlflow.store.db.utils", "alembic.runtime.migration", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def resolve_uri(uri: str | None) -> str:
    """The tracking URI to use; a relative SQLite path is made absolute (against the current folder)."""
    uri = uri or default_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    elif "://" not in uri:  # a bare path to a database file
        uri = f"sqlite:///{Path(uri).resolve()}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database, in `mlruns/`, never under the CWD."""
    db = sqlite_path(uri)
    return (db.parent / "mlruns").as_uri() if db else None


def mask(uri: str) -> str:
    """The URI with any password replaced by ***, for printing and logging."""
    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def client(uri: str):
    from mlflow.tracking import MlflowClient

    if urlsplit(uri).password:  # MLflow prints "View run at <uri with password>" when a run ends; not with ours
        import os

        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    return MlflowClient(tracking_uri=uri)


DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}  # database stores MLflow takes
# The stores MLflow 3 tracks to (its file store is gone; databricks needs its own credentials)
STORE_SCHEMES = {"sqlite", "http", "https", "databricks", "databricks-uc", "uc", *DB_PORTS}


def _check_database_port(uri: str, default_port: int, timeout: float) -> None:
    """A TCP connection to the database server of a `postgresql://user:pw@host:port/db` store, within `timeout`."""
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port or default_port
    except ValueError:  # a malformed port: let MLflow report it
        return
    if not host:  # a local Unix socket
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise TrackingError(
            f"the database server of the MLflow store {mask(uri)} does not answer at {host}:{port} "
            f"({exc.strerror or type(exc).__name__}).",
            hint="start the database (e.g. `sudo systemctl start postgresql`), or fix --tracking-uri / "
                 "MLFLOW_TRACKING_URI; leave both unset for the local store results/mlflow.db",
        ) from None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail within seconds on a tracking server or database that does not answer (MLflow and SQLAlchemy
    themselves retry for minutes)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0]
    if scheme not in STORE_SCHEMES:
        raise TrackingError(
            f"the MLflow store {mask(uri)} has the scheme '{scheme}://', which is not an MLflow tracking store.",
            hint="use a SQLite file (sqlite:///path/mlflow.db, or just a path), a database (postgresql://, mysql://, "
                 "mssql://) or a tracking server (http://, https://); leave --tracking-uri and MLFLOW_TRACKING_URI "
                 "unset for the local store results/mlflow.db",
        )
    if scheme in DB_PORTS:
        _check_database_port(uri, DB_PORTS[scheme], timeout)
        return
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")
                                     + "/health")
    if parts.username:  # credentials in the URI: send them as basic auth, as MLflow's client does
        import base64

        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered; MLflow reports anything else
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"the MLflow tracking server at {mask(uri)} does not answer ({reason}).",
            hint="start it (e.g. `mlflow server --host 127.0.0.1 --port 5000`), or fix --tracking-uri / "
                 "MLFLOW_TRACKING_URI; leave both unset for the local store results/mlflow.db",
        ) from None


def resume_command(uri: str, run_id: str) -> str:
    """The command that continues run `run_id`, ready to copy: with `--tracking-uri` unless the run is in the
    checkout's default store (results/mlflow.db), whatever MLFLOW_TRACKING_URI says now (a later shell may not
    have it). A password in the URI is masked: put it back, or export MLFLOW_TRACKING_URI instead."""
    import shlex

    from suite.paths import RESULTS_DIR

    if uri == resolve_uri(f"sqlite:///{RESULTS_DIR / 'mlflow.db'}"):
        return f"suite run --resume {run_id}"
    return f"suite run --resume {run_id} --tracking-uri {shlex.quote(mask(uri))}"


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
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is None:
        root = artifact_root(uri)
        experiment_id = c.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
        tags: dict[str, str] = {}
    else:
        experiment_id, tags = exp.experiment_id, exp.tags
    mark_experiment(uri, experiment_id, tags)
    return experiment_id


# ------------------------------------------------------------------------------------------------
# What the MLflow UI shows: experiment kind, saved views of the run table, descriptions
# ------------------------------------------------------------------------------------------------
#
# MLflow 3.17's UI opens an experiment on its GenAI pages (traces, an assistant) unless the experiment is a
# model-training one. Two things decide it: the experiment tag `mlflow.experimentKind` (its training value is
# `custom_model_development`; without the tag the UI guesses the kind and may ask) and, in 3.17, the UI's own
# "GenAI / Model training" switch, which a link sets with `?workflowType=machine_learning`. The run table shows
# no metric column until the user picks some; a saved view (experiment tag `mlflow.sharedViewState.<key>`, the
# "Views" menu above the table, or `?viewStateShareKey=<key>` in a link) brings the columns, the sort and the
# filter at once. The suite writes both on every experiment it uses, and prints links that open them.

KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the description of an experiment or a run (Markdown) in the UI
VIEW_TAG = "mlflow.sharedViewState."
RESULTS_VIEW = "suite-results"
# The headline numbers of every family (a column without values in the experiment is not shown)
HEADLINE_METRICS = ("best/test/accuracy", "best/val/accuracy", "best/test8k/accuracy", "best/test/rmse",
                    "best/val/rmse", "best/epoch")
KEY_TAGS = ("suite.task", "suite.model", "suite.preset", "suite.seed", "suite.data_source")
UI_DEFAULT = "http://127.0.0.1:5000"


def _column(kind: str, key: str) -> str:
    """A run-table column as the UI names it: `metrics.`best/test/accuracy``, `params.`optim.lr``, `tags.`x``."""
    return f"{kind}.`{key}`"


def view_state(columns: list[str], order_by: str, ascending: bool = False, search_filter: str = "") -> dict[str, Any]:
    """The state of the experiment page a saved view restores: search facets and the table's UI state (the
    fields and defaults of MLflow 3.17's `ExperimentPageUIState`); `columns` are `_column` names."""
    widths = {c: 170 for c in columns if c.startswith("metrics.")}
    state: dict[str, Any] = {
        "searchFilter": search_filter, "orderByKey": order_by, "orderByAsc": ascending, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": columns, "columnOrder": [], "columnWidths": widths, "runsExpanded": {},
        "runsPinned": [], "runsHidden": [], "runsVisibilityMap": {}, "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {},
        "autoRefreshEnabled": True,
    }
    return state


def save_view(uri: str, experiment_id: str, key: str, name: str, state: dict[str, Any]) -> None:
    """Write the saved view `key` (shown as `name` in the UI's Views menu) on the experiment, replacing an older
    one of the same key."""
    import json
    import time

    now = int(time.time() * 1000)
    envelope = {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    client(uri).set_experiment_tag(experiment_id, VIEW_TAG + key, json.dumps(envelope))


def results_view() -> dict[str, Any]:
    """The experiment's run table with the headline metrics and the key tags, best test number first."""
    columns = [_column("metrics", m) for m in HEADLINE_METRICS] + [_column("tags", t) for t in KEY_TAGS]
    return view_state(columns, order_by=_column("metrics", "best/test/accuracy"))


def mark_experiment(uri: str, experiment_id: str, tags: dict[str, str] | None = None) -> None:
    """Make the experiment a model-training one with the suite's saved view and a description (each written
    only when missing or out of date). `tags`: the experiment's tags if the caller has them."""
    c = client(uri)
    if tags is None:
        tags = c.get_experiment(experiment_id).tags
    if tags.get(KIND_TAG) != TRAINING_KIND:
        c.set_experiment_tag(experiment_id, KIND_TAG, TRAINING_KIND)
    view = tags.get(VIEW_TAG + RESULTS_VIEW)
    import json

    try:
        current = json.loads(json.loads(view)["state"]) if view else None
    except (ValueError, KeyError, TypeError):
        current = None
    if current != results_view():
        save_view(uri, experiment_id, RESULTS_VIEW, "suite: results", results_view())
    if not tags.get(NOTE_TAG):
        c.set_experiment_tag(experiment_id, NOTE_TAG, (
            "Runs of the ssm-suite (`suite run`, `suite sweep`). The view **suite: results** (Views menu above the "
            "run table) shows each run's best validation and test numbers (`best/val/*`, `best/test/*`: the test "
            "metrics at the epoch of the best validation metric) with task, model, preset and seed. A sweep's "
            "study run has nested trial runs; its description links to the sweep's own view."))


def prepare_ui(uri: str) -> list[tuple[str, str]]:
    """Mark every active experiment of the store as the suite does its own (`mark_experiment`), the Default one
    included when it holds runs; return (id, name) of those with runs. A store MLflow cannot read: nothing."""
    try:
        c = client(uri)
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


def runs_url(experiment_id: str, view: str | None = RESULTS_VIEW, base: str = UI_DEFAULT) -> str:
    """The link that opens the experiment's run table in `suite ui` (model-training pages, the saved view)."""
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={view}" if view else "")
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def run_url(experiment_id: str, run_id: str, base: str = UI_DEFAULT) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def set_description(uri: str, run_id: str, text: str) -> None:
    """The run's description (Markdown), shown on its page in the UI."""
    client(uri).set_tag(run_id, NOTE_TAG, text)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name(accelerator: str) -> str:
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{socket.gethostname()}"


def start_run(uri: str, experiment_id: str, run_name: str | None, tags: dict[str, str]) -> str:
    run = client(uri).create_run(experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


def log_params(uri: str, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, _param_value(v)) for k, v in params.items()]
    c = client(uri)
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def _param_value(v: Any) -> str:
    text = "null" if v is None else str(v)
    return mask(text) if "://" in text else text


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    c = client(uri)
    for k, v in tags.items():
        c.set_tag(run_id, k, v)


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    c = client(uri)
    for k, v in metrics.items():
        c.log_metric(run_id, k, v, step=step or 0)


def log_artifact(uri: str, run_id: str, path: Path, folder: str | None = None) -> None:
    client(uri).log_artifact(run_id, str(path), folder)


def metric_histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value), ...]} for every metric of the run, in step order."""
    c = client(uri)
    keys = c.get_run(run_id).data.metrics.keys()
    return {k: sorted((m.step, m.value) for m in c.get_metric_history(run_id, k)) for k in keys}


def set_terminated(uri: str, run_id: str, status: str) -> None:
    client(uri).set_terminated(run_id, status)


def run_status(uri: str, run_id: str) -> str:
    return client(uri).get_run(run_id).info.status


# ------------------------------------------------------------------------------------------------
# Run ownership, reopening and stale runs (a RUNNING run whose process is gone)
# ------------------------------------------------------------------------------------------------


def owner_tags() -> dict[str, str]:
    """Which process on which host writes the run: lets a later command detect a run left RUNNING by a kill."""
    import os
    import time

    return {"suite.host": socket.gethostname(), "suite.pid": str(os.getpid()), "suite.pid_since": f"{time.time():.3f}"}


def failure_tags(exc: BaseException) -> dict[str, str]:
    """`suite.failure`: one line saying why a run failed (the error's message, credentials masked)."""
    text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    line = mask_text(str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__)
    return {"suite.failure": line[:500]}


def mask_text(text: str) -> str:
    """Every URI with a password inside `text` masked (`scheme://user:***@host`)."""
    import re

    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):([^@\s/]+)@", r"\1:***@", text)


def reopen_run(uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set a terminated run back to RUNNING (resume), with fresh owner tags; stale/failure marks removed."""
    c = client(uri)
    c.update_run(run_id, status="RUNNING")
    existing = c.get_run(run_id).data.tags
    for key in ("suite.stale", "suite.failure"):
        if key in existing:
            c.delete_tag(run_id, key)
    set_tags(uri, run_id, tags)


def _process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of a live process, None if there is none (Linux /proc; elsewhere: alive = now)."""
    import os
    import time

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time() - 1e9  # exists, start unknown: assume it is the owner


def owner_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process named in a run's owner tags still runs; None when it cannot be told from here
    (no owner tags, or another host)."""
    if tags.get("suite.host") != socket.gethostname() or not tags.get("suite.pid", "").isdigit():
        return None
    started = _process_started(int(tags["suite.pid"]))
    if started is None:
        return False
    since = float(tags.get("suite.pid_since") or "inf")
    return started <= since + 1.0  # a process started after the tag was written reuses a dead owner's pid


def mark_stale_runs(uri: str) -> list[str]:
    """Mark RUNNING runs whose owner process on this host is gone as KILLED (tag suite.stale=true); say so on
    stderr with the resume command. Cheap: one search per experiment; a store that does not exist yet is skipped.
    Returns the run ids marked."""
    import sys

    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return []
    check_reachable(uri)
    marked = []
    try:
        c = client(uri)
        ids = [e.experiment_id for e in c.search_experiments()]
        runs = c.search_runs(ids, "attributes.status = 'RUNNING'", max_results=1000) if ids else []
    except Exception as exc:  # a store MLflow cannot read: the command itself will report it
        print(f"note: could not check {mask(uri)} for stale runs ({type(exc).__name__})", file=sys.stderr)
        return []
    for run in runs:
        tags = run.data.tags
        if owner_alive(tags) is not False:
            continue
        c.set_tag(run.info.run_id, "suite.stale", "true")
        c.set_terminated(run.info.run_id, "KILLED")
        marked.append(run.info.run_id)
        name = run.info.run_name or ""
        print(f"note: run {run.info.run_id} ({name}) was left RUNNING by process {tags['suite.pid']}, which is gone; "
              f"marked KILLED. Continue it with: {resume_command(uri, run.info.run_id)}", file=sys.stderr)
    return marked


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The `mlflow ui` command line for the store (artifacts served from beside the database)."""
    cmd = ["mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return cmd



def get_run(uri: str, run_id: str):
    """The MLflow run `run_id` (info, data.params, data.tags, data.metrics); TrackingError if there is none."""
    try:
        return client(uri).get_run(run_id)
    except Exception as exc:  # MlflowException (RESOURCE_DOES_NOT_EXIST) or a malformed id
        raise TrackingError(
            f"no MLflow run '{run_id}' in {mask(uri)} ({type(exc).__name__}: {str(exc).splitlines()[0]}).",
            hint="copy the run id from `suite ui` or the `done: run ...` line of the training; pass the same "
                 "--tracking-uri / MLFLOW_TRACKING_URI the run was logged to",
        ) from None


def download_artifact(uri: str, run_id: str, artifact_path: str, dst: Path) -> Path:
    """Download one artifact of a run (e.g. `checkpoints/best.ckpt`) into the folder `dst`; return its path."""
    try:
        return Path(client(uri).download_artifacts(run_id, artifact_path, str(dst)))
    except Exception as exc:
        raise TrackingError(
            f"run {run_id} has no artifact '{artifact_path}' ({type(exc).__name__}: {str(exc).splitlines()[0]}).",
            hint="the run may have failed before its first validation, or its artifacts were deleted; "
                 "pick a finished run (status FINISHED in `suite ui`)",
        ) from None


# ------------------------------------------------------------------------------------------------
# Reading finished runs back (`suite table`, `suite report`)
# ------------------------------------------------------------------------------------------------


def experiment_id(uri: str, name: str) -> str | None:
    """The id of the experiment called `name`, None if the store has none. Creates nothing; whatever MLflow
    raises for a store it cannot read (not an MLflow database, a server that refuses) propagates."""
    exp = client(uri).get_experiment_by_name(name)
    return None if exp is None else exp.experiment_id


def experiment_names(uri: str) -> list[str]:
    """The names of every experiment in the store, sorted."""
    return sorted(e.name for e in client(uri).search_experiments())


def finished_runs(uri: str, experiment_id: str, filter_text: str | None = None) -> list:
    """Every FINISHED run of the experiment (MLflow `Run`s: info, data.tags, data.metrics), newest first, all
    pages read. `filter_text` narrows the search in MLflow's search syntax (e.g. `tags.suite.preset = 'paper'`);
    a filter MLflow cannot parse raises ConfigError."""
    from mlflow.exceptions import MlflowException

    c = client(uri)
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


def has_artifact(uri: str, run_id: str, artifact_path: str) -> bool:
    """Whether the run has the artifact `artifact_path` (e.g. `learning_curves.png`, `checkpoints/best.ckpt`).
    Whatever MLflow raises for an artifact store it cannot list propagates."""
    import posixpath

    folder = posixpath.dirname(artifact_path) or None
    return any(a.path == artifact_path for a in client(uri).list_artifacts(run_id, folder))


def copy_artifact(uri: str, run_id: str, artifact_path: str, dest: Path) -> Path:
    """Download one artifact of the run and write it to the file `dest` (its folder must exist); return `dest`.
    Unlike `download_artifact`, MLflow's own exception propagates, for callers that fall back on their own."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(client(uri).download_artifacts(run_id, artifact_path, tmp), dest)
    return dest


# ------------------------------------------------------------------------------------------------
# Moving runs between stores (`suite export`, `suite import`: suite/bundle.py)
# ------------------------------------------------------------------------------------------------


def metric_records(uri: str, run_id: str) -> list[dict[str, Any]]:
    """Every logged value of every metric of the run: {key, value, step, timestamp} (timestamp in ms), ordered by
    key, step and timestamp: the whole history, as `import_run` restores it."""
    c = client(uri)
    keys = c.get_run(run_id).data.metrics.keys()
    rows = [{"key": k, "value": m.value, "step": m.step, "timestamp": m.timestamp}
            for k in keys for m in c.get_metric_history(run_id, k)]
    return sorted(rows, key=lambda r: (r["key"], r["step"], r["timestamp"]))


def runs_from(uri: str, origin_run_id: str) -> list[str]:
    """Ids of the live (not deleted) runs in the store that are the run `origin_run_id` or an import of it (tag
    `suite.origin_run_id`), in any experiment."""
    c = client(uri)
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

    c = client(uri)
    run_id = c.create_run(experiment_id, start_time=start_time, tags=tags, run_name=run_name).info.run_id
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])
    rows = [Metric(r["key"], float(r["value"]), int(r["timestamp"]), int(r["step"])) for r in metrics]
    for i in range(0, len(rows), 1000):
        c.log_batch(run_id, metrics=rows[i : i + 1000])
    return run_id


def end_run(uri: str, run_id: str, status: str, end_time: int | None = None) -> None:
    """Terminate the run with `status` at `end_time` (ms; now when None)."""
    client(uri).set_terminated(run_id, status, end_time=end_time)


def delete_run(uri: str, run_id: str) -> None:
    client(uri).delete_run(run_id)


def experiment_name(uri: str, experiment_id: str) -> str:
    """The name of the experiment with id `experiment_id`."""
    return client(uri).get_experiment(experiment_id).name


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
