"""Results for a reader: `suite table` and `suite report`, one job per module:

- runs.py: the runs a table is made of (finished runs of an MLflow store, committed bundles as runs) and the
  configuration each ran (what sets it apart from its recipe: one row per configuration except the seed);
- columns.py: what each family's table shows, in the paper's order (tasks, metrics, units, titles);
- published.py: the published rows of results/paper.yaml and which runs of ours each one is the result of;
- tables.py: runs + published rows -> a table's rows of cells (mean ± std over seeds, Δ rows, blocks, bold);
- render.py: a table as Markdown, LaTeX, CSV or HTML; `suite table` (render.main);
- page.py: `suite report`, one page with every table and the learning curves;
- plots.py: learning curves as PNG;
- bundled.py: committed runs, the export bundles under results/reproduction, read as files (`--bundles`).

Imports point one way: runs, columns, bundled and plots import no other module of the package; published
imports runs and columns; tables imports those and bundled; render imports tables; page imports them all.
"""
