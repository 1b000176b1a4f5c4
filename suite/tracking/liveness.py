"""Is a RUNNING run still running: the owner tags a run carries (host, pid, since when), the owner process looked
up in /proc, and the stale runs (RUNNING, their owner gone) marked KILLED so that they can be resumed. Also the
tag that says why a run failed."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from suite.tracking import store
from suite.tracking.probe import check_reachable
from suite.tracking.uris import mask, mask_text, resume_command, sqlite_path


def owner_tags() -> dict[str, str]:
    """Which process on which host writes the run: lets a later command detect a run left RUNNING by a kill."""
    return {"suite.host": socket.gethostname(), "suite.pid": str(os.getpid()), "suite.pid_since": f"{time.time():.3f}"}


def failure_tags(exc: BaseException) -> dict[str, str]:
    """`suite.failure`: one line saying why a run failed (the error's message, credentials masked)."""
    text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    line = mask_text(str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__)
    return {"suite.failure": line[:500]}


def process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of a live process, None if there is none (Linux /proc; elsewhere: alive = now)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time() - 1e9  # exists, start unknown: assume it is the owner


def owner_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process named in a run's owner tags still runs; None when it cannot be told from here
    (no owner tags, or another host)."""
    if tags.get("suite.host") != socket.gethostname() or not tags.get("suite.pid", "").isdigit():
        return None
    started = process_started(int(tags["suite.pid"]))
    if started is None:
        return False
    since = float(tags.get("suite.pid_since") or "inf")
    return started <= since + 1.0  # a process started after the tag was written reuses a dead owner's pid


def mark_stale_runs(uri: str) -> list[str]:
    """Mark RUNNING runs whose owner process on this host is gone as KILLED (tag suite.stale=true); say so on
    stderr with the resume command. Cheap: one search per experiment; a store that does not exist yet is skipped.
    Returns the run ids marked."""
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return []
    check_reachable(uri)
    marked = []
    try:
        ids = store.experiment_ids(uri)
        runs = store.search_runs(uri, ids, "attributes.status = 'RUNNING'") if ids else []
    except Exception as exc:  # a store MLflow cannot read: the command itself will report it
        print(f"note: could not check {mask(uri)} for stale runs ({type(exc).__name__})", file=sys.stderr)
        return []
    for run in runs:
        tags = run.data.tags
        if owner_alive(tags) is not False:
            continue
        store.set_tags(uri, run.info.run_id, {"suite.stale": "true"})
        store.set_terminated(uri, run.info.run_id, "KILLED")
        marked.append(run.info.run_id)
        name = run.info.run_name or ""
        print(f"note: run {run.info.run_id} ({name}) was left RUNNING by process {tags['suite.pid']}, which is gone; "
              f"marked KILLED. Continue it with: {resume_command(uri, run.info.run_id)}", file=sys.stderr)
    return marked
