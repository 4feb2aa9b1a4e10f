"""Progress of a long stage: rows done / total, rate and ETA, as plain log lines.

Plain lines (not a redrawn bar) read well both in a terminal and in ``ray job logs``.
"""

from __future__ import annotations

import sys
import time
from typing import Callable


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """Call ``update(n)`` as rows finish; a line is printed at most every ``every_s`` seconds."""

    def __init__(self, stage: str, total: int, *, done: int = 0, every_s: float = 5.0,
                 log: Callable[[str], None] = _stderr) -> None:
        self.stage, self.total, self.already = stage, total, done
        self.done, self.every_s, self.log = done, every_s, log
        self.start = self.last = time.monotonic()
        self.log(f"[{stage}] {done}/{total} rows already done, {total - done} to go")

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self.log(self.line(now))

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.monotonic()) - self.start
        return (self.done - self.already) / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        rate = self.rate(now)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _fmt_duration((self.total - self.done) / rate) if rate > 0 else "?"
        return f"[{self.stage}] {self.done}/{self.total} rows ({pct:.0f}%), {rate:.2f} rows/s, ETA {eta}"

    def close(self) -> float:
        elapsed = time.monotonic() - self.start
        self.log(f"[{self.stage}] finished {self.done - self.already} rows in {_fmt_duration(elapsed)}")
        return elapsed
