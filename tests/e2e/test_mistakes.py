"""Mistakes caught before they cost a run, each with a message that names the bad value and the fix and the exit
code of the README's table; commands a user copies from the output work as printed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from suite.errors import EXIT_CODES, INTERRUPTED_EXIT_CODE, ConfigError, SweepFailedError, TrackingError
from suite.sweep import spec as sweep_spec
from tests.conftest import ROOT, run_suite

SMOKE_SWEEP = ROOT / "sweeps" / "smoke.yaml"


def sweep_file(folder: Path, **top) -> Path:
    """sweeps/smoke.yaml with tiny trials (a few seconds each) and the given top-level keys replaced."""
    spec = yaml.safe_load(SMOKE_SWEEP.read_text())
    spec["fixed"] = {**spec["fixed"], "trainer.max_epochs": 1, "trainer.batch_size": 16, "data.generator.n_train": 32,
                     "data.generator.n_val": 32, "data.generator.n_test": 32, **top.pop("fixed", {})}
    spec.update(top)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def one_error(stderr: str) -> tuple[str, str]:
    """The `error:` and `fix:` lines of a failed command, each exactly once, and no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    fixes = [line.strip() for line in stderr.splitlines() if line.strip().startswith("fix: ")]
    assert len(errors) == 1 and len(fixes) == 1, stderr[-3000:]
    return errors[0], fixes[0]


# -- sweeps ---------------------------------------------------------------------------------------


def test_a_sweep_objective_the_task_does_not_log_is_refused_with_the_closest_metric(tmp_path):
    with pytest.raises(ConfigError, match=r"objective.metric = 'val/acc' is not a metric the task logs. "
                                          r"Did you mean 'val/accuracy'\?"):
        sweep_spec.load(sweep_file(tmp_path, objective={"metric": "val/acc"}))
    for good in ("val/accuracy", "val/loss", "test/accuracy", "train/loss"):
        assert sweep_spec.load(sweep_file(tmp_path, objective={"metric": good})).metric == good
    bidmc = yaml.safe_load((ROOT / "sweeps" / "bidmc.yaml").read_text())
    bidmc["objective"] = {"metric": "val/accuracy"}
    (tmp_path / "bidmc.yaml").write_text(yaml.safe_dump(bidmc))
    with pytest.raises(ConfigError, match=r"Did you mean 'val/rmse'\?"):
        sweep_spec.load(tmp_path / "bidmc.yaml")


def test_a_sweep_with_a_bad_objective_exits_2_before_any_trial(tmp_path):
    r = run_suite("sweep", str(sweep_file(tmp_path, objective={"metric": "val/acc"})), "--trials", "2")
    assert r.returncode == 2
    error, fix = one_error(r.stderr)
    assert "Did you mean 'val/accuracy'?" in error and fix.startswith("fix: one of: val/accuracy, val/loss")
    assert not (tmp_path / "store" / "optuna.db").exists()  # no study, no trial was started


def test_a_sweep_whose_every_trial_failed_exits_9_naming_the_first_failure(tmp_path):
    # every trial asks for CUDA graphs on a CPU: train() refuses it at once, so each trial fails in about a second
    bad = sweep_file(tmp_path, fixed={"trainer.cuda_graph": True, "trainer.accelerator": "cpu"}, study="fails")
    r = run_suite("sweep", str(bad), "--trials", "2", "--data-dir", str(tmp_path / "data"))
    assert r.returncode == SweepFailedError.exit_code == 9, r.stderr[-3000:]
    # max_failures defaults to the trials asked for: the third failure stops the command
    assert "study 'fails': 0 complete, 0 pruned, 3 failed" in r.stderr
    assert "trial 0 FAILED: config: trainer.cuda_graph = true needs a CUDA GPU" in r.stderr
    error, fix = one_error(r.stderr)  # Optuna's traceback of an anticipated failure is left out
    assert error.startswith("error: sweep: all 3 trial(s) this command ran failed; the first one: trial 0")
    assert "needs a CUDA GPU" in error and "run the same command again" in fix


def test_a_sweep_typo_prints_its_fix_once(tmp_path):
    r = run_suite("sweep", str(sweep_file(tmp_path, trails=3)))
    assert r.returncode == 2
    error, fix = one_error(r.stderr)
    assert "unknown key 'trails'. Did you mean 'trials'?" in error and "valid keys:" in fix


