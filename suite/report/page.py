"""`suite report`: one page (Markdown or HTML) with every results table and the learning curves.

For each family (lra, scifar, speech, bidmc) the page shows the table of `suite table` and, per task
and row of ours (one configuration except the seed), the learning curves of the best seed's run, the
best by validation (`best/val/<metric>`, as the table's numbers are chosen; choosing by test would pick
the luckiest test score): its `learning_curves.png` artifact, or, when a run has none, the same plot
drawn from its metric histories. The committed runs (bundles under results/reproduction, the table's
block of its own) get one figure per task: a panel per run with its train/val/test curve of the
headline metric over the recipe's epochs (an unfinished run's curve ends where it is) and the
published numbers of its counterpart as lines. Epochs count from 0 everywhere, as `best/epoch` does.
Images go to `img/` beside the page and are referenced by relative paths.
"""

from __future__ import annotations

import hashlib
import html
import os
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from suite import registry
from suite.report import bundled, render, tables
from suite.report.columns import Column
from suite.report.published import counterpart_of, load_paper
from suite.report.runs import RunRecord
from suite.report.tables import MIN_TEST_SAMPLES, REPRODUCTION, SMALL, Row, Table, split_of
from suite.tracking import store, uris
from suite.paths import RESULTS_DIR


@dataclass(frozen=True)
class Figure:
    family: str
    task: str
    row: str  # label of our table row (model, preset, data source)
    run: RunRecord
    value: str  # the best run's validation and headline numbers, with the number of test samples
    n_seeds: int
    path: Path  # the image, relative to the page


def default_out(fmt: str) -> Path:
    return RESULTS_DIR / "report" / ("report.html" if fmt == "html" else "report.md")


def val_metric(col: Column) -> str:
    """The validation number seeds are ranked by: best/val/<metric of the column's task>."""
    task = col.sources[0][0]
    return f"best/val/{registry.task(task).metric}"


def best_runs(table: Table) -> list[tuple[Row, Column, RunRecord]]:
    """Per own row and task column: the run of the seed with the best validation number (a run shown under
    two columns appears once). Runs without the validation number rank last."""
    picked, seen = [], set()
    for row in table.own_rows:
        if row.block == REPRODUCTION:  # committed runs: their panels (committed_figures)
            continue
        for col in table.columns:
            cell = row.cells.get(col.key)
            if cell is None or not cell.runs:
                continue
            key = val_metric(col)
            sign = 1.0 if col.higher_is_better else -1.0
            best = max(cell.runs, key=lambda r: sign * r.metrics.get(key, -sign * float("inf")))
            if best.run_id not in seen:
                seen.add(best.run_id)
                picked.append((row, col, best))
    return picked


def image_name(task: str, row: Row) -> str:
    """<task>--<model>--<preset>--<data source>[--<recipe>][--<hash of the config diff>].png: one per row."""
    parts = [task, row.model, row.preset, row.data_source] + ([row.recipe] if row.recipe else [])
    if row.config:
        parts.append(hashlib.sha1("; ".join(row.config).encode()).hexdigest()[:8])
    return "--".join(parts) + ".png"


