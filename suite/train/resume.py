"""`suite run --resume RUN_ID`: an interrupted run continued into the same MLflow run, from its last checkpoint.

The run's configuration is its own (its `config.yaml` artifact, else its checkpoint's); only the flags of
`RESUME_FLAGS` (hardware and length), `--eager`, `--time-limit`, `--data-dir` and `--tracking-uri` may change,
and those of `RESUME_FORBIDDEN` are refused (exit 8). The changes are recorded in the tag `suite.resume_changes`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from suite.config import RunConfig, from_stored, load_yaml
from suite.errors import ResumeError, TrackingError
from suite.ranks import is_rank_zero
from suite.tracking import liveness, probe, provenance, store, uris
from suite.train.record import run_checkpoint_dir
from suite.train.run import train

# Flags that may change when a run is resumed (hardware and length); everything else is the run's own.
RESUME_FLAGS = {"accelerator": "accelerator", "devices": "devices", "num_nodes": "num_nodes", "strategy": "strategy",
                "precision": "precision", "max_epochs": "max_epochs", "max_steps": "max_steps"}
RESUME_FORBIDDEN = ("task", "model", "config", "set", "seed", "experiment", "run_name", "print_config", "from_run")


def stored_config(uri: str, run_id: str, ckpt: Path | None) -> RunConfig:
    """The configuration a run was started with: its `config.yaml` artifact, else its checkpoint's."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            data = load_yaml(store.download_artifact(uri, run_id, "config.yaml", Path(tmp)))
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
    uri = uris.resolve_uri(getattr(args, "tracking_uri", None))
    probe.check_reachable(uri)
    run = store.find_run(uri, run_id)
    if run is None:  # an unknown run id is a tracking-store error (exit 5), as for every command (README)
        raise TrackingError(f"no run '{run_id}' in the MLflow store {uris.mask(uri)}.",
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
        if status == "RUNNING" and liveness.owner_alive(run.data.tags) is not False:
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
        tags = {**liveness.owner_tags(), "suite.resumed": str(int(run.data.tags.get("suite.resumed", "0")) + 1),
                "suite.git_commits": provenance.commit_history(run.data.tags)}
        if changes:
            tags["suite.resume_changes"] = ", ".join(f"trainer.{k}={v}" for k, v in changes.items())
        store.reopen_run(uri, run_id, tags)
    return train(cfg, resume_run_id=run_id, ckpt_path=ckpt)
