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

from tests.conftest import run_suite, start_suite, stop_group
from tests.suite.test_sweep import TrialGate, assert_accounted, load_trials, runs_of, write_sweep


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    """A port free a moment ago. Another process may take it before the server binds it: the servers below
    are therefore started through `_on_a_free_port`, which tries again on a new port when that happens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_TAKEN = ("address already in use", "could not bind", "could not create any tcp/ip sockets")  # lower case


def _on_a_free_port(start, tries: int = 5, ports=None):
    """`start(port)` returns (result, None) once the server listens, or (None, its log) when it failed; a failure
    whose log says the port was taken is retried on another free port (from `ports`, default `_free_port()`
    each time), any other failure ends the test."""
    log = ""
    ports = iter(ports) if ports is not None else iter(_free_port, None)
    for _ in range(tries):
        port = next(ports)
        result, log = start(port)
        if result is not None:
            return port, result
        if not any(words in log.lower() for words in PORT_TAKEN):
            break
    pytest.fail(f"the server did not start:\n{log[-3000:]}")


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
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "suite", "--auth=trust",
                              "--encoding=UTF8", "--no-sync"]), check=True, capture_output=True, timeout=120)

    def start(port: int):
        r = subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                      "-o", f"-p {port} -h 127.0.0.1 -k {sockets} -c fsync=off", "start"]),
                           capture_output=True, text=True, timeout=120)
        return (True, None) if r.returncode == 0 else (None, r.stdout + r.stderr + log.read_text())

    port, _ = _on_a_free_port(start)
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
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    mlflow_bin = Path(sys.executable).with_name("mlflow")

    def start(port: int):
        log = artifacts.parent / f"mlflow-server-{port}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([str(mlflow_bin), "server", "--backend-store-uri", f"{postgres}/mlflow",
                                     "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port",
                                     str(port), "--workers", "1"], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        deadline = time.time() + 180
        while proc.poll() is None and time.time() < deadline:
            # Uvicorn says it runs only once it has bound the port: a health answer alone could come from
            # another server that took the port (this one then logs "address already in use" and exits)
            if f"Uvicorn running on http://127.0.0.1:{port}" in log.read_text():
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                        return proc, None
                except OSError:
                    pass
            time.sleep(0.5)
        stop_group(proc)
        return None, log.read_text()

    port, proc = _on_a_free_port(start)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)


def test_a_port_taken_between_the_check_and_the_bind_is_retried_on_another():
    """The race `_free_port` leaves open, forced: the first port handed out is taken by a listening socket when
    the server binds; the server starts on the next one. Runs without PostgreSQL."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    servers = []

    def start(port: int):
        server = socket.socket()
        try:
            server.bind(("127.0.0.1", port))
        except OSError as exc:
            server.close()
            return None, f"could not bind: {exc}"  # the kernel's own words: [Errno 98] Address already in use
        server.listen()
        servers.append(server)
        return server, None

    try:
        port, server = _on_a_free_port(start, ports=[taken.getsockname()[1], _free_port()])
        assert port != taken.getsockname()[1] and server.getsockname()[1] == port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        taken.close()
        for server in servers:
            server.close()


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
    gate = TrialGate(storage, "pg")
    procs = [start_suite(*args, merge_output=True) for _ in range(2)]
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
