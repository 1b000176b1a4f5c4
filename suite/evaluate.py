"""Evaluate a finished run's best checkpoint without training: `suite run --task speech8k --from-run RUN_ID`.

The checkpoint (`checkpoints/best.ckpt`, an MLflow artifact of the source run) carries the resolved
configuration it was trained with (`suite_config`): the network is rebuilt from it exactly, the
weights loaded, and val, test and test8k evaluated once. The data options of this invocation apply
(`--data-dir`, `data.speech.resample`), so a decimation-trained comparison can be repeated with
torchaudio's resampling. The result is a new MLflow run of task speech8k, tagged `suite.from_run`,
with `<split>/accuracy`, `<split>/loss` and the same values as `best/<split>/*` (the checkpoint is
the source run's best-validation epoch, `best/epoch`).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from suite import __version__, registry, tracking
from suite.config import RunConfig, dump, flatten, from_stored, to_dict
from suite.errors import ConfigError

SOURCE_TASKS = ("speech", "speech8k")  # runs whose checkpoints speech8k can evaluate


def load_checkpoint(uri: str, run_id: str) -> dict:
    """The source run's best checkpoint (a dict with `state_dict`, `suite_config`, `epoch`, ...)."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.download_artifact(uri, run_id, "checkpoints/best.ckpt", Path(tmp))
        return torch.load(path, map_location="cpu", weights_only=False)


def _check_source(cfg: RunConfig, run_id: str, run, state: dict) -> RunConfig:
    task = run.data.tags.get("suite.task")
    if task not in SOURCE_TASKS:
        raise ConfigError(f"run {run_id} trained task '{task}'; --from-run evaluates a speech run at 8 kHz.",
                          hint="pick a run of task speech or speech8k (`suite ui`, experiment 'speech')")
    if "suite_config" not in state:
        raise ConfigError(f"the checkpoint of run {run_id} carries no suite_config; it was not written by `suite run`.")
    source = from_stored(state["suite_config"])
    if source.model.name != cfg.model.name:
        raise ConfigError(f"--model {cfg.model.name}, but run {run_id} trained model '{source.model.name}'.",
                          hint=f"use --model {source.model.name}")
    return source


def evaluate_from_run(cfg: RunConfig, run_id: str) -> str:
    """Evaluate run `run_id`'s best checkpoint on val, test and test8k; log a new run; return its id."""
    if cfg.task != "speech8k":
        raise ConfigError(f"--from-run is for the task speech8k, not '{cfg.task}'.",
                          hint=f"suite run --task speech8k --model {cfg.model.name} --from-run {run_id}")
    from suite.run import _quiet, build_model, load_task

    _quiet()
    import lightning.pytorch as L

    uri = tracking.resolve_uri(cfg.tracking.uri)
    tracking.check_reachable(uri)
    source_run = tracking.get_run(uri, run_id)
    state = load_checkpoint(uri, run_id)
    source = _check_source(cfg, run_id, source_run, state)
    # The network exactly as trained; the data, hardware and tracking as this invocation asks.
    eval_cfg = replace(source, task=cfg.task, trainer=cfg.trainer, tracking=cfg.tracking,
                       data=replace(source.data, root=cfg.data.root, speech=cfg.data.speech))

    L.seed_everything(source.seed, workers=True, verbose=False)  # any init-time constant is rebuilt the same
    data = load_task(eval_cfg)
    model = build_model(eval_cfg, data)
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(f"the checkpoint of run {run_id} does not fit the network its config describes: "
                          f"{str(exc).splitlines()[0]}",
                          hint="it was written by another version of the model code; evaluate it with that version")
    n_params = sum(p.numel() for p in model.parameters())

    experiment = cfg.tracking.experiment or registry.task(cfg.task).family
    experiment_id = tracking.ensure_experiment(uri, experiment)
    tags = {
        "suite.task": cfg.task,
        "suite.model": source.model.name,
        "suite.preset": source.preset,
        "suite.recipe": source.recipe,
        "suite.seed": str(source.seed),
        "suite.data_source": data.source,
        "suite.git_commit": tracking.git_commit(),
        "suite.version": __version__,
        "suite.device": tracking.device_name(cfg.trainer.accelerator),
        "suite.from_run": run_id,
    }
    run_name = cfg.tracking.run_name or f"{cfg.task}-{source.model.name}-from-{run_id[:8]}"
    new_id = tracking.start_run(uri, experiment_id, run_name, tags)
    tracking.log_params(uri, new_id, {**flatten(to_dict(eval_cfg)), "n_params": n_params, "from_run": run_id})
    print(f"run {new_id} ({run_name}): evaluating run {run_id}'s best checkpoint -> experiment '{experiment}' "
          f"in {tracking.mask(uri)}", file=sys.stderr)
    try:
        metrics = _evaluate(eval_cfg, model, data)
        metric = "accuracy" if data.problem == "classification" else "rmse"
        best = {f"best/{k}": v for k, v in metrics.items() if k.split("/")[-1] in ("loss", metric)}
        if "epoch" in state:
            best["best/epoch"] = float(state["epoch"])
        tracking.log_metrics(uri, new_id, {**metrics, **best})
        with tempfile.TemporaryDirectory() as tmp:
            cfg_file = Path(tmp) / "config.yaml"
            cfg_file.write_text(dump(eval_cfg))
            tracking.log_artifact(uri, new_id, cfg_file)
    except KeyboardInterrupt:
        tracking.set_terminated(uri, new_id, "KILLED")
        raise
    except BaseException:
        tracking.set_terminated(uri, new_id, "FAILED")
        raise
    tracking.set_terminated(uri, new_id, "FINISHED")
    summary = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if k.endswith(metric))
    print(f"\ndone: run {new_id}  {summary}", file=sys.stderr)
    return new_id


def _evaluate(cfg: RunConfig, model, data) -> dict[str, float]:
    """One pass over every evaluation split with Lightning (same metrics, rates and collates as training)."""
    import lightning.pytorch as L

    from suite.datamodule import TaskDataModule
    from suite.lightning_module import SequenceModule

    t = cfg.trainer
    datamodule = TaskDataModule(data, t.batch_size, t.eval_batch_size, t.num_workers,
                                pin_memory=t.accelerator in ("gpu", "cuda"))
    eval_rate = {split: r * cfg.model.rate for split, r in data.eval_rate.items()}
    module = SequenceModule(model, data.problem, data.d_output, cfg.optim, datamodule.eval_splits, to_dict(cfg),
                            eval_rate)
    trainer = L.Trainer(accelerator=t.accelerator, devices=1, precision=t.precision, logger=False,
                        limit_val_batches=t.limit_val_batches, enable_progress_bar=t.progress_bar,
                        enable_model_summary=False, enable_checkpointing=False)
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for per_loader in results for k, v in per_loader.items()}
