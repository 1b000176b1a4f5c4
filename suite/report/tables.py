"""Paper-style results tables: our runs, mean ± std over seeds, beside the published numbers.

    collect  the FINISHED `suite run` runs of one family from MLflow (sweep trials and diverged runs left
             out), with their params (the flattened resolved configuration) and tags; and the committed
             runs, the export bundles under results/reproduction read from their files (suite.report.bundled),
             finished or not
    build    rows of cells: published rows (results/paper.yaml); our rows, one per resolved configuration
             except the seed (see `config_diff`), labelled by what differs from the recipe; a Δ row under
             each of ours that has a published counterpart (`Counterpart`); the committed runs in a block
             of their own (epochs done, unfinished runs apart); best per column, never from a
             smoke-sized test set (MIN_TEST_SAMPLES)
    render   Markdown (tabulate), LaTeX (pandas Styler, booktabs), tidy CSV, HTML (for `suite report`)

Cells hold numbers in the table's unit (accuracy in %, RMSE as is); a missing cell is None and is
printed as "–", never as 0. An own cell says its number of seeds and the size of the test set its
runs were scored on (metric `<split>/n_samples`).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from suite import registry
from suite.report import bundled
from suite.tracking import probe, store, uris
from suite.errors import ConfigError, TrackingError, UnknownNameError
from suite.paths import RESULTS_DIR

PAPER_FILE = RESULTS_DIR / "paper.yaml"
MISSING = "–"
FAILED = "✗"
UNVERIFIED = "†"
CHANCE = {"pathx": 50.0}  # what the papers count a failed (✗) cell as in their Avg

# ------------------------------------------------------------------------------------------------
# columns: what each family's table shows, in the paper's order
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str  # a task name, or "avg"
    label: str
    sources: tuple[tuple[str, str], ...]  # (task, run metric) pairs whose values fill it; () for avg
    higher_is_better: bool = True
    percent: bool = True  # accuracy (fraction in MLflow) shown in %; RMSE shown as is

    @property
    def decimals(self) -> int:
        return 2 if self.percent else 3


def headline(task: str) -> str:
    """The run metric a task is judged by: best/<split>/<metric> (split "test", "test8k" for speech8k)."""
    e = registry.task(task)
    return f"best/{getattr(e, 'split', 'test')}/{e.metric}"


def _task_column(task: str, label: str, extra: tuple[tuple[str, str], ...] = ()) -> Column:
    accuracy = registry.task(task).metric == "accuracy"
    return Column(task, label, ((task, headline(task)), *extra), accuracy, accuracy)


LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")


def family_columns(family: str) -> list[Column]:
    if family == "lra":
        labels = ("ListOps", "Text", "Retrieval", "Image", "Pathfinder", "Path-X")
        return [*(_task_column(t, lab) for t, lab in zip(LRA_TASKS, labels)), Column("avg", "Avg", ())]
    if family == "scifar":
        return [_task_column("scifar", "sCIFAR")]
    if family == "speech":
        # Every speech run also logs the 8 kHz zero-shot accuracy; speech8k runs have it as their headline.
        return [_task_column("speech", "16 kHz"),
                _task_column("speech8k", "8 kHz (zero-shot)", (("speech", "best/test8k/accuracy"),))]
    if family == "bidmc":
        return [_task_column("bidmc_hr", "HR"), _task_column("bidmc_rr", "RR"), _task_column("bidmc_spo2", "SpO2")]
    raise UnknownNameError(f"unknown table family '{family}'.", hint="families: lra, scifar, speech, bidmc")


FAMILIES = ("lra", "scifar", "speech", "bidmc")
TITLES = {
    "lra": "Long Range Arena: test accuracy (%)",
    "scifar": "Sequential CIFAR-10: test accuracy (%)",
    "speech": "Speech Commands, 35 classes from raw audio: test accuracy (%)",
    "bidmc": "BIDMC vital signs: test RMSE (lower is better)",
}

# ------------------------------------------------------------------------------------------------
# collect: finished runs from MLflow
# ------------------------------------------------------------------------------------------------


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
    evaluation guard (suite/guards.py) end FAILED instead; older ones can be FINISHED with such numbers."""
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
    """A committed run (suite.report.bundled.BundleRun) as a run of the store: its validation-selected numbers as `best/*`
    metrics, the number of samples each split was scored on, its params and tags. Finished or not."""
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
# the evaluation batch size (evaluation is per sample), CUDA graphs (a replay of the same network)
# and n_params (follows from the configuration). Everything else, including trainer.devices and
# num_nodes (the effective batch size under DDP) and precision, splits rows.
IGNORED_PARAMS = frozenset({
    "seed", "n_params", "data.root", "trainer.progress_bar", "trainer.progress_every_seconds", "trainer.num_workers", "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_steps", "trainer.checkpoint_every_minutes", "trainer.accelerator",
    "trainer.eval_batch_size", "trainer.cuda_graph", "data.pathfinder.workers", "data.generator.workers",
    "trainer.time_limit"})
