"""Where a store is: its URI made absolute, the SQLite file and artifact folder behind it, and the URI as it may
be printed (any password masked).

One store for every command: a SQLite file at a fixed place (`results/mlflow.db`) unless `--tracking-uri` or
`MLFLOW_TRACKING_URI` says otherwise. Artifacts of a SQLite store live beside the database, never under the
current folder (docs/tracking.md).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from suite.paths import RESULTS_DIR, default_tracking_uri


def absolute(url: str) -> str:
    """A SQLite URL with a relative path, or a bare path to a database file, as a SQLite URL with an absolute path
    (against the current folder); any other URL as it is. The MLflow store and the Optuna storage both take these."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{Path(url[len('sqlite:///'):]).resolve()}"
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    return url


def resolve_uri(uri: str | None) -> str:
    """The tracking URI to use; a relative SQLite path is made absolute (against the current folder)."""
    return absolute(uri or default_tracking_uri())


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


def mask_text(text: str) -> str:
    """Every URI with a password inside `text` masked (`scheme://user:***@host`)."""
    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):([^@\s/]+)@", r"\1:***@", text)


def resume_command(uri: str, run_id: str) -> str:
    """The command that continues run `run_id`, ready to copy: with `--tracking-uri` unless the run is in the
    checkout's default store (results/mlflow.db), whatever MLFLOW_TRACKING_URI says now (a later shell may not
    have it). A password in the URI is masked: put it back, or export MLFLOW_TRACKING_URI instead."""
    if uri == resolve_uri(f"sqlite:///{RESULTS_DIR / 'mlflow.db'}"):
        return f"suite run --resume {run_id}"
    return f"suite run --resume {run_id} --tracking-uri {shlex.quote(mask(uri))}"
