"""Paper-style results tables: our runs, mean ± std over seeds, beside the published numbers (`build`).

Rows of cells: the published rows (suite.report.published); our rows, one per resolved configuration except
the seed (suite.report.runs.config_diff), labelled by what differs from the recipe; a Δ row under each of ours
that has a published counterpart; the committed runs (suite.report.bundled) in a block of their own (epochs
done, unfinished runs apart); best per column, never from a smoke-sized test set (MIN_TEST_SAMPLES).
suite.report.render writes a table as Markdown, LaTeX, CSV or HTML.

Cells hold numbers in the table's unit (accuracy in %, RMSE as is); a missing cell is None and is
printed as "–", never as 0. An own cell says its number of seeds and the size of the test set its
runs were scored on (metric `<split>/n_samples`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from suite import registry
from suite.report import bundled
from suite.report.columns import TITLES, Column, family_columns
from suite.report.published import PAPER_FILE, PaperRow, counterpart_of, load_paper
from suite.report.runs import RunRecord, bundle_record, collect, config_diff, run_config
from suite.tracking import uris

# the marks of a cell: render.py prints them, the caption says what they mean
MISSING = "–"
FAILED = "✗"
UNVERIFIED = "†"
SMALL = "smoke-sized"  # the mark of a cell scored on fewer than MIN_TEST_SAMPLES test samples
SHOWN_DIFFS = 3  # a row label names at most this many differences; the CSV column `config` has them all
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
        ref, several = counterpart_of(members, paper) if block == RELEASE else (None, False)
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
        ref, several = counterpart_of(group, paper) if preset == "paper" and not unfinished else (None, False)
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
