"""Nothing lost: a run killed with SIGKILL mid-epoch resumes into the same MLflow run with every epoch once;
Ctrl-C stops a run cleanly (checkpoint saved, run KILLED, exit 130, resume command printed); a run left
RUNNING by a dead process is detected and marked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from suite.tracking import liveness
from suite.tracking import store as tracking_store
from tests import helpers
from tests.conftest import run_suite, wait_stopped

# ListOps smoke model, 640 training samples: batch 16 -> 40 steps per epoch; last.ckpt every 5 steps.
STEPS_PER_EPOCH = 40
SLOW_SMOKE = ["run", "--task", "listops", "--model", "s4d", "--preset", "smoke", "--set", "trainer.batch_size=16",
              "--set", "trainer.checkpoint_every_n_steps=5", "--set", "trainer.progress_bar=false",
              "--set", "trainer.log_every_n_steps=1"]
EPOCH_METRICS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy")


@pytest.fixture
def start_suite():
    """Starts the real `suite` command in the background (the same entry point as conftest.run_suite); any
    process still there when the test ends (a failed assertion, a process left stopped) is killed."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        procs.append(helpers.start_suite(*args))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()  # SIGKILL ends a stopped process too
            proc.communicate()


def store(tmp_path: Path) -> tuple[str, Path]:
    db = tmp_path / "store" / "mlflow.db"
    return f"sqlite:///{db}", db.parent / "checkpoints"


def latest_checkpoint(ckpt_root: Path) -> tuple[str, int] | None:
    """(run id, global_step) of the run's last.ckpt, None while there is none (ResumePoint replaces it atomically)."""
    for ckpt in ckpt_root.glob("*/last.ckpt"):
        try:
            return ckpt.parent.name, torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
        except Exception:  # replaced while opening it
            return None
    return None


