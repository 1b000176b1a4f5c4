"""A training loop that never waits for the GPU, and what it achieves, logged to MLflow.

On a GPU the host queues a training step's work and moves on; any read of a GPU value (`.item()`,
`float(tensor)`, a blocking copy) makes it wait until the queue has drained, and the GPU then idles while
the host runs the next step's Python. At the paper recipes' sizes with CUDA graphs a step is about 10 ms,
so such waits cost tens of percent (issue 12, target 2). The per-step code of `suite run` therefore reads
nothing from the GPU: the training metrics accumulate on the device (suite/lightning_module.py), the
divergence check reads a device-side flag every log interval (suite/guards.py), batches come from pinned
memory, and the progress bar below reads the logged values every log interval only.

- `Throughput` logs `perf/samples_per_s` (training samples per second of wall time since the previous log
  point, validation excluded) and, on a GPU, `perf/gpu_mem_gib` (the peak memory allocated by tensors so
  far, GiB) every `trainer.log_every_n_steps` optimizer steps. Both are host-side values (a clock, the
  allocator's counters): logging them does not wait for the GPU either.
- `SteadyProgressBar` is Lightning's progress bar with the step loss and its metrics refreshed every log
  interval instead of every step; the bar itself moves every step.
"""

from __future__ import annotations

import time

import lightning.pytorch as L
from lightning.pytorch.callbacks import TQDMProgressBar


def is_log_step(trainer: L.Trainer) -> bool:
    """Whether the logger connector writes this optimizer step's metrics (Lightning's own rule, read before the
    step counter moves on: in training_step and on_train_batch_end)."""
    every = trainer.log_every_n_steps
    return bool(every) and (trainer.fit_loop.epoch_loop._batches_that_stepped + 1) % every == 0


class Throughput(L.Callback):
    """perf/samples_per_s and perf/gpu_mem_gib in MLflow, every log interval (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self._start: float | None = None  # clock at the previous log point (None: restart at the next batch)
        self._samples = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._start is None:
            self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch[1])  # the labels: one per sample (a pair of documents is one sample)
        if not is_log_step(trainer) or self._start is None:
            return
        now = time.perf_counter()
        metrics = {"perf/samples_per_s": self._samples / max(now - self._start, 1e-9)}
        if pl_module.device.type == "cuda":
            import torch

            metrics["perf/gpu_mem_gib"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.fit_loop.epoch_loop._batches_that_stepped)
        self._start, self._samples = now, 0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._start = None  # the next interval starts after validation


class SteadyProgressBar(TQDMProgressBar):
    """Lightning's progress bar, with the training step loss (`train/loss_step`, which is not a progress-bar
    metric: Lightning would read those at every step) beside its metrics; both are read at the first step and
    every `every` steps after, and at the end of each epoch's validation."""

    def __init__(self, every: int):
        super().__init__()
        self.every = max(int(every), 1)
        self._metrics: dict | None = None

    def get_metrics(self, trainer, pl_module):
        loop = trainer.fit_loop.epoch_loop
        if self._metrics is None or not trainer.training or (loop._batches_that_stepped % self.every == 0):
            self._metrics = super().get_metrics(trainer, pl_module)
            loss = trainer.callback_metrics.get("train/loss_step")
            if loss is not None:
                self._metrics["train/loss_step"] = f"{float(loss):.3g}"
        return self._metrics
