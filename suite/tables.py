"""Paper-style results tables: our runs, mean ± std over seeds, beside the published numbers.

    collect  the FINISHED `suite run` runs of one family from MLflow (sweep trials left out), one per seed
    build    rows of cells: published rows (results/paper.yaml), our rows grouped by model, preset and
             data source, a Δ row under each of ours that has a published counterpart; best per column
    render   Markdown (tabulate), LaTeX (pandas Styler, booktabs), tidy CSV, HTML (for `suite report`)

Cells hold numbers in the table's unit (accuracy in %, RMSE as is); a missing cell is None and is
printed as "–", never as 0.
"""

from __future__ import annotations

import csv
import html
import io
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from suite import registry, tracking
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


@dataclass
class Collected:
    runs: list[RunRecord]
    notes: list[str]
    store_exists: bool = True


def is_sweep_trial(tags: dict[str, str]) -> bool:
    return "mlflow.parentRunId" in tags or "suite.sweep.trial" in tags


def collect(uri: str, experiment: str, filter_text: str | None = None, include_trials: bool = False,
            explicit_experiment: bool = False) -> Collected:
    """FINISHED runs of `experiment` that carry suite.task, newest first. Never creates a store."""
    db = tracking.sqlite_path(uri)
    if db is not None and not db.exists():
        return Collected([], [f"no MLflow store at {db} yet"], store_exists=False)
    tracking.check_reachable(uri)
    try:
        exp_id = tracking.experiment_id(uri, experiment)
    except Exception as exc:  # a file that is not an MLflow database, a server that refuses
        raise TrackingError(f"cannot read the MLflow store {tracking.mask(uri)}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}",
                            hint="check --tracking-uri / MLFLOW_TRACKING_URI") from None
    if exp_id is None:
        if explicit_experiment:
            names = tracking.experiment_names(uri)
            raise UnknownNameError(f"no experiment '{experiment}' in {tracking.mask(uri)}.",
                                   hint=f"experiments there: {', '.join(names) or 'none'}")
        return Collected([], [f"no experiment '{experiment}' in the store yet"])
    found = tracking.finished_runs(uri, exp_id, filter_text)
    parents = {r.data.tags.get("mlflow.parentRunId") for r in found}
    runs, trials, studies = [], 0, 0
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
        runs.append(RunRecord(
            run_id=r.info.run_id, name=r.info.run_name or "", task=tags["suite.task"],
            model=tags.get("suite.model", "?"), preset=tags.get("suite.preset", "?"),
            seed=tags.get("suite.seed", r.info.run_id), data_source=tags.get("suite.data_source", "unknown"),
            start_time=r.info.start_time or 0, metrics=dict(r.data.metrics)))
    notes = []
    if trials:
        notes.append(f"{trials} sweep trial run(s) left out (tuning runs, not results; --include-trials counts them)")
    if studies:
        notes.append(f"{studies} sweep study run(s) left out (they repeat their best trial)")
    return Collected(runs, notes)


# ------------------------------------------------------------------------------------------------
# published rows
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperRow:
    name: str
    values: dict[str, float]
    failed: tuple[str, ...]
    source: str
    unverified: bool
    compare: tuple[str, ...]


