"""`suite sweep`: an Optuna study whose trials are MLflow child runs of one study run.

Who does what:

- **Optuna storage** (SQLite beside the MLflow store by default, any RDB URL such as PostgreSQL for
  many machines) is the source of truth for trials. It is created, with the study, once before any
  worker starts (a fresh SQLite file raced by several processes breaks: docs/tracking.md, pitfall P2).
- **MLflow** holds the study run (found again by its tags, so a rerun reuses it) and one child run
  per trial, trained by `suite.run.train` exactly as `suite run` does, plus the tags
  `suite.sweep.study` / `suite.sweep.trial`, the sampled values as params `trial.<key>`, and the
  objective as metric `sweep/objective`.
- **Workers** (`--workers K` processes here, the same command on other machines) share the storage.
  Before each trial a worker, under a lock, fails stale trials (Optuna heartbeat), and starts a trial
  only while COMPLETE + PRUNED + RUNNING + WAITING trials are below the target, so K local workers
  stop exactly at the budget.

Budget: the study's `trials` counts COMPLETE and PRUNED trials. FAILED trials do not count: a trial
killed with its worker is failed by the heartbeat check and re-queued (RetryHeartbeatStaleTrialCallback) for
another worker; a trial that raised (divergence, an invalid sampled config) is replaced by a new one,
and an invocation gives up after `max_failures` failures (default: the trials it was asked to run).
`--trials N` runs N more trials on top of those the study has.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import socket
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite import registry
from suite.errors import ConfigError, SweepFailedError
from suite.paths import RESULTS_DIR
from suite.tracking import liveness, provenance, store, ui, uris
from tasks.filelock import FileLock
from suite.sweep_config import StudySpec, check_configs, describe_space, load, make_pruner, make_sampler, trial_config

ROLE_TAG = "suite.sweep.role"
STUDY_TAG = "suite.sweep.study"
TRIAL_TAG = "suite.sweep.trial"
STATE_TAG = "suite.sweep.state"
PRUNED_TAG = "suite.sweep.pruned"
PARENT_ATTR = "mlflow_parent_run_id"  # study user attr: the study run's id
RUN_ATTR = "mlflow_run_id"  # trial user attr: the trial's child run id
FAILURE_ATTR = "failure"  # trial user attr: why it failed, one line
OBJECTIVE_METRIC = "sweep/objective"  # a trial run's Optuna value


@dataclass(frozen=True)
class Context:
    """What every worker needs; plain values so it crosses a spawn boundary."""

    file: str
    study: str
    storage: str
    uri: str
    experiment_id: str
    parent_run_id: str
    data_dir: str | None
    target: int  # stop when COMPLETE + PRUNED trials reach this
    first_number: int  # trials numbered from here on were started by this invocation
    max_failures: int
    progress_bar: bool | None  # None = the preset's


# ------------------------------------------------------------------------------------------------
# storage and study
# ------------------------------------------------------------------------------------------------


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


def _lock_path(storage: str, study: str) -> Path:
    db = uris.sqlite_path(storage)
    if db is not None:
        return db.with_name(f"{db.name}.{study}.lock")
    digest = hashlib.sha1(f"{storage}|{study}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"suite-sweep-{digest}.lock"


def _counts(study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


# ------------------------------------------------------------------------------------------------
# MLflow: the study run, stale child runs
# ------------------------------------------------------------------------------------------------


def find_or_create_study_run(uri: str, experiment_id: str, study, spec: StudySpec, storage: str) -> str:
    """The study's MLflow run: the id kept in the study's user attrs if that run is in this store, else the
    run tagged with the study name, else a new one."""
    known = study.user_attrs.get(PARENT_ATTR)
    run = store.find_run(uri, known) if known else None  # None in another store (a different --tracking-uri)
    if run is not None and run.info.experiment_id == experiment_id and run.info.lifecycle_stage == "active":
        return known
    runs = store.search_runs(uri, [experiment_id], f"tags.`{ROLE_TAG}` = 'study' and "
                                                   f"tags.`{STUDY_TAG}` = '{spec_name(study)}'",
                             order_by=["attributes.start_time ASC"], max_results=1)
    if runs:
        run_id = runs[0].info.run_id
    else:
        tags = {ROLE_TAG: "study", STUDY_TAG: study.study_name, "suite.task": ",".join(spec.tasks),
                "suite.model": ",".join(spec.models), "suite.preset": spec.preset,
                "suite.sweep.file": str(spec.path), "suite.sweep.storage": uris.mask(storage),
                "suite.git_commit": provenance.git_commit()}
        tags[ui.NOTE_TAG] = describe_study(spec, study.study_name)
        run_id = store.start_run(uri, experiment_id, study.study_name, tags)
        params = {"sweep.sampler": spec.sampler.name, "sweep.pruner": spec.pruner.name,
                  "sweep.objective": spec.metric, "sweep.direction": spec.direction,
                  **{f"space.{k}": v for k, v in describe_space(spec).items()}}
        store.log_params(uri, run_id, params)
        store.log_artifact(uri, run_id, spec.path)
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id


def sweep_view_key(study_name: str) -> str:
    """The key of the study's saved view in the MLflow UI (a tag suffix and a URL parameter: no quotes, no spaces)."""
    return "sweep-" + hashlib.sha1(study_name.encode()).hexdigest()[:12]


