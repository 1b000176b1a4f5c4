"""The MLflow side of a study: the study run (found again by its tags, so a rerun reuses it), its trials' child
runs (tags `suite.sweep.study` / `suite.sweep.trial`), the study's saved view and description in the UI, and the
child runs left RUNNING by a worker that died."""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from typing import Any

from suite.sweep.spec import StudySpec, describe_space
from suite.tracking import provenance, store, ui, uris

ROLE_TAG = "suite.sweep.role"
STUDY_TAG = "suite.sweep.study"
TRIAL_TAG = "suite.sweep.trial"
STATE_TAG = "suite.sweep.state"
PRUNED_TAG = "suite.sweep.pruned"
PARENT_ATTR = "mlflow_parent_run_id"  # study user attr: the study run's id
RUN_ATTR = "mlflow_run_id"  # trial user attr: the trial's child run id
FAILURE_ATTR = "failure"  # trial user attr: why it failed, one line
OBJECTIVE_METRIC = "sweep/objective"  # a trial run's Optuna value


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
        params = ", ".join(f"`{k}` = {fmt(v)}" for k, v in best["params"].items())
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



def fmt(v: Any) -> str:
    """A sampled value as the log lines and descriptions show it (floats to 4 significant digits)."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