IGNORED_PREFIXES = ("tracking.",)
SHOWN_DIFFS = 3  # a row label names at most this many differences; the CSV column `config` has them all


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


# ------------------------------------------------------------------------------------------------
# published rows
# ------------------------------------------------------------------------------------------------

# The params a published row's counterpart is told apart by (see results/paper.yaml, `counterparts`).
COUNTERPART_PARAMS = {"init": "model.init", "liquid_mode": "model.liquid_mode", "liquid": "model.liquid_kernel"}
FROM_PAPER = {"abstract": "the paper's abstract", "text": "the paper's text"}  # results/paper.yaml `from_paper`


@dataclass(frozen=True)
class Counterpart:
    """Which of our runs a published row is the result of: model, recipe (tag suite.recipe) and, where given,
    the S4D init (param model.init), the Liquid-S4 mode (model.liquid_mode) and whether the liquid term is on
    (model.liquid_kernel other than 'none')."""

    model: str
    recipe: str
    init: str | None = None
    liquid_mode: str | None = None
    liquid: bool | None = None

    def matches(self, run: RunRecord) -> bool:
        if (run.model, run.recipe) != (self.model, self.recipe):
            return False
        cfg = run_config(run) or {}
        wanted = {COUNTERPART_PARAMS[k]: v for k, v in (("init", self.init), ("liquid_mode", self.liquid_mode))
                  if v is not None}
        if any(cfg.get(k) != v for k, v in wanted.items()):
            return False
        if self.liquid is not None:
            kernel = cfg.get(COUNTERPART_PARAMS["liquid"])
            return kernel is not None and (kernel != "none") == self.liquid
        return True


@dataclass(frozen=True)
class PaperRow:
    name: str
    values: dict[str, float]
    failed: tuple[str, ...]
    source: str
    unverified: bool  # the values not in `from_paper` come from a secondary source, unverified (marked †)
    counterparts: tuple[Counterpart, ...]
    from_paper: dict[str, str] = field(default_factory=dict)  # column -> "abstract" or "text"

    def is_unverified(self, column: str) -> bool:
        return self.unverified and column not in self.from_paper


def _counterparts(item: dict, where: str) -> tuple[Counterpart, ...]:
    out = []
    for spec in item.get("counterparts", []):
        allowed = {"model", "recipe", *COUNTERPART_PARAMS}
        if not isinstance(spec, dict) or not {"model", "recipe"} <= set(spec) or set(spec) - allowed:
            raise ConfigError(f"{where}: counterpart {spec!r} needs `model` and `recipe` and may add only "
                              f"{', '.join(COUNTERPART_PARAMS)}.",
                              hint="e.g. {model: s4d, recipe: s4, init: legs}")
        if spec["model"] not in registry.MODELS:
            raise ConfigError(f"{where}: unknown model '{spec['model']}' in `counterparts`.",
                              hint=f"models: {', '.join(registry.MODELS)}")
        out.append(Counterpart(**{k: (str(v) if k != "liquid" else bool(v)) for k, v in spec.items()}))
    return tuple(out)


