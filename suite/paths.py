"""Fixed places: the project root, the default MLflow store and the default data root.

Defaults are absolute and anchored at the checkout, never at the current directory, so that
`make lra` from any folder writes to the same store (docs/tracking.md, pitfall P7).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_ROOT / "results"
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


def default_tracking_uri() -> str:
    """`--tracking-uri` > `MLFLOW_TRACKING_URI` > `sqlite:////<checkout>/results/mlflow.db`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{RESULTS_DIR / 'mlflow.db'}"


def default_data_root() -> Path:
    """`--data-dir` > `SUITE_DATA` > `<checkout>/data`."""
    env = os.environ.get("SUITE_DATA")
    return Path(env).expanduser().resolve() if env else PROJECT_ROOT / "data"


def checkpoints_dir() -> Path:
    """Checkpoints of runs logged to a store without a folder of its own (an MLflow server, PostgreSQL):
    `SUITE_CHECKPOINTS` > `<checkout>/results/checkpoints`. A SQLite store keeps them beside its file instead."""
    env = os.environ.get("SUITE_CHECKPOINTS")
    return Path(env).expanduser().resolve() if env else RESULTS_DIR / "checkpoints"
