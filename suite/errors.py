"""Errors a user can act on.

Every failure the suite anticipates is a `SuiteError`: a one-paragraph message that names the
problem, a hint that names the fix, and a distinct exit code. The CLI prints it without a
traceback (unless `--debug`).
"""

from __future__ import annotations

from tasks.errors import DataError, HintedError  # the data code cannot import suite


class SuiteError(HintedError):
    """Base class of the errors raised by the suite itself."""


class ConfigError(SuiteError):
    """A malformed config file, an unknown or mistyped key, a bad --set."""

    exit_code = 2


class UnknownNameError(SuiteError):
    """A task, model or preset name that is not registered."""

    exit_code = 2


class NotImplementedYet(SuiteError):
    """Something the suite does not do: `suite data generate` for a task that has no generator."""

    exit_code = 3


class TrackingError(SuiteError):
    """The MLflow store cannot be reached or created."""

    exit_code = 5


class DivergenceError(SuiteError):
    """Training produced a non-finite loss (NaN or infinity); the run is marked FAILED."""

    exit_code = 6


class ResourceError(SuiteError):
    """The machine ran out of a resource the run needs (GPU or host memory)."""

    exit_code = 7


class ResumeError(SuiteError):
    """`suite run --resume RUN_ID` cannot continue that run (finished, still running, a flag it cannot change); an
    unknown run id is a TrackingError (exit 5), as for every command."""

    exit_code = 8


class BundleError(SuiteError):
    """An export bundle or checkpoint that cannot be used: missing, incomplete, corrupt, needing pickle, or already
    imported (suite/bundle.py, suite/train/evaluate.py)."""

    exit_code = 10


class SweepFailedError(SuiteError):
    """`suite sweep` ran trials and every one of them failed: nothing was learned about the search space."""

    exit_code = 9


class TimeLimitReached(SuiteError):
    """Not a failure: the run stopped at its time limit (`--time-limit`), checkpoint saved, run KILLED and
    resumable; the CLI prints the message without `error:` (suite/train/timelimit.py)."""

    exit_code = 75


# Everything the CLI reports without a traceback.
USER_ERRORS = (HintedError,)

# Exit status of a run stopped with Ctrl-C (SIGINT): checkpoint saved, MLflow run KILLED (shell convention 128 + 2).
INTERRUPTED_EXIT_CODE = 130

# Exit codes in one table, for README and tests.
EXIT_CODES = {
    cls.__name__: cls.exit_code
    for cls in (SuiteError, ConfigError, UnknownNameError, NotImplementedYet, DataError, TrackingError,
                DivergenceError, ResourceError, ResumeError, BundleError, TimeLimitReached, SweepFailedError)
}
