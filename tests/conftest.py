"""Shared fixtures: every test writes to its own temporary MLflow store and data root."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

# The `suite` launcher and process helpers live in tests/helpers.py; re-exported for `from tests.conftest import ...`.
from tests.helpers import ROOT, run_suite, start_suite, stop_group, suite_command, wait_stopped  # noqa: F401

# Hypothesis keeps its example database (failing examples, replayed first next time) and its caches (Unicode
# tables) in a folder outside the checkout, per user, kept between sessions; without this it writes .hypothesis/
# into the current folder. (HYPOTHESIS_STORAGE_DIRECTORY in the environment does the same.)
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"suite-hypothesis-{os.getuid()}")

# Variables of the environment the tests were started from that would change what a run does: a CI job under
# SLURM or torchrun would make every run a non-zero rank, an MLflow run or experiment set outside would
# capture the tests' logging.
AMBIENT = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
           "MASTER_PORT", "SUITE_RUN_ID", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Never touch results/mlflow.db or data/ of the checkout from a test."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("SUITE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SUITE_CHECKPOINTS", str(tmp_path / "checkpoints"))  # runs logged to an MLflow server
    monkeypatch.setenv("SUITE_BUNDLES", str(tmp_path / "bundles"))  # not the committed runs of results/reproduction
    for name in [*AMBIENT, *(k for k in os.environ if k.startswith("SLURM_"))]:
        monkeypatch.delenv(name, raising=False)
    for name in ("no_proxy", "NO_PROXY"):  # local servers of the tests never through a proxy
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    if "mlflow" in sys.modules:  # an earlier in-process run may have set MLflow's global URI: reset it
        sys.modules["mlflow"].set_tracking_uri(uri)
    yield


# What a test run may leave in the checkout: pytest's and Python's own caches.
ALLOWED_IN_CHECKOUT = {".pytest_cache", "__pycache__"}


def checkout_files(depth: int = 4) -> set[str]:
    """Paths in the checkout outside git's view of tracked files, down to `depth` levels: the top level,
    results/ and data/ (where a run, a store, a download or a cache would land). Not the whole tree: a real
    data/ can hold hundreds of thousands of files."""
    found = {p.name for p in ROOT.iterdir() if p.name != ".git"}
    for top in ("results", "data"):
        base = ROOT / top
        stack = [(base, 1)] if base.is_dir() else []
        while stack:
            folder, level = stack.pop()
            for p in folder.iterdir():
                found.add(str(p.relative_to(ROOT)))
                if p.is_dir() and level < depth:
                    stack.append((p, level + 1))
    return {f for f in found if not ALLOWED_IN_CHECKOUT & set(Path(f).parts)}


@pytest.fixture(scope="session", autouse=True)
def nothing_lands_in_the_checkout():
    """Fails the session (an error at the teardown of its last test) when a test run left a new file or folder
    in the checkout: every test writes to its own temporary store, data root and checkpoint folder."""
    before = checkout_files()
    yield
    new = sorted(checkout_files() - before)
    if new:
        pytest.fail(f"the test run left {len(new)} new path(s) in the checkout {ROOT}: {new[:20]}", pytrace=False)
