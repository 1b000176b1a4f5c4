"""Where a run comes from, for its tags: the commit of the code that ran it and the device it ran on."""

from __future__ import annotations

import socket
import subprocess

from suite.paths import PROJECT_ROOT


def git_commit() -> str:
    """HEAD of this checkout, with `-dirty` when tracked files changed; `unknown` outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def commit_history(tags: dict[str, str], current: str | None = None) -> str:
    """The `suite.git_commits` tag of a run about to be resumed: the commits its earlier commands ran, in order
    (`suite.git_commit`, the first one, for a run that has no history yet), with this checkout's appended
    when it differs from the last. A run trained in several commands may span several versions of the code."""
    commits = (tags.get("suite.git_commits") or tags.get("suite.git_commit") or "").split()
    current = current or git_commit()
    if not commits or commits[-1] != current:
        commits.append(current)
    return " ".join(commits)


def device_name(accelerator: str) -> str:
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{socket.gethostname()}"
