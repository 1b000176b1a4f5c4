"""What every worker of one `suite sweep` command needs to know, decided once by suite/sweep/study.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """What every worker needs; plain values so it crosses a spawn boundary."""

    file: str
    study: str
    storage: str
    uri: str
    experiment_id: str
    parent_run_id: str
    data_dir: str | None
    target: int  # stop when COMPLETE + PRUNED trials reach this
    first_number: int  # trials numbered from here on were started by this invocation
    max_failures: int
    progress_bar: bool | None  # None = the preset's

