"""Export bundles: a run moved between MLflow stores and machines (`suite export`, `suite import`).

A bundle is a folder that holds everything about one run (docs/reproduction.md):

| file | what |
|---|---|
| `summary.json` | model, task, preset, recipe, seed, data source and generator parameters, best/val and best/test metric, best epoch, epochs done, finished or not, wall and GPU hours, device, suite version, git commit; the run's id, name, experiment, status and times; each file's size and SHA-256 |
| `config.yaml` | the resolved configuration (`suite run --config` repeats the run) |
| `metrics.csv` | one row per epoch: train/val/test loss and metric, learning rates, anything else logged per epoch |
| `metrics.jsonl` | every logged value (key, value, step, timestamp): the history `suite import` restores exactly |
| `params.json`, `tags.json` | the run's MLflow params and tags |
| `best.ckpt` | the best-validation checkpoint, without optimizer state (`suite eval` scores it) |
| `last.ckpt` | the resume point, with optimizer state: only while the run is not finished |
| `learning_curves.png` | when the run has it |

Checkpoints load with `torch.load(path, weights_only=True)`. `suite import DIR` recreates the run in any store as a
new run (same params, tags, metric history, start and end times; tags `suite.origin_run_id`, the first run's id,
and `suite.imported_from`, the bundle's), puts its checkpoints where `suite run --resume` finds them, and refuses
a bundle whose run is already in that store.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from suite import __version__
from suite.errors import BundleError
from suite.tracking import liveness, probe, provenance, store, uris

FORMAT = 1
REQUIRED = ("summary.json", "config.yaml", "metrics.jsonl", "params.json", "tags.json")
# Metrics that are not per epoch (step losses, data statistics, end-of-run results) stay out of metrics.csv.
NOT_PER_EPOCH = ("train/loss_step", "epoch")
NOT_PER_EPOCH_PREFIXES = ("best/", "data/")
# Tags MLflow sets itself; create_run writes them anew.
MLFLOW_OWN_TAGS = ("mlflow.runName", "mlflow.user", "mlflow.source.", "mlflow.log-model.", "mlflow.parentRunId")


# ------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------


def export(run_id: str, dest: Path, uri: str | None = None) -> Path:
    """Write the bundle of run `run_id` into the folder `dest` (created; a bundle of the same run there is replaced,
    anything else is refused). Returns `dest`."""
    from suite.train.record import run_checkpoint_dir

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = uris.resolve_uri(uri)
    probe.check_reachable(uri)
    run = store.get_run(uri, run_id)  # TrackingError (exit 5) for an unknown id
    status = run.info.status
    if status == "RUNNING" and liveness.owner_alive(run.data.tags) is not False:
        raise BundleError(f"run {run_id} is still RUNNING; its checkpoints change while it trains.",
                          hint="export it once it has stopped (finished, or --time-limit / Ctrl-C)")
    dest = Path(dest)
    _check_destination(dest, run_id, run.data.tags.get("suite.origin_run_id", run_id))
    ckpt_dir = run_checkpoint_dir(uri, run_id)
    finished = status == "FINISHED"
    with tempfile.TemporaryDirectory(dir=_existing_parent(dest), prefix=f".{dest.name}.") as tmp:
        out = Path(tmp)
        config = _write_config(uri, run_id, out / "config.yaml", ckpt_dir)
        records = store.metric_records(uri, run_id)
        with open(out / "metrics.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        rows = per_epoch_rows(records)
        _write_csv(out / "metrics.csv", rows)
        (out / "params.json").write_text(json.dumps(dict(sorted(run.data.params.items())), indent=1) + "\n")
        (out / "tags.json").write_text(json.dumps(dict(sorted(run.data.tags.items())), indent=1) + "\n")
        best = _best_checkpoint(uri, run_id, ckpt_dir, out)
        if best is not None:
            _write_without_optimizer(best, out / "best.ckpt")
        if not finished and (ckpt_dir / "last.ckpt").is_file():
            from suite.train.evaluate import read_checkpoint

            read_checkpoint(ckpt_dir / "last.ckpt")  # plain data, or a clear error now rather than on import
            shutil.copyfile(ckpt_dir / "last.ckpt", out / "last.ckpt")
        if store.has_artifact(uri, run_id, "learning_curves.png"):
            store.copy_artifact(uri, run_id, "learning_curves.png", out / "learning_curves.png")
        summary = _summary(uri, run, config, records, rows, finished)
        summary["files"] = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                            for p in sorted(out.iterdir()) if p.name != "summary.json"}
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        out.chmod(0o755)  # TemporaryDirectory makes it private
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)
        out.mkdir()  # TemporaryDirectory removes its folder at the end
    print(f"exported run {run_id} ({status}, {summary['epochs_done']} epochs) to {dest}", file=sys.stderr)
    return dest


def _existing_parent(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.parent


def _check_destination(dest: Path, run_id: str, origin: str) -> None:
    """`dest` may be missing, empty, or a bundle of the same run (an earlier export, replaced)."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise BundleError(f"{dest} is a file; a bundle is a folder.", hint="give a folder path for the bundle")
    if not any(dest.iterdir()):
        return
    summary = _read_summary(dest, strict=False)
    if summary is None or summary.get("origin_run_id") not in (origin, run_id) and summary.get("run_id") != run_id:
        raise BundleError(f"{dest} is not empty and holds no bundle of run {run_id}; nothing was written.",
                          hint="give a new or empty folder (an earlier bundle of the same run is replaced)")


