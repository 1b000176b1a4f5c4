"""What a run records in MLflow, from its opening to its ending (docs/usage.md, "What a run records").

At the opening: the tags (task, model, preset, recipe, seed, data source, git commit, suite version, device, owner,
description), the flattened resolved config as params plus `n_params`, the `config.yaml` artifact (at once, so that
a killed run can be resumed with its configuration) and the task's data statistics. A resumed run is reopened
instead, and the metrics it already holds are not logged twice. At the ending: the `best/*` metrics (every
evaluation metric at the epoch of the best validation metric), the description with the result, `config.yaml`,
`learning_curves.png`, `checkpoints/best.ckpt`, the session's time and the status FINISHED; or FAILED with the tag
`suite.failure`. Under DDP only rank 0 writes: the other ranks get a `RunRecord` with the run's id alone.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from suite import __version__, registry
from suite.config import RunConfig, dump, recipe_source, run_params
from suite.gpus import ENV as GPUS_ENV
from suite.paths import checkpoints_dir
from suite.ranks import RUN_ID_ENV
from suite.tracking import liveness, provenance, store, ui, uris
from suite.train import timelimit
from suite.train.epoch_metrics import HIGHER_IS_BETTER, METRIC


@dataclasses.dataclass
class RunRecord:
    """The MLflow run one training writes to: its store, id, experiment and name; on a rank other than 0 the id
    only matters (nothing is written). `already_logged`: (metric, step) pairs a resumed run holds already."""

    uri: str
    run_id: str
    experiment: str
    name: str
    already_logged: set[tuple[str, int]] = dataclasses.field(default_factory=set)


def task_metric(data) -> tuple[str, bool]:
    """The metric a task's runs are selected and compared on, and whether higher is better."""
    metric = METRIC[data.problem]
    return metric, HIGHER_IS_BETTER[metric]


def _record(cfg: RunConfig, run_id: str, already_logged: set | None = None) -> RunRecord:
    return RunRecord(uri=uris.resolve_uri(cfg.tracking.uri), run_id=run_id,
                     experiment=cfg.tracking.experiment or registry.task(cfg.task).family,
                     name=cfg.tracking.run_name or f"{cfg.task}-{cfg.model.name}-{cfg.preset}-s{cfg.seed}",
                     already_logged=already_logged or set())


def other_rank(cfg: RunConfig, resume_run_id: str | None) -> RunRecord:
    """A DDP rank other than 0: rank 0's run id (from the environment Lightning's ranks inherit), no store access."""
    return _record(cfg, os.environ.get(RUN_ID_ENV) or resume_run_id or "rank-without-run")


def reopened(cfg: RunConfig, run_id: str, ckpt_path: Path | None) -> RunRecord:
    """A resumed run (already reopened by suite.train.resume), with the metric steps it holds."""
    record = _record(cfg, run_id)
    record.already_logged = {(k, step) for k, h in store.metric_histories(record.uri, run_id).items()
                             for step, _ in h}
    if gpu := gpu_tag():  # this session's GPU (the first session's is replaced)
        store.set_tags(record.uri, run_id, gpu)
    print(f"resuming run {run_id} ({record.name}) in {uris.mask(record.uri)} from "
          f"{ckpt_path or 'the start (no checkpoint was saved)'}", file=sys.stderr)
    return record


def gpu_tag() -> dict[str, str]:
    """The GPU of a shared machine this process was given (CUDA_VISIBLE_DEVICES, suite/gpus.py) as a run tag;
    {} when the variable is not set."""
    value = os.environ.get(GPUS_ENV)
    return {} if value is None else {"suite.cuda_visible_devices": value}


