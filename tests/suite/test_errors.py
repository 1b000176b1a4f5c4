"""Clear errors and safe defaults: every anticipated failure is one paragraph with the fix and its own exit code
(no traceback unless --debug); a diverging run fails with the reason; out-of-memory is a ResourceError;
credentials never reach the console, params, tags or artifacts; the UI binds to this machine only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from mlflow.tracking import MlflowClient

from suite.tracking import ui, uris
from suite.cli import build_parser
from suite.config import resolve
from suite.errors import (EXIT_CODES, INTERRUPTED_EXIT_CODE, ConfigError, DivergenceError, NotImplementedYet,
                          ResourceError, ResumeError, SweepFailedError, TrackingError, UnknownNameError)
from suite.paths import checkpoints_dir
from suite.train.run import train
from tasks.errors import DataError
from tests.conftest import run_suite, stop_group

SMOKE = ["run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "trainer.progress_bar=false"]


def test_every_kind_of_failure_has_its_own_exit_code():
    kinds = [ConfigError, NotImplementedYet, DataError, TrackingError, DivergenceError, ResourceError, ResumeError,
             SweepFailedError]
    codes = [k.exit_code for k in kinds]
    assert len(set(codes)) == len(codes) and 0 not in codes and 1 not in codes  # 1 = an unanticipated error
    assert UnknownNameError.exit_code == ConfigError.exit_code  # a wrong name is bad input like a wrong key
    assert INTERRUPTED_EXIT_CODE == 130 and INTERRUPTED_EXIT_CODE not in codes
    assert {EXIT_CODES[k.__name__] for k in kinds} == set(codes)


@pytest.mark.parametrize("case", ["yaml", "utf8", "typo", "task", "nan", "strategy", "task-in-file"])
def test_bad_configuration_is_one_paragraph_with_exit_code_2(case, tmp_path):
    bad = tmp_path / "bad.yaml"
    args, expect = {
        "yaml": (["--config", str(bad)], "is not valid YAML at line 3"),
        "utf8": (["--config", str(bad)], "is not UTF-8 text"),
        "typo": (["--set", "optim.learning_rate=0.1"], "unknown key 'optim.learning_rate'"),
        "task": (["--task", "listopz"], "Did you mean 'listops'"),
        "nan": (["--set", "optim.lr=.nan"], "optim.lr = nan must be a finite number"),
        "strategy": (["--strategy", "dpp"], "trainer.strategy = 'dpp' is not a Lightning strategy"),
        "task-in-file": (["--config", str(bad)], "choose the task with --task only"),
    }[case]
    if case == "yaml":
        bad.write_text("model:\n  d_state: [8, 16\ntrainer: {}\n")
    elif case == "utf8":
        bad.write_bytes(b"model:\n  d_state: \xff\xfe\n")
    else:
        bad.write_text("task: text\n")
    r = run_suite(*SMOKE, *args, "--print-config")
    assert r.returncode == 2, r.stderr[-2000:]
    assert expect in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: config:") or case == "task"


def test_debug_shows_the_traceback():
    r = run_suite("--debug", *SMOKE, "--set", "optim.learning_rate=0.1", "--print-config")
    assert r.returncode != 0 and "Traceback" in r.stderr and "ConfigError" in r.stderr


def test_numbers_in_exponent_notation_are_numbers():
    """YAML 1.1 reads 1e-3 (no dot) as text; a float field takes it as the number a user meant."""
    cfg = resolve("listops", "s4d", "smoke", overrides=["optim.lr=1e-3", "optim.weight_decay=5E-2"])
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (0.001, 0.05)
    with pytest.raises(ConfigError, match="expected int"):
        resolve("listops", "s4d", "smoke", overrides=["model.d_model=1e3"])


def test_corrupt_data_file_is_a_data_error(tmp_path):
    data = tmp_path / "data"
    r = run_suite("data", "generate", "listops", "--preset", "smoke", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr[-2000:]
    (train_tsv,) = data.glob("generated/listops/*/basic_train.tsv")
    train_tsv.write_text("Source\tTarget\n( MAX 1 2\tnot-a-label\n")
    r = run_suite(*SMOKE, "--data-dir", str(data))
    assert r.returncode == 4 and "ListOps file is corrupt" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("uri", ["http://alice:s3cr3t-pw@127.0.0.1:9", "postgresql://alice:s3cr3t-pw@127.0.0.1:9/db"])
def test_unreachable_store_is_exit_5_and_the_password_is_masked(uri):
    r = run_suite(*SMOKE, "--tracking-uri", uri)
    assert r.returncode == 5, r.stderr[-2000:]
    assert "s3cr3t" not in r.stderr and "alice:***@127.0.0.1" in r.stderr and "Traceback" not in r.stderr


def test_divergence_fails_the_run_with_the_reason_and_step(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = run_suite(*SMOKE, "--set", "optim.lr=1e30", "--set", "optim.warmup_steps=0", "--tracking-uri", uri)
    assert r.returncode == DivergenceError.exit_code, r.stderr[-3000:]
    assert "non-finite training loss" in r.stderr and "lower the learning rate" in r.stderr
    assert "Traceback" not in r.stderr
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lra").experiment_id])
    assert run.info.status == "FAILED"
    failure = run.data.tags["suite.failure"]
    assert failure.startswith("divergence: non-finite training loss") and " at step " in failure


class _OutOfMemoryAtStep(L.Callback):
    """What a too-large batch does on a GPU, raised at the second training batch."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)")


