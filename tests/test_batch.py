"""`suite batch` (behind `make lra` etc.): which tasks run, which are skipped and why."""

from __future__ import annotations

from suite import batch
from tests.conftest import run_suite


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


def test_batch_rejects_an_unknown_model_before_running_anything(tmp_path):
    r = run_suite("batch", "lra", "--preset", "smoke", "--models", "s4x", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "unknown model 's4x'" in r.stderr and "Did you mean" in r.stderr
    assert "Traceback" not in r.stderr
