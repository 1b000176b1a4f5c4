"""Which GPUs a run, or each of several runs, trains on (docs/usage.md, "Several GPUs and machines").

- One run: the paper recipes train on one GPU, and their batch is that GPU's. So `trainer.devices: auto` (the
  default) means one device, whatever the machine has; data-parallel training on several GPUs, with the batch
  per GPU, is used only when asked for (`--devices N`). Lightning's own `auto` would take every visible GPU,
  which would multiply the batch of a recipe by the number of GPUs of the machine it happens to run on.
- Several runs at once (`suite batch --workers K`, `suite sweep --workers K`): worker slot i trains on visible
  GPU i mod N, through its own CUDA_VISIBLE_DEVICES, so K <= N runs each have a GPU to themselves; more
  workers than GPUs take turns on them. On a machine with one GPU the workers share it through CUDA MPS
  (suite/mps.py). Runs that ask for several devices each (`trainer.devices`) are not spread.

Nothing here initialises CUDA: the workers must create their own contexts.
"""

from __future__ import annotations

import os
import shutil
import subprocess

ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpu_ids() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them, else "0" .. "N-1" for the N GPUs that
    `nvidia-smi -L` lists (in PCI order: `worker_env` makes CUDA count in that order too); [] without a GPU.

    CUDA_VISIBLE_DEVICES is read as CUDA (and torch) read it: a list of indices, or of `GPU-`/`MIG-` names,
    up to the first entry that is not one (such as -1 or SLURM's NoDevFiles); a repeated entry hides every GPU."""
    visible = os.environ.get(ENV)
    if visible is None:
        return _listed_by_nvidia_smi()
    entries = [e.strip() for e in visible.split(",")]
    prefix = next((p for p in ("GPU-", "MIG-") if visible.strip().startswith(p)), None)
    ids: list[str] = []
    for entry in entries:
        if prefix is not None:
            name = entry if entry.startswith(prefix) else None
        else:
            digits = entry[:len(entry) - len(entry.lstrip("+0123456789"))]
            name = str(int(digits)) if digits.lstrip("+").isdigit() else None
        if name is None:
            break
        if name in ids:
            return []
        ids.append(name)
    return ids


def _listed_by_nvidia_smi() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i in range(sum(1 for line in out.splitlines() if line.startswith("GPU ")))]


def training_devices(devices: int | str) -> int | str:
    """Lightning's `devices` for `trainer.devices`: `auto` is one device (module docstring); the rest as given."""
    return 1 if devices == "auto" else devices


def devices_per_machine(devices: int | str) -> int:
    """How many devices `trainer.devices` asks for on each machine, as Lightning reads it: auto 1, -1 every
    GPU (returned as -1), 2 or "2" two, "0,3" and "1," a list of GPUs (two, one)."""
    d = training_devices(devices)
    if isinstance(d, str):
        d = d.strip()
        if "," in d:
            return len([i for i in d.split(",") if i.strip()])
        d = int(d)
    return d


def one_device(devices: int | str) -> bool:
    """Whether runs of this `trainer.devices` train on one device each, so that several of them can be spread
    over the GPUs; a bad value is not (each run refuses it with its own error)."""
    try:
        return devices_per_machine(devices) == 1
    except ValueError:
        return False


def worker_gpu(slot: int, ids: list[str]) -> str | None:
    """The GPU of worker slot `slot` (0-based), or None when there is at most one GPU to choose from."""
    return ids[slot % len(ids)] if len(ids) > 1 else None


def worker_env(slot: int, ids: list[str]) -> dict[str, str] | None:
    """The environment of the process of worker slot `slot`: this one's, with CUDA_VISIBLE_DEVICES set to the
    slot's GPU; None (inherit it unchanged) when there is at most one GPU. Where the ids came from nvidia-smi
    (no CUDA_VISIBLE_DEVICES), CUDA is told to number the GPUs as nvidia-smi does (CUDA_DEVICE_ORDER=PCI_BUS_ID;
    its own default puts the fastest first)."""
    gpu = worker_gpu(slot, ids)
    if gpu is None:
        return None
    env = {**os.environ, ENV: gpu}
    if ENV not in os.environ:
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env


def spread_note(workers: int, ids: list[str]) -> str | None:
    """One line for the log when `workers` runs are spread over several GPUs; None otherwise."""
    if len(ids) <= 1 or workers <= 1:
        return None
    per_gpu = -(-workers // len(ids))
    share = "one per GPU" if per_gpu == 1 else f"up to {per_gpu} per GPU, taking turns on it"
    return f"note: {workers} runs at a time over {len(ids)} GPUs ({','.join(ids)}): {share}"
