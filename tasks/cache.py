"""Prepared arrays on disk: written once atomically, verified on every load.

A cache entry is a folder holding .npy arrays and a manifest.json with each array's SHA-256 and
the fingerprint of the source files it was built from. A missing manifest (interrupted build),
a changed source or a checksum mismatch makes the entry stale: it is rebuilt, never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np


def fingerprint(paths: list[Path], **extra) -> str:
    """Identity of a set of source files (path, size, mtime) plus build parameters."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def file_lock(path: Path):
    """An exclusive lock held while the block runs (one builder per cache entry, across processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_valid(folder: Path, key: str) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        meta = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    if meta.get("key") != key:
        return False
    return all((folder / name).is_file() and _sha256(folder / name) == digest for name, digest in meta["files"].items())


def verified(folder: Path, key: str) -> bool | None:
    """What `suite data status` reports: None while the entry is not built, else whether it is valid."""
    return is_valid(folder, key) if folder.exists() else None


def build(folder: Path, key: str, make: Callable[[], dict[str, np.ndarray]], extra: dict | None = None) -> None:
    """Write the arrays returned by `make()` into `folder` (atomically) with their manifest."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    for name, array in make().items():
        np.save(tmp / f"{name}.npy", array)
        files[f"{name}.npy"] = _sha256(tmp / f"{name}.npy")
    (tmp / "manifest.json").write_text(json.dumps({"key": key, "files": files, **(extra or {})}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def ensure(folder: Path, key: str, make: Callable[[], dict[str, np.ndarray]], extra: dict | None = None) -> bool:
    """Build the entry unless a valid one exists. Returns True when it (re)built."""
    with file_lock(folder.with_name(folder.name + ".lock")):
        if is_valid(folder, key):
            return False
        build(folder, key, make, extra)
        return True


def load(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    return {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in names}
