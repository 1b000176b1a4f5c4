"""Progress of the long data jobs (generating, decoding, downloading, unpacking), readable in a terminal and in a log.

On a terminal it is tqdm's bar, redrawn in place. When standard error is not a terminal (SLURM, nohup, CI, a
redirected log) a redrawn bar becomes thousands of carriage-return frames in the file, so there it is one
plain line every `LOG_INTERVAL_S` seconds (and one at the end): `generating ListOps: 48000/100000 (48%),
2100 expr/s, ETA 0:25`.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

LOG_INTERVAL_S = 30.0


class _Lines:
    """A file for tqdm that keeps only whole frames, each on its own line (no carriage returns)."""

    def __init__(self, stream):
        self.stream = stream
        self.last = ""  # the count part of the last frame written: the closing frame repeats it

    def write(self, text: str) -> None:
        frame = text.replace("\r", "").strip()
        count = frame.split(",")[0]
        if frame and count != self.last:
            self.stream.write(frame + "\n")
            self.stream.flush()
            self.last = count

    def flush(self) -> None:
        self.stream.flush()


def bar(iterable: Iterable | None = None, *, desc: str, unit: str = "it", total: int | float | None = None,
        progress: bool = True, stream=None, **kwargs: Any):
    """tqdm over `iterable` (or a manual bar with `total`), on standard error; `progress=False` shows nothing."""
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return tqdm(iterable, desc=desc, unit=unit, total=total, file=stream, dynamic_ncols=True,
                    disable=not progress, **kwargs)
    return tqdm(iterable, desc=desc, unit=unit, total=total, file=_Lines(stream), ncols=100,
                mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, miniters=1, ascii=True,
                bar_format=("{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {rate_fmt}, ETA {remaining}" if total
                            else "{desc}: {n_fmt}{unit}, {rate_fmt}, {elapsed} so far"),
                disable=not progress, **kwargs)
