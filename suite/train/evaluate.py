"""Score checkpoints without training: `suite eval CHECKPOINT` and `suite run --task speech8k --from-run RUN_ID`.

`suite eval CHECKPOINT|BUNDLE [--split test] [--set key=value] [--data-dir DIR] [--json]` (docs/reproduction.md)
rebuilds the network and the data from the configuration the checkpoint carries (`suite_config`, plain data),
with `--set` applied (e.g. `data.source=release`, `data.generator.seed=1`), loads the weights and prints the
split's metrics; a bundle folder means its `best.ckpt`. Checkpoints are read with `torch.load(weights_only=True)`
(`read_checkpoint`): tensors and plain data only, never code; one that needs pickle is refused.

`--from-run`:

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

from suite import registry
from suite.config import RunConfig, from_stored, run_params, to_dict
from suite.errors import BundleError, ConfigError
from suite.tracking import probe, store, uris
from suite.train.record import log_config, masked, run_tags, task_metric

SOURCE_TASKS = ("speech", "speech8k")  # runs whose checkpoints speech8k can evaluate


def load_weights(model, state: dict, error) -> None:
    """The network's weights from a Lightning checkpoint (the `model.` entries of its state_dict); raises
    `error(reason)` when they do not fit the network."""
    weights = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # "Error(s) in loading state_dict for SequenceModel:", then one line per tensor
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise error(" ".join(lines[:2])[:300]) from None


def load_checkpoint(uri: str, run_id: str) -> dict:
    """The source run's best checkpoint (a dict with `state_dict`, `suite_config`, `epoch`, ...)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = store.download_artifact(uri, run_id, "checkpoints/best.ckpt", Path(tmp))
        return read_checkpoint(path)


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, loaded with `torch.load(weights_only=True)` onto the CPU: tensors and plain data
    only. BundleError (exit 10) for a missing file, one that is no checkpoint, or one that needs pickle."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no checkpoint at {path}.", hint="give a .ckpt file written by `suite run`, or a bundle "
                                                            "folder of `suite export` (its best.ckpt is used)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        import re

        needs = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if needs is None:  # not a torch checkpoint at all (torch falls back to reading it as a pickle)
            raise BundleError(f"{path} is not a readable checkpoint (not written by torch.save).",
                              hint="give a .ckpt file written by `suite run`, or copy it again from its source") from None
        raise BundleError(f"{path} needs pickle to load: it holds a {needs.group(1)} object, not only tensors and "
                          "plain data; the suite does not run code from checkpoints.",
                          hint="if you trust its source, load it once with torch.load(path, weights_only=False) and "
                               "save its tensors and plain data again (state_dict, suite_config); checkpoints of this "
                               "suite version load as they are") from None
    except Exception as exc:  # a truncated or foreign file: torch raises RuntimeError, EOFError, ...
        raise BundleError(f"{path} is not a readable checkpoint ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}).",
                          hint="copy it again from its source (a partial download?), or export the run again") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise BundleError(f"{path} is not a checkpoint of `suite run` (no state_dict).",
                          hint="give a .ckpt file written by `suite run`")
    return state


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
    from suite.quiet import quiet_run
    from suite.train.build import build_model, load_task

    quiet_run()
    import lightning.pytorch as L

    uri = uris.resolve_uri(cfg.tracking.uri)
    probe.check_reachable(uri)
    source_run = store.get_run(uri, run_id)
    state = load_checkpoint(uri, run_id)
    source = _check_source(cfg, run_id, source_run, state)
    # The network exactly as trained; the data, hardware and tracking as this invocation asks.
    eval_cfg = replace(source, task=cfg.task, trainer=cfg.trainer, tracking=cfg.tracking,
                       data=replace(source.data, root=cfg.data.root, speech=cfg.data.speech))

    L.seed_everything(source.seed, workers=True, verbose=False)  # any init-time constant is rebuilt the same
    data = load_task(eval_cfg)
    model = build_model(eval_cfg, data)
    load_weights(model, state, lambda why: ConfigError(
        f"the checkpoint of run {run_id} does not fit the network its config describes: {why}",
        hint="it was written by another version of the model code; evaluate it with that version"))
    n_params = sum(p.numel() for p in model.parameters())

    experiment = cfg.tracking.experiment or registry.task(cfg.task).family
    experiment_id = store.ensure_experiment(uri, experiment)
    # the tags of every run (suite.train.record.run_tags: the training run's model, preset, recipe and seed, this
    # task, data, device and code), and the run it evaluates
    tags = run_tags(eval_cfg, data.source, extra_tags={"suite.from_run": run_id})
    run_name = cfg.tracking.run_name or f"{cfg.task}-{source.model.name}-from-{run_id[:8]}"
    new_id = store.start_run(uri, experiment_id, run_name, tags)
    store.log_params(uri, new_id, {**run_params(masked(eval_cfg)), "n_params": n_params, "from_run": run_id})
    print(f"run {new_id} ({run_name}): evaluating run {run_id}'s best checkpoint -> experiment '{experiment}' "
          f"in {uris.mask(uri)}", file=sys.stderr)
    try:
        metrics = _evaluate(eval_cfg, model, data)
        metric, _ = task_metric(data)
        best = {f"best/{k}": v for k, v in metrics.items() if k.split("/")[-1] in ("loss", metric)}
        if "epoch" in state:
            best["best/epoch"] = float(state["epoch"])
        store.log_metrics(uri, new_id, {**metrics, **best})
        log_config(uri, new_id, eval_cfg)
    except KeyboardInterrupt:
        store.set_terminated(uri, new_id, "KILLED")
        raise
    except BaseException:
        store.set_terminated(uri, new_id, "FAILED")
        raise
    store.set_terminated(uri, new_id, "FINISHED")
    summary = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if k.endswith(metric))
    print(f"\ndone: run {new_id}  {summary}", file=sys.stderr)
    return new_id


