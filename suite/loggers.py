"""The Lightning loggers of a run: MLflow on rank 0 (skipping what a resumed run already has), nothing elsewhere.

- `ResumedMLFlowLogger`: MLflow, and a resumed run replays the steps between its last checkpoint and the kill;
  a (metric, step) pair the run already holds is not logged again, so every step, and every
  epoch's metrics, appear once in the history.
- `SilentLogger`: for DDP ranks other than 0. Only rank 0 writes to MLflow; the other ranks still
  need a logger for callbacks that insist on one (LearningRateMonitor).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import Logger, MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only


class ResumedMLFlowLogger(MLFlowLogger):
    def __init__(self, already_logged: set[tuple[str, int]], **kwargs: Any):
        super().__init__(**kwargs)
        self.already_logged = set(already_logged)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        fresh = {k: v for k, v in metrics.items() if (k, step or 0) not in self.already_logged}
        if fresh:
            super().log_metrics(fresh, step)

    def finalize(self, status: str = "success") -> None:
        # Lightning marks the run FINISHED when fit() returns; `suite.run.train` does that itself, after the
        # best/* metrics and the artifacts are logged, so a kill in between does not leave a FINISHED run half done.
        if status != "success":
            super().finalize(status)


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
