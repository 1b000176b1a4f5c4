"""The study run's summary once the workers stop: trial counts and the best trial as its metrics, tags and
description; the optimisation plots and the trials table as its artifacts; its final status."""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from suite.sweep.context import Context
from suite.sweep.runs import FAILURE_ATTR, RUN_ATTR, close_orphan_runs, describe_study
from suite.sweep.spec import StudySpec
from suite.sweep.storage import open_storage, trial_counts
from suite.tracking import store


def summarize(ctx: Context, spec: StudySpec, status: str = "FINISHED") -> dict[str, Any]:
    """Write the summary on the study run and end it with `status`; return counts, the best trial and this
    command's failures."""
    import optuna

    study = optuna.load_study(study_name=ctx.study, storage=open_storage(ctx.storage, spec, ctx.uri))
    optuna.storages.fail_stale_trials(study)
    closed = close_orphan_runs(ctx.uri, study, ctx.parent_run_id, ctx.experiment_id)
    c = trial_counts(study)
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