def sweep_view(spec: StudySpec, parent_run_id: str) -> dict[str, Any]:
    """The study's trials in MLflow's run table, best objective first: the objective, the sampled values, the
    trial's state and its test numbers."""
    sampled = [f"trial.{p.key}" for p in spec.space]
    metrics = [OBJECTIVE_METRIC, spec.metric, "best/test/accuracy", "best/test/rmse"]
    columns = ([ui.column("metrics", m) for m in dict.fromkeys(metrics)]
               + [ui.column("params", k) for k in sampled]
               + [ui.column("tags", t) for t in (STATE_TAG, "suite.task", "suite.model")])
    return ui.view_state(columns, order_by=ui.column("metrics", OBJECTIVE_METRIC),
                         ascending=spec.direction == "minimize",
                         search_filter=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def describe_study(spec: StudySpec, study_name: str, counts: Counter | None = None, best: dict | None = None,
                   experiment_id: str | None = None) -> str:
    """The study run's description in the MLflow UI (Markdown): what is searched and, once known, the best trial."""
    space = "\n".join(f"- `{k}`: {v}" for k, v in describe_space(spec).items())
    text = (f"Optuna study **{study_name}** (`{spec.path.name}`): {', '.join(spec.models)} on "
            f"{', '.join(spec.tasks)}, {spec.preset} preset; {spec.direction} `{spec.metric}` (each trial's best "
            f"epoch, logged as `{OBJECTIVE_METRIC}`) over {spec.trials} trials, sampler {spec.sampler.name}, pruner "
            f"{spec.pruner.name}. Searched:\n\n{space}\n\nThe trials are the nested runs below this one")
    if experiment_id is not None:
        link = ui.runs_url(experiment_id, sweep_view_key(study_name), base="")
        text += f"; the view [sweep: {study_name}]({link}) (Views menu) lists them by objective"
    text += "."
    if counts is not None:
        text += (f"\n\nSo far: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed "
                 f"trials.")
    if best:
        params = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in best["params"].items())
        text += (f" **Best: trial {best['number']}**, `{spec.metric}` {best['value']:.4f} ({params}), run "
                 f"{best['run_id']}.")
    return text


def spec_name(study) -> str:
    return study.study_name.replace("'", "\\'")


def _trial_run_id(uri: str, study, trial) -> str | None:
    run_id = trial.user_attrs.get(RUN_ATTR)
    if run_id:
        return run_id
    parent = study.user_attrs.get(PARENT_ATTR)
    if not parent:
        return None
    runs = store.search_runs(
        uri, [store.run_experiment_id(uri, parent)],
        f"tags.`{STUDY_TAG}` = '{spec_name(study)}' and tags.`{TRIAL_TAG}` = '{trial.number}' "
        f"and tags.`mlflow.parentRunId` = '{parent}'", max_results=1)
    return runs[0].info.run_id if runs else None


