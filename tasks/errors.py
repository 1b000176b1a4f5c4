"""The one error the data code raises for a user to act on."""

from __future__ import annotations


class DataError(Exception):
    """Missing, corrupt or unreadable data. `hint` says how to fix it."""

    exit_code = 4

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"
