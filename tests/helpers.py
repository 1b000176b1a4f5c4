"""Helpers the tests share: the one way to start the real `suite` command, and process handling around it.

Every test that runs `suite` as a user would goes through `suite_command`: the console script of this
environment, or `python -m suite.cli` where there is none. The child inherits the environment, so with
PYTHONPATH set to a checkout it runs that checkout's code. conftest.py re-exports these names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def suite_command(*args: str) -> list[str]:
    """The command line of `suite ARGS...` in this environment."""
    exe = Path(sys.executable).with_name("suite")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "suite.cli", *args]


def start_suite(*args: str, merge_output: bool = False, new_session: bool = False,
                env: dict | None = None) -> subprocess.Popen:
    """`suite ARGS...` in the background, in the checkout, unbuffered, output piped (stderr into stdout with
    `merge_output`); `new_session` puts it in a process group of its own (for `stop_group`)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(suite_command(*args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE, text=True, env=full_env,
                            cwd=ROOT, start_new_session=new_session)


def run_suite(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `suite` entry point in a subprocess, to its end. On a timeout its whole process group is killed
    (sweep workers, DDP ranks), then TimeoutExpired is raised."""
    with start_suite(*args, new_session=True, env=env) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stop_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the process group of `proc` (started with `start_new_session=True`: a server and its workers),
    then SIGKILL to whatever is left: a server slow to stop on a loaded machine is not a test failure."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def wait_stopped(pid: int, timeout: float = 30) -> bool:
    """After a SIGSTOP (delivered asynchronously): True once the kernel reports process `pid` stopped, False if
    it ended (or became a zombie) first or did not stop within `timeout` seconds. Linux (/proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("T", "t"):
            return True
        if state == "Z":
            return False
        time.sleep(0.005)
    return False
