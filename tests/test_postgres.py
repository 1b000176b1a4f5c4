"""A distributed sweep on the shared services of many machines: Optuna on PostgreSQL, MLflow as a server.

The fixture starts a throwaway PostgreSQL cluster (initdb + pg_ctl, loopback only, a free port, a
temporary folder) and a real `mlflow server` with its backend store on it. Without the PostgreSQL
binaries the test is skipped, unless SUITE_REQUIRE_POSTGRES=1 (CI), where it fails instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import run_suite, stop_group
from tests.test_sweep import TrialGate, assert_accounted, load_trials, runs_of, write_sweep


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: under root, run the server tools as the `postgres` user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster on 127.0.0.1:<free port> with databases `optuna` and `mlflow`; yields its base URL."""
    bindir = _pg_bin()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        if os.environ.get("SUITE_REQUIRE_POSTGRES") == "1":
            pytest.fail("SUITE_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (initdb, pg_ctl) were found; "
                        "install them with: apt-get install -y postgresql")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install -y postgresql")
    psycopg = pytest.importorskip("psycopg", reason="pip install 'psycopg[binary]' (SQLAlchemy's PostgreSQL driver)")
    root = Path(tempfile.mkdtemp(prefix="suite-pg-"))  # not under pytest's 0700 folder: the server user reads it
    root.chmod(0o755)
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "suite", "--auth=trust",
                              "--encoding=UTF8", "--no-sync"]), check=True, capture_output=True, timeout=120)
    subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                              "-o", f"-p {port} -h 127.0.0.1 -k {sockets} -c fsync=off", "start"]),
                   check=True, capture_output=True, timeout=120)
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="suite", dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE optuna")
            conn.execute("CREATE DATABASE mlflow")
        yield f"postgresql://suite@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on 127.0.0.1:<free port>, backend store on PostgreSQL, artifacts proxied to a temp folder."""
    port = _free_port()
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    log = open(artifacts.parent / "mlflow-server.log", "w")
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen([str(mlflow_bin), "server", "--backend-store-uri", f"{postgres}/mlflow",
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"mlflow server did not start:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)
        log.close()


def test_two_workers_on_postgres_and_an_mlflow_server_account_for_every_trial(tmp_path, postgres, mlflow_server):
    storage = f"{postgres}/optuna"
    spec = write_sweep(tmp_path, "pg", study="pg", trials=4)
    data_dir = tmp_path / "data"
    # Two sweep commands, as two machines would run them: same file, same storage, same tracking server.
    # The first creates study and study run (`--trials 0`), then both run workers side by side.
    args = ["sweep", str(spec), "--storage", storage, "--tracking-uri", mlflow_server, "--data-dir", str(data_dir)]
    init = run_suite(*args, "--trials", "0")
    assert init.returncode == 0, init.stderr[-3000:]
    # Both wait at the study's trial lock (one machine here: the lock is a local file) until both are there, so
    # that both run trials; a command that starts late on a loaded machine would otherwise find the budget taken.
    exe = Path(sys.executable).with_name("suite")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    gate = TrialGate(storage, "pg")
    procs = [subprocess.Popen([str(exe), *args], cwd=Path(__file__).resolve().parent.parent, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        gate.open_when_waiting(2, procs)
        outs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        gate.release()
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [o[-3000:] for o in outs]

    trials = load_trials(storage, "pg")
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers  # both commands ran trials
    parent, children = runs_of(mlflow_server, "pg")
    assert_accounted(trials, children)
    assert parent.data.tags["suite.sweep.storage"] == storage
    print(f"\npostgres sweep: {len(trials)} trials by {len(workers)} worker(s) "
          f"({sum(t.state.name == 'COMPLETE' for t in trials)} complete, "
          f"{sum(t.state.name == 'PRUNED' for t in trials)} pruned), {len(children)} MLflow child runs, "
          f"values {[round(t.value, 4) for t in trials]}")
