"""Time-limited jobs: `suite run ... --time-limit 8m` (or `trainer.time_limit`), see docs/reproduction.md.

- `parse_duration` turns `8m`, `1h30m`, `90s`, `2h` or a number of seconds into seconds (a ConfigError otherwise).
- `deadline` places the limit on the monotonic clock, counted from the start of this process: Python's start,
  the imports and the data preparation count against the limit like the training does.
- `stop_now` is the decision `suite.train.guards.ResumePoint` takes at every step boundary: stop here when the time
  left would not cover the way to the next possible stop (the next step, or the epoch's last step with its
  validation and checkpoint) with a safety factor and a reserve for the run's own ending.
- `resume_command` is the complete command that continues a stopped run.
- `add_session_time` keeps the tags `suite.wall_seconds` and `suite.gpu_seconds`: the time the run's processes
  have spent, summed over every session that continued it (what a bundle reports as GPU-hours).

Light on purpose: the CLI imports this module for `--time-limit` without pulling in torch.
"""

from __future__ import annotations

import math
import os
import re
import time

# Exit status of a run stopped at its time limit (sysexits' EX_TEMPFAIL: "try again later"); README, Exit codes.
TIME_LIMIT_EXIT_CODE = 75

SAFETY = 1.5  # measured durations are multiplied by this before they are compared with the time left
MIN_RESERVE_S = 5.0  # time kept for the run's own ending (tags, messages) ...
RESERVE_FRACTION = 0.02  # ... or this fraction of the limit, whichever is larger

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(value: str | int | float, where: str = "trainer.time_limit") -> float:
    """Seconds in `value`: a number of seconds, or a text like `8m`, `1h30m`, `90s`, `1.5h`. ValueError names
    the value (config.check turns it into a ConfigError)."""
    if isinstance(value, bool):
        raise ValueError(f"{where} = {value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        match = _DURATION.fullmatch(text) if text else None
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif match and any(match.groups()):
            seconds = sum(float(n) * _UNITS[u] for n, u in zip(match.groups(), "hms") if n)
        else:
            raise ValueError(f"{where} = {value!r} is not a duration")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{where} = {value!r} must be a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """`1h30m`, `8m`, `90s` -> the shortest text `parse_duration` reads back as the same whole seconds."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (sec, "s")) if n) or "0s"


def process_started() -> float:
    """When this process started (epoch seconds, from /proc on Linux; now elsewhere)."""
    from suite.tracking.liveness import process_started as started_at

    started = started_at(os.getpid())
    return started if started is not None and started > time.time() - 1e8 else time.time()


def deadline(limit_seconds: float) -> float:
    """The moment (on `time.monotonic()`'s clock) at which `limit_seconds` have passed since this process started."""
    elapsed = max(0.0, time.time() - process_started())
    return time.monotonic() + limit_seconds - elapsed


def reserve(limit_seconds: float) -> float:
    """Seconds kept free for the run's ending after its last checkpoint."""
    return max(MIN_RESERVE_S, RESERVE_FRACTION * limit_seconds)


def stop_now(time_left: float, step_s: float, save_s: float, eval_s: float, next_is_last: bool,
             reserve_s: float) -> bool:
    """Whether to stop at this step boundary. Going on means reaching the next place a run can stop: after the
    next step (a step and a checkpoint), or, when the next step is the epoch's last, after that step, the
    epoch's validation and its checkpoint. Stop here when that way, times SAFETY, would eat into the reserve."""
    way = step_s + save_s + (eval_s if next_is_last else 0.0)
    return time_left < SAFETY * way + reserve_s


def resume_command(run_id: str, uri: str, time_limit: str | int | float | None = None) -> str:
    """`suite run --resume RUN_ID` as uris.resume_command writes it (with `--tracking-uri` when the store is
    not this checkout's default one), plus `--time-limit` when the run had one."""
    from suite.tracking import uris

    cmd = uris.resume_command(uris.resolve_uri(uri), run_id)
    if time_limit:
        cmd += f" --time-limit {format_duration(parse_duration(time_limit))}"
    return cmd


def add_session_time(uri: str, run_id: str, gpus: int) -> None:
    """Add this process's wall time (and wall time x `gpus`) to the run's tags `suite.wall_seconds` and
    `suite.gpu_seconds`."""
    from suite.tracking import store

    session = max(0.0, time.time() - process_started())
    tags = store.get_run(uri, run_id).data.tags
    wall = float(tags.get("suite.wall_seconds", 0.0)) + session
    gpu = float(tags.get("suite.gpu_seconds", 0.0)) + session * gpus
    store.set_tags(uri, run_id, {"suite.wall_seconds": f"{wall:.1f}", "suite.gpu_seconds": f"{gpu:.1f}"})
