"""The runs a table is made of, and which configuration each one ran.

    collect        the FINISHED `suite run` runs of one experiment from MLflow (sweep trials, study runs and
                   diverged runs left out), with their params (the flattened resolved configuration) and tags
    bundle_record  a committed run (suite.report.bundled) as such a run, finished or not
    config_diff    what sets a run's configuration apart from its recipe preset: runs with the same task, model,
                   preset, data source and diff are one configuration except the seed (one row of a table)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from suite.errors import TrackingError, UnknownNameError
from suite.gpus import one_device
from suite.tracking import probe, store, uris


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    name: str
    task: str
    model: str
    preset: str
    seed: str
    data_source: str
    start_time: int
    metrics: dict[str, float]
    params: dict[str, str] = field(default_factory=dict)  # the flattened resolved configuration, as logged
    recipe: str = ""  # tag suite.recipe (liquid_s4, s4); "" for runs made before it existed
    resume_changes: str = ""  # tag suite.resume_changes: "trainer.max_epochs=6, ..." (params keep the first value)
    origin: str = ""  # the first run's id (tag suite.origin_run_id of an imported run, else its own id)
    bundle: Any = None  # a committed run (suite.report.bundled.BundleRun) read from its bundle, not from a store


@dataclass
class Collected:
    runs: list[RunRecord]
    notes: list[str]
    store_exists: bool = True


def is_sweep_trial(tags: dict[str, str]) -> bool:
    return "mlflow.parentRunId" in tags or "suite.sweep.trial" in tags


def diverged(metrics: dict[str, float]) -> bool:
    """A NaN or infinite result or loss: `best/*`, or the last `<split>/loss` of any split. Runs made since the
    evaluation guard (suite/train/guards.py) end FAILED instead; older ones can be FINISHED with such numbers."""
    return any(not math.isfinite(v) for k, v in metrics.items() if k.startswith("best/") or k.endswith("/loss"))


def collect(uri: str, experiment: str, filter_text: str | None = None, include_trials: bool = False,
            explicit_experiment: bool = False) -> Collected:
    """FINISHED runs of `experiment` that carry suite.task, newest first. Never creates a store."""
    db = uris.sqlite_path(uri)
    if db is not None and not db.exists():
        return Collected([], [f"no MLflow store at {db} yet"], store_exists=False)
    probe.check_reachable(uri)
    try:
        exp_id = store.experiment_id(uri, experiment)
    except Exception as exc:  # a file that is not an MLflow database, a server that refuses
        raise TrackingError(f"cannot read the MLflow store {uris.mask(uri)}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}",
                            hint="check --tracking-uri / MLFLOW_TRACKING_URI") from None
    if exp_id is None:
        if explicit_experiment:
            names = store.experiment_names(uri)
            raise UnknownNameError(f"no experiment '{experiment}' in {uris.mask(uri)}.",
                                   hint=f"experiments there: {', '.join(names) or 'none'}")
        return Collected([], [f"no experiment '{experiment}' in the store yet"])
    found = store.finished_runs(uri, exp_id, filter_text)
    parents = {r.data.tags.get("mlflow.parentRunId") for r in found}
    runs, trials, studies, broken = [], 0, 0, 0
    for r in found:
        tags = r.data.tags
        if "suite.task" not in tags:
            continue
        if r.info.run_id in parents or (any(k.startswith("suite.sweep") for k in tags) and not is_sweep_trial(tags)):
            studies += 1  # a sweep's study run repeats its best trial's numbers
            continue
        if is_sweep_trial(tags) and not include_trials:
            trials += 1
            continue
        if diverged(r.data.metrics):
            broken += 1
            continue
        runs.append(RunRecord(
            run_id=r.info.run_id, name=r.info.run_name or "", task=tags["suite.task"],
            model=tags.get("suite.model", "?"), preset=tags.get("suite.preset", "?"),
            seed=tags.get("suite.seed", r.info.run_id), data_source=tags.get("suite.data_source", "unknown"),
            start_time=r.info.start_time or 0, metrics=dict(r.data.metrics), params=dict(r.data.params),
            recipe=tags.get("suite.recipe", ""), resume_changes=tags.get("suite.resume_changes", ""),
            origin=tags.get("suite.origin_run_id", r.info.run_id)))
    notes = []
    if trials:
        notes.append(f"{trials} sweep trial run(s) left out (tuning runs, not results; --include-trials counts them)")
    if studies:
        notes.append(f"{studies} sweep study run(s) left out (they repeat their best trial)")
    if broken:
        notes.append(f"{broken} FINISHED run(s) with a NaN or infinite loss or result left out "
                     "(diverged: not a result)")
    return Collected(runs, notes)


def bundle_record(b) -> RunRecord:
    """A committed run (suite.report.bundled.BundleRun) as a run of the store: its validation-selected numbers as
    `best/*` metrics, the number of samples each split was scored on, its params and tags. Finished or not."""
    s, tags = b.summary, b.tags
    metrics = b.best()
    for split in ("val", "test", "test8k"):
        size = b.last(f"{split}/n_samples")
        if size is not None:
            metrics[f"{split}/n_samples"] = size
    return RunRecord(
        run_id=s["run_id"], name=b.name, task=b.task, model=str(s.get("model") or tags.get("suite.model", "?")),
        preset=str(s.get("preset") or tags.get("suite.preset", "?")),
        seed=str(s.get("seed", tags.get("suite.seed", s["run_id"]))),
        data_source=str(s.get("data_source") or tags.get("suite.data_source", "unknown")),
        start_time=int(s.get("start_time_ms") or 0), metrics=metrics, params=dict(b.params),
        recipe=str(s.get("recipe") or tags.get("suite.recipe", "")),
        resume_changes=tags.get("suite.resume_changes", ""),
        origin=str(s.get("origin_run_id") or s["run_id"]), bundle=b)


# ------------------------------------------------------------------------------------------------
# configurations: a row of ours is one resolved configuration except the seed
# ------------------------------------------------------------------------------------------------

# Params that do not change the number a run reports, left out when runs are grouped into rows:
# the seed (rows pool seeds), where things are stored or shown (tracking.*, data.root, progress bar,
# logging and checkpoint cadence), data-loading workers, the device kind (CPU, GPU: same computation),
# the evaluation batch size (evaluation is per sample), CUDA graphs (a replay of the same network),
# torch.compile (the same network, fused kernels: tests/suite/test_compile.py), the SSM's kernel backend
# (the same computation: tests/models/test_fast_paths.py) and n_params (follows from the configuration).
# Everything else, including trainer.devices (1 and auto read the same: one GPU) and num_nodes (the effective
# batch size under DDP) and precision, splits rows.
IGNORED_PARAMS = frozenset({
    "seed", "n_params", "data.root", "trainer.progress_bar", "trainer.progress_every_seconds",
    "trainer.num_workers", "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps",
    "trainer.checkpoint_every_minutes", "trainer.accelerator", "trainer.eval_batch_size", "trainer.cuda_graph",
    "trainer.cuda_graph_scope", "trainer.compile", "model.backend", "data.pathfinder.workers",
    "data.generator.workers", "trainer.time_limit"})
IGNORED_PREFIXES = ("tracking.",)


def counts(key: str) -> bool:
    """Whether param `key` takes part in grouping runs into rows."""
    return key not in IGNORED_PARAMS and not key.startswith(IGNORED_PREFIXES)


def run_config(run: RunRecord) -> dict[str, str] | None:
    """The run's configuration as logged (params), with the changes of `suite run --resume` applied; None when
    the run logged no params (then its configuration is unknown)."""
    if not run.params:
        return None
    cfg = {k: v for k, v in run.params.items() if counts(k)}
    for change in filter(None, (c.strip() for c in run.resume_changes.split(","))):
        key, _, value = change.partition("=")
        if counts(key):
            cfg[key] = value
    if one_device(cfg.get("trainer.devices", "")):  # 1, "1," and auto (the default) are one GPU (suite/gpus.py)
        cfg["trainer.devices"] = "auto"
    return cfg


@lru_cache(maxsize=None)
def recipe_config(task: str, model: str, preset: str, recipe: str | None = None) -> tuple[tuple[str, str], ...] | None:
    """What `suite run --task T --model M --preset P` logs today without options, stringified as params are
    (suite.tracking); None when that no longer resolves (a preset or model since renamed)."""
    from suite.config import flatten, resolve, to_dict

    try:
        cfg = flatten(to_dict(resolve(task, model, preset, recipe=recipe or None)))
    except Exception:  # noqa: BLE001 - any failure means: no recipe to compare with
        return None
    return tuple(sorted((k, store.param_value(v)) for k, v in cfg.items() if counts(k)))


def config_diff(run: RunRecord) -> tuple[str, ...]:
    """What sets the run's configuration apart from its recipe preset, as `key=value` texts (sorted): runs with
    the same task, model, preset and diff have the same configuration except the seed. A key the run did not log
    reads `key=(not logged)`. No params: ("config not logged",); no recipe to compare with: ("config <hash>",).
    `data.source` is left out: the data source is a part of the row's key and label of its own ("generated data")."""
    cfg = run_config(run)
    if cfg is None:
        return ("config not logged",)
    ref = recipe_config(run.task, run.model, run.preset, run.recipe)
    if ref is None:
        digest = hashlib.sha1(repr(sorted(cfg.items())).encode()).hexdigest()[:8]
        return (f"config {digest}",)
    ref_map = dict(ref)
    out = [f"{k}={v}" for k, v in sorted(cfg.items()) if ref_map.get(k) != v and k != "data.source"]
    out += [f"{k}=(not logged)" for k in sorted(ref_map) if k not in cfg and k != "data.source"]
    return tuple(out)
