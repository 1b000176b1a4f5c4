"""Datasets of the benchmark: readers for the real on-disk formats, preprocessing, caches, generators.

Depends on torch and numpy only; knows nothing of `suite` or `models`. A task module (one file per
task or task family, registered in suite/registry.py) exposes

    status(root, cfg) -> DataStatus            # where the raw files should be, present?, cache verified?, size
    fetch(root, cfg, progress=True) -> None    # download the raw files from the real source (resumable)
    prepare(root, cfg, progress=True) -> Path  # generate or verify files, build the cache once; returns the cache
    load(root, cfg) -> TaskData                # the splits as torch Datasets, with their collate function
    generate(root, cfg, progress=True) -> Path # only tasks with a procedural generator (listops, pathfinder, pathx)
    generated_sets(root) -> [GeneratedSet]     # the same tasks: what was generated, for `suite data status`

`root` is the data root (--data-dir, SUITE_DATA or data/), `cfg` the run's DataConfig. Raw files sit
under the root in the layout their source unpacks to; caches under <root>/cache/<task>/<key>/.
"""