def load_paper(family: str, path: Path = PAPER_FILE) -> list[PaperRow]:
    """The published rows of a family, checked against the table's columns and the model registry."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"published results file {path} is missing.",
                          hint="restore it: git checkout results/paper.yaml")
    data = yaml.safe_load(path.read_text()) or {}
    keys = {c.key for c in family_columns(family)}
    rows, compared = [], set()
    for i, item in enumerate(data.get(family, [])):
        where = f"{path}: {family} row {i + 1} ({item.get('name', 'no name')})"
        unknown = (set(item.get("values", {})) | set(item.get("failed", []))) - keys
        bad_models = set(item.get("compare", [])) - set(registry.MODELS)
        twice = set(item.get("compare", [])) & compared
        compared |= set(item.get("compare", []))
        if "name" not in item or unknown or bad_models or twice:
            problem = ("has no name" if "name" not in item else f"unknown columns {sorted(unknown)}" if unknown
                       else f"unknown models {sorted(bad_models)}" if bad_models
                       else f"models {sorted(twice)} already compared with another row")
            raise ConfigError(f"{where}: {problem}.",
                              hint=f"columns of {family}: {', '.join(sorted(keys))}; models: "
                                   f"{', '.join(registry.MODELS)}; each model in one `compare` list per family")
        rows.append(PaperRow(item["name"], {k: float(v) for k, v in item.get("values", {}).items()},
                             tuple(item.get("failed", [])), item.get("source", ""), bool(item.get("unverified")),
                             tuple(item.get("compare", []))))
    return rows


# ------------------------------------------------------------------------------------------------
# build: rows of cells
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    mean: float | None = None
    std: float | None = None  # sample std over seeds (n >= 2)
    n: int = 0  # seeds behind an own cell; 0 for a published or derived number
    failed: bool = False  # published as ✗
    runs: tuple[RunRecord, ...] = ()  # the runs behind an own cell, one per seed


@dataclass
class Row:
    label: str
    kind: str  # "paper", "ours" or "delta"
    block: str  # "release" (published rows and runs on the release data) or the data source of the runs
    cells: dict[str, Cell]
    model: str = ""
    preset: str = ""
    data_source: str = ""
    source: str = ""  # published rows: where the numbers come from
    unverified: bool = False
    compare: str = ""  # own rows: name of the published row of the same model
    published: str = ""  # published rows: their name in results/paper.yaml
    bold: set[str] = field(default_factory=set)


@dataclass
class Table:
    family: str
    title: str
    columns: list[Column]
    rows: list[Row]
    caption: str
    notes: list[str]
    n_runs: int  # runs behind our cells
    store: str
    experiment: str

    @property
    def own_rows(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "ours"]


def _own_label(model: str, preset: str, source: str) -> str:
    qualifiers = ([] if preset == "paper" else [f"{preset} preset"]) + \
                 ([] if source == "release" else [f"{source} data"])
    return model + (f" ({', '.join(qualifiers)})" if qualifiers else "")


def _own_cells(runs: list[RunRecord], columns: list[Column]) -> tuple[dict[str, Cell], int]:
    """Per column: mean ± std over seeds of the column's metric; the latest run of a seed counts."""
    cells, replaced = {}, 0
    for col in columns:
        per_seed: dict[str, RunRecord] = {}
        for task, metric in col.sources:
            for run in runs:  # newest first
                if run.task == task and metric in run.metrics:
                    if run.seed in per_seed:
                        replaced += 1
                    else:
                        per_seed[run.seed] = run
        if not per_seed:
            continue
        chosen = tuple(per_seed.values())
        metric_of = dict(col.sources)
        values = [r.metrics[metric_of[r.task]] * (100.0 if col.percent else 1.0) for r in chosen]
        std = statistics.stdev(values) if len(values) > 1 else None
        cells[col.key] = Cell(statistics.fmean(values), std, len(values), runs=chosen)
    return cells, replaced


def _with_average(cells: dict[str, Cell], columns: list[Column]) -> dict[str, Cell]:
    """LRA Avg of our row: the mean of the six tasks, only when every task has a number."""
    if not any(c.key == "avg" for c in columns):
        return cells
    tasks = [c.key for c in columns if c.key != "avg"]
    if all(cells.get(t) and cells[t].mean is not None for t in tasks):
        return {**cells, "avg": Cell(statistics.fmean(cells[t].mean for t in tasks))}
    return cells


def _mark_best(rows: list[Row], columns: list[Column]) -> None:
    """Bold the best number per column within each block (max for accuracy, min for RMSE); ties all bold."""
    for block in {r.block for r in rows}:
        candidates = [r for r in rows if r.block == block and r.kind != "delta"]
        for col in columns:
            scored = [(round(r.cells[col.key].mean, col.decimals), r) for r in candidates
                      if col.key in r.cells and r.cells[col.key].mean is not None]
            if not scored:
                continue
            best = (max if col.higher_is_better else min)(v for v, _ in scored)
            for v, r in scored:
                if v == best:
                    r.bold.add(col.key)


