"""Errors a user can act on: a message that names the problem, a hint that names the fix.

`HintedError` is the base the CLI prints without a traceback; `suite.errors` builds on it too (the
data code cannot import `suite`, so the base lives here).
"""

from __future__ import annotations


class HintedError(Exception):
    """`message` says what is wrong, `hint` says how to fix it; `exit_code` is the CLI's exit status."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class DataError(HintedError):
    """Missing, corrupt or unreadable data."""

    exit_code = 4