def fetch_curves(uri: str, run: RunRecord, dest: Path) -> Path:
    """The run's learning_curves.png, or the same plot drawn from its metric histories."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if store.has_artifact(uri, run.run_id, "learning_curves.png"):
            return store.copy_artifact(uri, run.run_id, "learning_curves.png", dest)
    except Exception as exc:  # an artifact store that cannot be read from here: draw the curves instead
        print(f"note: cannot fetch learning_curves.png of run {run.run_id} ({type(exc).__name__}); drawing it "
              "from the metric histories", file=sys.stderr)
    from suite.report.plots import learning_curves

    histories = store.metric_histories(uri, run.run_id)
    epochs = {step: int(e) for step, e in histories.get("epoch", [])}
    metric = registry.task(run.task).metric if run.task in registry.TASKS else "accuracy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a run with no per-epoch history gives empty axes, not an error
        return learning_curves(histories, epochs, metric, run.name or run.run_id, dest)


def figures(uri: str, table: Table, img_dir: Path, page_dir: Path) -> list[Figure]:
    from tqdm.auto import tqdm

    out = []
    picked = best_runs(table)
    for row, col, run in tqdm(picked, desc=f"{table.family} learning curves", unit="run", disable=None,
                              leave=False):
        name = image_name(run.task, row)
        path = fetch_curves(uri, run, img_dir / table.family / name)
        cell = row.cells[col.key]
        metric = dict(col.sources)[run.task]
        scale, unit = (100.0, " %") if col.percent else (1.0, "")
        parts = [f"{name} {run.metrics[name] * scale:.{col.decimals}f}{unit}"
                 for name in (val_metric(col), metric) if name in run.metrics]
        size = run.metrics.get(f"{split_of(metric)}/n_samples")
        shown = ", ".join(parts) + (f" on {int(size)} test samples" if size is not None else "")
        if size is not None and size < MIN_TEST_SAMPLES:
            shown += f", {SMALL}"
        out.append(Figure(table.family, run.task, row.label, run, shown, cell.n, path.relative_to(page_dir)))
    return out


@dataclass(frozen=True)
class CommittedFigure:
    """The committed runs of one task: one panel per run."""

    family: str
    task: str
    runs: tuple[RunRecord, ...]  # in panel order
    lines: tuple[str, ...]  # one text per run: how far it is, its numbers, its bundle
    path: Path  # the image, relative to the page


def _committed_line(run: RunRecord, col: Column) -> str:
    b = run.bundle
    scale, unit = (100.0, " %") if col.percent else (1.0, "")
    metric = registry.task(run.task).metric if run.task in registry.TASKS else b.metric
    best = b.best()
    parts = [b.progress_text()]
    if f"best/val/{metric}" in best:
        epoch = best.get("best/epoch")
        parts.append(f"best validation {best[f'best/val/{metric}'] * scale:.{col.decimals}f}{unit}"
                     + (f" at epoch {int(epoch)}" if epoch is not None else "")
                     + (f", test {best[f'best/test/{metric}'] * scale:.{col.decimals}f}{unit}"
                        if f"best/test/{metric}" in best else ""))
        size = run.metrics.get("test/n_samples")
        if size is not None:
            parts[-1] += f" on {int(size)} test samples" + (f", {SMALL}" if size < MIN_TEST_SAMPLES
                                                            else "")
    else:
        parts.append("no epoch validated yet")
    parts += [b.data_text(), b.hours_text()]
    return f"`{b.name}` (seed {run.seed}): " + "; ".join(p for p in parts if p) + \
        f"; bundle `{bundled.shown(b.path)}`"


def committed_figures(table: Table, img_dir: Path, page_dir: Path) -> list[CommittedFigure]:
    """Per task with committed runs: a figure with one panel per run (see suite.report.plots.run_panels)."""
    from suite.report.plots import Panel, run_panels

    paper = {r.published: r for r in table.rows if r.kind == "paper"}
    published = load_paper(table.family)
    per_task: dict[str, list[tuple[Row, Column, RunRecord]]] = {}
    for row in table.own_rows:
        if row.block != REPRODUCTION:
            continue
        for col in table.columns:
            cell = row.cells.get(col.key)
            for run in cell.runs if cell is not None else ():
                if all(run.run_id != r.run_id for _, _, r in per_task.get(run.task, [])):
                    per_task.setdefault(run.task, []).append((row, col, run))
    out = []
    for task, entries in per_task.items():
        panels, lines = [], []
        for row, col, run in entries:
            b = run.bundle
            metric = registry.task(task).metric if task in registry.TASKS else b.metric
            scale = 100.0 if col.percent else 1.0
            curves = {split: [(e, v * scale) for e, v in b.curve(f"{split}/{metric}")]
                      for split in ("train", "val", "test")}
            ref, _ = counterpart_of([run], published) if run.preset == "paper" else (None, False)
            refs = [(ref.name, paper[ref.name].cells[col.key].mean)] if (
                ref is not None and col.key in paper[ref.name].cells
                and paper[ref.name].cells[col.key].mean is not None) else []
            lr_key = next((k for k in sorted({k for r in b.epochs for k in r})
                           if k.startswith("lr-") and k.endswith("/default")), None)  # LearningRateMonitor's name
            panels.append(Panel(b.name, curves, b.max_epochs, f"{row.model}, seed {run.seed}: {b.progress_text()}",
                                refs, b.curve(lr_key) if lr_key else []))
            lines.append(_committed_line(run, col))
        col = entries[0][1]
        dest = img_dir / table.family / f"committed--{task}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        run_panels(panels, f"{registry.task(task).metric}{' (%)' if col.percent else ''}", col.higher_is_better,
                   dest)
        out.append(CommittedFigure(table.family, task, tuple(r for _, _, r in entries), tuple(lines),
                                   dest.relative_to(page_dir)))
    return out


def _header(uri: str, built: list[Table], store_exists: bool) -> tuple[str, list[str]]:
    n = sum(t.n_runs for t in built)
    committed = sum(t.n_bundles for t in built)
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    facts = [f"store: {uris.mask(uri)}", f"generated: {date}",
             "runs: " + (", ".join(f"{t.family} {t.n_runs}" for t in built) + f" (total {n})")]
    if committed:
        where = next(t.bundles for t in built if t.n_bundles)
        facts.append(f"committed runs: {committed}, from `{where}`")
    also = (f" and the {committed} committed run(s) (export bundles in the repository)" if committed else " only")
    if not store_exists:
        lead = f"There are no runs in the store yet: it does not exist. The tables show the published numbers{also}."
    elif n == 0:
        lead = f"There are no finished runs in the store yet. The tables show the published numbers{also}."
    else:
        lead = (f"{n} finished `suite run` run(s)" + (f" and {committed} committed run(s)" if committed else "")
                + ". Sweep trials are tuning runs and are left out; each table's caption says how its numbers are "
                  "made.")
    return lead, facts


def _nothing_yet(built: list[Table]) -> bool:
    return not any(t.n_runs or t.n_bundles for t in built)


def render_markdown(uri: str, built: list[Table], figs: list[Figure], store_exists: bool,
                    committed: list[CommittedFigure] = ()) -> str:
    lead, facts = _header(uri, built, store_exists)
    parts = ["# Results report", "", lead, "", *(f"- {f}" for f in facts), ""]
    if _nothing_yet(built):
        parts += ["Train something first, e.g. `suite run --task listops --model s4d --preset smoke`, "
                  "then run `suite report` again.", ""]
    for t in built:
        parts += [render.render_markdown(t, heading="##")]
        ours = [f for f in committed if f.family == t.family]
        if ours:
            parts += ["### Committed runs: learning curves", "",
                      "One panel per run: train, val and test per epoch (from 0) over the recipe's epochs; an "
                      "unfinished run's curves end where it is. Grey vertical line: the best validation epoch "
                      "(the table's numbers); dashed: the published number of the run's counterpart.", ""]
            for f in ours:
                parts += [f"#### {f.task}", "", f"![{f.task} committed runs]({f.path.as_posix()})", "",
                          *(f"- {line}" for line in f.lines), ""]
        mine = [f for f in figs if f.family == t.family]
        if mine:
            parts += ["### Learning curves", ""]
            for task in dict.fromkeys(f.task for f in mine):
                parts += [f"#### {task}", ""]
                for f in (f for f in mine if f.task == task):
                    parts += [f"**{f.row}**: best validation of {f.n_seeds} seed(s), run `{f.run.run_id}` "
                              f"(seed {f.run.seed}, {f.value})", "",
                              f"![{task} {f.row} learning curves]({f.path.as_posix()})", ""]
    return "\n".join(parts).rstrip() + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table.results{border-collapse:collapse;margin:1em 0;font-size:0.9em}
table.results th,table.results td{padding:0.25em 0.6em;text-align:right;border-bottom:1px solid #ddd}
table.results th:first-child,table.results td:first-child{text-align:left}
table.results thead th{border-bottom:2px solid #222}
table.results tr.heading th{text-align:left;font-style:italic;font-weight:normal;border-bottom:1px solid #222;
padding-top:0.8em}
tr.paper{color:#555} tr.delta{font-style:italic;color:#666}
code{background:#f3f3f3;padding:0 0.2em;border-radius:3px;font-size:0.92em}
p.caption{font-size:0.85em;color:#444;max-width:70em} img{max-width:100%;border:1px solid #eee}"""


