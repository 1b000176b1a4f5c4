"""The Lightning loggers of a run: MLflow on rank 0, written from a background thread; nothing elsewhere.

- `ResumedMLFlowLogger`: MLflow. A write to the store (a SQLite transaction, or an HTTP request to a server)
  takes tens of milliseconds, as long as several training steps on a GPU; made on the training thread it
  would leave the GPU idle that long at every log interval (suite/train/throughput.py, issue 12 target 2). So
  `log_metrics` only queues the metrics (timestamped then) and a `MetricWriter` thread writes them, in
  batches, in the order they were logged. The queue is flushed (every queued metric written) before each
  checkpoint is saved (`FlushMetrics`), when Lightning finalizes the logger (the end of `fit`, an exception,
  Ctrl-C or SIGTERM) and at interpreter exit; a process killed outright (SIGKILL) loses at most the metrics
  queued since then, and the store stays consistent (each batch is one `log_batch` call). A write that fails
  is raised on the training thread at its next log or flush, so a broken store still fails the run.
  A resumed run replays the steps between its last checkpoint and the kill; a (metric, step) pair the run
  already holds is not logged again, so every step, and every epoch's metrics, appear once in the history.
- `SilentLogger`: for DDP ranks other than 0. Only rank 0 writes to MLflow; the other ranks still
  need a logger for callbacks that insist on one (LearningRateMonitor).
"""

from __future__ import annotations

import atexit
import re
import threading
import time
import weakref
from typing import Any, Callable

import lightning.pytorch as L
from lightning.pytorch.loggers import Logger, MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

BATCH = 1000  # metrics per log_batch call: MLflow's limit


class MetricWriter:
    """Calls `write(batch)` from a daemon thread for what `put` queues, at most BATCH items a call, in order.

    `flush` waits until everything queued is written; an exception of `write` is re-raised by the next `put`
    or `flush` (the batch that failed is dropped: a retry could write it twice)."""

    def __init__(self, write: Callable[[list], None], name: str = "suite-metrics"):
        self._write = write
        self._name = name
        self._pending: list = []
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    def put(self, items: list) -> None:
        self._raise_error()
        if not items:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("MetricWriter.put after close")
            self._pending.extend(items)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return  # closed and drained
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                self._busy = True
            try:
                self._write(batch)
            except BaseException as exc:  # kept for the training thread
                with self._cond:
                    self._error = self._error or exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued item is written (True), or `timeout` seconds passed (False); re-raise a
        failed write."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._pending or self._busy) and self._thread is not None and self._thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        self._raise_error()
        return True

    def close(self) -> None:
        """Flush, then end the thread (a later `put` starts nothing)."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join()
            _LIVE.discard(self)

    @property
    def pending(self) -> int:
        """Items queued or being written."""
        with self._cond:
            return len(self._pending) + (1 if self._busy else 0)

    def _raise_error(self) -> None:
        with self._cond:
            error, self._error = self._error, None
        if error is not None:
            raise error


_LIVE: "weakref.WeakSet[MetricWriter]" = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """An exit that skipped the logger's finalize (an error outside fit) still writes what was queued."""
    for writer in list(_LIVE):
        try:
            writer.flush(timeout=60)
        except Exception:
            pass


class ResumedMLFlowLogger(MLFlowLogger):
    def __init__(self, already_logged: set[tuple[str, int]], **kwargs: Any):
        super().__init__(**kwargs)
        self.already_logged = set(already_logged)
        self.writer = MetricWriter(self._write_batch)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Queue the metrics not logged before (see the module docstring); MLFlowLogger's names and timestamps."""
        from mlflow.entities import Metric

        fresh = {k: v for k, v in metrics.items() if (k, step or 0) not in self.already_logged}
        if not fresh:
            return
        self.experiment  # noqa: B018  (the client is made here, on the training thread, not in the writer's)
        timestamp_ms = int(time.time() * 1000)
        batch = [Metric(key=re.sub("[^a-zA-Z0-9_/. -]+", "", k), value=float(v), timestamp=timestamp_ms,
                        step=step or 0) for k, v in fresh.items() if not isinstance(v, str)]
        self.writer.put(batch)

    def _write_batch(self, batch: list) -> None:
        self.experiment.log_batch(run_id=self.run_id, metrics=batch, **self._log_batch_kwargs)

    def flush(self) -> None:
        """Write every queued metric now (re-raising a failed write)."""
        self.writer.flush()

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        try:
            self.writer.close()  # the queued metrics first: a status set after them leaves none behind
        finally:
            # Lightning marks the run FINISHED when fit() returns; `suite.train.run.train` does that itself, after the
            # best/* metrics and the artifacts are logged, so a kill in between does not leave a FINISHED run
            # half done.
            if status != "success":
                super().finalize(status)
            self.writer = MetricWriter(self._write_batch)  # a later fit (or validate) logs again


class FlushMetrics(L.Callback):
    """Flush the run's queued metrics before every checkpoint is written (`on_save_checkpoint`): a run resumed
    from a checkpoint then finds in the store every metric up to that checkpoint, and replays the rest."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            flush = getattr(logger, "flush", None)
            if callable(flush):
                flush()


class SilentLogger(Logger):
    """A logger that records nothing (DDP ranks > 0)."""

    @property
    def name(self) -> str:
        return "silent"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass
