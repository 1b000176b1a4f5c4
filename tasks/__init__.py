"""Datasets of the benchmark: readers for the real on-disk formats, preprocessing, caches, generators.

Depends on torch and numpy only; knows nothing of `suite` or `models`. A task module exposes

    prepare(root, cfg) -> None      # generate or verify files, build the cache (once, on one process)
    load(root, cfg) -> TaskData     # the splits as torch Datasets, with their collate function
"""
