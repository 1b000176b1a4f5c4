"""A training loop that never waits for the GPU, and what it achieves, logged to MLflow.

On a GPU the host queues a training step's work and moves on; any read of a GPU value (`.item()`,
`float(tensor)`, a blocking copy) makes it wait until the queue has drained, and the GPU then idles while
the host runs the next step's Python. At the paper recipes' sizes with CUDA graphs a step is about 10 ms,
so such waits cost tens of percent (issue 12, target 2). The per-step code of `suite run` therefore reads
nothing from the GPU: the training metrics accumulate on the device (suite/train/lightning_module.py), the
divergence check reads a device-side flag every log interval (suite/train/guards.py), batches come from pinned
memory, and the progress bar below reads the logged values every log interval only. At a log point, after that
one read, the metrics go to a queue that a background thread writes to MLflow (suite/tracking/lightning.py): a store write
takes as long as several steps. Evaluation runs in CUDA graphs like training (suite/train/eval_graphs.py) and reads
nothing per batch either.

- `Throughput` logs `perf/samples_per_s` (training samples per second of wall time since the previous log
  point, validation excluded) and, on a GPU, `perf/gpu_mem_gib` (the peak memory allocated by tensors so
  far, GiB) every `trainer.log_every_n_steps` optimizer steps. Both are host-side values (a clock, the
  allocator's counters): logging them does not wait for the GPU either.
- `SteadyProgressBar` is Lightning's progress bar with the step loss and its metrics refreshed every log
  interval instead of every step; the bar itself moves every step.
- `HostReads` finds such reads without a GPU: it records every call that copies a tensor's value to the host
  (`.item()`, `float(t)`, `bool(t)`, `.tolist()`, `.cpu()`, ...) during chosen training steps, with where it came
  from. On a CPU these calls cost nothing, on a GPU each one is a wait; tests/suite/test_loop.py and
  benchmarks/loop_overhead.py use it to show that the steps between two log points make none.
"""

from __future__ import annotations

import time
import traceback

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.overrides import TorchFunctionMode


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


# Tensor methods that hand a tensor's value to Python or to host memory: each waits for the GPU on a CUDA tensor.
HOST_READS = {"item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__complex__", "__format__",
              "__repr__", "__array__", "cpu", "numpy"}


def _reads_host(func, args, kwargs) -> str | None:
    name = getattr(func, "__name__", "")
    if name in HOST_READS:
        return name
    if name == "to" and args and isinstance(args[0], torch.Tensor):
        # .to("cpu"), .to(torch.device("cpu")), .to(a_cpu_tensor); not a move to the tensor's own device (no copy)
        for a in [*args[1:], kwargs.get("device")]:
            if isinstance(a, torch.Tensor):
                a = a.device
            if isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu" != args[0].device.type:
                return "to(cpu)"
    return None


class _ReadRecorder(TorchFunctionMode):
    def __init__(self, record):
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        what = _reads_host(func, args, kwargs)
        if what is not None and args and isinstance(args[0], torch.Tensor):
            self.record(what, args[0])
        return func(*args, **kwargs)


class HostReads(L.Callback):
    """Records the reads of tensor values by the host (HOST_READS) during training steps `first` .. `last`
    (global steps, inclusive): everything from the start of a step's batch to the start of the next one
    (data loading, forward, backward, optimizer, every callback and logger). `reads` holds one entry per read:
    {"step", "what", "shape", "where": innermost frames 'file:line function'}; `steps` the steps seen."""

    def __init__(self, first: int, last: int):
        super().__init__()
        self.first, self.last = first, last
        self.reads: list[dict] = []
        self.steps: list[int] = []
        self._mode: _ReadRecorder | None = None
        self._step = -1

    def _record(self, what: str, tensor: torch.Tensor) -> None:
        stack = traceback.extract_stack()[:-2]  # without this mode's own frames
        where = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}" for f in stack[-8:]]
        self.reads.append({"step": self._step, "what": what, "shape": tuple(tensor.shape), "where": where})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step  # the optimizer step this batch makes, counted from 0
        if self._mode is None and self.first <= step <= self.last:
            self._mode = _ReadRecorder(self._record)
            self._mode.__enter__()
        elif self._mode is not None and step > self.last:
            self._stop()
        if self._mode is not None:
            self._step = step
            self.steps.append(step)

    def _stop(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop()  # validation is not a training step

    def on_validation_start(self, trainer, pl_module) -> None:
        self._stop()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._stop()
