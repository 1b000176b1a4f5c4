"""What a task hands to the trainer (TaskData), and what it reports to `suite data status` (DataStatus)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tasks import cache


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


class FlatDocs(Dataset):
    """Variable-length documents stored flat (as `tasks.text.flat` writes them), one label per item:
    document k = tokens[offsets[k]:offsets[k+1]]. Subclasses say which documents make item i."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, labels: np.ndarray):
        self.tokens, self.offsets, self.labels = tokens, offsets, labels  # (N,) ints, (n_docs + 1,) int64, (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def doc(self, k: int) -> torch.Tensor:
        """Document k: (L_k,) int64."""
        return torch.from_numpy(np.asarray(self.tokens[self.offsets[k] : self.offsets[k + 1]], dtype=np.int64))

    @classmethod
    def load_splits(cls, entry: Path, splits) -> tuple[np.ndarray, dict]:
        """(vocabulary, {split: dataset}) from a token cache holding `vocab` and, per split,
        `<split>_tokens`, `<split>_offsets` and `<split>_labels`."""
        names = ["vocab"] + [f"{s}_{part}" for s in splits for part in ("tokens", "offsets", "labels")]
        a = cache.load(entry, names)
        return a["vocab"], {s: cls(a[f"{s}_tokens"], a[f"{s}_offsets"], a[f"{s}_labels"]) for s in splits}


class TokenDataset(FlatDocs):
    """One document per item: item i = (document i (L_i,) int64, label)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.doc(i), int(self.labels[i])


@dataclass
class DataStatus:
    """One task's data on disk, for `suite data status`."""

    where: Path  # the folder (or file) the raw data should be in
    present: bool  # every raw file the loader needs is there
    verified: bool | None  # the prepared cache is built and its checksums match; None = not prepared yet
    size_bytes: int  # raw files on disk
    note: str = ""  # e.g. "generated" or what is missing


def raw_status(where: Path, missing: list[str], cache_entry: Callable[[], tuple[Path, str]], note: str,
               files: Sequence[Path] = ()) -> DataStatus:
    """A task's DataStatus from its raw-data folder `where` and the raw files `missing` there. When none is
    missing, `cache_entry()` gives the prepared cache's (folder, key) (asked only then: the key fingerprints
    the raw files) and `note` is reported; otherwise the note names the first missing files. The size on
    disk is that of `files` when given (a folder shared with other tasks), else of all of `where`."""
    size = disk_size(*files) if files else disk_size(where)
    if missing:
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        return DataStatus(where, False, None, size, "missing " + ", ".join(missing[:4]) + more)
    return DataStatus(where, True, cache.verified(*cache_entry()), size, note)


def disk_size(*paths: Path) -> int:
    """Bytes under the given files and folders (missing ones count 0)."""
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total
