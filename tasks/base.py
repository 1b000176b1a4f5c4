"""What a task hands to the trainer (TaskData), and what it reports to `suite data status` (DataStatus)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
from torch.utils.data import Dataset


@dataclass
class TaskData:
    train: Dataset
    val: Dataset
    test: Dataset
    collate: Callable
    encoder: Literal["embedding", "linear"]
    d_input: int  # vocabulary size (embedding) or input channels (linear)
    d_output: int  # classes, or 1 for regression
    problem: Literal["classification", "regression"]
    source: Literal["release", "generated"]  # tables keep generated data apart
    l_max: int
    # More evaluation splits beyond val and test, evaluated every epoch and logged as `<name>/<metric>`,
    # e.g. {"test8k": dataset} for the Speech Commands zero-shot test at 8 kHz.
    extra_eval: dict[str, Dataset] = field(default_factory=dict)
    # Step-size multiplier per evaluation split, on top of model.rate (Delta <- rate * Delta), e.g. {"test8k": 2.0}.
    eval_rate: dict[str, float] = field(default_factory=dict)
    collate_eval: dict[str, Callable] = field(default_factory=dict)  # per-split collate, default `collate`

    @property
    def eval_splits(self) -> list[str]:
        return ["val", "test", *self.extra_eval]

    def split(self, name: str) -> Dataset:
        return self.extra_eval[name] if name in self.extra_eval else getattr(self, name)


def pad_tokens(batch: list[tuple[torch.Tensor, int]], pad: int = 0):
    """[(tokens (L_i,), label)] -> x (B, max L_i) padded with `pad`, y (B,), lengths (B,)."""
    lengths = torch.tensor([len(t) for t, _ in batch])
    x = torch.full((len(batch), int(lengths.max())), pad, dtype=torch.long)
    for i, (t, _) in enumerate(batch):
        x[i, : len(t)] = t
    y = torch.tensor([label for _, label in batch])
    return x, y, lengths


@dataclass
class DataStatus:
    """One task's data on disk, for `suite data status`."""

    where: Path  # the folder (or file) the raw data should be in
    present: bool  # every raw file the loader needs is there
    verified: bool | None  # the prepared cache is built and its checksums match; None = not prepared yet
    size_bytes: int  # raw files on disk
    note: str = ""  # e.g. "generated" or what is missing


def disk_size(*paths: Path) -> int:
    """Bytes under the given files and folders (missing ones count 0)."""
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total
