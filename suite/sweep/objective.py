"""One trial: sample the space, train the trial's run exactly as `suite run` does (a child run of the study run),
and return the best per-epoch value of the objective metric; prune through Optuna's Lightning callback.

Imported by a worker when it starts trials: it brings Lightning (the callback's base class).
"""

from __future__ import annotations

import math
import os
import socket
from typing import Any

import optuna
from optuna_integration import PyTorchLightningPruningCallback

from suite.sweep.context import Context
from suite.sweep.runs import FAILURE_ATTR, OBJECTIVE_METRIC, PRUNED_TAG, RUN_ATTR, STATE_TAG, STUDY_TAG, TRIAL_TAG
from suite.sweep.spec import StudySpec, trial_config
from suite.tracking import liveness, store
from tasks.filelock import FileLock


class TrialPruning(PyTorchLightningPruningCallback):
    """Optuna's Lightning pruning callback, which also records the trial's child run: its id as the trial's user
    attr, the sampled values as the run's params `trial.<key>`."""

    def __init__(self, trial, monitor: str, uri: str, sampled: dict[str, Any]):
        super().__init__(trial, monitor)
        self.uri = uri
        self.sampled = sampled
        self.run_id: str | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        super().on_fit_start(trainer, pl_module)
        self.run_id = getattr(trainer.logger, "run_id", None)
        if self.run_id and trainer.is_global_zero:
            self._trial.set_user_attr(RUN_ATTR, self.run_id)
            store.log_params(self.uri, self.run_id, {f"trial.{k}": v for k, v in self.sampled.items()})


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
    """The function Optuna calls for each trial of this worker. It releases the worker's trial lock as soon as the
    trial exists, so that other workers count it and start theirs."""
    from suite.train.run import train

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
        callback = TrialPruning(trial, spec.metric, ctx.uri, sampled)
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