def _evaluate(cfg: RunConfig, model, data, splits: list[str] | None = None) -> dict[str, float]:
    """One pass over every evaluation split (or `splits`) with Lightning (same metrics, rates and collates as
    training)."""
    import lightning.pytorch as L

    from suite.train.datamodule import TaskDataModule, loader_workers, runs_on_gpu
    from suite.train.lightning_module import SequenceModule

    class SplitsDataModule(TaskDataModule):
        @property
        def eval_splits(self) -> list[str]:
            return list(splits) if splits else self.data.eval_splits

    t = cfg.trainer
    on_gpu = runs_on_gpu(t.accelerator)
    datamodule = SplitsDataModule(data, t.batch_size, t.eval_batch_size, loader_workers(t.num_workers, on_gpu),
                                  pin_memory=on_gpu, seed=cfg.seed)
    eval_rate = {split: r * cfg.model.rate for split, r in data.eval_rate.items()}
    module = SequenceModule(model, data.problem, cfg.optim, datamodule.eval_splits, to_dict(cfg),
                            eval_rate)
    trainer = L.Trainer(accelerator=t.accelerator, devices=1, precision=t.precision, logger=False,
                        limit_val_batches=t.limit_val_batches, enable_progress_bar=t.progress_bar,
                        enable_model_summary=False, enable_checkpointing=False)
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for per_loader in results for k, v in per_loader.items()}


# ------------------------------------------------------------------------------------------------
# suite eval CHECKPOINT
# ------------------------------------------------------------------------------------------------


def checkpoint_path(target: Path) -> Path:
    """A checkpoint file as given, or a bundle folder's best.ckpt."""
    target = Path(target)
    if target.is_dir():
        if not (target / "best.ckpt").is_file():
            raise BundleError(f"{target} is a folder without best.ckpt.",
                              hint="give a checkpoint file, or a bundle folder of `suite export` (it holds best.ckpt)")
        return target / "best.ckpt"
    return target


def eval_config(state: dict, sets: list[str] | None = None, data_dir: str | None = None,
                batch_size: int | None = None, accelerator: str | None = None) -> RunConfig:
    """The checkpoint's own configuration with `--set` overrides, the data root, the evaluation batch size and
    the hardware of this machine (one device, no CUDA graphs, no progress bar) applied; validated."""
    from suite.config import deep_merge, parse_override

    config = state.get("suite_config")
    if not isinstance(config, dict) or not config:
        raise BundleError("the checkpoint carries no configuration (suite_config); it was not written by `suite run`.",
                          hint="score it with the code that wrote it")
    for text in sets or []:
        config = deep_merge(config, parse_override(text))
    trainer = {"devices": 1, "num_nodes": 1, "strategy": "auto", "cuda_graph": False, "progress_bar": False,
               "accelerator": accelerator or "auto", "time_limit": None}
    if batch_size is not None:
        trainer["eval_batch_size"] = batch_size
    config = deep_merge(config, {"trainer": trainer})
    if data_dir:
        config = deep_merge(config, {"data": {"root": data_dir}})
    return from_stored(config)


def evaluate_checkpoint(target: Path, split: str = "test", sets: list[str] | None = None,
                        data_dir: str | None = None, batch_size: int | None = None,
                        accelerator: str | None = None) -> dict:
    """`suite eval`: the metrics of `split` for the checkpoint (or bundle) `target`, as a dict with the checkpoint,
    its task, model, epoch and step."""
    from suite.quiet import quiet_run
    from suite.train.build import build_model, load_task

    quiet_run()
    import logging

    import lightning.pytorch as L

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available: ..." lines
    path = checkpoint_path(target)
    state = read_checkpoint(path)
    cfg = eval_config(state, sets, data_dir, batch_size, accelerator)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # any init-time constant is rebuilt the same
    data = load_task(cfg)
    if split != "train" and split not in data.eval_splits:
        raise ConfigError(f"task {cfg.task} has no split {split!r}.",
                          hint=f"--split one of: train, {', '.join(data.eval_splits)}")
    model = build_model(cfg, data)
    load_weights(model, state, lambda why: BundleError(
        f"{path} does not fit the network its configuration describes: {why}",
        hint="it was written by another version of the model code (or --set changed the network); score it with "
             "that version, and --set only data options"))
    print(f"scoring {path} (task {cfg.task}, model {cfg.model.name}, epoch {state.get('epoch')}) on the {split} "
          f"split of {data.source} data", file=sys.stderr)
    metrics = _evaluate(cfg, model, data, [split])
    return {"checkpoint": str(path), "task": cfg.task, "model": cfg.model.name, "data_source": data.source,
            "split": split, "epoch": state.get("epoch"), "global_step": state.get("global_step"),
            **{k: v for k, v in sorted(metrics.items())}}
