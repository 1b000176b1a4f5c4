"""Logs on a cluster: a run whose output is not a terminal writes plain progress lines, not bar redraws; the
library lines a user cannot act on are left out; CPU and memory use are logged to the run when psutil is there."""

from __future__ import annotations

import importlib.util
import io
import os
import re

import pytest
from mlflow.tracking import MlflowClient

from suite.train.progress import format_duration, output_is_terminal
from suite.quiet import dropped
from tests.conftest import run_suite

PROGRESS = re.compile(r"^progress: epoch 1/2  step \d+/40 \(\d+%\)  [\d.]+ samples/s  loss [\d.]+  ETA \d+:\d\d$")
EPOCH_DONE = re.compile(r"^epoch (1|2)/2 done: step (20|40)/40 \(\d+%\)  train/accuracy [\d.]+  train/loss [\d.]+  "
                        r"val/accuracy [\d.]+  val/loss [\d.]+  test/accuracy [\d.]+  test/loss [\d.]+  "
                        r"\(\d+:\d\d so far, ETA \d+:\d\d\)$")
NOISE = ("litlogger", "GPU available: False", "TPU available", "was configured so", "to estimate number of stepping",
         "Creating initial MLflow database tables", "Updating database tables", "system metrics monitoring")


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory):
    """A 2-epoch ListOps smoke run (20 steps per epoch) with stdout and stderr captured through pipes, as under
    SLURM or nohup; a progress line at most every second. The network is widened so that the run lasts several
    seconds on 2 CPU cores (the smoke network's 40 steps take about one)."""
    tmp = tmp_path_factory.mktemp("piped")
    uri = f"sqlite:///{tmp / 'store' / 'mlflow.db'}"
    r = run_suite("run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--tracking-uri", uri,
                  "--data-dir", str(tmp / "data"), "--set", "trainer.progress_every_seconds=1",
                  "--set", "model.d_model=256",
                  env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return r, MlflowClient(uri), uri


def training_log(r) -> str:
    """What the run wrote from its `run <id> ...` line on (before it: data generation, the data code's output)."""
    return r.stdout + r.stderr[r.stderr.index("\nrun ") + 1:]


def test_a_piped_run_writes_progress_lines_not_a_bar(piped_run):
    r, _, _ = piped_run
    log = training_log(r)
    assert "\r" not in log and "it/s]" not in log  # no bar redraws
    lines = log.splitlines()
    assert "training: 40 steps over 2 epochs; a progress line every 1 s" in lines
    done = [line for line in lines if line.startswith("epoch ")]
    assert len(done) == 2 and all(EPOCH_DONE.match(line) for line in done), done
    progress = [line for line in lines if line.startswith("progress:")]
    assert progress, r.stderr
    assert all(PROGRESS.match(line) or line.startswith("progress: epoch 2/2") for line in progress), progress
    # at most one line a second (40 steps took 15 to 60 s on 2 busy CPU cores); before: 14 KB of bar redraws
    assert len(progress) <= 40 and len(log) < 7000, len(log)


def test_a_piped_run_leaves_out_library_noise_and_keeps_what_matters(piped_run):
    r, _, _ = piped_run
    log = r.stdout + r.stderr
    assert not [n for n in NOISE if n in log], log
    assert "`Trainer.fit` stopped: `max_epochs=2` reached." in log  # why training ended stays
    assert "done: run " in log and "look: suite ui" in log


def test_system_metrics_are_logged_when_psutil_is_installed(piped_run):
    _, client, _ = piped_run
    (run,) = client.search_runs([client.get_experiment_by_name("lra").experiment_id])
    tag = run.data.tags["suite.system_metrics"]
    if importlib.util.find_spec("psutil") is None:
        assert tag.startswith("off: psutil not installed"), tag
        pytest.skip("psutil is not installed (extra 'sysmetrics'): the run says so in its tag, checked above")
    assert tag == "on"
    metrics = set(run.data.metrics)
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= metrics, metrics


def test_a_terminal_keeps_the_bar_and_a_pipe_or_file_does_not(tmp_path):
    leader, follower = os.openpty()
    with open(follower, "w") as tty, open(tmp_path / "log", "w") as file, os.fdopen(os.pipe()[1], "w") as pipe:
        assert output_is_terminal(tty, tty)
        assert not output_is_terminal(tty, file)  # `suite run ... 2> log` on a terminal: lines, not a bar
        assert not output_is_terminal(pipe, pipe)
        assert not output_is_terminal(io.StringIO())
    os.close(leader)


@pytest.mark.parametrize("message", [
    "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)",
    "GPU available: False, used: False",
    "GPU available: True (cuda), used: True",
    "TPU available: False, using: 0 TPU cores",
    "`Trainer(limit_train_batches=1.0)` was configured so 100% of the batches per epoch will be used..",
    "Loading `train_dataloader` to estimate number of stepping batches.",
    "You are using a CUDA device ('NVIDIA H200') that has Tensor Cores. To properly utilize them, ...",
])
def test_lines_nobody_can_act_on_are_dropped(message):
    assert dropped(message)


@pytest.mark.parametrize("message", [
    "GPU available: True (cuda), used: False",  # the run is on the CPU although a GPU is there
    "`Trainer.fit` stopped: `max_steps=100` reached.",
    "Restoring states from the checkpoint path at /x/last.ckpt",
])
def test_lines_a_user_can_act_on_are_kept(message):
    assert not dropped(message)


def test_durations_read_as_clock_times():
    assert [format_duration(s) for s in (0, 59.6, 61, 3600, 3 * 3600 + 62)] == ["0:00", "1:00", "1:01", "1:00:00",
                                                                                  "3:01:02"]
    assert format_duration(float("inf")) == "?"