def _write_config(uri: str, run_id: str, path: Path, ckpt_dir: Path) -> dict:
    """config.yaml from the run's artifact, else from its checkpoint; the configuration as a dict."""
    import yaml

    try:
        store.copy_artifact(uri, run_id, "config.yaml", path)
        return yaml.safe_load(path.read_text()) or {}
    except Exception:
        pass
    for name in ("last.ckpt", "best.ckpt"):
        if (ckpt_dir / name).is_file():
            from suite.train.evaluate import read_checkpoint

            config = read_checkpoint(ckpt_dir / name).get("suite_config")
            if config:
                path.write_text(yaml.safe_dump(config, sort_keys=False))
                return config
    raise BundleError(f"run {run_id} has neither a config.yaml artifact nor a checkpoint; it cannot be exported.",
                      hint="it was not started by `suite run`, or failed before its configuration was logged")


def _best_checkpoint(uri: str, run_id: str, ckpt_dir: Path, tmp: Path) -> Path | None:
    if (ckpt_dir / "best.ckpt").is_file():
        return ckpt_dir / "best.ckpt"
    if store.has_artifact(uri, run_id, "checkpoints/best.ckpt"):
        return store.copy_artifact(uri, run_id, "checkpoints/best.ckpt", tmp / "best.from-artifact")
    return None


def _write_without_optimizer(src: Path, dest: Path) -> None:
    """The checkpoint without optimizer and scheduler state (a third of its size): weights, config, loop state."""
    import torch

    from suite.train.evaluate import read_checkpoint

    state = read_checkpoint(src)
    state["optimizer_states"] = []
    state["lr_schedulers"] = []
    torch.save(state, dest)
    if src.name.endswith(".from-artifact"):
        src.unlink()