def render_html(uri: str, built: list[Table], figs: list[Figure], store_exists: bool,
                committed: list[CommittedFigure] = ()) -> str:
    e = html.escape
    t_ = render.html_text
    lead, facts = _header(uri, built, store_exists)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             "<title>Results report</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             "<h1>Results report</h1>", f"<p>{t_(lead)}</p>", "<ul>", *(f"<li>{t_(f)}</li>" for f in facts), "</ul>"]
    if _nothing_yet(built):
        parts.append("<p>Train something first, e.g. <code>suite run --task listops --model s4d --preset smoke</code>, "
                     "then run <code>suite report</code> again.</p>")
    for t in built:
        parts.append(render.render_html(t, heading="h2"))
        ours = [f for f in committed if f.family == t.family]
        if ours:
            parts += ["<h3>Committed runs: learning curves</h3>",
                      "<p>One panel per run: train, val and test per epoch (from 0) over the recipe's epochs; an "
                      "unfinished run's curves end where it is. Grey vertical line: the best validation epoch (the "
                      "table's numbers); dashed: the published number of the run's counterpart.</p>"]
            for f in ours:
                parts += [f"<h4>{e(f.task)}</h4>",
                          f'<figure><img src="{e(f.path.as_posix())}" alt="{e(f.task)} committed runs"></figure>',
                          "<ul>", *(f"<li>{t_(line)}</li>" for line in f.lines), "</ul>"]
        mine = [f for f in figs if f.family == t.family]
        if mine:
            parts.append("<h3>Learning curves</h3>")
            for task in dict.fromkeys(f.task for f in mine):
                parts.append(f"<h4>{e(task)}</h4>")
                for f in (f for f in mine if f.task == task):
                    parts += [f"<figure><figcaption><strong>{e(f.row)}</strong>: best validation of {f.n_seeds} "
                              "seed(s), run "
                              f"<code>{e(f.run.run_id)}</code> (seed {e(f.run.seed)}, {e(f.value)})</figcaption>",
                              f'<img src="{e(f.path.as_posix())}" alt="{e(task)} {e(f.row)} learning curves">'
                              "</figure>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def main(args) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # ours is the one per family
    uri = uris.resolve_uri(args.tracking_uri)
    folder, use_bundles = bundled.bundles_option(args)
    out = Path(args.out) if args.out else default_out(args.format)
    out = out.resolve()
    page_dir = out.parent
    img_dir = page_dir / "img"
    db = uris.sqlite_path(uri)
    store_exists = db is None or db.exists()

    built = [tables.build(family, uri, bundles=folder, use_bundles=use_bundles) for family in registry.FAMILIES]
    figs: list[Figure] = []
    committed: list[CommittedFigure] = []
    for t in built:
        committed += committed_figures(t, img_dir, page_dir)
        figs += figures(uri, t, img_dir, page_dir)
    page = (render_html if args.format == "html" else render_markdown)(uri, built, figs, store_exists, committed)
    page_dir.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    n = sum(t.n_runs for t in built)
    n_images = len(figs) + len(committed)
    print(f"wrote {out} ({n} run(s), {sum(t.n_bundles for t in built)} committed run(s), {n_images} "
          f"learning-curve image(s) under {img_dir})", file=sys.stderr)
    return 0