def load_paper(family: str, path: Path = PAPER_FILE) -> list[PaperRow]:
    """The published rows of a family, checked against the table's columns and the model registry."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"published results file {path} is missing.",
                          hint="restore it: git checkout results/paper.yaml")
    data = yaml.safe_load(path.read_text()) or {}
    keys = {c.key for c in family_columns(family)}
    rows, seen = [], {}
    for i, item in enumerate(data.get(family, [])):
        where = f"{path}: {family} row {i + 1} ({item.get('name', 'no name')})"
        unknown = (set(item.get("values", {})) | set(item.get("failed", [])) | set(item.get("from_paper", {}))) - keys
        bad_source = {v for v in item.get("from_paper", {}).values()} - set(FROM_PAPER)
        if "name" not in item or unknown or bad_source:
            problem = ("has no name" if "name" not in item else f"unknown columns {sorted(unknown)}" if unknown
                       else f"unknown `from_paper` places {sorted(bad_source)}")
            raise ConfigError(f"{where}: {problem}.", hint=f"columns of {family}: {', '.join(sorted(keys))}; "
                                                           f"from_paper places: {', '.join(FROM_PAPER)}")
        counterparts = _counterparts(item, where)
        for c in counterparts:
            if c in seen:
                raise ConfigError(f"{where}: counterpart {c} is already the counterpart of '{seen[c]}'.",
                                  hint="each (model, recipe, init, liquid_mode, liquid) in one row per family")
            seen[c] = item["name"]
        rows.append(PaperRow(item["name"], {k: float(v) for k, v in item.get("values", {}).items()},
                             tuple(item.get("failed", [])), item.get("source", ""), bool(item.get("unverified")),
                             counterparts, dict(item.get("from_paper", {}))))
    return rows


# ------------------------------------------------------------------------------------------------
# build: rows of cells
# ------------------------------------------------------------------------------------------------

RELEASE = "release"  # the block of the published rows and of our paper-preset runs on the release data
REPRODUCTION = "reproduction"  # the block of the committed runs (export bundles under results/reproduction)
# A test set smaller than this is a smoke-sized one: marked as such and never bold. Below 1000 samples the binomial
# standard error of an accuracy near 50 % is above 1.5 points (sqrt(0.25 / 1000) = 1.58 %), more than the gaps
# between the published rows a bold number would claim to beat; a smoke preset scores 128 samples (Path-X: 2).
MIN_TEST_SAMPLES = 1000


@dataclass(frozen=True)
class Cell:
    mean: float | None = None
    std: float | None = None  # sample std over seeds (n >= 2)
    n: int = 0  # seeds behind an own cell; 0 for a published or derived number
    failed: bool = False  # published as ✗
    runs: tuple[RunRecord, ...] = ()  # the runs behind an own cell, one per seed
    test_sizes: tuple[int, ...] = ()  # distinct numbers of test samples the runs were scored on (sorted)
    unverified: bool = False  # a published number from a secondary source (†)
    small: bool = False  # scored on fewer than MIN_TEST_SAMPLES test samples (an Avg: one of its tasks was)

    @property
    def progress(self) -> str:
        """Committed runs: "40/40 epochs", "12/40 epochs, unfinished" (several runs: each distinct text once)."""
        return ", ".join(dict.fromkeys(r.bundle.progress_text() for r in self.runs if r.bundle is not None))


@dataclass
class Row:
    label: str
    kind: str  # "paper", "ours", "delta", or "heading" (a block's title, no cells)
    block: str  # RELEASE, REPRODUCTION, or "<preset> preset, <source> data" for our other runs
    cells: dict[str, Cell]
    model: str = ""
    preset: str = ""
    data_source: str = ""
    source: str = ""  # published rows: where the numbers come from
    unverified: bool = False
    compare: str = ""  # own rows and Δ rows: name of the published row compared with
    published: str = ""  # published rows: their name in results/paper.yaml
    recipe: str = ""
    config: tuple[str, ...] = ()  # own rows: what differs from the recipe preset (config_diff)
    bold: set[str] = field(default_factory=set)


@dataclass
class Table:
    family: str
    title: str
    columns: list[Column]
    rows: list[Row]
    caption: str
    notes: list[str]
    n_runs: int  # runs of the store behind our cells
    store: str
    experiment: str
    n_bundles: int = 0  # committed runs (bundles) behind the reproduction block
    bundles: str = ""  # the folder they were read from, as shown

    @property
    def own_rows(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "ours"]


def split_of(metric: str) -> str:
    """best/<split>/<metric> -> <split>."""
    return metric.split("/")[1]


def _own_label(model: str, recipe: str, preset: str, source: str, config: tuple[str, ...]) -> str:
    qualifiers = ([f"{recipe} recipe"] if recipe else []) + ([] if preset == "paper" else [f"{preset} preset"]) + \
                 ([] if source == "release" else [f"{source} data"])
    shown = list(config[:SHOWN_DIFFS]) + ([f"+{len(config) - SHOWN_DIFFS} more"] if len(config) > SHOWN_DIFFS else [])
    text = ", ".join(qualifiers) + ("; " if qualifiers and shown else "") + ", ".join(shown)
    return model + (f" ({text})" if text else "")


def _own_cells(runs: list[RunRecord], columns: list[Column], keep_empty: bool = False) -> tuple[dict[str, Cell], int]:
    """Per column: mean ± std over seeds of the column's metric; the latest run of a seed counts. With `keep_empty`
    (committed runs), a run of the column's task without the metric yet (stopped before its first validation)
    still gets a cell, without a number, that shows how far it is."""
    cells, replaced = {}, 0
    for col in columns:
        per_seed: dict[str, RunRecord] = {}
        for task, metric in col.sources:
            for run in runs:  # newest first
                if run.task == task and (metric in run.metrics or keep_empty):
                    if run.seed in per_seed:
                        replaced += 1
                    else:
                        per_seed[run.seed] = run
        if not per_seed:
            continue
        chosen = tuple(per_seed.values())
        metric_of = dict(col.sources)
        scored = [r for r in chosen if metric_of[r.task] in r.metrics]
        if not scored:
            cells[col.key] = Cell(runs=chosen)
            continue
        values = [r.metrics[metric_of[r.task]] * (100.0 if col.percent else 1.0) for r in scored]
        sizes = tuple(sorted({int(s) for s in (r.metrics.get(f"{split_of(metric_of[r.task])}/n_samples")
                                               for r in scored) if s is not None}))
        std = statistics.stdev(values) if len(values) > 1 else None
        cells[col.key] = Cell(statistics.fmean(values), std, len(values), runs=chosen, test_sizes=sizes,
                              small=bool(sizes) and sizes[0] < MIN_TEST_SAMPLES)
    return cells, replaced


def _with_average(cells: dict[str, Cell], columns: list[Column]) -> dict[str, Cell]:
    """LRA Avg of our row: the mean of the six tasks, only when every task has a number."""
    if not any(c.key == "avg" for c in columns):
        return cells
    tasks = [c.key for c in columns if c.key != "avg"]
    if all(cells.get(t) and cells[t].mean is not None for t in tasks):
        return {**cells, "avg": Cell(statistics.fmean(cells[t].mean for t in tasks),
                                     small=any(cells[t].small for t in tasks))}
    return cells


def _mark_best(rows: list[Row], columns: list[Column]) -> None:
    """Bold the best number per column (max for accuracy, min for RMSE; ties all bold) among the published rows
    and our paper-preset runs on the release data scored on at least MIN_TEST_SAMPLES test samples. Other rows
    (smoke preset, generated data, committed runs on generated data) and smoke-sized cells are never bold."""
    candidates = [r for r in rows if r.block == RELEASE and r.kind in ("paper", "ours")]
    for col in columns:
        scored = [(round(r.cells[col.key].mean, col.decimals), r) for r in candidates
                  if col.key in r.cells and r.cells[col.key].mean is not None and not r.cells[col.key].small]
        if not scored:
            continue
        best = (max if col.higher_is_better else min)(v for v, _ in scored)
        for v, r in scored:
            if v == best:
                r.bold.add(col.key)


def caption(family: str, columns: list[Column], include_trials: bool = False, committed: bool = False) -> str:
    what = ("Test accuracy (%)" if columns[0].percent else "Test RMSE (lower is better)") + \
           " at the epoch of best validation"
    counted = ("FINISHED `suite run` or sweep trial per seed, the latest; failed, killed or diverged runs excluded"
               if include_trials else
               "FINISHED `suite run` per seed, the latest; sweep trials and failed, killed or diverged runs excluded")
    parts = [f"{what}; our rows: mean ± sample std over seeds (n = seeds; one {counted}); test = samples in the "
             f"test set each run was scored on; fewer than {MIN_TEST_SAMPLES} (a smoke preset scores 128, Path-X 2) "
             "is marked smoke-sized and never bold: its standard error is more than 1.5 points."]
    parts.append("A row of ours is one configuration except the seed: runs that differ in anything that can change "
                 "the number form their own row, labelled by their recipe (tag suite.recipe), preset, data and "
                 "what differs from the recipe preset.")
    if family == "lra":
        parts.append("Avg: mean of the six tasks, given only for rows with all six; the published Avg counts a "
                     f"failed Path-X ({FAILED}) as 50 % (chance), as the papers do.")
    if family == "speech":
        parts.append("8 kHz: the 16 kHz model tested zero-shot on audio resampled to 8 kHz (speech and speech8k runs; "
                     "one value per seed).")
    if committed:
        parts.append("Committed runs: the export bundles of runs committed to the repository (results/reproduction), "
                     "read from their files; a cell gives the epochs done of the recipe's epochs, an unfinished run "
                     "is a row of its own, marked; the notes give each run's draw of the data.")
    parts.append("Bold: best per column among the published rows and our paper-preset runs on the release data; "
                 "our other rows (smoke preset, generated data" + (", committed runs" if committed else "")
                 + ") are never bold.")
    parts.append("Δ: our mean minus the published row of the same model and recipe (results/paper.yaml, "
                 "`counterparts`); paper preset on the release data"
                 + (", and finished committed runs of the paper preset (on generated data: the published "
                    "experiment up to the draw of the data)." if committed else " only."))
    parts.append(f"{UNVERIFIED}: published number from a secondary source, unverified. {MISSING}: not run or not "
                 "reported.")
    return " ".join(parts)


def _published_rows(paper: list[PaperRow]) -> list[Row]:
    return [Row(p.name, "paper", RELEASE,
                {k: Cell(v, unverified=p.is_unverified(k)) for k, v in p.values.items()}  # Avg as given
                | {k: Cell(failed=True) for k in p.failed},
                source=p.source, unverified=p.unverified, published=p.name) for p in paper]


def _counterpart(runs: list[RunRecord], paper: list[PaperRow]) -> tuple[PaperRow | None, bool]:
    """The published row whose counterparts every run of a row matches; (None, True) when several do."""
    found = [p for p in paper if any(all(c.matches(r) for r in runs) for c in p.counterparts)]
    return (found[0], False) if len(found) == 1 else (None, len(found) > 1)


GroupKey = tuple[str, str, str, str, tuple[str, ...]]  # model, recipe, preset, data source, config diff


def _consistent(runs: list[RunRecord], diff: tuple[str, ...]) -> bool:
    """Whether every run's configuration has each `key=value` of `diff` (a key it lacks reads "(not logged)")."""
    for text in diff:
        key, _, value = text.partition("=")
        if any((run_config(r) or {}).get(key, "(not logged)") != value for r in runs):
            return False
    return True


