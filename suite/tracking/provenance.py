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


def run_commits(tags: dict[str, str]) -> list[str]:
    """The commits a run's commands ran, in order, from its tags: `suite.git_commits`, or for a run never
    resumed (or resumed before that tag existed) its one `suite.git_commit`."""
    return (tags.get("suite.git_commits") or tags.get("suite.git_commit") or "").split()


def commit_history(tags: dict[str, str], current: str | None = None) -> str:
    """The `suite.git_commits` tag of a run about to be resumed: `run_commits`, with this checkout's commit
    appended when it differs from the last. A run trained in several commands may span several versions of the
    code."""
    commits = run_commits(tags)
    current = current or git_commit()
    if not commits or commits[-1] != current:
        commits.append(current)
    return " ".join(commits)


def device_name(accelerator: str) -> str:
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{socket.gethostname()}"