def close_stale_run(uri: str, study, trial) -> None:
    """A trial failed by the heartbeat check (its worker died): its child run would stay RUNNING forever."""
    try:
        run_id = _trial_run_id(uri, study, trial)
        status = store.run_status(uri, run_id) if run_id else None
        if status not in (None, "FINISHED"):  # RUNNING, or KILLED by another command's stale-run check
            store.set_tags(uri, run_id, {STATE_TAG: "FAIL", "suite.sweep.stale": "true"})
            if status == "RUNNING":
                store.set_terminated(uri, run_id, "FAILED")
            print(f"trial {trial.number}: its worker stopped sending heartbeats; trial and run {run_id} marked "
                  f"failed", file=sys.stderr)
    except Exception as exc:  # the sweep goes on; the summary scans again
        print(f"note: could not close the run of stale trial {trial.number}: {exc}", file=sys.stderr)


def close_orphan_runs(uri: str, study, parent_run_id: str, experiment_id: str) -> int:
    """Child runs still RUNNING whose trial Optuna has finished (failed by the heartbeat, or its worker
    died after the trial ended): mark them like their trial."""
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    runs = store.search_runs(uri, [experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
                                                   f"attributes.status = 'RUNNING'")
    closed = 0
    for run in runs:
        number = run.data.tags.get(TRIAL_TAG)
        state = states.get(int(number)) if number and number.isdigit() else None
        if state in ("FAIL", "COMPLETE", "PRUNED"):
            status = {"FAIL": "FAILED", "PRUNED": "KILLED", "COMPLETE": "FAILED"}[state]
            store.set_tags(uri, run.info.run_id, {STATE_TAG: state, "suite.sweep.stale": "true"})
            store.set_terminated(uri, run.info.run_id, status)
            closed += 1
    return closed


# ------------------------------------------------------------------------------------------------
# one trial
# ------------------------------------------------------------------------------------------------


def _pruning_callback(trial, monitor: str, uri: str, sampled: dict[str, Any]):
    """Optuna's Lightning pruning callback, which also records the child run (user attr, params)."""
    from optuna_integration import PyTorchLightningPruningCallback

    class Pruning(PyTorchLightningPruningCallback):
        run_id: str | None = None

        def on_fit_start(self, trainer, pl_module) -> None:
            super().on_fit_start(trainer, pl_module)
            self.run_id = getattr(trainer.logger, "run_id", None)
            if self.run_id and trainer.is_global_zero:
                trial.set_user_attr(RUN_ATTR, self.run_id)
                store.log_params(uri, self.run_id, {f"trial.{k}": v for k, v in sampled.items()})

    return Pruning(trial, monitor)


def objective_value(uri: str, run_id: str, metric: str, direction: str) -> float:
    """The trial's value: the best per-epoch value of the objective metric (the validation-selected one)."""
    history = store.metric_histories(uri, run_id).get(metric)
    values = [v for _, v in history or [] if math.isfinite(v)]
    if not values:
        raise RuntimeError(f"the run logged no finite '{metric}'; check the sweep's objective.metric")
    return max(values) if direction == "maximize" else min(values)


def mark_pruned(uri: str, run_id: str, metric: str) -> None:
    """A pruned trial's run: KILLED (not FAILED), tagged, with the last reported value as `sweep/objective`
    (the value Optuna keeps for a pruned trial)."""
    history = store.metric_histories(uri, run_id).get(metric) or []
    if history:
        store.log_metrics(uri, run_id, {OBJECTIVE_METRIC: history[-1][1]})
    store.delete_tags(uri, run_id, ["suite.failure"])  # train() tagged the TrialPruned exception as a failure
    store.set_tags(uri, run_id, {STATE_TAG: "PRUNED", PRUNED_TAG: "true"})
    store.set_terminated(uri, run_id, "KILLED")


def make_objective(spec: StudySpec, ctx: Context, lock: FileLock):
    import optuna

    from suite.run import train

    flags: dict[str, Any] = {"tracking": {"uri": ctx.uri}}
    if spec.experiment:
        flags["tracking"]["experiment"] = spec.experiment
    if ctx.data_dir:
        flags["data"] = {"root": ctx.data_dir}
    if ctx.progress_bar is not None:
        flags["trainer"] = {"progress_bar": ctx.progress_bar}
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial) -> float:
        lock.release()  # the trial exists (RUNNING): other workers may count it and start theirs
        trial.set_user_attr("worker", worker)
        sampled = {p.key: p.suggest(trial) for p in spec.space}
        cfg = trial_config(spec, sampled, flags)
        cfg.tracking.run_name = f"{ctx.study}-t{trial.number}"
        callback = _pruning_callback(trial, spec.metric, ctx.uri, sampled)
        tags = {STUDY_TAG: ctx.study, TRIAL_TAG: str(trial.number)}
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        if retried is not None:
            tags["suite.sweep.retry_of"] = str(retried)
        try:
            # sweep/objective is the trial run's first metric (NaN until the trial has its value): MLflow's run
            # comparison plots the first metric the compared runs share
            run_id = train(cfg, callbacks=[callback], parent_run_id=ctx.parent_run_id, extra_tags=tags,
                           first_metrics={OBJECTIVE_METRIC: math.nan})
            callback.check_pruned()  # under DDP the callback stops the trainer instead of raising
        except optuna.TrialPruned:
            if callback.run_id:
                mark_pruned(ctx.uri, callback.run_id, spec.metric)
            raise
        except Exception as exc:
            trial.set_user_attr(FAILURE_ATTR, liveness.failure_tags(exc)["suite.failure"])
            if callback.run_id:
                store.set_tags(ctx.uri, callback.run_id, {STATE_TAG: "FAIL"})
            raise
        try:
            value = objective_value(ctx.uri, run_id, spec.metric, spec.direction)
        except Exception as exc:
            trial.set_user_attr(FAILURE_ATTR, liveness.failure_tags(exc)["suite.failure"])
            raise
        store.log_metrics(ctx.uri, run_id, {OBJECTIVE_METRIC: value})
        store.set_tags(ctx.uri, run_id, {STATE_TAG: "COMPLETE"})
        return value

    return objective


