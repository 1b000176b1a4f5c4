"""What a task hands to the trainer."""

from __future__ import annotations

from dataclasses import dataclass
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


def pad_tokens(batch: list[tuple[torch.Tensor, int]], pad: int = 0):
    """[(tokens (L_i,), label)] -> x (B, max L_i) padded with `pad`, y (B,), lengths (B,)."""
    lengths = torch.tensor([len(t) for t, _ in batch])
    x = torch.full((len(batch), int(lengths.max())), pad, dtype=torch.long)
    for i, (t, _) in enumerate(batch):
        x[i, : len(t)] = t
    y = torch.tensor([label for _, label in batch])
    return x, y, lengths