def test_a_missing_sweep_file_points_at_the_argument_not_at_config(tmp_path):
    r = run_suite("sweep", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    error, fix = one_error(r.stderr)
    assert "file not found" in error and "`suite sweep FILE`" in fix and "--config" not in fix


# -- configuration --------------------------------------------------------------------------------


def test_a_folder_given_to_config_is_called_a_folder(tmp_path):
    (tmp_path / "mine.yaml").write_text("model: {d_state: 8}\n")
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--config", str(tmp_path), "--print-config")
    assert r.returncode == 2
    error, fix = one_error(r.stderr)
    assert f"{tmp_path} is a folder, not a YAML file" in error and "not found" not in error
    assert fix == "fix: give --config one file, e.g. one of: mine.yaml"


def test_a_section_given_a_plain_value_names_its_keys_not_a_class(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: 5\n")
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--config", str(bad), "--print-config")
    assert r.returncode == 2
    error, fix = one_error(r.stderr)
    assert "'model' is a section, a mapping of its keys (d_model, n_layers" in error
    assert "ModelConfig" not in r.stderr and "model.d_model=" in fix


def test_a_tracking_uri_mlflow_cannot_store_to_is_named_as_such(tmp_path):
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--tracking-uri", "foo://bar")
    assert r.returncode == TrackingError.exit_code == 5
    error, fix = one_error(r.stderr)
    assert "scheme 'foo://', which is not an MLflow tracking store" in error
    assert "model registry" not in r.stderr.lower() and "sqlite:///" in fix


# -- exit codes and copied commands ---------------------------------------------------------------


def test_the_readme_exit_code_table_is_the_code_table():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Exit codes"):]
    section = section[:section.index("\n## ", 1)]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert documented == {0, 1, INTERRUPTED_EXIT_CODE, *EXIT_CODES.values()}
    assert re.search(r"^\| 5 \|.*unknown run id", section, re.M)  # every command, `suite run --resume` included


def test_an_unknown_run_id_exits_5_as_the_readme_says(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    r = run_suite("run", "--resume", "0123456789abcdef0123456789abcdef", "--tracking-uri", uri)
    assert r.returncode == 5
    error, _ = one_error(r.stderr)
    assert "no run '0123456789abcdef0123456789abcdef'" in error


def test_the_resume_command_names_a_store_other_than_the_default():
    from suite.tracking import uris
    from suite.paths import RESULTS_DIR

    default = f"sqlite:///{RESULTS_DIR / 'mlflow.db'}"
    assert uris.resume_command(default, "abc") == "suite run --resume abc"
    assert uris.resume_command("sqlite:////tmp/my store/m.db", "abc") == \
        "suite run --resume abc --tracking-uri 'sqlite:////tmp/my store/m.db'"
    assert uris.resume_command("postgresql://u:secret@db:5432/mlflow", "abc") == \
        "suite run --resume abc --tracking-uri 'postgresql://u:***@db:5432/mlflow'"


# -- results and bench ----------------------------------------------------------------------------


def test_make_clean_results_deletes_the_optuna_studies_with_the_mlflow_store(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    results = tmp_path / "results"
    for f in ("mlflow.db", "mlflow.db.lock", "optuna.db", "optuna.db.lock", "optuna.db.smoke-listops-s4d.lock",
              "mlruns/1/x/artifacts/a.txt", "checkpoints/x/last.ckpt", "logs/batch-lra-1/001.log", "tables/lra.md",
              "report/report.md", "reproduction/listops/run/summary.json"):
        (results / f).parent.mkdir(parents=True, exist_ok=True)
        (results / f).write_text("x")
    r = subprocess.run(["make", "-s", "clean-results"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in results.iterdir()) == ["report", "reproduction", "tables"]
    assert "kept results/tables, results/report and the committed runs in results/reproduction" in r.stdout


def test_bench_on_a_cpu_says_so_first_and_uses_a_small_shape(tmp_path):
    r = run_suite("bench", "--device", "cpu", "--model", "s4d", "--no-track", timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    first = r.stderr.splitlines()[0]
    assert first.startswith("note: no GPU in use: a CPU smoke measurement (B x H x L = 4x64x1024")
    row = next(line for line in r.stdout.splitlines() if line.startswith("| s4d "))
    assert [c.strip() for c in row.split("|")[2:5]] == ["4", "64", "1024"]  # B, H, L
