"""Where a study lives: the Optuna storage URL (SQLite beside the MLflow store by default, any RDB URL such as
PostgreSQL for many machines), the storage opened with its heartbeat, the study created once, and the lock files
under which workers count trials.

A fresh SQLite file raced by several processes breaks (docs/tracking.md, pitfall P2): the study is created under
a file lock, once, before any worker starts.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from suite.errors import ConfigError
from suite.paths import RESULTS_DIR
from suite.sweep.runs import close_stale_run
from suite.sweep.spec import StudySpec
from suite.tracking import uris


def default_storage(uri: str) -> str:
    """SQLite `optuna.db` beside the MLflow database (results/optuna.db for the default store)."""
    db = uris.sqlite_path(uri)
    folder = db.parent if db is not None else RESULTS_DIR
    return f"sqlite:///{folder / 'optuna.db'}"


def resolve_storage(url: str | None, uri: str) -> str:
    """`--storage` as an absolute URL (a bare path is a SQLite file), the default one when not given."""
    return uris.absolute(url) if url else default_storage(uri)


def open_storage(url: str, spec: StudySpec, uri: str | None = None):
    """RDBStorage with heartbeat: a RUNNING trial silent for `grace` seconds is failed and re-queued."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=spec.heartbeat.max_retry)

    def on_stale(study, trial) -> None:
        retry(study, trial)
        if uri is not None:
            close_stale_run(uri, study, trial)

    kwargs: dict[str, Any] = {}
    if uris.sqlite_path(url) is not None:
        uris.sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=spec.heartbeat.interval,
                                          grace_period=spec.heartbeat.grace, heartbeat_stale_trial_callback=on_stale,
                                          **kwargs)
    except ImportError as exc:
        raise ConfigError(f"sweep: the Optuna storage {uris.mask(url)} needs a driver: {exc}.",
                          hint="for postgresql:// URLs: pip install 'psycopg[binary]' (or write postgresql+psycopg2://... "
                               "with psycopg2 installed)") from None
    except Exception as exc:
        raise ConfigError(f"sweep: cannot open the Optuna storage {uris.mask(url)}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}",
                          hint="check --storage (e.g. postgresql://user:password@host:5432/db; the database "
                               "must exist and accept connections)") from None


def lock_path(storage: str, study: str) -> Path:
    """The lock file of `study` in `storage`: beside a SQLite file, else in the temporary folder."""
    db = uris.sqlite_path(storage)
    if db is not None:
        return db.with_name(f"{db.name}.{study}.lock")
    digest = hashlib.sha1(f"{storage}|{study}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"suite-sweep-{digest}.lock"


def trial_counts(study) -> Counter:
    """How many trials of the study are in each state (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))



def create_lock_path(storage: str, study: str) -> Path:
    """The lock file under which the study and its MLflow run are created: beside a SQLite file, one per storage
    (its schema is created then too)."""
    db = uris.sqlite_path(storage)
    return db.with_name(db.name + ".lock") if db else lock_path(storage, study + ".create")


def create_study(url: str, name: str, spec: StudySpec, uri: str):
    """The study `name` in the storage `url`, created if missing; its direction must be the file's. Call it under
    the lock of `create_lock_path`."""
    import optuna

    study = optuna.create_study(study_name=name, storage=open_storage(url, spec, uri), direction=spec.direction,
                                load_if_exists=True)
    if study.direction.name.lower() != spec.direction:
        raise ConfigError(f"sweep: study '{name}' in {uris.mask(url)} was created to "
                          f"{study.direction.name.lower()}, the file says {spec.direction}.",
                          hint="use another --study name, or fix objective.direction")
    return study
