"""The MLflow store: created once under a lock, URIs resolved and masked."""

from __future__ import annotations

import subprocess
import sys

from suite.tracking import store, ui, uris
from tests.conftest import ROOT


def test_concurrent_first_start_does_not_race(tmp_path):
    """Several processes creating the same fresh SQLite store at once all succeed (pitfall P2)."""
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    code = f"from suite.tracking import store; print(store.ensure_experiment({uri!r}, 'lra'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    try:
        results = [p.communicate(timeout=300) for p in procs]  # four imports of MLflow at once on 2 cores
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, same id everywhere


def test_uri_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert uris.resolve_uri("sqlite:///rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
    assert uris.resolve_uri("x/store.db") == f"sqlite:///{tmp_path / 'x' / 'store.db'}"
    assert uris.resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert uris.artifact_root(f"sqlite:///{tmp_path / 'a.db'}") == (tmp_path / "mlruns").as_uri()


def test_default_store_is_fixed_under_results(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert uris.resolve_uri(None) == f"sqlite:///{ROOT / 'results' / 'mlflow.db'}"


def test_passwords_are_masked():
    assert uris.mask("postgresql://user:s3cret@db:5432/x") == "postgresql://user:***@db:5432/x"
    assert uris.mask("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_unreachable_store_is_a_tracking_error(tmp_path):
    import pytest

    from suite.errors import TrackingError

    with pytest.raises(TrackingError, match="does not answer"):
        store.ensure_experiment("http://127.0.0.1:9/", "lra")


def test_experiments_are_marked_for_the_ui_when_created_and_when_used_again(tmp_path):
    """MLflow 3.17 opens an unmarked experiment on its GenAI pages: every experiment the suite creates or uses is a
    model-training one with the saved view of the headline metrics (docs/usage.md, "In the MLflow UI")."""
    import json

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp_id = store.ensure_experiment(uri, "lra")
    tags = MlflowClient(uri).get_experiment(exp_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert "suite: results" in tags["mlflow.note.content"]
    view = json.loads(tags["mlflow.sharedViewState.suite-results"])
    assert view["name"] == "suite: results" and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert state["selectedColumns"][:2] == ["metrics.`best/test/accuracy`", "metrics.`best/val/accuracy`"]
    assert "tags.`suite.model`" in state["selectedColumns"] and state["orderByKey"] == "metrics.`best/test/accuracy`"

    # an experiment made before (no tags, as older versions of the suite left them) is marked when next used
    old = MlflowClient(uri).create_experiment("scifar")
    assert store.ensure_experiment(uri, "scifar") == old
    assert MlflowClient(uri).get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    assert ui.runs_url(exp_id) == ("http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
                                   "&viewStateShareKey=suite-results")


def test_a_resumed_run_keeps_the_order_of_the_commits_it_ran():
    """`suite.git_commits`: the first command's commit, then each later command's where the code changed."""
    from suite.tracking.provenance import commit_history

    assert commit_history({"suite.git_commit": "aaa"}, current="aaa") == "aaa"
    assert commit_history({"suite.git_commit": "aaa"}, current="bbb") == "aaa bbb"
    assert commit_history({"suite.git_commit": "aaa", "suite.git_commits": "aaa bbb"}, current="bbb") == "aaa bbb"
    assert commit_history({"suite.git_commit": "aaa", "suite.git_commits": "aaa bbb"}, current="aaa") == "aaa bbb aaa"
    assert commit_history({}, current="ccc") == "ccc"
