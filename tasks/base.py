"""What a task hands to the trainer (TaskData), and what it reports to `suite data status` (DataStatus)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tasks import cache
from tasks.errors import DataError


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
    # Facts about the data a run should record (suite.train.record.log_data_stats logs them as MLflow metrics), e.g.
    # {"data/truncated_fraction/train": 0.93, "data/oov_tokens/val": 12.0}.
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def eval_splits(self) -> list[str]:
        return ["val", "test", *self.extra_eval]

    def split(self, name: str) -> Dataset:
        return self.extra_eval[name] if name in self.extra_eval else getattr(self, name)


def check_splits(task: str, data: TaskData, where: Path, l_max: int | None = None) -> None:
    """The degeneracies no task may hand to the trainer, each a DataError: a fixed sequence length other than
    the configured `l_max` (the network's kernels are built for data.l_max; speech clips are 16000 samples,
    BIDMC cases 4000 whatever data.l_max says), an empty split (train, val, test or an extra evaluation
    split), or a class label outside 0 .. d_output - 1 (datasets holding a `labels` array; the readers
    already reject such labels naming file and line, this is the backstop for every task)."""
    if l_max is not None and data.l_max != l_max:
        raise DataError(f"task '{task}' has sequences of {data.l_max:,} steps, but data.l_max = {l_max:,}.",
                        hint=f"set data.l_max={data.l_max} (the recipe's value)")
    sizes = {name: len(data.split(name)) for name in ["train", *data.eval_splits]}
    for name, n in sizes.items():
        if n == 0:
            shown = ", ".join(f"{k} {v:,}" for k, v in sizes.items())
            raise DataError(f"task '{task}': the {name} split is empty (examples per split: {shown}); training "
                            f"would fail or report nothing for it.",
                            hint=f"check the raw files of '{task}' under {where} (`suite data status {task}`); "
                                 "re-fetch them (`suite data fetch`), or for generated data generate more examples")
    if data.problem != "classification":
        return
    for name in sizes:
        labels = getattr(data.split(name), "labels", None)
        if labels is None:
            continue
        labels = np.asarray(labels)
        bad = np.flatnonzero((labels < 0) | (labels >= data.d_output))
        if len(bad):
            raise DataError(f"task '{task}': the {name} split holds {len(bad):,} labels outside the "
                            f"{data.d_output} classes 0-{data.d_output - 1} (first: example {bad[0]}, label "
                            f"{labels[bad[0]]}).",
                            hint=f"check the raw files of '{task}' under {where}; re-fetch or re-generate them")


def truncation_counts(entry: Path, splits: Sequence[str]) -> dict[str, int]:
    """{split: documents truncated} from a token cache holding `<split>_truncated` (one int64 each)."""
    a = cache.load(entry, [f"{s}_truncated" for s in splits])
    return {s: int(a[f"{s}_truncated"][0]) for s in splits}


def token_stats(task: str, splits: dict[str, "FlatDocs"], truncated: dict[str, int], l_max: int,
                unk: int = 1, unit: str = "examples", oov_splits: Sequence[str] = ("val", "test")) -> dict[str, float]:
    """Truncation and out-of-vocabulary counts of a token task, as a stats dict; one warning line on stderr for
    each that is not zero. `truncated[split]` = documents cut to l_max - 1 tokens (+ <eos>) when tokenised;
    a document is one item (or, `unit="documents"`, one of the two of a retrieval pair)."""
    stats: dict[str, float] = {}
    cut = []
    for s, docs in splits.items():
        n = len(docs.offsets) - 1
        stats[f"data/truncated_fraction/{s}"] = truncated[s] / n if n else 0.0
        if truncated[s]:
            cut.append(f"{s} {truncated[s] / n:.1%} ({truncated[s]:,} of {n:,})")
    if cut:
        print(f"warning: {task}: data.l_max = {l_max} truncates {unit} to {l_max - 1} tokens + <eos>: "
              + ", ".join(cut), file=sys.stderr)
    oov = []
    for s in oov_splits:
        if s not in splits:
            continue
        tokens = np.asarray(splits[s].tokens)
        n_unk = int(np.count_nonzero(tokens == unk))
        stats[f"data/oov_tokens/{s}"] = float(n_unk)
        stats[f"data/oov_fraction/{s}"] = n_unk / len(tokens) if len(tokens) else 0.0
        if n_unk:
            oov.append(f"{s} {n_unk:,} of {len(tokens):,} tokens ({n_unk / len(tokens):.2%})")
    if oov:
        print(f"warning: {task}: tokens outside the training vocabulary, read as <unk>: " + ", ".join(oov),
              file=sys.stderr)
    return stats


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