def _merge_tasks(groups: dict[GroupKey, list[RunRecord]]) -> dict[GroupKey, list[RunRecord]]:
    """One row for runs of different tasks started with the same options. `--set trainer.max_epochs=1` differs
    from the ListOps smoke recipe (2 epochs) but not from Path-X's (1 epoch): their diffs differ, their settings
    do not. Two groups of the same model, recipe, preset and data with no task in common share a row when every
    run has every `key=value` of the union of their diffs; the row's diff is that union. Within a task (a cell)
    nothing is merged: runs of one cell keep one configuration."""
    merged: list[tuple[GroupKey, list[RunRecord]]] = []
    for key, runs in sorted(groups.items(), key=lambda kv: (len(kv[0][4]), kv[0][4])):
        base, diff = key[:4], key[4]
        tasks = {r.task for r in runs}
        for i, (other, members) in enumerate(merged):
            special = any(d.startswith("config ") for d in (*diff, *other[4]))  # not logged, or no recipe
            if other[:4] != base or special or tasks & {r.task for r in members}:
                continue
            union = tuple(sorted(set(diff) | set(other[4])))
            if _consistent(members + runs, union):
                merged[i] = ((*base, union), members + runs)
                break
        else:
            merged.append((key, list(runs)))
    return dict(merged)