def caption(family: str, columns: list[Column], include_trials: bool = False) -> str:
    what = ("Test accuracy (%)" if columns[0].percent else "Test RMSE (lower is better)") + \
           " at the epoch of best validation"
    counted = ("FINISHED `suite run` or sweep trial per seed, the latest; failed or killed runs excluded"
               if include_trials else
               "FINISHED `suite run` per seed, the latest; sweep trials and failed or killed runs excluded")
    parts = [f"{what}; our rows: mean ± sample std over seeds (n = seeds; one {counted})."]
    if family == "lra":
        parts.append("Avg: mean of the six tasks, given only for rows with all six; the published Avg counts a "
                     f"failed Path-X ({FAILED}) as 50 % (chance), as the papers do.")
    if family == "speech":
        parts.append("8 kHz: the 16 kHz model tested zero-shot on audio resampled to 8 kHz (speech and speech8k runs; "
                     "one value per seed).")
    parts.append("Bold: best per column among the published rows and our runs on the release data; runs on generated "
                 "data are another dataset and form their own block, with their own bold.")
    parts.append("Δ: our mean minus the published row of the same model (results/paper.yaml, `compare`); release "
                 "data only.")
    parts.append(f"{UNVERIFIED}: secondary source, unverified. {MISSING}: not run or not reported.")
    return " ".join(parts)


def build(family: str, uri: str, experiment: str | None = None, filter_text: str | None = None,
          include_trials: bool = False, paper_file: Path = PAPER_FILE) -> Table:
    columns = family_columns(family)
    paper = load_paper(family, paper_file)
    got = collect(uri, experiment or family, filter_text, include_trials, explicit_experiment=experiment is not None)
    tasks = {t for c in columns for t, _ in c.sources}
    runs = [r for r in got.runs if r.task in tasks]

    rows = [Row(p.name + (UNVERIFIED if p.unverified else ""), "paper", "release",
                {k: Cell(v) for k, v in p.values.items()} | {k: Cell(failed=True) for k in p.failed},  # Avg as given
                source=p.source, unverified=p.unverified, published=p.name) for p in paper]
    compare = {m: p for p in paper for m in p.compare}

    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for r in runs:
        groups.setdefault((r.model, r.preset, r.data_source), []).append(r)
    model_order = {m: i for i, m in enumerate(registry.MODELS)}
    order = sorted(groups, key=lambda k: (k[2] != "release", k[2], model_order.get(k[0], 99), k[0],
                                          k[1] != "paper", k[1]))
    used, replaced, without_metric = 0, 0, 0
    for model, preset, source in order:
        cells, n_replaced = _own_cells(groups[(model, preset, source)], columns)
        replaced += n_replaced
        if not cells:
            without_metric += len(groups[(model, preset, source)])
            continue
        used += len({r.run_id for c in cells.values() for r in c.runs})
        cells = _with_average(cells, columns)
        block = "release" if source == "release" else source
        ref = compare.get(model) if source == "release" else None
        row = Row(_own_label(model, preset, source), "ours", block, cells, model, preset, source,
                  compare=ref.name if ref else "")
        rows.append(row)
        if ref:
            ref_cells = next(r.cells for r in rows if r.published == ref.name)
            delta = {k: Cell(c.mean - ref_cells[k].mean) for k, c in cells.items()
                     if k in ref_cells and ref_cells[k].mean is not None and c.mean is not None}
            rows.append(Row(f"Δ to {ref.name}", "delta", block, delta, model, preset, source, compare=ref.name))
    _mark_best(rows, columns)

    notes = list(got.notes)
    if not runs:
        notes.append("no finished runs yet: published rows only")
    if without_metric:
        notes.append(f"{without_metric} finished run(s) without their task's best/* metric left out")
    if replaced:
        notes.append(f"{replaced} older or repeated run(s) of a seed left out (the latest run of each seed counts)")
    return Table(family, TITLES[family], columns, rows, caption(family, columns, include_trials), notes, used,
                 tracking.mask(uri), experiment or family)