# ------------------------------------------------------------------------------------------------
# a worker: trials until the study reaches its target
# ------------------------------------------------------------------------------------------------


def _report(tag: str, spec: StudySpec, target: int):
    def report(study, trial) -> None:
        c = _counts(study)
        done = c["COMPLETE"] + c["PRUNED"]
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        if trial.state.name == "COMPLETE":
            what = f"COMPLETE {spec.metric} {trial.value:.4f}"
        elif trial.state.name == "PRUNED":
            what = f"PRUNED at epoch {trial.last_step}"
        else:
            what = f"FAILED: {trial.user_attrs.get(FAILURE_ATTR, 'see the log above')}"
        print(f"{tag}trial {trial.number} {what}  ({shown})  [{done}/{target} done]", file=sys.stderr, flush=True)

    return report


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class _AnticipatedFailures(logging.Filter):
    """Optuna logs every failed trial with its traceback, then "failed with value None". For a failure the suite
    anticipates (a HintedError: divergence, out of memory, a refused configuration) the `trial N FAILED: ...`
    line says it all; an unexpected exception (a bug) keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from suite.errors import USER_ERRORS

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, USER_ERRORS):
            self.last_was_anticipated = True
            return False
        if getattr(self, "last_was_anticipated", False) and "failed with value None" in record.getMessage():
            self.last_was_anticipated = False
            return False
        self.last_was_anticipated = False
        return True


def run_worker(ctx: Context, tag: str = "") -> int:
    """Run trials until COMPLETE + PRUNED reaches the target (or too many failures). Returns trials run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optimize_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _AnticipatedFailures) for f in optimize_log.filters):
        optimize_log.addFilter(_AnticipatedFailures())
    spec = load(ctx.file)
    storage = open_storage(ctx.storage, spec, ctx.uri)
    study = optuna.load_study(study_name=ctx.study, storage=storage, sampler=None, pruner=make_pruner(spec))
    study.sampler = make_sampler(spec)
    lock = FileLock(_lock_path(ctx.storage, ctx.study))
    objective = make_objective(spec, ctx, lock)
    report = _report(tag, spec, ctx.target)
    ran, waiting_said = 0, False
    while True:
        lock.acquire()
        try:
            optuna.storages.fail_stale_trials(study)
            c = _counts(study)
            done = c["COMPLETE"] + c["PRUNED"]
            if done >= ctx.target:
                break
            failed = sum(1 for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
                         if t.number >= ctx.first_number)
            if failed > ctx.max_failures:
                print(f"{tag}stopping: {failed} trials failed in this invocation (max_failures {ctx.max_failures})",
                      file=sys.stderr)
                break
            if c["WAITING"] == 0 and done + c["RUNNING"] >= ctx.target:
                lock.release()
                if not waiting_said:
                    print(f"{tag}waiting for {c['RUNNING']} running trial(s) of other workers", file=sys.stderr)
                    waiting_said = True
                time.sleep(min(5, spec.heartbeat.interval))
                continue
            waiting_said = False
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[report], gc_after_trial=True)
            ran += 1
        finally:
            lock.release()
    return ran