def per_epoch_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch: `epoch`, `step` (the step its evaluation was logged at) and every per-epoch metric. A value
    logged at an epoch's evaluation step belongs to that epoch; one logged between two (the learning rate, logged
    as an epoch starts) to the epoch that follows."""
    epoch_at = {r["step"]: int(r["value"]) for r in records if r["key"] == "epoch"}
    ends = sorted({r["step"] for r in records if r["key"] == "val/loss"})  # one validation per epoch
    rows: dict[int, dict[str, Any]] = {}
    for i, step in enumerate(ends):
        rows[i] = {"epoch": epoch_at.get(step, i), "step": step}
    for r in sorted(records, key=lambda r: (r["step"], r["timestamp"])):
        key = r["key"]
        if key in NOT_PER_EPOCH or key.startswith(NOT_PER_EPOCH_PREFIXES):
            continue
        index = ends.index(r["step"]) if r["step"] in ends else sum(1 for e in ends if e < r["step"])
        if index in rows:
            rows[index][key] = r["value"]
    return [rows[i] for i in sorted(rows)]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = sorted({k for row in rows for k in row} - {"epoch", "step"})
    order = sorted(keys, key=lambda k: (not k.startswith("train/"), not k.startswith("val/"),
                                         not k.startswith("test/"), k))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "step", *order])
        writer.writeheader()
        writer.writerows(rows)


def _summary(uri: str, run, config: dict, records: list[dict], rows: list[dict], finished: bool) -> dict[str, Any]:
    from suite.train.record import best_epoch_metrics

    tags, params = run.data.tags, run.data.params
    histories: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        histories.setdefault(r["key"], []).append((r["step"], r["value"]))
    metric = "rmse" if "val/rmse" in histories else "accuracy"
    logged_best = {k: v for k, v in run.data.metrics.items() if k.startswith("best/")}
    best = logged_best or best_epoch_metrics(histories, metric, metric == "accuracy")
    data = config.get("data") or {}
    wall = tags.get("suite.wall_seconds")
    gpu = tags.get("suite.gpu_seconds")
    trainer = config.get("trainer") or {}
    return {
        "format": FORMAT,
        "run_id": run.info.run_id,
        "origin_run_id": tags.get("suite.origin_run_id", run.info.run_id),
        "run_name": run.info.run_name,
        "experiment": store.experiment_name(uri, run.info.experiment_id),
        "status": run.info.status,
        "finished": finished,
        "start_time": _iso(run.info.start_time),
        "end_time": _iso(run.info.end_time),
        "start_time_ms": run.info.start_time,
        "end_time_ms": run.info.end_time,
        "task": tags.get("suite.task", config.get("task")),
        "model": tags.get("suite.model", (config.get("model") or {}).get("name")),
        "preset": tags.get("suite.preset", config.get("preset")),
        "recipe": tags.get("suite.recipe", config.get("recipe")),
        "seed": config.get("seed"),
        "data_source": tags.get("suite.data_source", data.get("source")),
        "data": _data_summary(tags.get("suite.task", config.get("task")), data),
        "metric": metric,
        "best": {k[len("best/"):]: v for k, v in sorted(best.items())},
        "epochs_done": len(histories.get(f"val/{metric}", [])),
        "max_epochs": trainer.get("max_epochs"),
        "global_step": max((r["step"] for r in records), default=0),
        "wall_hours": None if wall is None else round(float(wall) / 3600, 4),
        "gpu_hours": None if gpu is None else round(float(gpu) / 3600, 4),
        "device": tags.get("suite.device"),
        "devices": params.get("trainer.devices"),
        "num_nodes": params.get("trainer.num_nodes"),
        "suite_version": tags.get("suite.version"),
        "git_commit": tags.get("suite.git_commit"),
        "git_commits": provenance.run_commits(tags),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "exported_by": {"suite_version": __version__, "git_commit": provenance.git_commit()},
    }


def _data_summary(task: str | None, data: dict) -> dict[str, Any]:
    """The data options that say which data the run saw: source, length, and the generator of its task."""
    out = {k: data[k] for k in ("source", "l_max") if k in data}
    if task == "listops" and "generator" in data:
        out["generator"] = data["generator"]
    if task in ("pathfinder", "pathx") and "pathfinder" in data:
        out["pathfinder"] = data["pathfinder"]
    return out


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# import
# ------------------------------------------------------------------------------------------------


def _read_summary(src: Path, strict: bool = True) -> dict | None:
    path = src / "summary.json"
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict) or "run_id" not in summary:
            raise ValueError("not a bundle summary")
        return summary
    except (OSError, ValueError) as exc:
        if not strict:
            return None
        what = "has no summary.json" if not path.exists() else f"has an unreadable summary.json ({exc})"
        raise BundleError(f"{src} {what}: it is not a bundle written by `suite export`.",
                          hint="give the folder `suite export RUN_ID DIR` wrote (it holds summary.json, config.yaml, "
                               "metrics.jsonl, ...)") from None


def verify(src: Path) -> dict:
    """The bundle's summary, after checking that it is complete and every file is as exported (size, SHA-256)."""
    src = Path(src)
    if not src.is_dir():
        raise BundleError(f"no bundle at {src}: " + ("it is a file, not a folder." if src.exists()
                                                      else "no such folder."),
                          hint="give the folder `suite export RUN_ID DIR` wrote")
    summary = _read_summary(src)
    if summary.get("format") != FORMAT:
        raise BundleError(f"{src} is a bundle of format {summary.get('format')!r}; this suite reads format {FORMAT}.",
                          hint="import it with the suite version that wrote it "
                               f"({summary.get('exported_by', {}).get('suite_version', '?')})")
    files = summary.get("files") or {}
    for name in REQUIRED:
        if name != "summary.json" and name not in files:
            raise BundleError(f"the bundle {src} lists no {name}; it is incomplete.",
                              hint="export the run again with `suite export`")
    for name, meta in files.items():
        path = src / name
        if not path.is_file():
            raise BundleError(f"the bundle {src} lacks {name}, which its summary.json lists.",
                              hint="copy the whole folder again, or export the run again")
        if path.stat().st_size != meta.get("bytes") or _sha256(path) != meta.get("sha256"):
            raise BundleError(f"{path} is not the file that was exported (size or SHA-256 differs): the bundle is "
                              "corrupt or was changed.", hint="copy the bundle again from its source, or export the "
                                                              "run again")
    return summary


