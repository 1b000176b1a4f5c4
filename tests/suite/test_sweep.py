"""Sweeps: an Optuna study whose trials are MLflow child runs of one study run.

Every sweep here runs through the real `suite sweep` command in a subprocess, on tiny S4D trials
(generated ListOps, a handful of steps), and is read back through Optuna's and MLflow's own APIs.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from suite.errors import ConfigError, UnknownNameError
from suite.sweep import spec as sweep_spec
from suite.sweep import storage as sweep_storage
from tests.conftest import ROOT, run_suite, start_suite, wait_stopped

SMOKE = ROOT / "sweeps" / "smoke.yaml"

# Trials of a few seconds: 2 epochs of 2 batches on 32 generated ListOps sequences.
TINY = {
    "trainer.max_epochs": 2,
    "trainer.batch_size": 16,
    "trainer.progress_bar": False,
    "data.generator.n_train": 32,
    "data.generator.n_val": 32,
    "data.generator.n_test": 32,
}


def write_sweep(folder: Path, name: str, fixed: dict | None = None, **top) -> Path:
    """sweeps/smoke.yaml with tiny trials and the given top-level keys replaced."""
    spec = yaml.safe_load(SMOKE.read_text())
    spec["fixed"] = {**spec.get("fixed", {}), **TINY, **(fixed or {})}
    spec.update(top)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One data root for the module: the tiny ListOps set is generated once."""
    return tmp_path_factory.mktemp("sweep-data")


def store(tmp_path: Path) -> tuple[str, str]:
    """(MLflow URI, default Optuna storage) of the test's isolated store (tests/conftest.py)."""
    return os.environ["MLFLOW_TRACKING_URI"], f"sqlite:///{tmp_path / 'store' / 'optuna.db'}"


def load_trials(storage: str, study: str):
    import optuna

    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def runs_of(uri: str, study: str):
    """(study run, {trial number: child run}) from MLflow."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp_ids = [e.experiment_id for e in c.search_experiments()]
    parents = c.search_runs(exp_ids, f"tags.`suite.sweep.role` = 'study' and tags.`suite.sweep.study` = '{study}'")
    assert len(parents) == 1, f"expected one study run, found {len(parents)}"
    parent = parents[0]
    children = c.search_runs(exp_ids, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_number = {}
    for run in children:
        number = int(run.data.tags["suite.sweep.trial"])
        assert number not in by_number, f"two runs for trial {number}"
        assert run.data.tags["suite.sweep.study"] == study
        by_number[number] = run
    return parent, by_number


def assert_accounted(trials, children) -> None:
    """Each started trial has one child run whose status, tags, params and objective match Optuna's."""
    started = [t for t in trials if t.state.name != "WAITING"]
    assert sorted(children) == sorted(t.number for t in started)
    for t in started:
        run = children[t.number]
        assert run.data.tags["suite.sweep.state"] == t.state.name
        expected = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}[t.state.name]
        assert run.info.status == expected, (t.number, t.state.name, run.info.status)
        for key, value in t.params.items():
            assert run.data.params[f"trial.{key}"] == str(value)  # the sampled value, with a prefix
            assert run.data.params[key] == str(value)  # and in the run's own resolved config
        if t.state.name in ("COMPLETE", "PRUNED"):
            assert run.data.metrics["sweep/objective"] == pytest.approx(t.value)
        if t.state.name == "COMPLETE":
            assert run.data.metrics["best/val/accuracy"] == pytest.approx(t.value)
        if t.state.name == "PRUNED":
            assert run.data.tags["suite.sweep.pruned"] == "true"
            assert "suite.failure" not in run.data.tags


def start_sweep(*args: str, env: dict | None = None) -> subprocess.Popen:
    """`suite sweep ...` in the background (the entry point of conftest.run_suite), output merged."""
    return start_suite("sweep", *args, merge_output=True, env=env)


