"""Training progress for logs that are not a terminal (SLURM, nohup, CI): one plain line every N seconds.

A progress bar redraws itself with carriage returns; written into a file it becomes kilobytes of
overwritten lines per epoch, and a buffered one shows nothing at all for minutes. When the run's
output is not a terminal, `ProgressLines` replaces the bar with one line every
`trainer.progress_every_seconds` (docs/usage.md, "Logs on a cluster"):

    progress: epoch 3/10  step 1200/4000 (30%)  412.5 samples/s  loss 0.8123  ETA 0:11:20

and one line per finished epoch with the evaluation metrics Lightning computed:

    epoch 3/10 done: step 1250/4000  val/loss 0.7990  val/accuracy 0.6211  test/loss ...  (2:05 so far)

On a terminal the run keeps Lightning's bar. `use_progress_lines()` makes the choice.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO

import lightning.pytorch as L


def output_is_terminal(*streams: IO | None) -> bool:
    """Whether every stream is an interactive terminal (default: stdout, where Lightning draws its bar, and
    stderr, where the run writes its messages)."""
    for s in streams or (sys.stdout, sys.stderr):
        try:
            if s is None or not s.isatty():
                return False
        except (AttributeError, ValueError):  # a closed or replaced stream
            return False
    return True


def use_progress_lines(progress_bar: bool) -> bool:
    """Plain progress lines instead of the bar: asked for progress (`trainer.progress_bar`) and not on a terminal."""
    return progress_bar and not output_is_terminal()


def format_duration(seconds: float) -> str:
    """1:02:03 for an hour, 2:03 below; '?' when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLines(L.Callback):
    """One progress line every `every_seconds` of training and one per finished epoch, written to `stream`
    (stderr) by rank 0 only. `batch_size` is one process's batch; samples/s counts every process's."""

    def __init__(self, every_seconds: float = 30.0, batch_size: int | None = None,
                 stream: IO | None = None, clock=time.monotonic):
        super().__init__()
        self.every_seconds = every_seconds
        self.batch_size = batch_size
        self.stream = stream
        self.clock = clock
        self._start = self._last = 0.0
        self._start_step = self._last_step = 0

    # -- what a line says -----------------------------------------------------------------------
    @staticmethod
    def _total_steps(trainer: L.Trainer) -> int | None:
        total = trainer.estimated_stepping_batches
        return int(total) if total and math.isfinite(total) else None

    @staticmethod
    def _epochs(trainer: L.Trainer) -> str:
        last = trainer.max_epochs
        return f"{trainer.current_epoch + 1}/{last}" if last and last > 0 else str(trainer.current_epoch + 1)

    def _steps(self, trainer: L.Trainer, total: int | None) -> str:
        step = trainer.global_step
        return f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}"

    def _eta(self, trainer: L.Trainer, total: int | None, now: float) -> str:
        done = trainer.global_step - self._start_step
        if not total or done <= 0:
            return "ETA ?"
        # wall time per step since training (or the resume) began: validation and checkpoints included
        return f"ETA {format_duration((total - trainer.global_step) * (now - self._start) / done)}"

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        print(text, file=stream, flush=True)

    # -- Lightning hooks ------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last = self.clock()
        self._start_step = self._last_step = trainer.global_step
        if trainer.is_global_zero:
            total = self._total_steps(trainer)
            self._write(f"training: {total if total else 'an open number of'} steps"
                        f"{f' over {trainer.max_epochs} epochs' if trainer.max_epochs and trainer.max_epochs > 0 else ''};"
                        f" a progress line every {self.every_seconds:g} s")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = self.clock()
        if now - self._last < self.every_seconds or not trainer.is_global_zero:
            return
        total = self._total_steps(trainer)
        steps = trainer.global_step - self._last_step
        parts = [f"progress: epoch {self._epochs(trainer)}", self._steps(trainer, total)]
        if self.batch_size and steps > 0:
            samples = steps * self.batch_size * trainer.world_size
            parts.append(f"{samples / (now - self._last):.1f} samples/s")
        loss = _loss_of(outputs)
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        parts.append(self._eta(trainer, total, now))
        self._write("  ".join(parts))
        self._last, self._last_step = now, trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        now = self.clock()
        total = self._total_steps(trainer)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if "/" in k and not k.startswith(("train/loss_step", "lr-")) and not k.endswith("n_samples")}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items(), key=lambda kv: _split_order(kv[0])))
        self._write(f"epoch {self._epochs(trainer)} done: {self._steps(trainer, total)}"
                    f"{'  ' + shown if shown else ''}  ({format_duration(now - self._start)} so far, "
                    f"{self._eta(trainer, total, now)})")


def _loss_of(outputs) -> float | None:
    """The training loss of a batch from what `training_step` returned (a tensor, or a dict with 'loss')."""
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    try:
        value = float(outputs)
    except (TypeError, ValueError, RuntimeError):
        return None
    return value  # a NaN loss is shown as such; DivergenceGuard stops the run


def _split_order(key: str) -> tuple[int, str]:
    split = key.split("/", 1)[0]
    return ({"train": 0, "val": 1, "test": 2}.get(split, 3), key)


class SystemMetrics(L.Callback):
    """CPU, memory and GPU use logged to the run while it trains (`suite.tracking.system_metrics_monitor`), on
    rank 0; the tag `suite.system_metrics` says `on` or why it is off."""

    def __init__(self, uri: str, run_id: str, resume: bool, every_seconds: float = 10.0):
        super().__init__()
        self.uri, self.run_id, self.resume, self.every_seconds = uri, run_id, resume, every_seconds
        self.monitor = None

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        from suite.tracking import store

        self.monitor, why_not = store.system_metrics_monitor(self.uri, self.run_id, self.resume, self.every_seconds)
        store.set_tags(self.uri, self.run_id, {"suite.system_metrics": "on" if self.monitor else f"off: {why_not}"})

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self.stop()

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        self.stop()
