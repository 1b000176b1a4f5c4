"""What the MLflow UI shows of the suite's experiments: their kind, the saved views of the run table, their
description, the links that open them, and the `mlflow ui` command line. Values only: suite/tracking/store.py
writes them.

MLflow 3.17's UI opens an experiment on its GenAI pages (traces, an assistant) unless the experiment is a
model-training one. Two things decide it: the experiment tag `mlflow.experimentKind` (its training value is
`custom_model_development`; without the tag the UI guesses the kind and may ask) and, in 3.17, the UI's own
"GenAI / Model training" switch, which a link sets with `?workflowType=machine_learning`. The run table shows
no metric column until the user picks some; a saved view (experiment tag `mlflow.sharedViewState.<key>`, the
"Views" menu above the table, or `?viewStateShareKey=<key>` in a link) brings the columns, the sort and the
filter at once. The suite writes both on every experiment it uses, and prints links that open them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from suite.tracking.uris import artifact_root

KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the description of an experiment or a run (Markdown) in the UI
VIEW_TAG = "mlflow.sharedViewState."
RESULTS_VIEW = "suite-results"
# The headline numbers of every family (a column without values in the experiment is not shown)
HEADLINE_METRICS = ("best/test/accuracy", "best/val/accuracy", "best/test8k/accuracy", "best/test/rmse",
                    "best/val/rmse", "best/epoch")
KEY_TAGS = ("suite.task", "suite.model", "suite.preset", "suite.seed", "suite.data_source")
UI_DEFAULT = "http://127.0.0.1:5000"
EXPERIMENT_NOTE = (
    "Runs of the ssm-suite (`suite run`, `suite sweep`). The view **suite: results** (Views menu above the "
    "run table) shows each run's best validation and test numbers (`best/val/*`, `best/test/*`: the test "
    "metrics at the epoch of the best validation metric) with task, model, preset and seed. A sweep's "
    "study run has nested trial runs; its description links to the sweep's own view.")


def column(kind: str, key: str) -> str:
    """A run-table column as the UI names it: `metrics.`best/test/accuracy``, `params.`optim.lr``, `tags.`x``."""
    return f"{kind}.`{key}`"


def view_state(columns: list[str], order_by: str, ascending: bool = False, search_filter: str = "") -> dict[str, Any]:
    """The state of the experiment page a saved view restores: search facets and the table's UI state (the
    fields and defaults of MLflow 3.17's `ExperimentPageUIState`); `columns` are `column` names."""
    widths = {c: 170 for c in columns if c.startswith("metrics.")}
    state: dict[str, Any] = {
        "searchFilter": search_filter, "orderByKey": order_by, "orderByAsc": ascending, "startTime": "ALL",
        "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": columns, "columnOrder": [], "columnWidths": widths, "runsExpanded": {},
        "runsPinned": [], "runsHidden": [], "runsVisibilityMap": {}, "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {},
        "autoRefreshEnabled": True,
    }
    return state


def results_view() -> dict[str, Any]:
    """The experiment's run table with the headline metrics and the key tags, best test number first."""
    columns = [column("metrics", m) for m in HEADLINE_METRICS] + [column("tags", t) for t in KEY_TAGS]
    return view_state(columns, order_by=column("metrics", "best/test/accuracy"))


def view_tag(key: str, name: str, state: dict[str, Any]) -> tuple[str, str]:
    """The experiment tag (key, value) that saves the view `key`, shown as `name` in the UI's Views menu."""
    now = int(time.time() * 1000)
    envelope = {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    return VIEW_TAG + key, json.dumps(envelope)


def experiment_marks(tags: dict[str, str]) -> dict[str, str]:
    """The tags an experiment with `tags` still needs to be a model-training one with the suite's saved view and a
    description: each only when missing or out of date (nothing for an experiment already marked)."""
    marks = {}
    if tags.get(KIND_TAG) != TRAINING_KIND:
        marks[KIND_TAG] = TRAINING_KIND
    view = tags.get(VIEW_TAG + RESULTS_VIEW)
    try:
        current = json.loads(json.loads(view)["state"]) if view else None
    except (ValueError, KeyError, TypeError):
        current = None
    if current != results_view():
        marks.update([view_tag(RESULTS_VIEW, "suite: results", results_view())])
    if not tags.get(NOTE_TAG):
        marks[NOTE_TAG] = EXPERIMENT_NOTE
    return marks


def runs_url(experiment_id: str, view: str | None = RESULTS_VIEW, base: str = UI_DEFAULT) -> str:
    """The link that opens the experiment's run table in `suite ui` (model-training pages, the saved view)."""
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={view}" if view else "")
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def run_url(experiment_id: str, run_id: str, base: str = UI_DEFAULT) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The `mlflow ui` command line for the store (artifacts served from beside the database)."""
    cmd = ["mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return cmd