def _group(runs: list[RunRecord]) -> dict[GroupKey, list[RunRecord]]:
    groups: dict[GroupKey, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault((r.model, r.recipe, r.preset, r.data_source, config_diff(r)), []).append(r)
    groups = _merge_tasks(groups)
    model_order = {m: i for i, m in enumerate(registry.MODELS)}

    def order(k: GroupKey):
        model, recipe, preset, source, diff = k
        return ((source, preset) != ("release", "paper"), source, preset != "paper", preset,
                model_order.get(model, 99), model, recipe, diff)

    return {k: sorted(groups[k], key=lambda r: -r.start_time) for k in sorted(groups, key=order)}


def _bundle_groups(runs: list[RunRecord]) -> list[tuple[GroupKey, list[RunRecord]]]:
    """Rows of the committed runs: finished runs grouped as the store's (one configuration except the seed, seeds
    pooled); an unfinished run is a row of its own (its number is not final, and another run stopped elsewhere
    is not comparable with it). In the models' order, a model's finished row first."""
    finished = [r for r in runs if r.bundle.finished]
    groups = [(k, v, False) for k, v in _group(finished).items()]
    groups += [((r.model, r.recipe, r.preset, r.data_source, config_diff(r)), [r], True)
               for r in sorted(runs, key=lambda r: r.name) if not r.bundle.finished]
    model_order = {m: i for i, m in enumerate(registry.MODELS)}
    groups.sort(key=lambda g: (model_order.get(g[0][0], 99), g[0][0], g[0][1], g[2]))
    return [(k, v) for k, v, _ in groups]


def _own_rows(key: GroupKey, cells: dict[str, Cell], block: str, ref: PaperRow | None, published: list[Row],
              label: str) -> list[Row]:
    """A row of ours and, when it has a published counterpart, its Δ row."""
    model, recipe, preset, source, diff = key
    rows = [Row(label, "ours", block, cells, model, preset, source, compare=ref.name if ref else "", recipe=recipe,
                config=diff)]
    if ref:
        ref_cells = next(r.cells for r in published if r.published == ref.name)
        delta = {k: Cell(c.mean - ref_cells[k].mean) for k, c in cells.items()
                 if k in ref_cells and ref_cells[k].mean is not None and c.mean is not None}
        rows.append(Row(f"Δ to {ref.name}", "delta", block, delta, model, preset, source, compare=ref.name,
                        recipe=recipe, config=diff))
    return rows


def _bundle_note(run: RunRecord) -> str:
    b = run.bundle
    best = b.best().get("best/epoch")
    parts = [f"committed run {b.name} ({run.task}, seed {run.seed}): {b.progress_text()}", b.data_text(),
             "no validation yet" if best is None else f"best validation at epoch {int(best)} (counted from 0)",
             b.hours_text(), f"bundle {bundled.shown(b.path)}"]
    return "; ".join(p for p in parts if p)


def build(family: str, uri: str, experiment: str | None = None, filter_text: str | None = None,
          include_trials: bool = False, paper_file: Path = PAPER_FILE, bundles: Path | None = None,
          use_bundles: bool = True) -> Table:
    """The table of a family: the published rows, our runs of the store, and the committed runs (the bundles below
    `bundles`, default results/reproduction; none with `use_bundles` False) in a block of their own."""
    columns = family_columns(family)
    paper = load_paper(family, paper_file)
    got = collect(uri, experiment or family, filter_text, include_trials, explicit_experiment=experiment is not None)
    tasks = {t for c in columns for t, _ in c.sources}
    committed = [bundle_record(b) for b in bundled.find(bundles) if b.task in tasks] if use_bundles else []
    origins = {r.origin for r in committed}
    runs = [r for r in got.runs if r.task in tasks]
    in_bundles = sum(r.origin in origins for r in runs)
    runs = [r for r in runs if r.origin not in origins]  # a committed run imported into the store: shown once

    published = _published_rows(paper)
    own: list[Row] = []
    used, replaced, without_metric, ambiguous = 0, 0, 0, 0
    for key, group in _group(runs).items():
        model, recipe, preset, source, diff = key
        cells, n_replaced = _own_cells(group, columns)
        replaced += n_replaced
        if not cells:
            without_metric += len(group)
            continue
        members = list({r.run_id: r for c in cells.values() for r in c.runs}.values())
        used += len(members)
        cells = _with_average(cells, columns)
        block = RELEASE if (source, preset) == ("release", "paper") else f"{preset} preset, {source} data"
        ref, several = _counterpart(members, paper) if block == RELEASE else (None, False)
        ambiguous += several
        own += _own_rows(key, cells, block, ref, published, _own_label(model, recipe, preset, source, diff))

    reproduction: list[Row] = []
    notes_committed: list[str] = []
    for key, group in _bundle_groups(committed):
        model, recipe, preset, source, diff = key
        cells, _ = _own_cells(group, columns, keep_empty=True)
        cells = _with_average(cells, columns)
        unfinished = not group[0].bundle.finished
        label = _own_label(model, recipe, preset, source, diff) + (f" [{group[0].name}, unfinished]"
                                                                   if unfinished else "")
        # Δ for finished runs of the paper preset: generated data of a task whose generator is the release's
        # (ListOps) is the published experiment up to the draw of the data.
        ref, several = _counterpart(group, paper) if preset == "paper" and not unfinished else (None, False)
        ambiguous += several
        reproduction += _own_rows(key, cells, REPRODUCTION, ref, published, label)
        notes_committed += [_bundle_note(r) for r in group]
    where = bundled.shown(bundles if bundles is not None else bundled.default_dir())
    if reproduction:
        reproduction.insert(0, Row(f"Committed runs ({where})", "heading", REPRODUCTION, {}))

    releases = [r for r in own if r.block == RELEASE]
    rows = published + releases + reproduction + [r for r in own if r.block != RELEASE]
    _mark_best(rows, columns)

    notes = list(got.notes)
    if not runs and not committed:
        notes.append("no finished runs yet: published rows only")
    elif not runs and not in_bundles:
        notes.append("no finished runs in the store yet: published rows and committed runs only")
    if without_metric:
        notes.append(f"{without_metric} finished run(s) without their task's best/* metric left out")
    if replaced:
        notes.append(f"{replaced} older or repeated run(s) of a seed left out (the latest run of each seed counts)")
    if ambiguous:
        notes.append(f"{ambiguous} row(s) match the counterparts of several published rows: no Δ "
                     "(fix results/paper.yaml)")
    if in_bundles:
        notes.append(f"{in_bundles} run(s) of the store are committed runs too (imported bundles): shown once, "
                     "in the committed block")
    notes += notes_committed
    return Table(family, TITLES[family], columns, rows, caption(family, columns, include_trials, bool(committed)),
                 notes, used, uris.mask(uri), experiment or family, len(committed), where if committed else "")


# ------------------------------------------------------------------------------------------------
# render
# ------------------------------------------------------------------------------------------------


SMALL = "smoke-sized"  # the mark of a cell scored on fewer than MIN_TEST_SAMPLES test samples


def test_size_text(sizes: tuple[int, ...]) -> str:
    """The test samples behind a cell: "test 2000", "test 128–256" when its runs differ, "test 2, smoke-sized"
    below MIN_TEST_SAMPLES; "" when not logged."""
    if not sizes:
        return ""
    text = "test " + (f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}{MISSING}{sizes[-1]}")
    return text + (f", {SMALL}" if sizes[0] < MIN_TEST_SAMPLES else "")


def cell_text(cell: Cell | None, col: Column, kind: str) -> str:
    if cell is not None and cell.mean is None and cell.runs:  # a committed run stopped before its first validation
        return f"{MISSING} ({cell.progress})"
    if cell is None or (cell.mean is None and not cell.failed):
        return MISSING
    if cell.failed:
        return FAILED
    d = col.decimals
    if kind == "delta":
        return f"{cell.mean:+.{d}f}"
    if cell.n == 0:
        return f"{cell.mean:.{d}f}" + (UNVERIFIED if cell.unverified else "") + (f" ({SMALL})" if cell.small else "")
    counts_text = ", ".join(filter(None, (f"n={cell.n}", test_size_text(cell.test_sizes), cell.progress)))
    if cell.std is None:
        return f"{cell.mean:.{d}f} ({counts_text})"
    return f"{cell.mean:.{d}f} ± {cell.std:.{d}f} ({counts_text})"


def text_grid(table: Table) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, cell texts and bold flags: the one layout every format renders."""
    header = ["Model", *(c.label for c in table.columns)]
    body = [[r.label, *("" if r.kind == "heading" else cell_text(r.cells.get(c.key), c, r.kind)
                        for c in table.columns)] for r in table.rows]
    bold = [[False, *(c.key in r.bold for c in table.columns)] for r in table.rows]
    return header, body, bold


def render_markdown(table: Table, heading: str = "###") -> str:
    from tabulate import tabulate

    header, body, bold = text_grid(table)
    body = [[f"**{t}**" if b else (f"*{t}*" if i == 0 and r.kind in ("delta", "heading") else t)
             for i, (t, b) in enumerate(zip(cells, flags))]
            for cells, flags, r in zip(body, bold, table.rows)]
    grid = tabulate(body, header, tablefmt="pipe", colalign=("left", *["right"] * len(table.columns)),
                    disable_numparse=True)
    lines = [f"{heading} {table.title}", "", sources_text(table), "", grid, "", table.caption]
    lines += [""] + [f"- {n}" for n in table.notes] if table.notes else []
    return "\n".join(lines) + "\n"


def sources_text(table: Table) -> str:
    """Where the rows of ours come from: "Store `…`, experiment `lra`, 17 run(s); 4 committed run(s) from `…`." """
    text = f"Store `{table.store}`, experiment `{table.experiment}`, {table.n_runs} run(s)"
    if table.n_bundles:
        text += f"; {table.n_bundles} committed run(s) from `{table.bundles}`"
    return text + "."


def html_text(text: str) -> str:
    """Text for HTML: escaped, with `code` spans (the Markdown of our captions and notes) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def render_html(table: Table, heading: str = "h3") -> str:
    header, body, bold = text_grid(table)
    e = html.escape
    out = [f"<{heading}>{e(table.title)}</{heading}>", f"<p>{html_text(sources_text(table))}</p>",
           f'<table class="results results-{table.family}">', "<thead><tr>",
           *(f"<th>{e(h)}</th>" for h in header), "</tr></thead>", "<tbody>"]
    for cells, flags, r in zip(body, bold, table.rows):
        if r.kind == "heading":
            out.append(f'<tr class="heading"><th colspan="{len(cells)}">{e(r.label)}</th></tr>')
            continue
        tds = [f"<td>{'<strong>' + e(t) + '</strong>' if b else e(t)}</td>" for t, b in zip(cells, flags)]
        out.append(f'<tr class="{r.kind}">{"".join(tds)}</tr>')
    out += ["</tbody>", "</table>", f"<p class=\"caption\">{html_text(table.caption)}</p>"]
    if table.notes:
        out += ["<ul>", *(f"<li>{html_text(n)}</li>" for n in table.notes), "</ul>"]
    return "\n".join(out) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_SYMBOLS = {"±": r"$\pm$", "–": "--", "✗": r"$\times$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "−": "$-$",
                "`": ""}


def tex(text: str) -> str:
    """Escape LaTeX's special characters and spell the non-ASCII symbols of our tables in LaTeX."""
    out = "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)
    for sym, rep in _TEX_SYMBOLS.items():
        out = out.replace(sym, rep)
    return out


def render_latex(table: Table, standalone: bool = False) -> str:
    """A booktabs `table` environment (pandas Styler), or with `standalone` a complete document."""
    import pandas as pd

    header, body, bold = text_grid(table)
    frame = pd.DataFrame([[tex(t) for t in row] for row in body], columns=[tex(h) for h in header])
    css = pd.DataFrame([["textbf:--rwrap;" if b else "" for b in row] for row in bold], columns=frame.columns)
    styler = frame.style.hide(axis="index").apply(lambda _: css, axis=None)
    latex = styler.to_latex(hrules=True, caption=tex(table.caption), label=f"tab:{table.family}",
                            position_float="centering", column_format="l" + "r" * len(table.columns))
    latex = _midrules_between_blocks(latex, table)
    preamble = f"% {table.title}; generated by `suite table {table.family} --format latex` from {table.store}\n" \
               "% needs \\usepackage{booktabs}\n"
    if not standalone:
        return preamble + latex
    return (preamble + "\\documentclass{article}\n\\usepackage{booktabs}\n"
            "\\usepackage[landscape,margin=1.5cm]{geometry}\n\\begin{document}\n\\footnotesize\n"
            "\\setlength{\\tabcolsep}{4pt}\n" + latex + "\\end{document}\n")


def _midrules_between_blocks(latex: str, table: Table) -> str:
    """Styler draws one \\midrule under the header; add one where a new block of rows starts."""
    lines = latex.splitlines()
    first = lines.index("\\midrule") + 1  # body rows follow, one line each
    for i in range(len(table.rows) - 1, 0, -1):
        if table.rows[i].block != table.rows[i - 1].block:
            lines.insert(first + i, "\\midrule")
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("model", "task", "data_source", "preset", "recipe", "config", "mean", "std", "n", "test_n", "paper",
              "diff", "paper_row", "unit", "failed", "unverified", "row", "run_ids", "smoke_sized", "epochs",
              "finished", "data_draw", "bundles")


def render_csv(table: Table) -> str:
    """Tidy long format: one line per (row, column) that has a number, or a committed run that has none yet;
    published rows have data_source 'published'. Committed runs: `epochs` (done/of the recipe, one per run),
    `finished`, `data_draw` and `bundles` (their folders); empty for the runs of the store."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    paper_cells = {r.published: r.cells for r in table.rows if r.kind == "paper"}
    for r in table.rows:
        if r.kind == "delta":
            continue
        for col in table.columns:
            cell = r.cells.get(col.key)
            if cell is None:
                continue
            ref = paper_cells.get(r.compare, {}).get(col.key)
            paper = ref.mean if ref is not None else None
            w.writerow({
                "model": r.model if r.kind == "ours" else r.published, "task": col.key,
                "data_source": r.data_source if r.kind == "ours" else "published", "preset": r.preset,
                "recipe": r.recipe, "config": "; ".join(r.config), "mean": _num(cell.mean), "std": _num(cell.std),
                "n": cell.n or "", "test_n": " ".join(map(str, cell.test_sizes)), "paper": _num(paper),
                "diff": _num(cell.mean - paper) if paper is not None and cell.mean is not None else "",
                "paper_row": r.compare, "unit": "%" if col.percent else "rmse", "failed": cell.failed,
                "unverified": cell.unverified, "row": r.label, "run_ids": " ".join(run.run_id for run in cell.runs),
                "smoke_sized": cell.small, **_committed_fields(cell)})
    return buf.getvalue()


def _committed_fields(cell: Cell) -> dict[str, str]:
    committed = [run.bundle for run in cell.runs if run.bundle is not None]
    if not committed:
        return {}
    return {"epochs": " ".join(f"{b.epochs_done}/{b.max_epochs}" for b in committed),
            "finished": str(all(b.finished for b in committed)),
            "data_draw": " | ".join(dict.fromkeys(b.data_text() for b in committed)),
            "bundles": " ".join(bundled.shown(b.path) for b in committed)}


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def render(table: Table, fmt: str, standalone: bool = False) -> str:
    if fmt == "markdown":
        return render_markdown(table)
    if fmt == "latex":
        return render_latex(table, standalone)
    if fmt == "csv":
        return render_csv(table)
    if fmt == "html":
        return render_html(table)
    raise ConfigError(f"unknown table format '{fmt}'.", hint="markdown, latex, csv or html")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def bundles_option(args) -> tuple[Path | None, bool]:
    """`--bundles DIR` / `--no-bundles` of `suite table` and `suite report`: (folder or None for the default, whether
    to show committed runs at all). A folder given that does not exist is an error, not an empty block."""
    folder = getattr(args, "bundles", None)
    if folder is not None and not Path(folder).is_dir():
        from suite.errors import BundleError

        raise BundleError(f"--bundles {folder}: no such folder.",
                          hint="give the folder that holds the committed bundles (default: results/reproduction), "
                               "or leave them out with --no-bundles")
    return (Path(folder) if folder is not None else None), not getattr(args, "no_bundles", False)


def main(args) -> int:
    uri = uris.resolve_uri(args.tracking_uri)
    folder, use = bundles_option(args)
    table = build(args.family, uri, args.experiment, args.filter, getattr(args, "include_trials", False),
                  bundles=folder, use_bundles=use)
    text = render(table, args.format, getattr(args, "standalone", False))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out} ({args.family}, {args.format}; {table.n_runs} run(s)"
              + (f", {table.n_bundles} committed run(s)" if table.n_bundles else "")
              + f", {len(table.own_rows)} row(s) of ours)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


