"""The Lightning Trainer of one run, with its module, data loaders and callbacks, as the configuration asks.

Callbacks, in order: `DivergenceGuard` (a non-finite loss stops the run), `FlushMetrics` (the background MLflow
writer drained at every checkpoint), `ResumePoint` (last.ckpt, Ctrl-C, SIGTERM, the time limit), the best-
validation `ModelCheckpoint` (best.ckpt), the learning-rate monitor, `Throughput`, then the progress display
(plain lines when the output is not a terminal, else Lightning's bar refreshed every log interval) and, on rank 0,
`SystemMetrics`; last the caller's own callbacks (a sweep's pruning). Ranks other than 0 log nothing.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from suite.config import RunConfig, TrainerConfig, to_dict
from suite.errors import ConfigError
from suite.train import timelimit
from suite.train.record import RunRecord, masked, task_metric


def check_cuda_graph(t: TrainerConfig) -> None:
    """A ConfigError for `trainer.cuda_graph = true` on a run without a CUDA GPU."""
    import torch

    if t.cuda_graph is True and (t.accelerator == "cpu" or not torch.cuda.is_available()):
        raise ConfigError("config: trainer.cuda_graph = true needs a CUDA GPU, and this run has none "
                          f"(accelerator {t.accelerator!r}, CUDA available: {torch.cuda.is_available()}).",
                          hint="drop --set trainer.cuda_graph=true, or run on a machine with a GPU")


def resume_point(t: TrainerConfig, ckpt_dir: Path, limit_s: float | None):
    """The `ResumePoint` callback: last.ckpt in `ckpt_dir` every N steps and minutes, and the time limit."""
    from suite.train.guards import ResumePoint

    return ResumePoint(ckpt_dir / "last.ckpt", t.checkpoint_every_n_steps,
                       t.checkpoint_every_minutes * 60 if t.checkpoint_every_minutes else None,
                       deadline=timelimit.deadline(limit_s) if limit_s else None,
                       reserve_s=timelimit.reserve(limit_s) if limit_s else 0.0)


@dataclasses.dataclass
class Fit:
    """What `Trainer.fit` is called with, and the checkpoint callback whose best.ckpt the run logs."""

    trainer: object
    module: object
    datamodule: object
    checkpoint: object


def _callbacks(t: TrainerConfig, record: RunRecord, rank_zero: bool, resumed: bool) -> tuple[list, bool]:
    """The progress callbacks (plain lines or the steady bar; system metrics on rank 0) and whether lines replace
    the bar."""
    from suite.train.progress import ProgressLines, SystemMetrics, use_progress_lines
    from suite.train.throughput import SteadyProgressBar

    lines = use_progress_lines(t.progress_bar)  # not a terminal: a line every N seconds instead of the bar
    progress = [ProgressLines(t.progress_every_seconds, t.batch_size)] if lines else []
    if rank_zero:
        progress.append(SystemMetrics(record.uri, record.run_id, resume=resumed))
    if t.progress_bar and not lines:
        progress.append(SteadyProgressBar(t.log_every_n_steps))
    return progress, lines


def _note_one_gpu(batch_size: int) -> None:
    """One line when `trainer.devices: auto` leaves GPUs unused (suite/gpus.py: the recipes train on one)."""
    from suite.gpus import visible_gpu_ids

    n = len(visible_gpu_ids())
    if n > 1:
        print(f"note: {n} GPUs visible; this run trains on one (trainer.devices: auto), at the recipe's batch of "
              f"{batch_size}. --devices {n} trains data-parallel, {batch_size} per GPU ({batch_size * n} a step); "
              f"`suite batch --workers {n}` trains {n} runs at once, one per GPU", file=sys.stderr)


def make_fit(cfg: RunConfig, data, model, record: RunRecord, ckpt_dir: Path, point, *, rank_zero: bool,
             resumed: bool, callbacks: list | None = None) -> Fit:
    """The Trainer, LightningModule and data module of the run, with every callback (module docstring)."""
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from suite.gpus import training_devices
    from suite.tracking.lightning import FlushMetrics, ResumedMLFlowLogger, SilentLogger
    from suite.train.datamodule import TaskDataModule, loader_workers, local_processes, runs_on_gpu
    from suite.train.guards import DivergenceGuard
    from suite.train.lightning_module import SequenceModule
    from suite.train.throughput import Throughput

    t = cfg.trainer
    metric, higher = task_metric(data)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=f"val/{metric}",
                                 mode="max" if higher else "min", enable_version_counter=False)
    on_gpu = runs_on_gpu(t.accelerator)
    workers = loader_workers(t.num_workers, on_gpu, local_processes(t.devices) if on_gpu else 1)
    if on_gpu and t.devices == "auto" and rank_zero:
        _note_one_gpu(t.batch_size)
    datamodule = TaskDataModule(data, t.batch_size, t.eval_batch_size, workers, pin_memory=on_gpu, seed=cfg.seed)
    eval_rate = {split: r * cfg.model.rate for split, r in data.eval_rate.items()}
    module = SequenceModule(model, data.problem, cfg.optim, datamodule.eval_splits,
                            to_dict(masked(cfg)), eval_rate, cuda_graph=t.cuda_graph,
                            compile_network=t.compile, cuda_graph_scope=t.cuda_graph_scope)
    logger = (ResumedMLFlowLogger(record.already_logged, tracking_uri=record.uri, run_id=record.run_id)
              if rank_zero else SilentLogger())
    progress, lines = _callbacks(t, record, rank_zero, resumed)
    trainer = L.Trainer(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=training_devices(t.devices),
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        logger=logger,
        callbacks=[DivergenceGuard(), FlushMetrics(), point, checkpoint,
                   LearningRateMonitor(logging_interval="epoch"), Throughput(), *progress, *(callbacks or [])],
        gradient_clip_val=cfg.optim.grad_clip or None,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar and not lines,
        enable_model_summary=False,
        deterministic=t.deterministic,
        num_sanity_val_steps=0,
        default_root_dir=str(ckpt_dir),
    )
    return Fit(trainer, module, datamodule, checkpoint)