def test_out_of_memory_is_a_resource_error_and_fails_the_run():
    cfg = resolve("listops", "s4d", "smoke", overrides=["trainer.progress_bar=false", "trainer.max_epochs=1"])
    with pytest.raises(ResourceError) as info:
        train(cfg, callbacks=[_OutOfMemoryAtStep()])
    assert info.value.exit_code == 7
    assert "GPU ran out of memory" in str(info.value) and "trainer.batch_size" in info.value.hint
    assert "bf16-mixed" in info.value.hint
    client = MlflowClient(uris.resolve_uri(None))
    (run,) = client.search_runs([client.get_experiment_by_name("lra").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["suite.failure"].startswith("out of memory")


def test_ui_binds_to_this_machine_by_default():
    args = build_parser().parse_args(["ui"])
    cmd = ui.ui_command("sqlite:////tmp/x/mlflow.db", args.host, args.port)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert build_parser().parse_args(["ui", "--host", "0.0.0.0"]).host == "0.0.0.0"  # only when asked


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on loopback (no auth: it ignores the credentials a client sends)."""
    port = _free_port()
    exe = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen([str(exe), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--default-artifact-root", (tmp_path / "artifacts").as_uri(), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        yield port
    finally:  # the server and its workers; one slow to stop on a loaded machine is killed, not a test error
        stop_group(proc)


def test_credentials_and_environment_never_reach_the_run(mlflow_server, tmp_path):
    secret, canary = "s3cr3t-pw", "canary-6b1f-environment"
    uri = f"http://alice:{secret}@127.0.0.1:{mlflow_server}"
    r = run_suite(*SMOKE, "--max-epochs", "1", "--tracking-uri", uri, env={"SUITE_TEST_CANARY": canary,
                                                                           "AWS_SECRET_ACCESS_KEY": canary})
    client = MlflowClient(f"http://127.0.0.1:{mlflow_server}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    try:
        assert r.returncode == 0, r.stderr[-3000:]
        assert secret not in r.stderr + r.stdout and "alice:***@" in r.stderr
        (run,) = runs
        assert run.info.status == "FINISHED"
        assert run.data.params["tracking.uri"] == f"http://alice:***@127.0.0.1:{mlflow_server}"
        everything = " ".join([*run.data.params.values(), *run.data.tags.values(), *run.data.tags])
        assert secret not in everything and canary not in everything
        config = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read_text()
        assert secret not in config and "alice:***@" in config
        ckpt = client.download_artifacts(run.info.run_id, "checkpoints/best.ckpt", str(tmp_path))
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        assert secret not in repr(state["suite_config"]) and canary not in repr(state)
    finally:  # a server store keeps checkpoints under results/checkpoints of the checkout
        for run in runs:
            shutil.rmtree(checkpoints_dir() / run.info.run_id, ignore_errors=True)


def test_a_data_dir_that_is_a_file_fails_at_once_with_exit_4(tmp_path):
    """Before: a NotADirectoryError traceback, after the run had started. Now: before any run or data work."""
    not_a_dir = tmp_path / "data.tar.gz"
    not_a_dir.write_bytes(b"not a folder")
    started = time.monotonic()
    r = run_suite(*SMOKE, "--data-dir", str(not_a_dir))
    assert r.returncode == 4, r.stderr[-2000:]
    assert f"the data root {not_a_dir} is a file, not a folder" in r.stderr and "--data-dir" in r.stderr
    assert "Traceback" not in r.stderr and "fix:" in r.stderr and time.monotonic() - started < 60
    assert not (tmp_path / "store" / "mlflow.db").exists() or not MlflowClient(
        os.environ["MLFLOW_TRACKING_URI"]).search_experiments(filter_string="name = 'listops'")
    r = run_suite("data", "status", "listops", env={"SUITE_DATA": str(not_a_dir)})  # the same through SUITE_DATA
    assert r.returncode == 4 and "SUITE_DATA" in r.stderr and "Traceback" not in r.stderr
