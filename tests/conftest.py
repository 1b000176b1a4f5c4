"""Shared fixtures: every test writes to its own temporary MLflow store and data root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Never touch results/mlflow.db or data/ of the checkout from a test."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("SUITE_DATA", str(tmp_path / "data"))
    if "mlflow" in sys.modules:  # an earlier in-process run may have set MLflow's global URI: reset it
        sys.modules["mlflow"].set_tracking_uri(uri)
    yield


def run_suite(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `suite` entry point in a subprocess (the console script of this environment)."""
    exe = Path(sys.executable).with_name("suite")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "suite.cli", *args]
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)