def run_tags(cfg: RunConfig, data_source: str, parent_run_id: str | None = None,
             extra_tags: dict[str, str] | None = None) -> dict[str, str]:
    """The tags a new run is created with."""
    tags = {
        "suite.task": cfg.task,
        "suite.model": cfg.model.name,
        "suite.preset": cfg.preset,
        "suite.recipe": cfg.recipe,
        "suite.recipe_source": recipe_source(cfg.task, cfg.recipe),
        "suite.seed": str(cfg.seed),
        "suite.data_source": data_source,
        "suite.git_commit": provenance.git_commit(),
        "suite.version": __version__,
        "suite.device": provenance.device_name(cfg.trainer.accelerator),
        **liveness.owner_tags(),
        ui.NOTE_TAG: describe_run(cfg, data_source),
        **gpu_tag(),
        **(extra_tags or {}),
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return tags


def opened(cfg: RunConfig, data, n_params: int, parent_run_id: str | None = None,
           extra_tags: dict[str, str] | None = None, first_metrics: dict[str, float] | None = None) -> RunRecord:
    """A new run with its tags, params, config and data statistics (`first_metrics` logged first, at step 0);
    marked FAILED when one of those writes fails."""
    record = _record(cfg, "")
    uri = record.uri
    experiment_id = store.ensure_experiment(uri, record.experiment)
    record.run_id = run_id = store.start_run(uri, experiment_id, record.name,
                                                run_tags(cfg, data.source, parent_run_id, extra_tags))
    try:
        if first_metrics:
            store.log_metrics(uri, run_id, first_metrics, step=0)
        store.log_params(uri, run_id, {**run_params(masked(cfg)), "n_params": n_params})
        log_config(uri, run_id, cfg)  # now, so that a killed run can be resumed with its configuration
        log_data_stats(uri, run_id, data)
    except BaseException as exc:
        failed(record, exc)
        raise
    print(f"run {run_id} ({record.name}) -> experiment '{record.experiment}' in {uris.mask(uri)}",
          file=sys.stderr)
    return record


def log_data_stats(uri: str, run_id: str, data) -> None:
    """Log the task's data statistics (`TaskData.stats`: truncated fractions, <unk> counts, ...) as metrics of
    the run, at step 0."""
    if data.stats:
        store.log_metrics(uri, run_id, {k: float(v) for k, v in data.stats.items()}, step=0)


def best_epoch_metrics(histories: dict, metric: str, higher_is_better: bool,
                       splits: tuple[str, ...] = ("val", "test")) -> dict[str, float]:
    """Validation-selected results: every eval metric at the step where val/<metric> was best."""
    val = histories.get(f"val/{metric}")
    if not val:
        return {}
    pick = max if higher_is_better else min
    best_step, _ = pick(val, key=lambda sv: sv[1])
    out = {}
    for split in splits:
        for q in ("loss", metric):
            values = dict(histories.get(f"{split}/{q}", []))
            if best_step in values:
                out[f"best/{split}/{q}"] = values[best_step]
    epochs = dict(histories.get("epoch", []))
    if best_step in epochs:
        out["best/epoch"] = epochs[best_step]
    return out


def run_checkpoint_dir(uri: str, run_id: str) -> Path:
    """Where a run's best.ckpt and last.ckpt live: `checkpoints/<run id>/` beside a SQLite store (so
    `results/checkpoints/` for the default one), else under results/checkpoints of this checkout."""
    db = uris.sqlite_path(uri)
    return (db.parent / "checkpoints" if db else checkpoints_dir()) / run_id


def masked(cfg: RunConfig) -> RunConfig:
    """`cfg` with the password of its tracking URI masked: what goes into params, artifacts and checkpoints."""
    if not cfg.tracking.uri:
        return cfg
    return dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, uri=uris.mask(cfg.tracking.uri)))


def log_config(uri: str, run_id: str, cfg: RunConfig) -> None:
    """The `config.yaml` artifact: the resolved configuration, password masked (what `--resume` reads back)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "config.yaml"
        cfg_file.write_text(dump(masked(cfg)))
        store.log_artifact(uri, run_id, cfg_file)


def gpus(trainer) -> int:
    """GPUs the run uses on all machines together (0 on a CPU, or before a Trainer exists): what its GPU-hours
    count."""
    if trainer is None:
        return 0
    on_gpu = type(trainer.accelerator).__name__ == "CUDAAccelerator"
    return trainer.num_devices * trainer.num_nodes if on_gpu else 0


def finished(record: RunRecord, cfg: RunConfig, data, trainer, best_ckpt: str) -> dict[str, float]:
    """The ending of a trained run: `best/*`, the description with the result, `config.yaml`, the learning curves,
    `checkpoints/best.ckpt` (`best_ckpt`, none when empty), the session's time, FINISHED. Returns `best/*`."""
    from suite.report.plots import learning_curves

    uri, run_id = record.uri, record.run_id
    metric, higher = task_metric(data)
    histories = store.metric_histories(uri, run_id)
    best = best_epoch_metrics(histories, metric, higher, tuple(data.eval_splits))
    store.log_metrics(uri, run_id, best, step=trainer.global_step)
    store.set_description(uri, run_id, describe_run(cfg, data.source, best))
    log_config(uri, run_id, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        epochs = {step: int(e) for step, e in histories.get("epoch", [])}
        png = learning_curves(histories, epochs, metric, record.name, Path(tmp) / "learning_curves.png")
        store.log_artifact(uri, run_id, png)
    if best_ckpt:
        store.log_artifact(uri, run_id, Path(best_ckpt), "checkpoints")
    timelimit.add_session_time(uri, run_id, gpus(trainer))
    store.set_terminated(uri, run_id, "FINISHED")
    return best


def killed(record: RunRecord, trainer) -> None:
    """A run stopped by the user, a signal or its time limit: KILLED, resumable, its session's time counted."""
    store.set_terminated(record.uri, record.run_id, "KILLED")
    timelimit.add_session_time(record.uri, record.run_id, gpus(trainer))


def failed(record: RunRecord, exc: BaseException) -> None:
    """A run that failed: FAILED, with the tag `suite.failure` saying why."""
    store.set_tags(record.uri, record.run_id, liveness.failure_tags(exc))
    store.set_terminated(record.uri, record.run_id, "FAILED")


def describe_run(cfg: RunConfig, data_source: str, best: dict[str, float] | None = None) -> str:
    """The run's description in the MLflow UI (Markdown): what was trained, and once it is known the result."""
    text = (f"**{cfg.model.name}** on **{cfg.task}**, {cfg.preset} preset ({cfg.recipe} recipe), seed {cfg.seed}, "
            f"{data_source} data.")
    if best:
        shown = ", ".join(f"`{k}` {v:.0f}" if k == "best/epoch" else f"`{k}` {v:.4f}" for k, v in best.items())
        text += f"\n\nResult (test metrics at the epoch of the best validation metric): {shown}."
    return text
