"""Everything that talks to MLflow.

One store for every command: a SQLite file at a fixed place (`results/mlflow.db`) unless
`--tracking-uri` or `MLFLOW_TRACKING_URI` says otherwise. The URI is always passed explicitly to
MLflow and to Lightning's logger (a bare `MLFlowLogger()` falls back to the removed file store).
The database and the experiment are created once, under a file lock, before any run starts, so
concurrent first starts do not race on the schema migration (ecosystem.md, pitfall P2).
"""

from __future__ import annotations

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

    return MlflowClient(tracking_uri=uri)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail within seconds on a tracking server that does not answer (MLflow itself retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered; MLflow reports anything else
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"the MLflow tracking server at {mask(uri)} does not answer ({reason}).",
            hint="start it (e.g. `mlflow server --host 127.0.0.1 --port 5000`), or fix --tracking-uri / "
                 "MLFLOW_TRACKING_URI; leave both unset for the local store results/mlflow.db",
        ) from None


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
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(uri)
    return c.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


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


def lightning_logger(uri: str, run_id: str):
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(tracking_uri=uri, run_id=run_id)


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The `mlflow ui` command line for the store (artifacts served from beside the database)."""
    cmd = ["mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return cmd

