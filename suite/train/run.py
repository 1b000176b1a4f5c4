"""One training run: data, model, Lightning trainer, MLflow run; returns the run id.

What a run logs (see docs/usage.md, "What a run records"): the flattened resolved config as params plus
`n_params`; tags for task, model, preset, seed, data source, git commit, suite version and device;
per-epoch `<split>/loss` and `<split>/<metric>` for train, val and test; at the end the `best/*`
metrics (test at the epoch of best validation); artifacts `config.yaml`, `checkpoints/best.ckpt`
and `learning_curves.png` (suite/train/record.py). `train` is the run around `Trainer.fit`; the data and
network come from suite/train/build.py, the Trainer and its callbacks from suite/train/trainer.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from suite.config import RunConfig
from suite.errors import TimeLimitReached
from suite.quiet import quiet_run
from suite.ranks import RUN_ID_ENV, is_rank_zero
from suite.tracking import store, ui
from suite.train import record, timelimit
from suite.train.build import build_model, load_task
from suite.train.failures import out_of_memory


def train(cfg: RunConfig, callbacks: list | None = None, parent_run_id: str | None = None,
          extra_tags: dict[str, str] | None = None, *, resume_run_id: str | None = None,
          ckpt_path: Path | None = None, first_metrics: dict[str, float] | None = None) -> str:
    """Train and evaluate one configuration; return the MLflow run id.

    `callbacks` are added to the Lightning trainer (e.g. a sweep's pruning callback); `parent_run_id`
    makes the run a child (tag `mlflow.parentRunId`, e.g. a sweep trial under its study); `extra_tags`
    are set on the run at creation, `first_metrics` logged before any other metric (step 0; a sweep's objective,
    which MLflow's run comparison then shows first). `resume_run_id` continues that (already reopened) run from
    `ckpt_path` (None: from the start); use `suite.train.resume.resume()` rather than this directly.

    Raises DivergenceError on a non-finite loss, ResourceError when out of memory, KeyboardInterrupt
    after Ctrl-C (checkpoint saved, run KILLED), TimeLimitReached at `trainer.time_limit` (the same, exit 75,
    suite/train/timelimit.py); any failure marks the run FAILED with tag suite.failure.
    Under DDP only rank 0 creates and writes the MLflow run; the other ranks train and return its id.
    """
    quiet_run()
    import lightning.pytorch as L

    from suite.train.trainer import check_cuda_graph, make_fit, resume_point

    rank_zero = is_rank_zero(cfg.trainer)
    check_cuda_graph(cfg.trainer)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = load_task(cfg)  # rank 0 prepares the cache before Lightning starts the other ranks; they only verify it
    model = build_model(cfg, data)
    n_params = sum(p.numel() for p in model.parameters())
    if not rank_zero:
        run = record.other_rank(cfg, resume_run_id)
    elif resume_run_id:
        run = record.reopened(cfg, resume_run_id, ckpt_path)
    else:
        run = record.opened(cfg, data, n_params, parent_run_id, extra_tags, first_metrics)
    if rank_zero:
        print(f"model {cfg.model.name}: {n_params:,} parameters; data: {data.source}, "
              f"{len(data.train):,} / {len(data.val):,} / {len(data.test):,} samples", file=sys.stderr)

    ckpt_dir = record.run_checkpoint_dir(run.uri, run.run_id)
    limit_s = timelimit.parse_duration(cfg.trainer.time_limit) if cfg.trainer.time_limit is not None else None
    point = resume_point(cfg.trainer, ckpt_dir, limit_s)
    fit = None
    try:
        fit = make_fit(cfg, data, model, run, ckpt_dir, point, rank_zero=rank_zero, resumed=bool(resume_run_id),
                       callbacks=callbacks)
        if rank_zero:
            os.environ[RUN_ID_ENV] = run.run_id  # DDP: the ranks Lightning starts inside fit() inherit it
        # Active until the run is FINISHED: a Ctrl-C or SIGTERM after training lets the summary be written.
        with point.signal_handlers():
            fit.trainer.fit(fit.module, datamodule=fit.datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                            weights_only=True)  # checkpoints hold tensors and plain data only
            if not rank_zero:
                return run.run_id
            best = record.finished(run, cfg, data, fit.trainer, fit.checkpoint.best_model_path)
        if point.interrupt_requested:
            print(f"{point.signal_name} came after training had ended; the run was completed (FINISHED).",
                  file=sys.stderr)
    except (KeyboardInterrupt, SystemExit) as exc:
        # Lightning turns a KeyboardInterrupt inside fit() into sys.exit(1); both mean: stopped by the user
        if not rank_zero:
            raise
        _stopped(run, point, fit.trainer if fit else None, cfg.trainer.time_limit, limit_s, exc)
    except BaseException as exc:
        error = out_of_memory(exc)
        if rank_zero:
            record.failed(run, error or exc)
        if error is not None:
            raise error from exc
        raise
    finally:
        if rank_zero and os.environ.get(RUN_ID_ENV) == run.run_id:
            del os.environ[RUN_ID_ENV]
    _print_done(run, best, parent_run_id)
    return run.run_id


def _stopped(run: record.RunRecord, point, trainer, time_limit: str | None, limit_s: float | None,
             exc: BaseException):
    """The interrupt path: the run marked KILLED, where it stopped and the command that continues it; raises
    TimeLimitReached at the time limit (exit 75), else KeyboardInterrupt."""
    record.killed(run, trainer)
    last = point.path
    where = (f"at step {point.interrupted_at_step}, checkpoint saved to {last}"
             if point.interrupted_at_step is not None
             else f"last checkpoint {last}" if last.exists() else "before its first checkpoint")
    command = timelimit.resume_command(run.run_id, run.uri, time_limit)
    if point.time_limit_reached:
        limit = timelimit.format_duration(limit_s) if limit_s else f"({point.signal_name})"
        raise TimeLimitReached(f"time limit {limit} reached: run {run.run_id} stopped {where}; marked KILLED in "
                               f"MLflow, resumable.\ncontinue it with: {command}") from None
    print(f"\ninterrupted: run {run.run_id} stopped {where}; marked KILLED in MLflow.\n"
          f"continue it with: {command}", file=sys.stderr)
    raise KeyboardInterrupt from (exc if isinstance(exc, SystemExit) else None)


def _print_done(run: record.RunRecord, best: dict[str, float], parent_run_id: str | None) -> None:
    """The run's last lines: its best/* numbers and, outside a sweep, where to look at it."""
    summary = ", ".join(f"{k} {v:.4f}" for k, v in best.items() if not k.endswith("epoch"))
    print(f"\ndone: run {run.run_id}  {summary}", file=sys.stderr)
    if parent_run_id is None:  # a sweep trial: the sweep prints one link to its view at the end
        exp_id = store.run_experiment_id(run.uri, run.run_id)
        print(f"look: suite ui, then open {ui.runs_url(exp_id)}  (experiment '{run.experiment}', view "
              f"'suite: results')", file=sys.stderr)
