"""Lightning callbacks that keep a run safe: a resume point on disk, a clean Ctrl-C, a divergence stop.

- `ResumePoint` keeps `<checkpoints>/<run id>/last.ckpt` fresh: every `every_n_steps` optimizer steps
  and/or every `every_seconds`, at the end of every epoch, and at a Ctrl-C or SIGTERM. It writes a
  temporary file and renames it, so a kill during the write never leaves a broken `last.ckpt`.
- Ctrl-C (SIGINT) while `ResumePoint.signal_handlers()` is active only sets a flag; the next training
  batch end saves `last.ckpt` and raises `KeyboardInterrupt` at a consistent point (after the optimizer
  step). A second Ctrl-C interrupts at once. SIGTERM (kill, SLURM preemption, docker stop) is handled the
  same way: once training starts, `ResumePoint` takes SIGTERM over from Lightning, whose own handler would
  stop the run at a batch end without saving (any step since the last periodic save would be lost).
  The last batch of an epoch is never a resume point: the epoch's validation must run first.
- A time limit (`deadline`, `suite run --time-limit 8m`, docs/reproduction.md) stops the run the same way at the
  last step boundary from which the next one would not be reached in time (`suite.train.timelimit.stop_now`, from the
  measured step, validation and checkpoint durations), or at an epoch end after its checkpoint. SIGUSR1 (what
  SLURM's `--signal=USR1@90` sends ahead of a job's time limit) asks for the same stop.
- `DivergenceGuard` stops the run with `DivergenceError` at the first non-finite training loss, and at the
  end of a validation pass whose loss on any evaluation split (val, test, test8k, ...) is NaN or infinite:
  an evaluation that diverged would otherwise let the run finish with a chance-level "best" accuracy.

Under DDP every decision (save now, stop now, diverged) is reduced across ranks, so no rank waits
alone at a collective.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as L
import torch

from suite.errors import DivergenceError


def any_rank(trainer: L.Trainer, *flags: bool) -> list[bool]:
    """Each flag OR-ed over all DDP ranks, in one all-reduce (no communication on a single process)."""
    if trainer.world_size == 1:
        return list(flags)
    votes = torch.tensor([float(f) for f in flags], device=trainer.strategy.root_device)
    votes = trainer.strategy.reduce(votes, reduce_op="sum")
    return [bool(v > 0) for v in votes.tolist()]


class ResumePoint(L.Callback):
    def __init__(self, path: Path, every_n_steps: int | None = None, every_seconds: float | None = None,
                 deadline: float | None = None, reserve_s: float = 0.0):
        super().__init__()
        self.path = Path(path)
        self.every_n_steps = every_n_steps or None
        self.every_seconds = every_seconds or None
        self._last_save = time.monotonic()
        self.deadline = deadline  # time.monotonic() of the time limit (suite.train.timelimit.deadline); None: none
        self.reserve_s = reserve_s  # seconds kept for the run's ending after the last checkpoint
        self.time_limit_reached = False  # stopped (or asked to stop, SIGUSR1) for the time limit
        self._step_s = 0.0  # longest recent step (batch end to batch end, data loading included)
        self._save_s = 0.0  # longest checkpoint write
        self._eval_s: float | None = None  # longest validation pass (all evaluation splits); None: none seen yet
        self._eval_started = 0.0
        self._last_batch_end: float | None = None
        self.interrupt_requested = False  # Ctrl-C seen; stop at the next batch end
        self.interrupted_at_step: int | None = None  # set when the run was stopped by Ctrl-C
        self.trained = False  # training ended normally (on_train_end)
        self.signal_name = "Ctrl-C"  # the stop request's signal, for messages

    # -- saving ---------------------------------------------------------------------------------
    def save(self, trainer: L.Trainer) -> None:
        """Write last.ckpt atomically (all ranks take part: save_checkpoint has a barrier)."""
        for guard in (c for c in trainer.callbacks if isinstance(c, DivergenceGuard)):
            guard.check(trainer)  # never a resume point with diverged weights (the save reads the GPU anyway)
        tmp = self.path.with_name(self.path.name + ".tmp")
        started = time.monotonic()
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        self._last_save = time.monotonic()
        self._save_s = max(self._save_s, self._last_save - started)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        out_of_time = self._out_of_time(trainer, batch_idx)  # measures the step, whether or not it may stop here
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            # A checkpoint taken here would resume without this epoch's validation: wait for the epoch-end save
            # (and, after Ctrl-C, stop at the next epoch's first batch).
            return
        # Ctrl-C or SIGTERM (our handler), or a SIGTERM that Lightning's handler recorded before on_train_start
        asked = self.interrupt_requested or bool(getattr(trainer, "received_sigterm", False))
        by_steps = bool(self.every_n_steps) and trainer.global_step % self.every_n_steps == 0
        by_time = bool(self.every_seconds) and time.monotonic() - self._last_save >= self.every_seconds
        # one all-reduce; clocks of ranks differ
        stop, timed_out, due = any_rank(trainer, asked or out_of_time, out_of_time, by_steps or by_time)
        if stop or due:
            self.save(trainer)
        if stop:
            self.time_limit_reached = self.time_limit_reached or timed_out
            self.interrupted_at_step = trainer.global_step
            raise KeyboardInterrupt

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # runs after the epoch's validation and after ModelCheckpoint saved best.ckpt
        self.save(trainer)
        self._last_batch_end = None  # the next step's duration starts at its own batch start
        if self.deadline is None or self._last_epoch(trainer):
            return
        one_batch = trainer.num_training_batches == 1  # then the next stop is the next epoch's end
        (stop,) = any_rank(trainer, self._must_stop(trainer, self.deadline - time.monotonic(), one_batch))
        if stop:  # an epoch-end checkpoint is a resume point like any other
            self.time_limit_reached = True
            self.interrupted_at_step = trainer.global_step
            raise KeyboardInterrupt

    # -- time limit ---------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._last_batch_end is None:
            self._last_batch_end = time.monotonic()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._eval_started = time.monotonic()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._eval_s = max(self._eval_s or 0.0, time.monotonic() - self._eval_started)

    def _out_of_time(self, trainer: L.Trainer, batch_idx: int) -> bool:
        """Measure the step just done; True when the time limit says to stop at this step boundary."""
        now = time.monotonic()
        if self._last_batch_end is not None:
            self._step_s = max(self._step_s * 0.99, now - self._last_batch_end)  # slowly forgets a slow first step
        self._last_batch_end = now
        if self.deadline is None:
            return False
        n_batches = trainer.num_training_batches
        next_is_last = isinstance(n_batches, int) and batch_idx + 2 >= n_batches
        return self._must_stop(trainer, self.deadline - now, next_is_last)

    def _must_stop(self, trainer: L.Trainer, time_left: float, next_is_last: bool) -> bool:
        """`suite.train.timelimit.stop_now` with the durations measured so far. Before the first validation its duration
        is guessed as one training step per evaluation batch."""
        from suite.train.timelimit import stop_now

        eval_s = self._eval_s
        if eval_s is None:
            n_eval = sum(n for n in (getattr(trainer, "num_val_batches", None) or []) if isinstance(n, int))
            eval_s = self._step_s * max(n_eval, 1)
        return stop_now(time_left, self._step_s, self._save_s, eval_s, next_is_last, self.reserve_s)

    @staticmethod
    def _last_epoch(trainer: L.Trainer) -> bool:
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
        max_steps = trainer.max_steps if trainer.max_steps is not None else -1
        return (max_epochs != -1 and trainer.current_epoch + 1 >= max_epochs) or (
            max_steps != -1 and trainer.global_step >= max_steps)

    # -- Ctrl-C and SIGTERM -----------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning registers its SIGTERM handler just before training starts (after on_fit_start). It raises
        # SIGTERMException at the next batch end, after this callback has run, so nothing would be saved:
        # route SIGTERM through the Ctrl-C path instead. Lightning restores the previous handler at teardown.
        try:
            for sig in _STOP_SIGNALS[1:]:  # SIGTERM, SIGUSR1 (Lightning's SLURM requeue handler would take it)
                signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread: Lightning could not register its handler either
            pass

    def on_train_end(self, trainer, pl_module) -> None:
        self.trained = True  # from here a stop request only lets the run finish its summary

    @contextmanager
    def signal_handlers(self):
        """While active, a first Ctrl-C or SIGTERM asks for a clean stop; a second one interrupts at once.
        Keep it active until the run is marked FINISHED: a signal after training only sets the flag."""
        try:
            previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
            for sig in previous:
                signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread (e.g. a sweep worker thread): leave the signals alone
            yield
            return
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        if self.interrupt_requested:
            raise KeyboardInterrupt
        self.interrupt_requested = True
        self.signal_name = name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if signum == getattr(signal, "SIGUSR1", None):  # the scheduler's warning: the job's time is nearly up
            self.time_limit_reached = True
        doing = "finishing the run's summary" if self.trained else "saving a checkpoint after this batch and stopping"
        print(f"\n{name}: {doing} ({name} again to stop at once)", file=sys.stderr, flush=True)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else []))


class DivergenceGuard(L.Callback):
    """Raise DivergenceError as soon as the training loss, or an evaluation split's epoch loss, is NaN or infinite.

    On a GPU the training loss is not read at every step (a read waits for the GPU: suite/train/throughput.py): the
    step and value of the first non-finite loss are kept on the device and read every log interval, before each
    validation, before `ResumePoint` writes a checkpoint and at the end of training; the error names that step.
    `defer` (None: on a GPU) chooses this for tests."""

    def __init__(self, defer: bool | None = None):
        super().__init__()
        self.defer = defer
        self._first: torch.Tensor | None = None  # (step, value) of the first non-finite loss; step -1: none yet

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if not isinstance(loss, torch.Tensor) or not (self.defer if self.defer is not None else loss.is_cuda):
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            (bad,) = any_rank(trainer, not math.isfinite(value))
            if bad:
                raise _diverged(trainer, "training loss", value)
            return
        loss = loss.detach().float().reshape(())
        if self._first is None:
            self._first = torch.full((2,), -1.0, device=loss.device)
        new = ~torch.isfinite(loss) & (self._first[0] < 0)
        self._first = torch.where(new, torch.stack([torch.full_like(loss, trainer.global_step), loss]), self._first)
        from suite.train.throughput import is_log_step

        if is_log_step(trainer):
            self.check(trainer)

    def check(self, trainer) -> None:
        """Read the device-side record (one wait for the GPU) and raise if a training loss was non-finite."""
        if self._first is None:
            return
        step, value = self._first.tolist()
        (bad,) = any_rank(trainer, step >= 0)
        if bad:
            raise _diverged(trainer, "training loss", value if step >= 0 else None, int(step) if step >= 0 else None)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.check(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        """After the epoch's `<split>/loss` values are reduced (and synced over ranks), before ModelCheckpoint
        (Lightning runs checkpoint callbacks last), so a diverged evaluation never becomes the best epoch."""
        if trainer.sanity_checking:
            return
        splits = getattr(pl_module, "eval_splits", ["val"])
        losses = {s: trainer.callback_metrics.get(f"{s}/loss") for s in splits}
        values = {s: float(v) for s, v in losses.items() if v is not None}
        bad = [s for s, v in values.items() if not math.isfinite(v)]
        (any_bad,) = any_rank(trainer, bool(bad))  # the values are synced; the vote keeps the ranks in step
        if any_bad:
            split = bad[0] if bad else "?"
            raise _diverged(trainer, f"{split} loss" if split != "val" else "validation loss", values.get(split))


def _diverged(trainer: L.Trainer, what: str, value: float | None, step: int | None = None) -> DivergenceError:
    step = trainer.global_step if step is None else step
    return DivergenceError(
        f"divergence: non-finite {what} ({value}) at step {step} (epoch {trainer.current_epoch}).",
        hint="lower the learning rate (--set optim.lr=...), clip gradients (--set optim.grad_clip=1.0), "
             "or use full precision (--precision 32-true)",
    )