class TrialGate:
    """Holds a study's trial lock, the file lock under which each `suite sweep` worker counts the trials and
    starts one (suite/sweep/worker.py), until the workers wait on it; then every worker starts a trial.

    Once released, the first worker takes the lock, starts a trial and releases it as the trial begins; the
    next one, already waiting, takes it at once and finds the budget open. Without the gate, a worker that
    starts late on a loaded machine may find the budget taken by the other, which is correct behaviour but
    leaves the concurrent case untested. Linux: the waiters are read from /proc/locks."""

    def __init__(self, storage: str, study: str):
        path = sweep_storage.lock_path(storage, study)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a")
        fcntl.flock(self._file, fcntl.LOCK_EX)
        st = os.fstat(self._file.fileno())
        self._id = f" {os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "  # as /proc/locks writes it

    def waiting(self) -> int:
        """Processes blocked on the lock (their lines in /proc/locks start with '->')."""
        return sum(" -> " in line and self._id in line for line in Path("/proc/locks").read_text().splitlines())

    def open_when_waiting(self, n: int, procs: list[subprocess.Popen], timeout: float = 300) -> None:
        """Release the lock once `n` processes wait on it (or one of `procs` ended, or after `timeout` s: the
        test's own assertions then say what went wrong)."""
        deadline = time.monotonic() + timeout
        try:
            while self.waiting() < n and time.monotonic() < deadline and all(p.poll() is None for p in procs):
                time.sleep(0.1)
        finally:
            self.release()

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


# ------------------------------------------------------------------------------------------------
# the study description
# ------------------------------------------------------------------------------------------------


def test_every_shipped_sweep_file_is_valid():
    files = sorted((ROOT / "sweeps").glob("*.yaml"))
    assert {"smoke.yaml", "scifar.yaml", "speech.yaml", "bidmc.yaml"} <= {f.name for f in files}
    assert any(f.name.startswith("lra") for f in files)
    for f in files:
        spec = sweep_spec.load(f)
        assert spec.space, f
        sweep_spec.check_configs(spec, only_available=True)  # tasks whose recipe exists resolve at every corner
    assert sweep_spec.load(ROOT / "sweeps" / "bidmc.yaml").direction == "minimize"


def test_a_typo_in_a_sweep_file_names_the_closest_key(tmp_path):
    bad = write_sweep(tmp_path, "typo", trails=3)
    with pytest.raises(ConfigError, match="unknown key 'trails'. Did you mean 'trials'"):
        sweep_spec.load(bad)

    bad = write_sweep(tmp_path, "space", space={"model.d_stat": {"type": "int", "low": 4, "high": 8}})
    with pytest.raises(ConfigError, match="unknown key 'model.d_stat'. Did you mean 'model.d_state'"):
        sweep_spec.check_configs(sweep_spec.load(bad))

    bad = write_sweep(tmp_path, "sampler", sampler={"name": "tpe", "options": {"n_startup_trial": 3}})
    with pytest.raises(ConfigError, match="Did you mean 'sampler.options.n_startup_trials'"):
        sweep_spec.load(bad)

    bad = write_sweep(tmp_path, "type", space={"model.d_state": {"type": "float", "low": 4, "high": 8}})
    with pytest.raises(ConfigError, match="model.d_state = 4.0 .* expected int"):
        sweep_spec.check_configs(sweep_spec.load(bad))

    with pytest.raises(UnknownNameError, match="Did you mean 's4d'"):
        sweep_spec.load(write_sweep(tmp_path, "model", model="s4dd"))


