"""One training run: data, model, Lightning trainer, MLflow run; returns the run id.

What a run logs (see README, "What a run records"): the flattened resolved config as params plus
`n_params`; tags for task, model, preset, seed, data source, git commit, suite version and device;
per-epoch `<split>/loss` and `<split>/<metric>` for train, val and test; at the end the `best/*`
metrics (test at the epoch of best validation); artifacts `config.yaml`, `checkpoints/best.ckpt`
and `learning_curves.png`.
"""

from __future__ import annotations

import inspect
import sys
import tempfile
import warnings
from pathlib import Path

from suite import __version__, registry, tracking
from suite.config import RunConfig, dump, flatten, to_dict
from suite.paths import checkpoints_dir, default_data_root


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    from lightning.pytorch.utilities import disable_possible_user_warnings

    disable_possible_user_warnings()


def build_model(cfg: RunConfig, data):
    """The network for `cfg.model` on a task's `TaskData`, with the SSM class from the model registry."""
    from models.network import SequenceModel

    m = cfg.model
    ssm_cls = registry.resolve(registry.model(m.name))
    options = {
        "d_state": m.d_state,
        "bidirectional": m.bidirectional,
        "n_ssm": m.n_ssm,
        "init": m.init,
        "disc": m.disc,
        "dt_min": m.dt_min,
        "dt_max": m.dt_max,
        "l_max": cfg.data.l_max,
        "liquid_kernel": m.liquid_kernel,
        "liquid_degree": m.liquid_degree,
        "liquid_mode": m.liquid_mode,
    }
    accepted = inspect.signature(ssm_cls).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted}
    return SequenceModel(
        make_ssm=lambda H: ssm_cls(H, **kwargs),
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
    return Path(cfg.data.root).expanduser().resolve() if cfg.data.root else default_data_root()


def load_task(cfg: RunConfig):
    """Prepare (generate, verify, cache) and load the task's data."""
    task_module = registry.resolve(registry.task(cfg.task))
    root = data_root(cfg)
    task_module.prepare(root, cfg.data)
    return task_module.load(root, cfg.data)


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


def train(cfg: RunConfig, callbacks: list | None = None, parent_run_id: str | None = None,
          extra_tags: dict[str, str] | None = None) -> str:
    """Train and evaluate one configuration; return the MLflow run id.

    `callbacks` are added to the Lightning trainer (e.g. a sweep's pruning callback); `parent_run_id`
    makes the run a child (tag `mlflow.parentRunId`, e.g. a sweep trial under its study); `extra_tags`
    are set on the run at creation.
    """
    _quiet()
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from suite.datamodule import TaskDataModule
    from suite.lightning_module import SequenceModule
    from suite.plots import learning_curves

    task_entry = registry.task(cfg.task)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = load_task(cfg)
    model = build_model(cfg, data)
    n_params = sum(p.numel() for p in model.parameters())

    metric = "accuracy" if data.problem == "classification" else "rmse"
    higher = metric == "accuracy"
    uri = tracking.resolve_uri(cfg.tracking.uri)
    experiment = cfg.tracking.experiment or task_entry.family
    experiment_id = tracking.ensure_experiment(uri, experiment)
    tags = {
        "suite.task": cfg.task,
        "suite.model": cfg.model.name,
        "suite.preset": cfg.preset,
        "suite.seed": str(cfg.seed),
        "suite.data_source": data.source,
        "suite.git_commit": tracking.git_commit(),
        "suite.version": __version__,
        "suite.device": tracking.device_name(cfg.trainer.accelerator),
        **(extra_tags or {}),
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_name = cfg.tracking.run_name or f"{cfg.task}-{cfg.model.name}-{cfg.preset}-s{cfg.seed}"
    run_id = tracking.start_run(uri, experiment_id, run_name, tags)
    tracking.log_params(uri, run_id, {**flatten(to_dict(cfg)), "n_params": n_params})
    print(f"run {run_id} ({run_name}) -> experiment '{experiment}' in {tracking.mask(uri)}", file=sys.stderr)
    print(f"model {cfg.model.name}: {n_params:,} parameters; data: {data.source}, "
          f"{len(data.train):,} / {len(data.val):,} / {len(data.test):,} samples", file=sys.stderr)

    try:
        ckpt_dir = checkpoints_dir() / run_id
        checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=f"val/{metric}",
                                     mode="max" if higher else "min", save_last=True)
        datamodule = TaskDataModule(data, cfg.trainer.batch_size, cfg.trainer.eval_batch_size,
                                    cfg.trainer.num_workers, pin_memory=cfg.trainer.accelerator in ("gpu", "cuda"))
        eval_rate = {split: r * cfg.model.rate for split, r in data.eval_rate.items()}
        module = SequenceModule(model, data.problem, data.d_output, cfg.optim, datamodule.eval_splits, to_dict(cfg),
                                eval_rate)
        t = cfg.trainer
        trainer = L.Trainer(
            max_epochs=t.max_epochs,
            max_steps=t.max_steps,
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=t.strategy,
            precision=t.precision,
            logger=tracking.lightning_logger(uri, run_id),
            callbacks=[checkpoint, LearningRateMonitor(logging_interval="epoch"), *(callbacks or [])],
            gradient_clip_val=cfg.optim.grad_clip or None,
            limit_train_batches=t.limit_train_batches,
            limit_val_batches=t.limit_val_batches,
            log_every_n_steps=t.log_every_n_steps,
            enable_progress_bar=t.progress_bar,
            enable_model_summary=False,
            deterministic=t.deterministic,
            num_sanity_val_steps=0,
            default_root_dir=str(ckpt_dir),
        )
        trainer.fit(module, datamodule=datamodule)

        histories = tracking.metric_histories(uri, run_id)
        best = best_epoch_metrics(histories, metric, higher, tuple(data.eval_splits))
        tracking.log_metrics(uri, run_id, best, step=trainer.global_step)
        with tempfile.TemporaryDirectory() as tmp:
            cfg_file = Path(tmp) / "config.yaml"
            cfg_file.write_text(dump(cfg))
            tracking.log_artifact(uri, run_id, cfg_file)
            epochs = {step: int(e) for step, e in histories.get("epoch", [])}
            png = learning_curves(histories, epochs, metric, run_name, Path(tmp) / "learning_curves.png")
            tracking.log_artifact(uri, run_id, png)
        if checkpoint.best_model_path:
            tracking.log_artifact(uri, run_id, Path(checkpoint.best_model_path), "checkpoints")
    except KeyboardInterrupt:
        tracking.set_terminated(uri, run_id, "KILLED")
        raise
    except BaseException:
        tracking.set_terminated(uri, run_id, "FAILED")
        raise

    summary = ", ".join(f"{k} {v:.4f}" for k, v in best.items() if not k.endswith("epoch"))
    print(f"\ndone: run {run_id}  {summary}", file=sys.stderr)
    print(f"look: suite ui  (then open experiment '{experiment}')", file=sys.stderr)
    return run_id
