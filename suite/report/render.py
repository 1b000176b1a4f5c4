"""A table (suite.report.tables) as text: Markdown (tabulate), LaTeX (pandas Styler, booktabs), tidy CSV, and
HTML (for `suite report`); `main` is `suite table`: build a family's table, render it, print or write it."""

from __future__ import annotations

import csv
import html
import io
import re
import sys
from pathlib import Path

from suite.errors import ConfigError
from suite.report import bundled
from suite.report.columns import Column
from suite.report.tables import FAILED, MIN_TEST_SAMPLES, MISSING, SMALL, UNVERIFIED, Cell, Table, build
from suite.tracking import uris


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


def main(args) -> int:
    """`suite table`: the table of a family, rendered in `--format`, to stdout or `--out`; the notes on stderr."""
    uri = uris.resolve_uri(args.tracking_uri)
    folder, use = bundled.bundles_option(args)
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