def test_a_bad_sweep_file_exits_with_code_2_and_a_hint(tmp_path):
    bad = write_sweep(tmp_path, "bad", space={"optim.lr": {"type": "float", "low": 0.1, "high": 0.01}})
    result = run_suite("sweep", str(bad), "--trials", "1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "low = 0.1 is above high = 0.01" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------
# sweeps through the CLI
# ------------------------------------------------------------------------------------------------


def test_a_sweep_is_one_study_run_with_a_child_run_per_trial_and_a_rerun_resumes_it(tmp_path, data_dir):
    uri, storage = store(tmp_path)
    first = write_sweep(tmp_path, "first", study="s", trials=2)
    result = run_suite("sweep", str(first), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "best: trial" in result.stderr

    trials = load_trials(storage, "s")
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    parent, children = runs_of(uri, "s")
    assert_accounted(trials, children)
    assert parent.info.status == "FINISHED"
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert parent.data.tags["suite.sweep.best_trial"] == str(best.number)
    assert parent.data.tags["suite.sweep.best_run_id"] == children[best.number].info.run_id
    assert parent.data.metrics["best/val/accuracy"] == pytest.approx(best.value)
    for key, value in best.params.items():
        assert parent.data.tags[f"best.{key}"] == str(value)
    from mlflow.tracking import MlflowClient

    plots = {Path(a.path).name for a in MlflowClient(uri).list_artifacts(parent.info.run_id, "plots")}
    assert "optimization_history.png" in plots

    # Rerun the same study with 2 more trials, now under a pruner that stops every trial at its first
    # epoch: the study grows from 2 to 4 trials, under the same study run, and pruned runs end KILLED.
    second = write_sweep(tmp_path, "second", study="s", trials=2,
                         pruner={"name": "threshold", "options": {"lower": 1.5}})
    result = run_suite("sweep", str(second), "--trials", "2", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load_trials(storage, "s")
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.state.name for t in trials[2:]] == ["PRUNED", "PRUNED"]
    assert all(t.last_step == 0 for t in trials[2:])
    parent2, children = runs_of(uri, "s")
    assert parent2.info.run_id == parent.info.run_id
    assert_accounted(trials, children)
    assert parent2.data.metrics["sweep/pruned"] == 2

    # Without --trials the file's budget (2) is already met: nothing runs.
    result = run_suite("sweep", str(first), "--data-dir", str(data_dir))
    assert result.returncode == 0 and "nothing to run" in result.stderr
    assert len(load_trials(storage, "s")) == 4


def test_two_workers_on_one_sqlite_storage_lose_no_trial(tmp_path, data_dir):
    """... and, on a machine with two GPUs (named "3,5"; absent here: the trials train on the CPU), each worker
    trains its trials on a GPU of its own."""
    uri, storage = store(tmp_path)
    spec = write_sweep(tmp_path, "pair", study="pair", trials=4)
    gate = TrialGate(sweep_storage.resolve_storage(None, uri), "pair")  # both workers line up before trial 0
    proc = start_sweep(str(spec), "--workers", "2", "--data-dir", str(data_dir), env={"CUDA_VISIBLE_DEVICES": "3,5"})
    try:
        gate.open_when_waiting(2, [proc])
        out, _ = proc.communicate(timeout=600)
    finally:
        gate.release()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]

    trials = load_trials(storage, "pair")
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # exactly the budget, no overshoot
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    _, children = runs_of(uri, "pair")
    assert_accounted(trials, children)
    assert "2 runs at a time over 2 GPUs (3,5): one per GPU" in out
    assert {run.data.tags["suite.cuda_visible_devices"] for run in children.values()} == {"3", "5"}


def test_workers_are_spread_over_the_gpus_only_for_trials_of_one_device(tmp_path):
    from suite.sweep.worker import one_device_per_trial

    def spec(**fixed):
        return sweep_spec.load(write_sweep(tmp_path, "d", fixed=fixed))

    assert one_device_per_trial(spec()) and one_device_per_trial(spec(**{"trainer.devices": 1}))
    assert not one_device_per_trial(spec(**{"trainer.devices": 2, "trainer.strategy": "ddp"}))
    searched = yaml.safe_load(write_sweep(tmp_path, "s").read_text())
    searched["space"]["trainer.devices"] = {"type": "categorical", "choices": [1, 2]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(searched))
    assert not one_device_per_trial(sweep_spec.load(tmp_path / "s.yaml"))


def kill_mid_trial(rdb, trial, epochs: int) -> bool:
    """SIGKILL the worker of `trial` if, stopped (SIGSTOP), it is still training that trial; else let it go on.

    A trial seen RUNNING a moment ago may have finished since: a worker killed then would lose another trial,
    or none. Stopped, the worker cannot finish it: if the trial is still RUNNING with fewer than `epochs`
    validation results reported (Optuna's pruning callback reports one per epoch), training has an epoch to
    go. The worker stays stopped for one short read (timeout 0.5 s), well inside the heartbeat's grace."""
    pid = int(trial.user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGSTOP)
    try:
        now = rdb.get_trial(trial._trial_id) if wait_stopped(pid, timeout=5) else None
        training = now is not None and now.state.name == "RUNNING" and len(now.intermediate_values) < epochs
    except Exception:  # the database is locked by the stopped worker: look again later
        training = False
    os.kill(pid, signal.SIGKILL if training else signal.SIGCONT)
    return training


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_worker_killed_mid_trial_has_its_trial_failed_and_retried_by_the_other(tmp_path, data_dir):
    import optuna

    uri, storage = store(tmp_path)
    spec = write_sweep(tmp_path, "kill", study="kill", trials=3, pruner="none",
                       heartbeat={"interval": 1, "grace": 3, "max_retry": 1},
                       fixed={"trainer.max_epochs": 6})
    # This test reads the study while the sweep runs. It creates the storage (an empty Optuna schema) before the
    # sweep starts, so that its reads never race the sweep's creation of a fresh SQLite file; a short busy
    # timeout, so that a read blocked by a worker stopped mid-write gives up at once (see below).
    (tmp_path / "store").mkdir(exist_ok=True)
    rdb = optuna.storages.RDBStorage(storage, engine_kwargs={"connect_args": {"timeout": 0.5}})
    proc = start_sweep(str(spec), "--workers", "2", "--data-dir", str(data_dir))
    victim = None
    try:
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                running = optuna.load_study(study_name="kill", storage=rdb).get_trials(deepcopy=False)
            except Exception:  # the study is not created yet, or the database is busy
                continue
            for t in running:  # a trial whose run is training (the run id is recorded at fit start)
                if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs and kill_mid_trial(rdb, t, 6):
                    victim = t
                    break
        assert victim is not None, "no trial reached training in time"
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]

    trials = {t.number: t for t in load_trials(storage, "kill")}
    assert trials[victim.number].state.name == "FAIL"
    retries = [t for t in trials.values()
               if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert len(retries) == 1 and retries[0].params == victim.params
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials.values()) == 3  # the study completed
    _, children = runs_of(uri, "kill")
    killed = children[victim.number]
    assert killed.info.status != "RUNNING"
    assert killed.data.tags["suite.sweep.state"] == "FAIL" and killed.data.tags["suite.sweep.stale"] == "true"
    assert_accounted([t for t in trials.values() if t.number != victim.number],
                     {n: r for n, r in children.items() if n != victim.number})


def test_a_sweep_over_several_models_checks_each_trial_against_its_own_model(tmp_path):
    """An option one of the models does not take stops the sweep before any trial runs (exit 2, no run)."""
    bad = write_sweep(tmp_path, "models", model=["s4d", "liquid_s4_pb"],
                      space={"model.liquid_degree": {"type": "int", "low": 2, "high": 3}})
    with pytest.raises(ConfigError, match="model s4d does not take 'model.liquid_degree'"):
        sweep_spec.check_configs(sweep_spec.load(bad))
    result = run_suite("sweep", str(bad), "--trials", "1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "model s4d does not take 'model.liquid_degree'" in result.stderr and "Traceback" not in result.stderr
    uri, _ = store(tmp_path)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    assert not client.search_experiments() or all(
        not client.search_runs([e.experiment_id]) for e in client.search_experiments())
