"""One training run: data, model, Lightning trainer, MLflow run; returns the run id.

What a run logs (see docs/usage.md, "What a run records"): the flattened resolved config as params plus
`n_params`; tags for task, model, preset, seed, data source, git commit, suite version and device;
per-epoch `<split>/loss` and `<split>/<metric>` for train, val and test; at the end the `best/*`
metrics (test at the epoch of best validation); artifacts `config.yaml`, `checkpoints/best.ckpt`
and `learning_curves.png`.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import tempfile
import warnings
from pathlib import Path

from suite import __version__, registry, tracking
from suite.train import timelimit
from suite.config import ModelConfig, RunConfig, dump, from_stored, load_yaml, recipe_source, run_params, to_dict
from suite.errors import ConfigError, ResourceError, ResumeError, TimeLimitReached, TrackingError
from suite.paths import checkpoints_dir, default_data_root
from suite.ranks import RUN_ID_ENV, is_rank_zero


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
    from lightning.pytorch.utilities import disable_possible_user_warnings

    from suite.quiet import quiet_lightning

    disable_possible_user_warnings()
    quiet_lightning()  # Lightning's info lines a user cannot act on (suite/quiet.py)


def ssm_factory(m: ModelConfig, l_max: int):
    """d_model -> the model's SSM layer, built with exactly the options the model declares (suite/config.py;
    validation refused any other) plus the data's length where the SSM takes it (S4's C~ is set up for it)."""
    ssm_cls = registry.resolve(registry.model(m.name))
    kwargs = m.ssm_options()
    if "l_max" in inspect.signature(ssm_cls).parameters:
        kwargs["l_max"] = l_max
    return lambda d_model: ssm_cls(d_model, **kwargs)


def build_model(cfg: RunConfig, data):
    """The network for `cfg.model` on a task's `TaskData`, with the SSM class from the model registry."""
    from models.network import SequenceModel

    m = cfg.model
    return SequenceModel(
        make_ssm=ssm_factory(m, cfg.data.l_max),
        d_input=data.d_input,
        d_output=data.d_output,
        encoder=data.encoder,
        d_model=m.d_model,
        n_layers=m.n_layers,
        dropout=m.dropout,
        tie_dropout=m.tie_dropout,
        prenorm=m.prenorm,
        norm=m.norm,
        decoder=m.decoder,
        rate=m.rate,
    )


def data_root(cfg: RunConfig) -> Path:
    """The data root: data.root (--data-dir), else SUITE_DATA or data/ of this checkout. A DataError (exit 4)
    when it exists but is not a folder."""
    from tasks.errors import DataError

    root = Path(cfg.data.root).expanduser().resolve() if cfg.data.root else default_data_root()
    if root.exists() and not root.is_dir():
        given = "--data-dir (data.root)" if cfg.data.root else "SUITE_DATA"
        raise DataError(f"the data root {root} is a file, not a folder.",
                        hint=f"point {given} at a folder (the one holding lra_release/, speech_commands_v0.02/, ...; "
                             "a missing one is created)")
    return root


def load_task(cfg: RunConfig):
    """Prepare (generate, verify, cache) and load the task's data; a DataError for a fixed length other than
    data.l_max, an empty split or a label outside the task's classes (tasks.base.check_splits)."""
    from tasks.base import check_splits

    task_module = registry.resolve(registry.task(cfg.task))
    root = data_root(cfg)
    task_module.prepare(root, cfg.data)
    data = task_module.load(root, cfg.data)
    check_splits(cfg.task, data, root, cfg.data.l_max)
    return data


def log_data_stats(uri: str, run_id: str, data) -> None:
    """Log the task's data statistics (`TaskData.stats`: truncated fractions, <unk> counts, ...) as metrics of
    the run, at step 0."""
    if data.stats:
        tracking.log_metrics(uri, run_id, {k: float(v) for k, v in data.stats.items()}, step=0)


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
    db = tracking.sqlite_path(uri)
    return (db.parent / "checkpoints" if db else checkpoints_dir()) / run_id


def _masked(cfg: RunConfig) -> RunConfig:
    """`cfg` with the password of its tracking URI masked: what goes into params, artifacts and checkpoints."""
    if not cfg.tracking.uri:
        return cfg
    return dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, uri=tracking.mask(cfg.tracking.uri)))


