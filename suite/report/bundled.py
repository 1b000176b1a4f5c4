"""Committed runs: the export bundles under results/reproduction/, read as files, without an MLflow store.

A reproduction run is committed as the bundle `suite export` wrote (docs/reproduction.md), one folder per run,
e.g. `results/reproduction/listops/liquid_s4_pb-s2222/`. `suite table` and `suite report` show these runs from
the bundles' own files: `summary.json` (what ran, on which data, how far, the validation-selected numbers),
`metrics.csv` (one row per epoch: the learning curves), `params.json` and `tags.json` (the configuration, so a
bundle row is labelled and grouped as a run of the store is). Nothing is imported and no store is needed; a
clone of the repository shows the committed results as they are.

The folder is found as: `--bundles DIR` > `SUITE_BUNDLES` > `results/reproduction` of the checkout. A bundle
is any folder below it that holds a `summary.json`; its checksums are not verified here (`suite import` does).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.errors import BundleError
from suite.paths import PROJECT_ROOT, RESULTS_DIR

READ = ("summary.json", "metrics.csv", "params.json", "tags.json")  # what a table and a report read


def default_dir() -> Path:
    """`SUITE_BUNDLES` > `<checkout>/results/reproduction`."""
    env = os.environ.get("SUITE_BUNDLES")
    return Path(env).expanduser().resolve() if env else RESULTS_DIR / "reproduction"


def shown(path: Path) -> str:
    """A path as a table note prints it: relative to the checkout when inside it."""
    try:
        return Path(path).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class BundleRun:
    """One committed run, as its bundle's files say."""

    path: Path
    summary: dict[str, Any]
    params: dict[str, str]
    tags: dict[str, str]
    epochs: list[dict[str, float]] = field(default_factory=list)  # metrics.csv, numbers only, in epoch order

    @property
    def name(self) -> str:
        return self.summary.get("run_name") or self.path.name

    @property
    def task(self) -> str:
        return str(self.summary.get("task") or "")

    @property
    def metric(self) -> str:
        return self.summary.get("metric") or "accuracy"

    @property
    def finished(self) -> bool:
        return bool(self.summary.get("finished"))

    @property
    def epochs_done(self) -> int:
        return int(self.summary.get("epochs_done") or len(self.epochs))

    @property
    def max_epochs(self) -> int | None:
        value = self.summary.get("max_epochs")
        return int(value) if value is not None else None

    def best(self) -> dict[str, float]:
        """The validation-selected numbers as run metrics: `best/test/accuracy`, `best/val/loss`, `best/epoch`, ..."""
        return {f"best/{k}": float(v) for k, v in (self.summary.get("best") or {}).items()
                if isinstance(v, (int, float))}

    def last(self, key: str) -> float | None:
        """The last value of a per-epoch column (e.g. `test/n_samples`), None when never logged."""
        values = [row[key] for row in self.epochs if key in row]
        return values[-1] if values else None

    def curve(self, key: str) -> list[tuple[int, float]]:
        """(epoch, value) of a per-epoch column; epochs count from 0, as `best/epoch` and Lightning do."""
        return [(int(row["epoch"]), row[key]) for row in self.epochs if key in row and "epoch" in row]

    def progress_text(self) -> str:
        """`40/40 epochs` or `12/40 epochs, unfinished`."""
        total = self.max_epochs
        text = f"{self.epochs_done}/{total if total is not None else '?'} epochs"
        return text if self.finished else text + ", unfinished"

    def data_text(self) -> str:
        """The draw of the data the run saw, in words: source, generator seed and sizes."""
        data = self.summary.get("data") or {}
        source = data.get("source") or self.summary.get("data_source") or "unknown"
        if source != "generated":
            return f"{source} data"
        gen = data.get("generator") or data.get("pathfinder") or {}
        if {"n_train", "n_val", "n_test"} <= set(gen):
            sizes = f"{gen['n_train']}/{gen['n_val']}/{gen['n_test']} train/val/test"
            lengths = (f", lengths {gen['min_length']}–{gen['max_length']} (exclusive)"
                       if {"min_length", "max_length"} <= set(gen) else "")
            return f"generated data, generator seed {gen.get('seed', '?')}, {sizes}{lengths}"
        if "n_images" in gen:
            return (f"generated data, generator seed {gen.get('seed', '?')}, {gen['n_images']} images "
                    f"(split seed {gen.get('split_seed', '?')})")
        return "generated data" + (f", generator seed {gen['seed']}" if "seed" in gen else "")

    def hours_text(self) -> str:
        gpu, wall = self.summary.get("gpu_hours"), self.summary.get("wall_hours")
        device = self.summary.get("device")
        if gpu:
            return f"{gpu:.2f} GPU-hours" + (f" ({device})" if device else "")
        if wall is not None:
            return f"{wall:.2f} hours" + (f" on {device}" if device else "")
        return ""


def read(folder: Path) -> BundleRun:
    """The bundle in `folder`. BundleError (exit 10) when a file a table needs is missing or unreadable."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        if not isinstance(summary, dict) or "run_id" not in summary:
            raise ValueError("not a bundle summary")
        params = json.loads((folder / "params.json").read_text())
        tags = json.loads((folder / "tags.json").read_text())
        with open(folder / "metrics.csv", newline="") as f:
            epochs = [_numbers(row) for row in csv.DictReader(f)]
    except (OSError, ValueError) as exc:
        raise BundleError(f"the bundle {shown(folder)} cannot be read: {type(exc).__name__}: {exc}",
                          hint="it must hold the files `suite export` wrote (summary.json, metrics.csv, "
                               "params.json, tags.json); export the run again") from None
    return BundleRun(folder, summary, params, tags, sorted(epochs, key=lambda r: r.get("epoch", -1)))


def _numbers(row: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, text in row.items():
        try:
            value = float(text)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) or key.endswith(("/loss", "/accuracy", "/rmse")):
            out[key] = value
    return out


def find(root: Path | None = None) -> list[BundleRun]:
    """Every bundle below `root` (default: `default_dir()`), ordered by task and folder name. A missing folder
    holds none."""
    root = Path(root) if root is not None else default_dir()
    if not root.is_dir():
        return []
    return [read(p.parent) for p in sorted(root.rglob("summary.json"), key=lambda p: (p.parent.parent.name,
                                                                                       p.parent.name))]


def bundles_option(args) -> tuple[Path | None, bool]:
    """`--bundles DIR` / `--no-bundles` of `suite table` and `suite report`: (folder or None for the default, whether
    to show committed runs at all). A folder given that does not exist is an error, not an empty block."""
    folder = getattr(args, "bundles", None)
    if folder is not None and not Path(folder).is_dir():
        raise BundleError(f"--bundles {folder}: no such folder.",
                          hint="give the folder that holds the committed bundles (default: results/reproduction), "
                               "or leave them out with --no-bundles")
    return (Path(folder) if folder is not None else None), not getattr(args, "no_bundles", False)