def _worker_entry(ctx: Context, index: int) -> None:
    """Body of a spawned worker process."""
    from suite.errors import USER_ERRORS

    try:
        run_worker(ctx, tag=f"[worker {index}] ")
    except KeyboardInterrupt:
        sys.exit(130)
    except USER_ERRORS as exc:
        print(f"error: [worker {index}] {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def run_workers(ctx: Context, workers: int) -> None:
    if workers <= 1:
        run_worker(ctx)
        return
    import multiprocessing as mp

    spawn = mp.get_context("spawn")
    procs = [spawn.Process(target=_worker_entry, args=(ctx, i), name=f"suite-sweep-worker-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()
    print(f"started {workers} worker processes: pids {', '.join(str(p.pid) for p in procs)}", file=sys.stderr)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        raise
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if bad:
        print("note: " + ", ".join(f"{n} exited with {code}" for n, code in bad)
              + " (their trials are failed by the heartbeat check and re-queued)", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# the study run's summary
# ------------------------------------------------------------------------------------------------


def summarize(ctx: Context, spec: StudySpec, status: str = "FINISHED") -> dict[str, Any]:
    import optuna

    study = optuna.load_study(study_name=ctx.study, storage=open_storage(ctx.storage, spec, ctx.uri))
    optuna.storages.fail_stale_trials(study)
    closed = close_orphan_runs(ctx.uri, study, ctx.parent_run_id, ctx.experiment_id)
    c = _counts(study)
    done = c["COMPLETE"] + c["PRUNED"]
    metrics = {"sweep/complete": c["COMPLETE"], "sweep/pruned": c["PRUNED"], "sweep/failed": c["FAIL"],
               "sweep/running": c["RUNNING"]}
    summary: dict[str, Any] = {"counts": dict(c), "closed_runs": closed, "best": None}
    ours = [t for t in study.get_trials(deepcopy=False) if t.number >= ctx.first_number]
    failed = [t for t in ours if t.state.name == "FAIL"]
    summary["failed_now"] = len(failed)
    summary["finished_now"] = sum(1 for t in ours if t.state.name in ("COMPLETE", "PRUNED"))
    summary["first_failure"] = _failure_reason(ctx.uri, failed[0]) if failed else None
    completes = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if completes:
        best = study.best_trial
        metrics[f"best/{spec.metric}"] = best.value
        tags = {"suite.sweep.best_trial": str(best.number),
                **{f"best.{k}": str(v) for k, v in best.params.items()}}
        if best.user_attrs.get(RUN_ATTR):
            tags["suite.sweep.best_run_id"] = best.user_attrs[RUN_ATTR]
        store.set_tags(ctx.uri, ctx.parent_run_id, tags)
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params,
                           "run_id": best.user_attrs.get(RUN_ATTR)}
    store.log_metrics(ctx.uri, ctx.parent_run_id, metrics, step=done)
    store.set_description(ctx.uri, ctx.parent_run_id,
                          describe_study(spec, ctx.study, c, summary["best"], ctx.experiment_id))
    with tempfile.TemporaryDirectory() as tmp:
        for path in _plots(study, Path(tmp)):
            store.log_artifact(ctx.uri, ctx.parent_run_id, path, "plots")
        if study.trials:
            csv = Path(tmp) / "trials.csv"
            study.trials_dataframe().to_csv(csv, index=False)
            store.log_artifact(ctx.uri, ctx.parent_run_id, csv)
    store.set_terminated(ctx.uri, ctx.parent_run_id, status)
    return summary


def _failure_reason(uri: str, trial) -> str:
    """Why a failed trial failed: its run's `suite.failure` tag, else Optuna's record of the exception."""
    run_id = trial.user_attrs.get(RUN_ATTR)
    if run_id and FAILURE_ATTR not in trial.user_attrs:
        run = store.find_run(uri, run_id)  # None when the run is gone: fall back on Optuna's record
        reason = run.data.tags.get("suite.failure") if run is not None else None
        if reason:
            return f"trial {trial.number} (run {run_id}): {reason}"
    return f"trial {trial.number}: {trial.user_attrs.get(FAILURE_ATTR, 'no reason recorded (see the log above)')}"


def _plots(study, folder: Path) -> list[Path]:
    """Optimisation history, parameter importances and intermediate values as PNG (matplotlib backend:
    plotly is not a dependency). A plot that does not apply yet (e.g. importances of one trial) is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*No artists with labels.*")
    out = []
    completes = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not completes:
        return out
    makers = {"optimization_history": ovm.plot_optimization_history, "intermediate_values": ovm.plot_intermediate_values}
    if len(completes) >= 2 and any(len({str(t.params.get(k)) for t in completes}) > 1
                                   for k in completes[0].params):
        makers["param_importances"] = ovm.plot_param_importances
    for name, make in makers.items():
        try:
            ax = make(study)
        except Exception as exc:  # not enough trials of the right kind yet
            print(f"note: plot {name} skipped: {exc}", file=sys.stderr)
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out.append(path)
    return out


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------


def prepare(args) -> tuple[Context, StudySpec, Any]:
    """Validate the file, create storage, study, experiment and study run once, prepare the data."""
    import optuna

    from suite.run import data_root

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load(args.file)
    for t in spec.tasks:
        registry.task(t)  # an unknown name is a clean error
    for m in spec.models:
        registry.model(m)
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    configs = check_configs(spec)
    if args.trials is not None and args.trials < 0:
        raise ConfigError(f"sweep: --trials {args.trials} must be >= 0.", hint="--trials 0 only creates the study")
    if args.workers < 1:
        raise ConfigError(f"sweep: --workers {args.workers} must be >= 1.")

    uri = uris.resolve_uri(args.tracking_uri)
    experiment = spec.experiment or registry.task(spec.tasks[0]).family
    experiment_id = store.ensure_experiment(uri, experiment)
    storage_url = resolve_storage(args.storage, uri)
    study_name = args.study or spec.study
    db = uris.sqlite_path(storage_url)
    lock = FileLock(db.with_name(db.name + ".lock") if db else _lock_path(storage_url, study_name + ".create"))
    lock.acquire()
    try:
        storage = open_storage(storage_url, spec, uri)
        study = optuna.create_study(study_name=study_name, storage=storage, direction=spec.direction,
                                    load_if_exists=True)
        if study.direction.name.lower() != spec.direction:
            raise ConfigError(f"sweep: study '{study_name}' in {uris.mask(storage_url)} was created to "
                              f"{study.direction.name.lower()}, the file says {spec.direction}.",
                              hint="use another --study name, or fix objective.direction")
        parent = find_or_create_study_run(uri, experiment_id, study, spec, storage_url)
    finally:
        lock.release()
    store.save_view(uri, experiment_id, sweep_view_key(study_name), f"sweep: {study_name}", sweep_view(spec, parent))
    store.set_status(uri, parent, "RUNNING")
    store.set_tags(uri, parent, liveness.owner_tags())  # lets a later command tell a study run left by a kill

    c = _counts(study)
    done = c["COMPLETE"] + c["PRUNED"]
    target = done + args.trials if args.trials is not None else spec.trials
    grid = spec.grid_size()
    if grid is not None:
        target = min(target, grid)
    n_run = max(0, target - done)
    ctx = Context(file=str(Path(args.file).resolve()), study=study_name, storage=storage_url, uri=uri,
                  experiment_id=experiment_id, parent_run_id=parent, data_dir=data_dir, target=target,
                  first_number=len(study.trials),
                  max_failures=spec.max_failures if spec.max_failures is not None else max(1, n_run),
                  progress_bar=False if args.workers > 1 else None)
    print(f"study '{study_name}' in {uris.mask(storage_url)}: {done} trials done "
          f"({c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed, {c['RUNNING']} running); "
          f"target {target}, objective {spec.direction} {spec.metric}", file=sys.stderr)
    print(f"MLflow: study run {parent} in experiment '{experiment}' of {uris.mask(uri)}", file=sys.stderr)
    if n_run:
        seen = set()
        for cfg in configs:  # generate / verify the data once, before workers race on it
            key = (cfg.task, repr(cfg.data))
            if key not in seen:
                seen.add(key)
                if data_dir:
                    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=data_dir))
                registry.resolve(registry.task(cfg.task)).prepare(data_root(cfg), cfg.data)
    return ctx, spec, study


def main(args) -> int:
    ctx, spec, study = prepare(args)
    c = _counts(study)
    done = c["COMPLETE"] + c["PRUNED"]
    if done >= ctx.target:
        print(f"nothing to run: the study has {done} of {ctx.target} trials (pass --trials N to add N more)",
              file=sys.stderr)
    else:
        from suite.mps import mps_for_workers

        try:
            with mps_for_workers(args.workers, getattr(args, "mps", "auto")):
                run_workers(ctx, args.workers)
        except KeyboardInterrupt:
            summarize(ctx, spec, status="KILLED")
            raise
    s = summarize(ctx, spec)
    counts = s["counts"]
    print(f"\nstudy '{ctx.study}': {counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} pruned, "
          f"{counts.get('FAIL', 0)} failed" + (f", {counts['RUNNING']} still running elsewhere"
                                                 if counts.get("RUNNING") else ""), file=sys.stderr)
    if s["best"]:
        b = s["best"]
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in b["params"].items())
        print(f"best: trial {b['number']}  {spec.metric} {b['value']:.4f}  ({params})  run {b['run_id']}",
              file=sys.stderr)
    print(f"look: suite ui, then open {ui.runs_url(ctx.experiment_id, sweep_view_key(ctx.study))}  (the trials "
          f"by {OBJECTIVE_METRIC}; study run {ctx.parent_run_id})", file=sys.stderr)
    if s["failed_now"] and not s["finished_now"]:
        raise SweepFailedError(
            f"sweep: all {s['failed_now']} trial(s) this command ran failed; the first one: {s['first_failure']}",
            hint="remove the cause named above (the trial runs are FAILED in `suite ui`, tag suite.failure), then run the "
                 "same command again: failed trials do not count toward the budget")
    return 0