# ------------------------------------------------------------------------------------------------
# render
# ------------------------------------------------------------------------------------------------


def cell_text(cell: Cell | None, col: Column, kind: str) -> str:
    if cell is None or (cell.mean is None and not cell.failed):
        return MISSING
    if cell.failed:
        return FAILED
    d = col.decimals
    if kind == "delta":
        return f"{cell.mean:+.{d}f}"
    if cell.n == 0:
        return f"{cell.mean:.{d}f}"
    if cell.std is None:
        return f"{cell.mean:.{d}f} (n={cell.n})"
    return f"{cell.mean:.{d}f} ± {cell.std:.{d}f} (n={cell.n})"


def text_grid(table: Table) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, cell texts and bold flags: the one layout every format renders."""
    header = ["Model", *(c.label for c in table.columns)]
    body = [[r.label, *(cell_text(r.cells.get(c.key), c, r.kind) for c in table.columns)] for r in table.rows]
    bold = [[False, *(c.key in r.bold for c in table.columns)] for r in table.rows]
    return header, body, bold


def render_markdown(table: Table, heading: str = "###") -> str:
    from tabulate import tabulate

    header, body, bold = text_grid(table)
    body = [[f"**{t}**" if b else (f"*{t}*" if i == 0 and r.kind == "delta" else t)
             for i, (t, b) in enumerate(zip(cells, flags))]
            for cells, flags, r in zip(body, bold, table.rows)]
    grid = tabulate(body, header, tablefmt="pipe", colalign=("left", *["right"] * len(table.columns)),
                    disable_numparse=True)
    lines = [f"{heading} {table.title}", "",
             f"Store `{table.store}`, experiment `{table.experiment}`, {table.n_runs} run(s).", "", grid, "",
             table.caption]
    lines += [""] + [f"- {n}" for n in table.notes] if table.notes else []
    return "\n".join(lines) + "\n"


def render_html(table: Table, heading: str = "h3") -> str:
    header, body, bold = text_grid(table)
    e = html.escape
    out = [f"<{heading}>{e(table.title)}</{heading}>",
           f"<p>Store <code>{e(table.store)}</code>, experiment <code>{e(table.experiment)}</code>, "
           f"{table.n_runs} run(s).</p>",
           f'<table class="results results-{table.family}">', "<thead><tr>",
           *(f"<th>{e(h)}</th>" for h in header), "</tr></thead>", "<tbody>"]
    for cells, flags, r in zip(body, bold, table.rows):
        tds = [f"<td>{'<strong>' + e(t) + '</strong>' if b else e(t)}</td>" for t, b in zip(cells, flags)]
        out.append(f'<tr class="{r.kind}">{"".join(tds)}</tr>')
    out += ["</tbody>", "</table>", f"<p class=\"caption\">{e(table.caption)}</p>"]
    if table.notes:
        out += ["<ul>", *(f"<li>{e(n)}</li>" for n in table.notes), "</ul>"]
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


CSV_FIELDS = ("model", "task", "data_source", "preset", "mean", "std", "n", "paper", "diff", "paper_row", "unit",
              "failed", "row", "run_ids")


def render_csv(table: Table) -> str:
    """Tidy long format: one line per (row, column) that has a number; published rows have data_source 'published'."""
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
                "mean": _num(cell.mean), "std": _num(cell.std), "n": cell.n or "", "paper": _num(paper),
                "diff": _num(cell.mean - paper) if paper is not None and cell.mean is not None else "",
                "paper_row": r.compare, "unit": "%" if col.percent else "rmse", "failed": cell.failed,
                "row": r.label, "run_ids": " ".join(run.run_id for run in cell.runs)})
    return buf.getvalue()


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


def main(args) -> int:
    uri = tracking.resolve_uri(args.tracking_uri)
    table = build(args.family, uri, args.experiment, args.filter, getattr(args, "include_trials", False))
    text = render(table, args.format, getattr(args, "standalone", False))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out} ({args.family}, {args.format}; {table.n_runs} run(s), "
              f"{len(table.own_rows)} row(s) of ours)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