def _log_config(uri: str, run_id: str, cfg: RunConfig) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "config.yaml"
        cfg_file.write_text(dump(_masked(cfg)))
        tracking.log_artifact(uri, run_id, cfg_file)


def _out_of_memory(exc: BaseException) -> ResourceError | None:
    """A ResourceError for a CUDA or host out-of-memory error, else None."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        what = "the GPU ran out of memory"
    elif isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)):
        what = "the machine ran out of host memory"
    else:
        return None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ResourceError(
        f"out of memory: {what} ({first[:200]}).",
        hint="use a smaller batch (--set trainer.batch_size=N, half the current value), mixed precision "
             "(--precision bf16-mixed), or a smaller model (model.d_model, model.n_layers); on a shared GPU, "
             "check what else runs there with nvidia-smi",
    )


def _gpus(trainer) -> int:
    """GPUs the run uses on all machines together (0 on a CPU): what its GPU-hours count."""
    on_gpu = type(trainer.accelerator).__name__ == "CUDAAccelerator"
    return trainer.num_devices * trainer.num_nodes if on_gpu else 0


def train(cfg: RunConfig, callbacks: list | None = None, parent_run_id: str | None = None,
          extra_tags: dict[str, str] | None = None, *, resume_run_id: str | None = None,
          ckpt_path: Path | None = None, first_metrics: dict[str, float] | None = None) -> str:
    """Train and evaluate one configuration; return the MLflow run id.

    `callbacks` are added to the Lightning trainer (e.g. a sweep's pruning callback); `parent_run_id`
    makes the run a child (tag `mlflow.parentRunId`, e.g. a sweep trial under its study); `extra_tags`
    are set on the run at creation, `first_metrics` logged before any other metric (step 0; a sweep's objective,
    which MLflow's run comparison then shows first). `resume_run_id` continues that (already reopened) run from
    `ckpt_path` (None: from the start); use `resume()` rather than this directly.

    Raises DivergenceError on a non-finite loss, ResourceError when out of memory, KeyboardInterrupt
    after Ctrl-C (checkpoint saved, run KILLED), TimeLimitReached at `trainer.time_limit` (the same, exit 75,
    suite/train/timelimit.py); any failure marks the run FAILED with tag suite.failure.
    Under DDP only rank 0 creates and writes the MLflow run; the other ranks train and return its id.
    """
    _quiet()
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from suite.train.datamodule import TaskDataModule
    from suite.train.guards import DivergenceGuard, ResumePoint
    from suite.train.lightning_module import SequenceModule
    from suite.tracking.lightning import FlushMetrics, ResumedMLFlowLogger, SilentLogger
    from suite.report.plots import learning_curves
    from suite.train.progress import ProgressLines, SystemMetrics, use_progress_lines
    from suite.train.throughput import SteadyProgressBar, Throughput

    import torch

    task_entry = registry.task(cfg.task)
    rank_zero = is_rank_zero(cfg.trainer)
    if cfg.trainer.cuda_graph is True and (cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available()):
        raise ConfigError("config: trainer.cuda_graph = true needs a CUDA GPU, and this run has none "
                          f"(accelerator {cfg.trainer.accelerator!r}, CUDA available: {torch.cuda.is_available()}).",
                          hint="drop --set trainer.cuda_graph=true, or run on a machine with a GPU")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = load_task(cfg)  # rank 0 prepares the cache before Lightning starts the other ranks; they only verify it
    model = build_model(cfg, data)
    n_params = sum(p.numel() for p in model.parameters())

    metric = "accuracy" if data.problem == "classification" else "rmse"
    higher = metric == "accuracy"
    uri = tracking.resolve_uri(cfg.tracking.uri)
    experiment = cfg.tracking.experiment or task_entry.family
    run_name = cfg.tracking.run_name or f"{cfg.task}-{cfg.model.name}-{cfg.preset}-s{cfg.seed}"
    already_logged: set[tuple[str, int]] = set()
    if not rank_zero:
        run_id = os.environ.get(RUN_ID_ENV) or resume_run_id or "rank-without-run"
    elif resume_run_id:
        run_id = resume_run_id
        already_logged = {(k, step) for k, h in tracking.metric_histories(uri, run_id).items() for step, _ in h}
        print(f"resuming run {run_id} ({run_name}) in {tracking.mask(uri)} from "
              f"{ckpt_path or 'the start (no checkpoint was saved)'}", file=sys.stderr)
    else:
        experiment_id = tracking.ensure_experiment(uri, experiment)
        tags = {
            "suite.task": cfg.task,
            "suite.model": cfg.model.name,
            "suite.preset": cfg.preset,
            "suite.recipe": cfg.recipe,
            "suite.recipe_source": recipe_source(cfg.task, cfg.recipe),
            "suite.seed": str(cfg.seed),
            "suite.data_source": data.source,
            "suite.git_commit": tracking.git_commit(),
            "suite.version": __version__,
            "suite.device": tracking.device_name(cfg.trainer.accelerator),
            **tracking.owner_tags(),
            tracking.NOTE_TAG: describe_run(cfg, data.source),
            **(extra_tags or {}),
        }
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run_id = tracking.start_run(uri, experiment_id, run_name, tags)
        try:
            if first_metrics:
                tracking.log_metrics(uri, run_id, first_metrics, step=0)
            tracking.log_params(uri, run_id, {**run_params(_masked(cfg)), "n_params": n_params})
            _log_config(uri, run_id, cfg)  # now, so that a killed run can be resumed with its configuration
            log_data_stats(uri, run_id, data)
        except BaseException as exc:
            tracking.set_tags(uri, run_id, tracking.failure_tags(exc))
            tracking.set_terminated(uri, run_id, "FAILED")
            raise
        print(f"run {run_id} ({run_name}) -> experiment '{experiment}' in {tracking.mask(uri)}", file=sys.stderr)
    if rank_zero:
        print(f"model {cfg.model.name}: {n_params:,} parameters; data: {data.source}, "
              f"{len(data.train):,} / {len(data.val):,} / {len(data.test):,} samples", file=sys.stderr)

    ckpt_dir = run_checkpoint_dir(uri, run_id)
    t = cfg.trainer
    limit_s = timelimit.parse_duration(t.time_limit) if t.time_limit is not None else None
    resume_point = ResumePoint(ckpt_dir / "last.ckpt", t.checkpoint_every_n_steps,
                               t.checkpoint_every_minutes * 60 if t.checkpoint_every_minutes else None,
                               deadline=timelimit.deadline(limit_s) if limit_s else None,
                               reserve_s=timelimit.reserve(limit_s) if limit_s else 0.0)
    trainer = None
    try:
        checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=f"val/{metric}",
                                     mode="max" if higher else "min", enable_version_counter=False)
        on_gpu = t.accelerator in ("gpu", "cuda") or t.accelerator == "auto" and torch.cuda.is_available()
        datamodule = TaskDataModule(data, t.batch_size, t.eval_batch_size, t.num_workers, pin_memory=on_gpu)
        eval_rate = {split: r * cfg.model.rate for split, r in data.eval_rate.items()}
        module = SequenceModule(model, data.problem, data.d_output, cfg.optim, datamodule.eval_splits,
                                to_dict(_masked(cfg)), eval_rate, cuda_graph=t.cuda_graph)
        if not rank_zero:
            logger = SilentLogger()
        else:
            logger = ResumedMLFlowLogger(already_logged, tracking_uri=uri, run_id=run_id)
        lines = use_progress_lines(t.progress_bar)  # not a terminal: a line every N seconds instead of the bar
        progress = [ProgressLines(t.progress_every_seconds, t.batch_size)] if lines else []
        if rank_zero:
            progress.append(SystemMetrics(uri, run_id, resume=bool(resume_run_id)))
        trainer = L.Trainer(
            max_epochs=t.max_epochs,
            max_steps=t.max_steps,
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=t.strategy,
            precision=t.precision,
            logger=logger,
            callbacks=[DivergenceGuard(), FlushMetrics(), resume_point, checkpoint,
                       LearningRateMonitor(logging_interval="epoch"), Throughput(), *progress,
                       *([SteadyProgressBar(t.log_every_n_steps)] if t.progress_bar and not lines else []),
                       *(callbacks or [])],
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
        if rank_zero:
            os.environ[RUN_ID_ENV] = run_id  # DDP: the ranks Lightning starts inside fit() inherit it
        # Active until the run is FINISHED: a Ctrl-C or SIGTERM after training lets the summary be written.
        with resume_point.signal_handlers():
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                        weights_only=True)  # checkpoints hold tensors and plain data only
            if not rank_zero:
                return run_id

            histories = tracking.metric_histories(uri, run_id)
            best = best_epoch_metrics(histories, metric, higher, tuple(data.eval_splits))
            tracking.log_metrics(uri, run_id, best, step=trainer.global_step)
            tracking.set_description(uri, run_id, describe_run(cfg, data.source, best))
            _log_config(uri, run_id, cfg)
            with tempfile.TemporaryDirectory() as tmp:
                epochs = {step: int(e) for step, e in histories.get("epoch", [])}
                png = learning_curves(histories, epochs, metric, run_name, Path(tmp) / "learning_curves.png")
                tracking.log_artifact(uri, run_id, png)
            if checkpoint.best_model_path:
                tracking.log_artifact(uri, run_id, Path(checkpoint.best_model_path), "checkpoints")
            timelimit.add_session_time(uri, run_id, _gpus(trainer))
            tracking.set_terminated(uri, run_id, "FINISHED")
        if resume_point.interrupt_requested:
            print(f"{resume_point.signal_name} came after training had ended; the run was completed (FINISHED).",
                  file=sys.stderr)
    except (KeyboardInterrupt, SystemExit) as exc:
        # Lightning turns a KeyboardInterrupt inside fit() into sys.exit(1); both mean: stopped by the user
        if not rank_zero:
            raise
        tracking.set_terminated(uri, run_id, "KILLED")
        timelimit.add_session_time(uri, run_id, _gpus(trainer) if trainer is not None else 0)
        last = resume_point.path
        where = (f"at step {resume_point.interrupted_at_step}, checkpoint saved to {last}"
                 if resume_point.interrupted_at_step is not None
                 else f"last checkpoint {last}" if last.exists() else "before its first checkpoint")
        command = timelimit.resume_command(run_id, uri, t.time_limit)
        if resume_point.time_limit_reached:
            limit = timelimit.format_duration(limit_s) if limit_s else f"({resume_point.signal_name})"
            raise TimeLimitReached(f"time limit {limit} reached: run {run_id} stopped {where}; marked KILLED in "
                                   f"MLflow, resumable.\ncontinue it with: {command}") from None
        print(f"\ninterrupted: run {run_id} stopped {where}; marked KILLED in MLflow.\n"
              f"continue it with: {command}", file=sys.stderr)
        raise KeyboardInterrupt from (exc if isinstance(exc, SystemExit) else None)
    except BaseException as exc:
        error = _out_of_memory(exc)
        if rank_zero:
            tracking.set_tags(uri, run_id, tracking.failure_tags(error or exc))
            tracking.set_terminated(uri, run_id, "FAILED")
        if error is not None:
            raise error from exc
        raise
    finally:
        if rank_zero and os.environ.get(RUN_ID_ENV) == run_id:
            del os.environ[RUN_ID_ENV]

    summary = ", ".join(f"{k} {v:.4f}" for k, v in best.items() if not k.endswith("epoch"))
    print(f"\ndone: run {run_id}  {summary}", file=sys.stderr)
    if parent_run_id is None:  # a sweep trial: the sweep prints one link to its view at the end
        exp_id = tracking.run_experiment_id(uri, run_id)
        print(f"look: suite ui, then open {tracking.runs_url(exp_id)}  (experiment '{experiment}', view "
              f"'suite: results')", file=sys.stderr)
    return run_id


def describe_run(cfg: RunConfig, data_source: str, best: dict[str, float] | None = None) -> str:
    """The run's description in the MLflow UI (Markdown): what was trained, and once it is known the result."""
    text = (f"**{cfg.model.name}** on **{cfg.task}**, {cfg.preset} preset ({cfg.recipe} recipe), seed {cfg.seed}, "
            f"{data_source} data.")
    if best:
        shown = ", ".join(f"`{k}` {v:.0f}" if k == "best/epoch" else f"`{k}` {v:.4f}" for k, v in best.items())
        text += f"\n\nResult (test metrics at the epoch of the best validation metric): {shown}."
    return text


# ------------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------------

# Flags that may change when a run is resumed (hardware and length); everything else is the run's own.
RESUME_FLAGS = {"accelerator": "accelerator", "devices": "devices", "num_nodes": "num_nodes", "strategy": "strategy",
                "precision": "precision", "max_epochs": "max_epochs", "max_steps": "max_steps"}
RESUME_FORBIDDEN = ("task", "model", "config", "set", "seed", "experiment", "run_name", "print_config", "from_run")


def stored_config(uri: str, run_id: str, ckpt: Path | None) -> RunConfig:
    """The configuration a run was started with: its `config.yaml` artifact, else its checkpoint's."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            data = load_yaml(tracking.download_artifact(uri, run_id, "config.yaml", Path(tmp)))
        except Exception:
            data = None
    if data is None and ckpt is not None:
        import torch

        data = torch.load(ckpt, map_location="cpu", weights_only=True).get("suite_config")
    if not data:
        raise ResumeError(f"run {run_id} has neither a config.yaml artifact nor a checkpoint with its configuration.",
                          hint="it was not started by this version of `suite run`; start a new run instead")
    return from_stored(data)


def resume(run_id: str, args) -> str:
    """`suite run --resume RUN_ID`: continue an interrupted run from its last.ckpt, into the same MLflow run.

    The run must be KILLED, FAILED, or RUNNING with its process gone. Its configuration comes from the
    run itself; only hardware and length flags (--devices, --accelerator, --precision, --max-epochs, ...)
    may change. Metrics continue at the checkpoint's step; steps replayed after the checkpoint are not
    logged twice."""
    given = [name for name in RESUME_FORBIDDEN if getattr(args, name, None)]
    if given:
        raise ResumeError(
            f"--resume continues a run with its own configuration; --{given[0].replace('_', '-')} cannot change it.",
            hint="drop that flag (only --devices, --num-nodes, --strategy, --accelerator, --precision, --max-epochs, "
                 "--max-steps, --time-limit, --data-dir and --tracking-uri go with --resume), or start a new run",
        )
    uri = tracking.resolve_uri(getattr(args, "tracking_uri", None))
    tracking.check_reachable(uri)
    run = tracking.find_run(uri, run_id)
    if run is None:  # an unknown run id is a tracking-store error (exit 5), as for every command (README)
        raise TrackingError(f"no run '{run_id}' in the MLflow store {tracking.mask(uri)}.",
                            hint="copy the id from the `run ...` line the command printed or from `suite ui`; pass "
                                 "the same --tracking-uri / MLFLOW_TRACKING_URI the run was logged to")
    ckpt = run_checkpoint_dir(uri, run_id) / "last.ckpt"
    ckpt = ckpt if ckpt.is_file() else None
    rank_zero = is_rank_zero()
    if rank_zero:
        status = run.info.status
        if status == "FINISHED":
            raise ResumeError(f"run {run_id} has FINISHED; there is nothing to resume.",
                              hint="to train longer, start a new run (e.g. with --max-epochs)")
        if status == "RUNNING" and tracking.owner_alive(run.data.tags) is not False:
            raise ResumeError(f"run {run_id} is still RUNNING (process {run.data.tags.get('suite.pid', '?')} on "
                              f"{run.data.tags.get('suite.host', '?')}).",
                              hint="wait for it, or stop it first (Ctrl-C in its terminal, or kill the process)")
    cfg = stored_config(uri, run_id, ckpt)
    changes = {field: getattr(args, flag) for flag, field in RESUME_FLAGS.items() if getattr(args, flag, None) is not None}
    if getattr(args, "eager", False):  # --eager: a way to run, not part of the run's configuration
        changes["cuda_graph"] = False
    trainer = dataclasses.replace(cfg.trainer, **changes)
    # The time limit is this command's own (--time-limit, none without): not the first command's, not a change
    trainer = dataclasses.replace(trainer, time_limit=getattr(args, "time_limit", None))
    data_cfg = dataclasses.replace(cfg.data, root=args.data_dir) if getattr(args, "data_dir", None) else cfg.data
    cfg = dataclasses.replace(cfg, trainer=trainer, data=data_cfg,
                              tracking=dataclasses.replace(cfg.tracking, uri=uri))
    from suite.config import check

    check(cfg)
    if rank_zero:
        tags = {**tracking.owner_tags(), "suite.resumed": str(int(run.data.tags.get("suite.resumed", "0")) + 1)}
        if changes:
            tags["suite.resume_changes"] = ", ".join(f"trainer.{k}={v}" for k, v in changes.items())
        tracking.reopen_run(uri, run_id, tags)
    return train(cfg, resume_run_id=run_id, ckpt_path=ckpt)
