"""Prepared arrays on disk: written once atomically, verified on every load.

A cache entry is a folder holding .npy arrays and a manifest.json with each array's SHA-256 and
the fingerprint of the source files it was built from. A missing manifest (interrupted build),
a changed source or a checksum mismatch makes the entry stale: it is rebuilt, never used, and the
rebuild says on stderr what was wrong with the old entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from tasks.filelock import file_lock


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


def problem(folder: Path, key: str) -> str | None:
    """What is wrong with the entry in `folder` (None: nothing, it can be used)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return "it has no manifest.json (its build was interrupted)"
    try:
        meta = json.loads(manifest.read_text())
        files = dict(meta["files"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return "its manifest.json is not a valid manifest"
    if meta.get("key") != key:
        return f"it was built from other source files or parameters (key {meta.get('key')!r}, expected {key!r})"
    for name, digest in files.items():
        if not (folder / name).is_file():
            return f"{name} is missing"
        actual = _sha256(folder / name)
        if actual != digest:
            return f"{name} does not match its checksum (SHA-256 {actual[:12]}..., manifest {str(digest)[:12]}...)"
    return None


def is_valid(folder: Path, key: str) -> bool:
    return problem(folder, key) is None


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
    """Build the entry unless a valid one exists. Returns True when it (re)built. Rebuilding an entry
    that was there says on stderr what was wrong with it."""
    with file_lock(folder.with_name(folder.name + ".lock")):
        if not folder.exists():
            build(folder, key, make, extra)
            return True
        wrong = problem(folder, key)
        if wrong is None:
            return False
        print(f"warning: the cache {folder} is corrupt: {wrong}; rebuilding it from the source files",
              file=sys.stderr)
        build(folder, key, make, extra)
        print(f"rebuilt the corrupt cache {folder}", file=sys.stderr)
        return True


def load(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    return {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in names}
