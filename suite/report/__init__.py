"""Results for a reader: `suite table` and `suite report`, one job per module:

- tables.py: the runs of a family (MLflow store and committed bundles) aggregated into a table's rows;
- page.py: `suite report`, one page with every table and the learning curves;
- plots.py: learning curves as PNG;
- bundled.py: committed runs, the export bundles under results/reproduction, read as files.
"""
