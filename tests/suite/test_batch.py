"""`suite batch` (behind `make lra` etc.): which tasks run, which are skipped and why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from suite import batch, registry
from tests.conftest import ROOT, run_suite


def test_family_tasks_follow_the_registry_and_leave_speech8k_to_speech_runs():
    assert batch.family_tasks("lra") == ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
    assert batch.family_tasks("speech") == ["speech"]  # every speech run also logs the 8 kHz test
    assert batch.family_tasks("bidmc") == ["bidmc_hr", "bidmc_rr", "bidmc_spo2"]


def test_generated_tasks_run_and_tasks_without_data_are_skipped_with_the_fix(tmp_path):
    root = str(tmp_path / "empty")
    assert batch._skip_reason("listops", "smoke", root) is None  # the smoke preset generates ListOps
    assert batch._skip_reason("pathfinder", "smoke", root) is None
    reason = batch._skip_reason("text", "smoke", root)
    assert "suite data fetch text" in reason and "imdb" in reason
    assert "suite data fetch listops" in batch._skip_reason("listops", "paper", root)


def test_batch_without_data_skips_every_task_and_says_why(tmp_path):
    r = run_suite("batch", "bidmc", "--preset", "smoke", "--models", "s4d", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    for task in ("bidmc_hr", "bidmc_rr", "bidmc_spo2"):
        assert f"skip {task}: no data in" in r.stderr and f"suite data fetch {task}" in r.stderr
    assert "0 of 0 runs finished" in r.stderr


def test_a_task_option_set_for_a_batch_reaches_only_the_tasks_that_take_it():
    """`suite batch lra --set data.generator.n_train=640` sizes ListOps; text, image, ... run without it (a
    `suite run` of theirs would refuse the key as ListOps' own)."""
    extra = ["--set", "data.generator.n_train=640", "--set", "trainer.max_epochs=1", "--set", "data.pathfinder.seed=3"]
    assert batch.for_task("listops", extra) == ["--set", "data.generator.n_train=640", "--set", "trainer.max_epochs=1"]
    assert batch.for_task("pathx", extra) == ["--set", "trainer.max_epochs=1", "--set", "data.pathfinder.seed=3"]
    assert batch.for_task("text", extra) == ["--set", "trainer.max_epochs=1"]


def test_batch_rejects_an_unknown_model_before_running_anything(tmp_path):
    r = run_suite("batch", "lra", "--preset", "smoke", "--models", "s4x", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "unknown model 's4x'" in r.stderr and "Did you mean" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------------
# through make: the real Makefile, with this interpreter as `suite`
# ------------------------------------------------------------------------------------------------

FAST = "trainer.max_epochs=1 trainer.limit_train_batches=2 trainer.limit_val_batches=1 trainer.progress_bar=false"


def make(target: str, tmp_path: Path, **knobs: str) -> subprocess.CompletedProcess:
    """`make TARGET KNOB=...` in the checkout; the store and data root come from the test's environment
    (conftest: MLFLOW_TRACKING_URI, SUITE_DATA). VENV points at a folder whose stamp is fresh, so make
    builds nothing; SUITE runs this interpreter."""
    venv = tmp_path / "venv"
    venv.mkdir(exist_ok=True)
    (venv / ".installed").touch()
    args = [f"VENV={venv}", f"SUITE={sys.executable} -m suite.cli", *(f"{k}={v}" for k, v in knobs.items())]
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), target, *args], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_lra_runs_the_given_models_and_seeds_then_prints_the_table(tmp_path):
    r = make("lra", tmp_path, PRESET="smoke", MODELS="s4d", SEEDS="1 2", SET=FAST)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "invalid int value" not in r.stderr
    for task in ("text", "retrieval", "image"):  # no data under SUITE_DATA: skipped, which is not a failure
        assert f"skip {task}: no data in" in r.stderr
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("lra").experiment_id])
    made = sorted((x.data.tags["suite.task"], x.data.tags["suite.model"], x.data.tags["suite.seed"], x.info.status)
                  for x in runs)
    assert made == [(t, "s4d", s, "FINISHED") for t in ("listops", "pathfinder", "pathx") for s in ("1", "2")]
    assert "6 of 6 runs finished" in r.stderr
    (row,) = [line for line in r.stdout.splitlines() if line.startswith("| s4d")]  # the table, after the runs
    assert row.count("(n=2") == 3  # ListOps, Pathfinder and Path-X, two seeds each, in one row


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_fails_when_a_run_of_the_batch_fails(tmp_path):
    r = make("lra", tmp_path, PRESET="smoke", MODELS="s4d", SEEDS="1", SET="trainer.max_epochs=zero")
    assert r.returncode != 0
    assert "0 of 3 runs finished" in r.stderr
    assert r.stderr.count("FAILED (exit 2)") == 3
    assert "Long Range Arena" in r.stdout  # the table of what did finish is still printed


def test_batch_defaults_to_every_registered_model(tmp_path):
    r = run_suite("batch", "bidmc", "--preset", "smoke", "--data-dir", str(tmp_path / "d"), "--seeds", "1")
    assert r.returncode == 0, r.stderr
    assert f"0 runs: {len(registry.MODELS)} model(s)" in r.stderr


