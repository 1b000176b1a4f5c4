"""What a run's log leaves out: library messages a user cannot act on (docs/usage.md, "Logs on a cluster").

Python warnings of Lightning and PyTorch a run drops (`quiet_run`, `WARNINGS`): the litlogger and LeafSpec
notices, "does not have many workers", "The number of training batches", "GPU available but not used" and
"resuming from a checkpoint that ended before the epoch ended" (a resume from a mid-epoch last.ckpt, on purpose).

Lightning writes seven info lines per run; kept are those that say something about this run a user can
change (a GPU present but not used, why training stopped). Dropped:

- the advertisement for litlogger (`💡 Tip: ...`);
- `GPU available: False, used: False`, `GPU available: True (cuda), used: True`, `TPU available: False, ...`
  (the run's own line already names its device);
- ``Trainer(limit_train_batches=1.0)` was configured so 100% ...`` and `Loading `train_dataloader` to
  estimate number of stepping batches.`;
- the tip to set `torch.set_float32_matmul_precision('medium' | 'high')` on GPUs with tensor cores. The
  suite deliberately keeps PyTorch's default precision ('highest': true float32 matmuls), because the
  SSM kernels' numbers are compared with float64 references and with the published code; TF32 would
  change them. Filtering the message changes nothing in the computation.

MLflow's INFO lines when it creates a new store (`Creating initial MLflow database tables...`, the
alembic migration steps) are dropped by `suite.tracking`; its warnings and errors stay.
"""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")

# Substrings of the info lines dropped (see the module docstring for why each one goes).
DROPPED = (
    "Tip: For seamless cloud logging",
    "TPU available: False",
    "was configured so 100%",
    "to estimate number of stepping batches",
    "that has Tensor Cores",
)


def dropped(message: str) -> bool:
    """Whether a Lightning info line is noise (kept: a GPU that is available and not used)."""
    if message.startswith("GPU available:"):
        return not ("available: True" in message and "used: False" in message)
    return any(part in message for part in DROPPED)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not dropped(record.getMessage())
        except Exception:  # a record whose message cannot be formatted: let logging report it
            return True


_FILTER = _DropNoise()


def quiet_lightning() -> None:
    """Install the filter on Lightning's two info loggers (idempotent)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# Python warnings a run drops (the module docstring says why).
WARNINGS = (
    ".*LeafSpec.*",
    ".*litlogger.*",
    ".*does not have many workers.*",
    ".*The number of training batches.*",
    ".*GPU available but not used.*",
    ".*resuming from a checkpoint that ended before the epoch ended.*",
)


def quiet_run() -> None:
    """Everything a run leaves out of its log: the warnings above, Lightning's "possible user warnings" and its
    noisy info lines (`quiet_lightning`). Called by `suite run` and `suite eval` before Lightning starts."""
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    from lightning.pytorch.utilities import disable_possible_user_warnings

    disable_possible_user_warnings()
    quiet_lightning()
