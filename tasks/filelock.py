"""The project's one file lock: an exclusive `flock` on a file, across processes.

`with file_lock(path):` holds it for a block (one builder per cache entry, one creator of a tracking store).
A `FileLock` can also be taken and let go by hand, for a holder that releases it partway: a sweep worker
counts the study's trials under the lock and releases it from inside the trial, once the trial exists.
"""

from __future__ import annotations

import fcntl
from pathlib import Path


class FileLock:
    """An exclusive lock on the file `path` (created with its folder); `release` without `acquire` does nothing."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def file_lock(path: Path) -> FileLock:
    """The lock on `path`, to hold with `with`."""
    return FileLock(path)
