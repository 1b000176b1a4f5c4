"""Several runs on one GPU at once: a CUDA MPS daemon that the suite starts and stops (issue 12, target 5).

Without MPS, the processes of `suite batch --workers K` or `suite sweep --workers K` on one GPU are
time-sliced: each has its own CUDA context and the GPU runs one context at a time, so K small runs finish no
sooner together than one after the other. Under NVIDIA's Multi-Process Service the K processes' kernels
share the GPU concurrently as if they came from one process, which is what small runs (the paper recipes'
batch 12 leaves most of an H200 idle) need. Each run stays its own process, MLflow run, seed and metrics.

`mps_for_workers(workers, mode)` is a context manager around the launch of the worker processes:

- mode `auto` (the default): MPS when more than one worker will share one visible GPU and
  `nvidia-cuda-mps-control` is on the PATH; otherwise nothing, with one `note:` line saying why when
  workers > 1. `on`: the same, but a reason not to is an error. `off`: never.
- A daemon that is already running (CUDA_MPS_PIPE_DIRECTORY set by the user or a cluster's prolog) is used
  as it is and left running. Otherwise the suite starts a private one (its pipe and log directories in a
  temporary directory, so it never meets another user's daemon), exports CUDA_MPS_PIPE_DIRECTORY and
  CUDA_MPS_LOG_DIRECTORY to the workers, and stops it on the way out (`quit`), also after an error or Ctrl-C.

Nothing here changes the GPU's settings (compute mode, MIG): MPS runs on a GPU in the default compute mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from suite.errors import ConfigError
from suite.gpus import visible_gpu_ids

CONTROL = "nvidia-cuda-mps-control"
MODES = ("auto", "on", "off")


def visible_gpus() -> int:
    """GPUs this process would see, without initialising CUDA in it (the workers must create their contexts
    after the daemon starts): suite/gpus.py."""
    return len(visible_gpu_ids())


def why_not(workers: int, gpus: int | None = None) -> str | None:
    """Why MPS does not apply to `workers` processes here (`gpus` visible: counted when not given), or None
    when it does."""
    if workers <= 1:
        return "one worker"
    gpus = visible_gpus() if gpus is None else gpus
    if gpus == 0:
        return "no GPU"
    if gpus > 1:
        return f"{gpus} GPUs visible: the runs are spread over them (MPS here is for runs sharing one GPU)"
    if shutil.which(CONTROL) is None:
        return f"{CONTROL} not found on the PATH (it ships with the NVIDIA driver)"
    return None


def _control(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([CONTROL], input=command + "\n", env=env, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def mps_for_workers(workers: int, mode: str = "auto") -> Iterator[str]:
    """Run the body with an MPS daemon serving this process's children when `workers` processes share one GPU.
    Yields what was done: 'started', 'running' (a daemon of the user's), or 'off'."""
    if mode not in MODES:
        raise ConfigError(f"--mps {mode!r} is not one of {', '.join(MODES)}.", hint="use --mps auto, on or off")
    gpus = visible_gpus() if workers > 1 and mode != "off" else 0  # counted once (nvidia-smi)
    reason = "turned off (--mps off)" if mode == "off" else why_not(workers, gpus)
    if reason is not None:
        if mode == "on":
            raise ConfigError(f"--mps on, but MPS cannot be used here: {reason}.", hint="use --mps auto or off")
        if workers > 1 and mode == "auto" and gpus <= 1:  # several GPUs: gpus.spread_note says it
            print(f"note: {workers} workers without CUDA MPS ({reason}): on one GPU they take turns",
                  file=sys.stderr)
        yield "off"
        return
    if os.environ.get("CUDA_MPS_PIPE_DIRECTORY"):
        print(f"note: {workers} workers share the GPU through the running MPS daemon "
              f"(CUDA_MPS_PIPE_DIRECTORY={os.environ['CUDA_MPS_PIPE_DIRECTORY']})", file=sys.stderr)
        yield "running"
        return
    home = Path(tempfile.mkdtemp(prefix="suite-mps-"))
    env = dict(os.environ, CUDA_MPS_PIPE_DIRECTORY=str(home / "pipe"), CUDA_MPS_LOG_DIRECTORY=str(home / "log"))
    (home / "pipe").mkdir()
    (home / "log").mkdir()
    started = subprocess.run([CONTROL, "-d"], env=env, capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        message = (started.stderr or started.stdout).strip() or f"exit {started.returncode}"
        if mode == "on":
            raise ConfigError(f"--mps on, but the MPS daemon did not start: {message}.",
                              hint="use --mps auto or off")
        print(f"note: {workers} workers without CUDA MPS (the daemon did not start: {message})", file=sys.stderr)
        yield "off"
        return
    saved = {k: os.environ.get(k) for k in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")}
    os.environ.update(CUDA_MPS_PIPE_DIRECTORY=env["CUDA_MPS_PIPE_DIRECTORY"],
                      CUDA_MPS_LOG_DIRECTORY=env["CUDA_MPS_LOG_DIRECTORY"])
    print(f"note: {workers} workers share the GPU through a CUDA MPS daemon the suite started "
          f"(stopped when they are done; logs in {home / 'log'})", file=sys.stderr)
    try:
        yield "started"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _control("quit", env)
        for _ in range(50):  # the control daemon removes its pipe when it has exited
            if not (home / "pipe" / "control").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(home, ignore_errors=True)
