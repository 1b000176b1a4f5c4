"""`suite sweep FILE`: validate the file, create the storage, the study, the experiment and the study run once,
prepare the data, then run the workers and summarise.

Budget: the study's `trials` counts COMPLETE and PRUNED trials. FAILED trials do not count: a trial killed with
its worker is failed by the heartbeat check and re-queued (RetryHeartbeatStaleTrialCallback) for another worker;
a trial that raised (divergence, an invalid sampled config) is replaced by a new one, and an invocation gives up
after `max_failures` failures (default: the trials it was asked to run). `--trials N` runs N more trials on top
of those the study has.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from suite import registry
from suite.errors import ConfigError, SweepFailedError
from suite.sweep.context import Context
from suite.sweep.runs import OBJECTIVE_METRIC, find_or_create_study_run, fmt, sweep_view, sweep_view_key
from suite.sweep.spec import StudySpec, check_configs, load
from suite.sweep.storage import create_lock_path, create_study, resolve_storage, trial_counts
from suite.sweep.summary import summarize
from suite.sweep.worker import run_workers
from suite.tracking import liveness, store, ui, uris
from tasks.filelock import FileLock


def prepare(args) -> tuple[Context, StudySpec, Any]:
    """Validate the file, create storage, study, experiment and study run once, prepare the data."""
    import optuna

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
    with FileLock(create_lock_path(storage_url, study_name)):
        study = create_study(storage_url, study_name, spec, uri)
        parent = find_or_create_study_run(uri, experiment_id, study, spec, storage_url)
    store.save_view(uri, experiment_id, sweep_view_key(study_name), f"sweep: {study_name}", sweep_view(spec, parent))
    store.set_status(uri, parent, "RUNNING")
    store.set_tags(uri, parent, liveness.owner_tags())  # lets a later command tell a study run left by a kill

    c = trial_counts(study)
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
        prepare_data(configs, data_dir)
    return ctx, spec, study


def prepare_data(configs: list, data_dir: str | None) -> None:
    """Generate or verify each distinct data configuration of the space once, before the workers race on it."""
    from suite.train.build import data_root

    seen = set()
    for cfg in configs:
        key = (cfg.task, repr(cfg.data))
        if key not in seen:
            seen.add(key)
            if data_dir:
                cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=data_dir))
            registry.resolve(registry.task(cfg.task)).prepare(data_root(cfg.data), cfg.data)


def main(args) -> int:
    """`suite sweep`: prepare once, run the workers (under CUDA MPS when several share a GPU), summarise."""
    ctx, spec, study = prepare(args)
    c = trial_counts(study)
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
        params = ", ".join(f"{k}={fmt(v)}" for k, v in b["params"].items())
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