# ------------------------------------------------------------------------------------------------
# several runs at a time (--workers K), each its own process, log and MLflow run
# ------------------------------------------------------------------------------------------------


def test_batch_with_two_workers_trains_each_run_in_its_own_process_and_log(tmp_path):
    store = tmp_path / "store" / "mlflow.db"
    r = run_suite("batch", "lra", "--preset", "smoke", "--models", "s4d", "--seeds", "1", "2", "--workers", "2",
                  "--tracking-uri", f"sqlite:///{store}", "--data-dir", str(tmp_path / "data"),
                  *[x for kv in FAST.split() for x in ("--set", kv)], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 runs at a time" in r.stderr
    assert "without CUDA MPS (no GPU)" in r.stderr  # the fallback note, once, on this CPU machine
    listops = [line for line in r.stderr.splitlines() if "finished after" in line and "listops s4d" in line]
    assert len(listops) == 2, r.stderr[-3000:]
    logs = sorted((store.parent / "logs").glob("batch-lra-*/*.log"))
    assert len(logs) >= 2 and all(p.stat().st_size > 0 for p in logs)
    assert any("listops-s4d-seed1" in p.name for p in logs) and any("listops-s4d-seed2" in p.name for p in logs)
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="params.task = 'listops'")
    assert sorted(int(run.data.params["seed"]) for run in runs) == [1, 2]
    assert all(run.info.status == "FINISHED" for run in runs)


def test_with_several_gpus_each_worker_slot_trains_on_its_own(tmp_path):
    """Two workers over the GPUs "3,5" (named, not present: on this CPU machine the runs train on the CPU): run k
    gets GPU k mod 2 through its own CUDA_VISIBLE_DEVICES, which its MLflow run records."""
    store = tmp_path / "store" / "mlflow.db"
    r = run_suite("batch", "lra", "--preset", "smoke", "--models", "s4d", "--seeds", "1", "2", "--workers", "2",
                  "--tracking-uri", f"sqlite:///{store}", "--data-dir", str(tmp_path / "data"),
                  *[x for kv in FAST.split() for x in ("--set", kv)], env={"CUDA_VISIBLE_DEVICES": "3,5"},
                  timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 runs at a time over 2 GPUs (3,5): one per GPU" in r.stderr
    assert "without CUDA MPS" not in r.stderr  # spread, not shared: MPS is not the question
    started = [line for line in r.stderr.splitlines() if "] started" in line]
    assert len(started) >= 2 and "] started on GPU 3: " in started[0] and "] started on GPU 5: " in started[1]
    assert all("] started on GPU 3: " in line or "] started on GPU 5: " in line for line in started)
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == len(started)
    assert {run.data.tags["suite.cuda_visible_devices"] for run in runs} == {"3", "5"}


def test_a_batch_spreads_only_runs_of_one_device_each():
    assert batch._one_device_each([]) and batch._one_device_each(["--set", "trainer.devices=1", "--set", "seed=3"])
    assert not batch._one_device_each(["--set", "trainer.devices=2"])
    assert not batch._one_device_each(["--set", "trainer.devices=0,1"])
    assert not batch._one_device_each(["--set", "trainer.devices=many"])  # refused by each run, with its own error

def test_runs_that_stop_at_their_time_limit_are_resumable_not_failed(tmp_path):
    """A run that stops cleanly (exit 75 at --time-limit, 130 after a SIGINT of its own) is not a failure: the
    summary lists it as stopped and resumable, and the batch exits with that status, not 1."""
    store = tmp_path / "store" / "mlflow.db"
    r = run_suite("batch", "lra", "--preset", "smoke", "--models", "s4d", "--seeds", "1", "2", "--workers", "2",
                  "--tracking-uri", f"sqlite:///{store}", "--data-dir", str(tmp_path / "data"),
                  "--set", "trainer.time_limit=1s", "--set", "trainer.progress_bar=false", timeout=900)
    assert r.returncode == 75, r.stderr[-3000:]
    assert "FAILED" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("TIME LIMIT (exit 75) after") >= 2
    assert "stopped, resumable" in r.stderr and "STOPPED (time limit, exit 75): listops s4d seed 1" in r.stderr
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="params.task = 'listops'")
    assert len(runs) == 2 and all(run.info.status == "KILLED" for run in runs)


def test_batch_rejects_zero_workers_and_mps_on_without_a_gpu(tmp_path):
    r = run_suite("batch", "lra", "--preset", "smoke", "--models", "s4d", "--workers", "0",
                  "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "--workers 0 must be >= 1" in r.stderr and "Traceback" not in r.stderr
    r = run_suite("batch", "lra", "--preset", "smoke", "--models", "s4d", "--seeds", "1", "2", "--workers", "2",
                  "--mps", "on", "--data-dir", str(tmp_path / "d"),
                  *[x for kv in FAST.split() for x in ("--set", kv)])
    assert r.returncode == 2 and "MPS cannot be used here: no GPU" in r.stderr and "fix: use --mps auto or off" in r.stderr