def stop_at_checkpoint(proc: subprocess.Popen, ckpt_root: Path, wanted, timeout: float = 240) -> tuple[str, int]:
    """Poll until the run's last.ckpt holds a step for which `wanted(step)` holds, then stop the process
    (SIGSTOP) and return (run id, step) with the process stopped and that step confirmed: its last.ckpt is
    the newest it wrote. The signal a test sends next therefore lands just after that checkpoint, whatever
    the load on the machine; without the stop, the run goes on while this loop reads the file (a 40-step
    epoch takes about 2 s on 2 idle cores), and may already be past the point the test is about."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        found = latest_checkpoint(ckpt_root)
        if found is not None and wanted(found[1]):
            proc.send_signal(signal.SIGSTOP)
            if not wait_stopped(proc.pid):  # it ended on its own (its error says why), or did not stop in time
                proc.kill()
                pytest.fail(f"process {proc.pid} did not stop: {proc.communicate()[1][-3000:]}")
            found = latest_checkpoint(ckpt_root)  # it may have saved again before it stopped
            if found is not None and wanted(found[1]):
                return found
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint in time")


def epoch_histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, int, float]]]:
    """{metric: [(step, epoch, value), ...]} for the per-epoch metrics, in logging order."""
    epochs = {m.step: int(m.value) for m in client.get_metric_history(run_id, "epoch")}
    out = {}
    for key in EPOCH_METRICS:
        hist = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.timestamp, m.step))
        out[key] = [(m.step, epochs.get(m.step, -1), m.value) for m in hist]
    return out


def test_sigkill_mid_epoch_then_resume_has_every_epoch_exactly_once(tmp_path, start_suite):
    uri, ckpt_root = store(tmp_path)
    proc = start_suite(*SLOW_SMOKE, "--max-epochs", "3", "--tracking-uri", uri)
    # Stopped at a checkpoint inside epoch 1 or 2 (after epoch 0 was logged), not at an epoch end: killed there,
    # the resume point is mid-epoch however late this test noticed the checkpoint.
    run_id, stopped_at = stop_at_checkpoint(proc, ckpt_root, lambda step: step >= STEPS_PER_EPOCH + 10
                                            and step % STEPS_PER_EPOCH != 0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    killed_at = torch.load(ckpt_root / run_id / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert killed_at == stopped_at and killed_at % STEPS_PER_EPOCH != 0, "the resume point must be mid-epoch"

    # The store is readable after the kill; the run is left RUNNING, owned by a process that is gone.
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.tags["suite.pid"] == str(proc.pid)
    assert liveness.owner_alive(run.data.tags) is False

    resumed = start_suite("run", "--resume", run_id, "--tracking-uri", uri)
    # The resumed process trains on from the saved step: the first checkpoint it writes is past `killed_at`. One
    # that ignored the checkpoint would retrain from step 0, write last.ckpt at step 5, 10, ... again, and still
    # end with the same MLflow history (steps it already holds are not logged twice) and the same final step.
    _, first_step = stop_at_checkpoint(resumed, ckpt_root, lambda step: step != killed_at)
    assert killed_at < first_step <= killed_at + 5, (killed_at, first_step)
    resumed.send_signal(signal.SIGCONT)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-3000:]
    assert f"run {run_id} (" in err and "was left RUNNING by process" in err  # detected as stale first
    assert f"resuming run {run_id}" in err and "last.ckpt" in err

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["suite.resumed"] == "1"
    assert run.data.tags["suite.git_commits"] == run.data.tags["suite.git_commit"]  # one version of the code
    assert len(client.search_runs([run.info.experiment_id])) == 1  # the same run, not a new one
    for key, hist in epoch_histories(client, run_id).items():
        steps = [s for s, _, _ in hist]
        assert [e for _, e, _ in hist] == [0, 1, 2], (key, hist)  # every epoch exactly once, in order
        assert steps == sorted(set(steps)), (key, hist)  # steps strictly increasing
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss_step")]
    assert len(steps) == len(set(steps)) and max(steps) >= 3 * STEPS_PER_EPOCH - 2  # no step logged twice
    assert "best/test/accuracy" in run.data.metrics
    final = torch.load(ckpt_root / run_id / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == 3 * STEPS_PER_EPOCH


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_marks_killed_and_says_how_to_resume(sig, tmp_path, start_suite):
    """SIGTERM (kill, SLURM preemption, docker stop) is handled like Ctrl-C."""
    uri, ckpt_root = store(tmp_path)
    proc = start_suite(*SLOW_SMOKE, "--max-epochs", "2", "--tracking-uri", uri)
    # The signal goes to a run stopped just after a periodic checkpoint at least 10 steps before its epoch's
    # end, then the run continues: it reaches its next batch end (at most 6 steps on) well before the epoch's
    # last batch and validation, where a Ctrl-C lets the run finish instead (guards.py). A run that goes on
    # while the signal is on its way could be there already (the whole epoch takes about 2 s on 2 cores).
    run_id, seen = stop_at_checkpoint(proc, ckpt_root,
                                      lambda step: 5 <= step % STEPS_PER_EPOCH <= STEPS_PER_EPOCH - 10)
    proc.send_signal(sig)  # held by the kernel until the process continues
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert f"continue it with: suite run --resume {run_id} --tracking-uri {uri}\n" in err and "Traceback" not in err
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert f"{name}: saving a checkpoint after this batch" in err, err[-3000:]
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "KILLED"
    saved = torch.load(ckpt_root / run_id / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    # Saved at the interrupt, not only the periodic checkpoint seen before. The signal lands just after that
    # save, possibly while the batch's loggers still run: Lightning's own SIGTERM handler would stop there unsaved.
    assert saved > seen and f"stopped at step {saved}, checkpoint saved" in err, (saved, seen, err[-3000:])

    r = run_suite("run", "--resume", run_id, "--tracking-uri", uri)
    assert r.returncode == 0, r.stderr[-3000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key, hist in epoch_histories(client, run_id).items():
        assert [e for _, e, _ in hist] == [0, 1], (key, hist)


def test_resume_refuses_unknown_finished_and_reconfigured_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = tracking_store.ensure_experiment(uri, "lra")
    finished = tracking_store.start_run(uri, exp, "done", liveness.owner_tags())
    tracking_store.set_terminated(uri, finished, "FINISHED")

    r = run_suite("run", "--resume", "0123456789abcdef", "--tracking-uri", uri)
    # an unknown run id is a tracking-store error, exit 5, as for every command (README, Exit codes)
    assert r.returncode == 5 and "no run '0123456789abcdef'" in r.stderr and "Traceback" not in r.stderr
    r = run_suite("run", "--resume", finished, "--tracking-uri", uri)
    assert r.returncode == 8 and "has FINISHED" in r.stderr
    r = run_suite("run", "--resume", finished, "--set", "optim.lr=0.1", "--tracking-uri", uri)
    assert r.returncode == 8 and "--set cannot change it" in r.stderr


def test_stale_running_runs_are_marked_killed(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = tracking_store.ensure_experiment(uri, "lra")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tracking_store.start_run(uri, exp, "dead", {**liveness.owner_tags(), "suite.pid": str(gone.pid)})
    alive = tracking_store.start_run(uri, exp, "alive", liveness.owner_tags())  # this test process
    elsewhere = tracking_store.start_run(uri, exp, "elsewhere", {**liveness.owner_tags(), "suite.host": "another-host",
                                                                 "suite.pid": str(gone.pid)})
    untagged = tracking_store.start_run(uri, exp, "untagged", {})

    assert liveness.mark_stale_runs(uri) == [dead]
    client = MlflowClient(uri)
    assert client.get_run(dead).info.status == "KILLED" and client.get_run(dead).data.tags["suite.stale"] == "true"
    for run_id in (alive, elsewhere, untagged):
        assert client.get_run(run_id).info.status == "RUNNING"
    # the run is not in the default store: the printed command names it, so that it works as copied
    assert f"Continue it with: suite run --resume {dead} --tracking-uri {uri}\n" in capsys.readouterr().err
    assert liveness.mark_stale_runs(uri) == []  # idempotent


def test_a_reused_pid_does_not_keep_a_dead_run_alive():
    """The owner tags hold the process start; a newer process with the same pid is not the owner."""
    tags = liveness.owner_tags()
    assert liveness.owner_alive(tags) is True
    assert liveness.owner_alive({**tags, "suite.pid_since": "0"}) is False  # this process started after 1970


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_after_training_lets_the_run_finish_and_a_second_one_stops_at_once(sig, tmp_path, capsys):
    """Between the end of fit() and FINISHED the run writes its summary (best metrics, curves, artifacts): a
    first Ctrl-C or SIGTERM there must not turn a fully trained run into a KILLED one."""
    from suite.train.guards import ResumePoint

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    point = ResumePoint(tmp_path / "last.ckpt")
    with point.signal_handlers():
        point.on_train_end(None, None)
        os.kill(os.getpid(), sig)  # Python runs the handler before the next bytecode
        assert point.interrupt_requested
        name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        assert f"{name}: finishing the run's summary ({name} again to stop at once)" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
    assert {s: signal.getsignal(s) for s in before} == before  # the caller's handlers are back