def import_bundle(src: Path, uri: str | None = None) -> str:
    """Recreate the bundle's run in the store `uri`; return the new run id."""
    from suite.train.record import run_checkpoint_dir

    src = Path(src)
    summary = verify(src)
    uri = uris.resolve_uri(uri)
    origin = summary.get("origin_run_id") or summary["run_id"]
    experiment_id = store.ensure_experiment(uri, summary.get("experiment") or "Default")
    present = store.runs_from(uri, origin)
    if present:
        raise BundleError(f"run {origin} is already in {uris.mask(uri)} (as run {present[0]}); importing it again "
                          "would make a second copy.",
                          hint=f"use run {present[0]}, or delete it first (mlflow runs delete --run-id {present[0]} "
                               f"--backend-store-uri {uris.mask(uri)}) to import this bundle instead")
    tags = {k: v for k, v in json.loads((src / "tags.json").read_text()).items()
            if not k.startswith(MLFLOW_OWN_TAGS)}
    tags.update({"suite.origin_run_id": origin, "suite.imported_from": summary["run_id"]})
    params = json.loads((src / "params.json").read_text())
    records = [json.loads(line) for line in (src / "metrics.jsonl").read_text().splitlines() if line.strip()]
    new_id = store.import_run(uri, experiment_id, summary.get("run_name"), tags, params, records,
                              summary.get("start_time_ms"))
    try:
        store.log_artifact(uri, new_id, src / "config.yaml")
        if (src / "learning_curves.png").is_file():
            store.log_artifact(uri, new_id, src / "learning_curves.png")
        ckpt_dir = run_checkpoint_dir(uri, new_id)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if (src / "best.ckpt").is_file():
            shutil.copyfile(src / "best.ckpt", ckpt_dir / "best.ckpt")
            if summary.get("finished"):
                store.log_artifact(uri, new_id, ckpt_dir / "best.ckpt", "checkpoints")
        if (src / "last.ckpt").is_file():
            relocate_checkpoint(src / "last.ckpt", ckpt_dir / "last.ckpt")
        status = "FINISHED" if summary.get("finished") else "KILLED"
        store.end_run(uri, new_id, status, summary.get("end_time_ms"))
    except BaseException:
        store.delete_run(uri, new_id)
        shutil.rmtree(run_checkpoint_dir(uri, new_id), ignore_errors=True)
        raise
    from suite.train.timelimit import resume_command

    print(f"imported run {summary['run_id']} ({summary.get('run_name')}, {summary.get('epochs_done')} epochs, "
          f"{status}) as run {new_id} in {uris.mask(uri)}", file=sys.stderr)
    if status != "FINISHED":
        print(f"continue it with: {resume_command(new_id, uri)}", file=sys.stderr)
    print(new_id)
    return new_id


def relocate_checkpoint(src: Path, dest: Path) -> None:
    """Copy a resume checkpoint to `dest`, with the paths ModelCheckpoint keeps (its folder, best.ckpt) moved to
    `dest`'s folder: Lightning restores the best score only when the folder is unchanged, and without it the first
    epoch after the resume would overwrite best.ckpt whatever its score."""
    import torch

    from suite.train.evaluate import read_checkpoint

    state = read_checkpoint(src)
    new_dir = str(dest.parent.resolve())
    for key, cb in (state.get("callbacks") or {}).items():
        if not key.startswith("ModelCheckpoint") or not isinstance(cb, dict) or not cb.get("dirpath"):
            continue
        old_dir = str(cb["dirpath"])

        def moved(path: Any) -> Any:
            return new_dir + path[len(old_dir):] if isinstance(path, str) and path.startswith(old_dir) else path

        cb["dirpath"] = new_dir
        for field in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if field in cb:
                cb[field] = moved(cb[field])
        if isinstance(cb.get("best_k_models"), dict):
            cb["best_k_models"] = {moved(k): v for k, v in cb["best_k_models"].items()}
    tmp = dest.with_name(dest.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(dest)
