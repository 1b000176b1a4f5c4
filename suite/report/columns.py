"""The columns of each family's table, in the paper's order: the task and run metric that fill a column, its unit
(accuracy in %, RMSE as is) and decimals, and whether higher is better; the families and their titles."""

from __future__ import annotations

from dataclasses import dataclass

from suite import registry
from suite.errors import UnknownNameError

CHANCE = {"pathx": 50.0}  # what the papers count a failed (✗) cell as in their Avg


@dataclass(frozen=True)
class Column:
    key: str  # a task name, or "avg"
    label: str
    sources: tuple[tuple[str, str], ...]  # (task, run metric) pairs whose values fill it; () for avg
    higher_is_better: bool = True
    percent: bool = True  # accuracy (fraction in MLflow) shown in %; RMSE shown as is

    @property
    def decimals(self) -> int:
        return 2 if self.percent else 3


def headline(task: str) -> str:
    """The run metric a task is judged by: best/<split>/<metric> (split "test", "test8k" for speech8k)."""
    e = registry.task(task)
    return f"best/{getattr(e, 'split', 'test')}/{e.metric}"


def _task_column(task: str, label: str, extra: tuple[tuple[str, str], ...] = ()) -> Column:
    accuracy = registry.task(task).metric == "accuracy"
    return Column(task, label, ((task, headline(task)), *extra), accuracy, accuracy)


LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")


def family_columns(family: str) -> list[Column]:
    if family == "lra":
        labels = ("ListOps", "Text", "Retrieval", "Image", "Pathfinder", "Path-X")
        return [*(_task_column(t, lab) for t, lab in zip(LRA_TASKS, labels)), Column("avg", "Avg", ())]
    if family == "scifar":
        return [_task_column("scifar", "sCIFAR")]
    if family == "speech":
        # Every speech run also logs the 8 kHz zero-shot accuracy; speech8k runs have it as their headline.
        return [_task_column("speech", "16 kHz"),
                _task_column("speech8k", "8 kHz (zero-shot)", (("speech", "best/test8k/accuracy"),))]
    if family == "bidmc":
        return [_task_column("bidmc_hr", "HR"), _task_column("bidmc_rr", "RR"), _task_column("bidmc_spo2", "SpO2")]
    raise UnknownNameError(f"unknown table family '{family}'.", hint=f"families: {', '.join(registry.FAMILIES)}")


TITLES = {
    "lra": "Long Range Arena: test accuracy (%)",
    "scifar": "Sequential CIFAR-10: test accuracy (%)",
    "speech": "Speech Commands, 35 classes from raw audio: test accuracy (%)",
    "bidmc": "BIDMC vital signs: test RMSE (lower is better)",
}
