"""tasks/progress.py: data jobs show a bar on a terminal and plain lines in a log (issue 15, logs on a cluster)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import termios
import time

from tasks import progress


def test_in_a_log_a_bar_is_a_few_whole_lines_without_carriage_returns(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.05)
    log = io.StringIO()
    with progress.bar(total=1000, desc="generating ListOps", unit="expr", stream=log) as bar:
        for _ in range(10):
            time.sleep(0.02)
            bar.update(100)
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and len(lines) <= 12
    assert lines[-1].startswith("generating ListOps: 1000/1000 (100%), ") and "ETA" in lines[-1]
    assert len({line.split(",")[0] for line in lines}) == len(lines)  # the closing frame is not repeated


def test_in_a_log_an_unknown_total_says_how_much_so_far():
    log = io.StringIO()
    with progress.bar(total=None, desc="f.zip", unit="B", unit_scale=True, unit_divisor=1024, stream=log) as bar:
        bar.update(5_000_000)
    assert log.getvalue().splitlines()[-1].startswith("f.zip: 4.77MB, ")


def test_on_a_terminal_it_is_the_redrawn_bar():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    tty = os.fdopen(follower, "w")
    with progress.bar(total=3, desc="decoding", unit="img", stream=tty) as bar:
        bar.update(3)
    tty.flush()
    out = b""
    while select.select([leader], [], [], 0.5)[0]:
        out += os.read(leader, 4096)
    tty.close()
    os.close(leader)
    out = out.decode()
    assert "\r" in out and "decoding" in out and "3/3" in out


def test_progress_false_shows_nothing():
    log = io.StringIO()
    with progress.bar(total=10, desc="x", stream=log, progress=False) as bar:
        bar.update(10)
    assert log.getvalue() == ""
