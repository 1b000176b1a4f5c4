"""Dependencies point one way: suite -> models, tasks. Models and tasks import neither suite nor the
tracking and sweep libraries."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.split())


def test_models_and_tasks_stand_alone():
    mods = imported_after("import models.network, models.s4d, tasks.listops")
    for forbidden in ("suite", "mlflow", "optuna", "lightning", "pytorch_lightning"):
        assert forbidden not in mods, forbidden
