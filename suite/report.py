"""`suite report`: one page (Markdown or HTML) with every results table and the learning curves.

For each family (lra, scifar, speech, bidmc) the page shows the table of `suite table` and, per task
and row of ours (one configuration except the seed), the learning curves of the best seed's run, the
best by validation (`best/val/<metric>`; choosing by test would pick the luckiest test score): its
`learning_curves.png` artifact, or, when a run has none, the same plot drawn from its metric
histories. Images go to `img/` beside the page and are referenced by relative paths.
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

from suite import registry, tables, tracking
from suite.paths import RESULTS_DIR


@dataclass(frozen=True)
class Figure:
    family: str
    task: str
    row: str  # label of our table row (model, preset, data source)
    run: tables.RunRecord
    value: str  # the best run's validation and headline numbers, with the number of test samples
    n_seeds: int
    path: Path  # the image, relative to the page


def default_out(fmt: str) -> Path:
    return RESULTS_DIR / "report" / ("report.html" if fmt == "html" else "report.md")


def val_metric(col: tables.Column) -> str:
    """The validation number seeds are ranked by: best/val/<metric of the column's task>."""
    task = col.sources[0][0]
    return f"best/val/{registry.task(task).metric}"


def best_runs(table: tables.Table) -> list[tuple[tables.Row, tables.Column, tables.RunRecord]]:
    """Per own row and task column: the run of the seed with the best validation number (a run shown under
    two columns appears once). Runs without the validation number rank last."""
    picked, seen = [], set()
    for row in table.own_rows:
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


def image_name(task: str, row: tables.Row) -> str:
    """<task>--<model>--<preset>--<data source>[--<recipe>][--<hash of the config diff>].png: one per row."""
    parts = [task, row.model, row.preset, row.data_source] + ([row.recipe] if row.recipe else [])
    if row.config:
        parts.append(hashlib.sha1("; ".join(row.config).encode()).hexdigest()[:8])
    return "--".join(parts) + ".png"


def fetch_curves(uri: str, run: tables.RunRecord, dest: Path) -> Path:
    """The run's learning_curves.png, or the same plot drawn from its metric histories."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if tracking.has_artifact(uri, run.run_id, "learning_curves.png"):
            return tracking.copy_artifact(uri, run.run_id, "learning_curves.png", dest)
    except Exception as exc:  # an artifact store that cannot be read from here: draw the curves instead
        print(f"note: cannot fetch learning_curves.png of run {run.run_id} ({type(exc).__name__}); drawing it "
              "from the metric histories", file=sys.stderr)
    from suite.plots import learning_curves

    histories = tracking.metric_histories(uri, run.run_id)
    epochs = {step: int(e) for step, e in histories.get("epoch", [])}
    metric = registry.task(run.task).metric if run.task in registry.TASKS else "accuracy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a run with no per-epoch history gives empty axes, not an error
        return learning_curves(histories, epochs, metric, run.name or run.run_id, dest)


def figures(uri: str, table: tables.Table, img_dir: Path, page_dir: Path) -> list[Figure]:
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
        size = run.metrics.get(f"{tables.split_of(metric)}/n_samples")
        shown = ", ".join(parts) + (f" on {int(size)} test samples" if size is not None else "")
        out.append(Figure(table.family, run.task, row.label, run, shown, cell.n, path.relative_to(page_dir)))
    return out


def _header(uri: str, built: list[tables.Table], store_exists: bool) -> tuple[str, list[str]]:
    n = sum(t.n_runs for t in built)
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    facts = [f"store: {tracking.mask(uri)}", f"generated: {date}",
             "runs: " + (", ".join(f"{t.family} {t.n_runs}" for t in built) + f" (total {n})")]
    if not store_exists:
        lead = "There are no runs yet: the store does not exist. The tables show the published numbers only."
    elif n == 0:
        lead = "There are no finished runs yet. The tables show the published numbers only."
    else:
        lead = (f"{n} finished `suite run` run(s). Sweep trials are tuning runs and are left out; each table's "
                "caption says how its numbers are made.")
    return lead, facts


def render_markdown(uri: str, built: list[tables.Table], figs: list[Figure], store_exists: bool) -> str:
    lead, facts = _header(uri, built, store_exists)
    parts = ["# Results report", "", lead, "", *(f"- {f}" for f in facts), ""]
    if not any(t.n_runs for t in built):
        parts += ["Train something first, e.g. `suite run --task listops --model s4d --preset smoke`, "
                  "then run `suite report` again.", ""]
    for t in built:
        parts += [tables.render_markdown(t, heading="##")]
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
tr.paper{color:#555} tr.delta{font-style:italic;color:#666}
p.caption{font-size:0.85em;color:#444;max-width:70em} img{max-width:100%;border:1px solid #eee}"""


def render_html(uri: str, built: list[tables.Table], figs: list[Figure], store_exists: bool) -> str:
    e = html.escape
    lead, facts = _header(uri, built, store_exists)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             "<title>Results report</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             "<h1>Results report</h1>", f"<p>{e(lead)}</p>", "<ul>", *(f"<li>{e(f)}</li>" for f in facts), "</ul>"]
    if not any(t.n_runs for t in built):
        parts.append("<p>Train something first, e.g. <code>suite run --task listops --model s4d --preset smoke</code>, "
                     "then run <code>suite report</code> again.</p>")
    for t in built:
        parts.append(tables.render_html(t, heading="h2"))
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
    uri = tracking.resolve_uri(args.tracking_uri)
    out = Path(args.out) if args.out else default_out(args.format)
    out = out.resolve()
    page_dir = out.parent
    img_dir = page_dir / "img"
    db = tracking.sqlite_path(uri)
    store_exists = db is None or db.exists()

    built = [tables.build(family, uri) for family in tables.FAMILIES]
    figs: list[Figure] = []
    for t in built:
        figs += figures(uri, t, img_dir, page_dir)
    page = (render_html if args.format == "html" else render_markdown)(uri, built, figs, store_exists)
    page_dir.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    n = sum(t.n_runs for t in built)
    print(f"wrote {out} ({n} run(s), {len(figs)} learning-curve image(s) under {img_dir})", file=sys.stderr)
    return 0
