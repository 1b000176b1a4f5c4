"""The epoch metrics of a split, accumulated on the device and read once per epoch.

For each split (train, val, test, ...), over the samples an epoch scores:
    <split>/loss       sum over batches of (batch mean loss x batch size) / samples: the mean per-sample loss;
    <split>/accuracy   samples whose logits' argmax is the label / samples (classification);
    <split>/rmse       sqrt(sum of squared errors / samples) (regression);
    <split>/n_samples  the samples scored (evaluation splits; summed over DDP ranks, whose samplers may repeat a
                       few samples to give every rank the same count).

The three sums live in one float64 tensor on the model's device, updated in place by each batch: no value is read
by the host and no Python number is copied to the GPU during the epoch (either would wait for the GPU:
suite/train/throughput.py), and no per-batch logging call runs on the training thread. `compute` reads them once,
after summing them over the DDP ranks.
"""

from __future__ import annotations

from typing import Callable

import torch

METRIC = {"classification": "accuracy", "regression": "rmse"}  # the headline metric of each kind of problem
HIGHER_IS_BETTER = {"accuracy": True, "rmse": False}


class EpochMeter:
    """Sums (loss x samples, score, samples) of one split over one epoch; score: correct predictions
    (classification) or squared errors (regression)."""

    def __init__(self, problem: str):
        if problem not in METRIC:
            raise ValueError(f"unknown problem {problem!r}; expected one of {sorted(METRIC)}")
        self.problem = problem
        self.metric = METRIC[problem]
        self.sums: torch.Tensor | None = None  # (3,) float64 on the device of the first batch

    def reset(self) -> None:
        if self.sums is not None:
            self.sums.zero_()

    def update(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """loss: the batch's mean loss (0-dim); out: (B, classes) logits or (B,) predictions; y: (B,) targets."""
        n = y.shape[0]
        if self.sums is None or self.sums.device != out.device:
            self.sums = torch.zeros(3, dtype=torch.float64, device=out.device)
        with torch.no_grad():
            if self.problem == "classification":
                score = (out.argmax(-1) == y).sum()
            else:
                score = (out.float() - y.float()).square().sum()
            self.sums[0].add_(loss.detach(), alpha=n)  # a Python number as a kernel argument: no copy to the GPU
            self.sums[1].add_(score)
            self.sums[2].add_(n)

    def compute(self, reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> dict[str, float]:
        """{"loss", metric, "n_samples"} of the epoch (empty when it scored nothing); `reduce` sums a tensor over
        the DDP ranks (the strategy's reduce), one read by the host after it."""
        if self.sums is None:
            return {}
        loss_sum, score, n = reduce(self.sums.clone()).tolist()
        if n == 0:
            return {}
        value = score / n if self.problem == "classification" else (score / n) ** 0.5
        return {"loss": loss_sum / n, self.metric: value, "n_samples": n}
