"""End to end: the real `suite` entry point trains, and the run is read back through MLflow's API."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from suite import registry
from tests.conftest import ROOT, run_suite


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--tracking-uri", uri,
                  "--data-dir", str(tmp / "data"), "--seed", "7", env={"SUITE_DATA": "", "MLFLOW_TRACKING_URI": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lra")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0], r, tmp


def test_run_finishes_with_params_and_tags(smoke_run):
    client, run, _, _ = smoke_run
    assert run.info.status == "FINISHED"
    p, t = run.data.params, run.data.tags
    assert (p["model.d_model"], p["model.d_state"], p["trainer.max_epochs"], p["seed"]) == ("32", "8", "2", "7")
    assert int(p["n_params"]) > 0
    assert t["suite.task"] == "listops" and t["suite.model"] == "s4d" and t["suite.preset"] == "smoke"
    assert t["suite.seed"] == "7" and t["suite.data_source"] == "generated" and t["suite.version"]
    assert t["suite.device"].startswith("cpu") and t["suite.git_commit"]


def test_metrics_per_epoch_and_best(smoke_run):
    client, run, _, _ = smoke_run
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy"):
        history = client.get_metric_history(run.info.run_id, key)
        assert len(history) == 2, key  # one value per epoch
    val = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/accuracy")}
    test = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "test/accuracy")}
    best_step = max(val, key=val.get)
    assert run.data.metrics["best/val/accuracy"] == val[best_step]
    assert run.data.metrics["best/test/accuracy"] == test[best_step]


def test_artifacts_and_checkpoint(smoke_run, tmp_path):
    client, run, _, _ = smoke_run
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "learning_curves.png", "checkpoints"} <= names
    ckpt = client.download_artifacts(run.info.run_id, "checkpoints/best.ckpt", str(tmp_path))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["suite_config"]["model"]["name"] == "s4d"
    n_params = sum(v.numel() for k, v in state["state_dict"].items()
                   if not k.startswith("metrics") and "running_" not in k and "num_batches" not in k)
    assert n_params == int(run.data.params["n_params"])
    png = client.download_artifacts(run.info.run_id, "learning_curves.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_artifacts_live_beside_the_store_not_the_cwd(smoke_run):
    _, run, _, tmp = smoke_run
    assert run.info.artifact_uri.startswith((tmp / "mlruns").as_uri())
    assert not (ROOT / "mlruns").exists() and not (ROOT / "mlflow.db").exists()


def test_output_says_where_to_look(smoke_run):
    _, run, r, _ = smoke_run
    assert run.info.run_id in r.stderr and "suite ui" in r.stderr


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys; from suite import cli; cli.build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'mlflow', 'lightning', 'optuna', 'pandas') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr
    r = run_suite("--help")
    assert r.returncode == 0 and "suite run --task listops" in r.stdout


def test_list_names_every_task_and_model():
    r = run_suite("list")
    assert r.returncode == 0
    for name in [*registry.TASKS, *registry.MODELS]:
        assert f"  {name} " in r.stdout


def test_missing_release_data_is_a_clean_error(tmp_path):
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "data.source=release",
                  "--data-dir", str(tmp_path / "empty"))
    assert r.returncode == 4 and "ListOps data not found" in r.stderr and "Traceback" not in r.stderr
    assert "suite data generate listops" in r.stderr


@pytest.mark.parametrize("model", ["s4", "liquid_s4_kb", "liquid_s4_pb"])
def test_every_model_trains_through_the_cli(model, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = run_suite("run", "--task", "listops", "--model", model, "--preset", "smoke", "--max-epochs", "1",
                  "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lra").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["suite.model"] == model
    assert "best/test/accuracy" in run.data.metrics


def test_bench_prints_a_table_and_logs_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = run_suite("bench", "--device", "cpu", "--shape", "1x4x32", "--repeats", "1", "--model", "s4d", "--model",
                  "liquid_s4_kb", "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| s4d " in r.stdout and "| liquid_s4_kb " in r.stdout and "fwd_bwd_ms" in r.stdout
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    assert run.data.metrics["s4d/1x4x32/fwd_bwd_ms"] > 0
