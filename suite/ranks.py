"""Which DDP rank this process is, before Lightning has set anything up.

With `--strategy ddp`, Lightning starts the same `suite run ...` command again for local ranks 1..N-1
(environment LOCAL_RANK); torchrun sets RANK; a second machine runs the command with NODE_RANK; under
SLURM every task has SLURM_PROCID. Only rank 0 creates and writes the MLflow run; it exports the run
id as SUITE_RUN_ID before training, so the ranks it launches know it.
"""

from __future__ import annotations

import os

from suite.gpus import devices_per_machine

RUN_ID_ENV = "SUITE_RUN_ID"


def _int(name: str) -> int:
    try:
        return int(os.environ.get(name) or 0)
    except ValueError:
        return 0


def is_distributed(trainer_cfg) -> bool:
    """Whether the trainer settings ask for more than one process."""
    many = devices_per_machine(trainer_cfg.devices) != 1  # auto: one device (suite/gpus.py); -1: every GPU
    return trainer_cfg.num_nodes > 1 or many or "ddp" in str(trainer_cfg.strategy)


def process_rank(trainer_cfg=None) -> int:
    """0 for the process that owns the run; > 0 for any other DDP rank (only zero / non-zero matters).

    SLURM_PROCID counts only when the trainer settings are distributed: independent sweep workers
    started with `srun -n 4` each own their runs."""
    if "RANK" in os.environ:
        return _int("RANK")
    if trainer_cfg is not None and is_distributed(trainer_cfg) and "SLURM_PROCID" in os.environ:
        return _int("SLURM_PROCID")
    return _int("LOCAL_RANK") + _int("NODE_RANK") + _int("GROUP_RANK")


def is_rank_zero(trainer_cfg=None) -> bool:
    return process_rank(trainer_cfg) == 0
