"""Generated data sets on disk, for `suite data status`: what was generated, with which parameters, how
big, and which caches were built from it.

A generator writes its files into a folder under <root>/generated/ with a GENERATED.json holding its
parameters (written last: a folder without one is an interrupted generation, `<folder>.partial`). A
cache entry records the folder it was built from in its manifest ("source", tasks/cache.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tasks.base import disk_size

PARTIAL = ".partial"


@dataclass
class GeneratedSet:
    task: str
    where: Path
    params: dict  # the generator's parameters that tell sets apart; {} for an interrupted generation
    examples: int | None  # None: unknown (interrupted)
    size_bytes: int
    caches: list[tuple[Path, int]] = field(default_factory=list)  # (cache entry, bytes) built from `where`
    complete: bool = True


def read_params(folder: Path) -> dict | None:
    """GENERATED.json of a finished generation less the generator's name (None if there is none or it is
    not a JSON object)."""
    try:
        meta = json.loads((folder / "GENERATED.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return {k: v for k, v in meta.items() if k != "generator"} if isinstance(meta, dict) else None


def caches_from(cache_dir: Path, source: Path) -> list[tuple[Path, int]]:
    """The cache entries under cache_dir whose manifest names `source` as the folder they were built from."""
    out = []
    target = source.resolve()
    for manifest in sorted(cache_dir.glob("*/manifest.json")):
        try:
            built_from = json.loads(manifest.read_text()).get("source")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if built_from and Path(built_from).resolve() == target:
            out.append((manifest.parent, disk_size(manifest.parent)))
    return out


def describe(task: str, folder: Path, cache_dir: Path, summarize) -> GeneratedSet:
    """A finished (GENERATED.json present) or interrupted (`*.partial`) generation in `folder`.
    `summarize(parameters)` gives (the parameters worth showing, the number of examples)."""
    params = read_params(folder)
    if folder.name.endswith(PARTIAL) or params is None:
        return GeneratedSet(task, folder, {}, None, disk_size(folder), complete=False)
    shown, examples = summarize(params)
    return GeneratedSet(task, folder, shown, examples, disk_size(folder), caches_from(cache_dir, folder))
