"""What a person running the pipeline sees: one line per stage start and end, progress with rate and
ETA while a stage works, and the summary. Nothing else.

Frameworks write to the process's stdout/stderr (Ray's worker logs forwarded to the driver, its
placement-group warnings, transformers' weight-loading bars, MLflow's database set-up).
:func:`framework_output_to` points file descriptors 1 and 2 at a log file for the length of a
run, so all of that lands in ``RUN_DIR/logs/`` instead of the terminal; the console keeps a
duplicate of the original stderr and writes there. ``--verbose`` skips the redirection.

Lines are plain (not a redrawn bar) so they read the same in a terminal and in ``ray job logs``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO

from ray_pipeline.runstore import RunStore


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m``; ``9`` -> ``9s``."""
    seconds = int(round(max(0.0, seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Console:
    """Writes the run's own lines to ``stream`` (default: stderr as it was when created)."""

    def __init__(self, stream: IO[str] | None = None, *, progress_every_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.progress_every_s = progress_every_s

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def logger(self, stage: str) -> Callable[[str], None]:
        """A ``log(text)`` that prefixes ``[stage]`` (for code that takes a log callable)."""
        return lambda text: self.line(f"[{stage}] {text}")

    def stage_start(self, stage: str, detail: str = "") -> float:
        self.line(f"[{stage}] start" + (f": {detail}" if detail else ""))
        return time.monotonic()

    def stage_end(self, stage: str, started: float, detail: str = "") -> None:
        took = format_duration(time.monotonic() - started)
        self.line(f"[{stage}] done in {took}" + (f": {detail}" if detail else ""))

    def progress(self, stage: str, total: int, *, done: int = 0, unit: str = "rows") -> Progress:
        return Progress(self.logger(stage), total, done=done, every_s=self.progress_every_s, unit=unit)


class Progress:
    """Call ``update(n)`` as work finishes; a line is printed at most every ``every_s`` seconds
    and when the last item is done: ``120/464 rows (26%), 8.1 rows/s, ETA 42s``."""

    def __init__(self, log: Callable[[str], None], total: int, *, done: int = 0, every_s: float = 10.0,
                 unit: str = "rows") -> None:
        self.log, self.total, self.already, self.done = log, total, done, done
        self.every_s, self.unit = every_s, unit
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self.log(self.text(now))

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.monotonic()) - self.start
        return (self.done - self.already) / elapsed if elapsed > 0 else 0.0

    def text(self, now: float | None = None) -> str:
        rate = self.rate(now)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        return f"{self.done}/{self.total} {self.unit} ({pct:.0f}%), {rate:.2f} {self.unit}/s, ETA {eta}"


_current: Console | None = None


def current_console() -> Console:
    """The console of the run in progress in this process (a default one on stderr otherwise): for
    callbacks that frameworks construct themselves, such as Tune's."""
    return _current or Console()


@contextlib.contextmanager
def framework_output_to(log_path: str | os.PathLike | None) -> Iterator[Console]:
    """Send fds 1 and 2 (and therefore every framework's output, including Ray's forwarded worker
    logs) to ``log_path`` while the block runs; yields a console on the original stderr.

    ``None``: no redirection (``--verbose``), the console writes to stderr as usual.
    """
    global _current
    if log_path is None:
        _current = Console()
        try:
            yield _current
        finally:
            _current = None
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8", errors="replace")
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        _current = Console(terminal)
        yield _current
    finally:
        _current = None
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        log.close()
        terminal.close()


@contextlib.contextmanager
def run_console(store: RunStore, command: str, verbose: bool) -> Iterator[Console]:
    """The console of a command on ``store``, with the frameworks' output in
    ``RUN_DIR/logs/<command>-<time>.log`` (a remote run directory gets the file copied in at the
    end); ``verbose`` shows that output instead."""
    if verbose:
        with framework_output_to(None) as console:
            yield console
        return
    name = f"logs/{command}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    local = store.local_path(name)
    tmp = None
    if local is None:
        fd, tmp = tempfile.mkstemp(prefix="ray_pipeline_log_", suffix=".log")
        os.close(fd)
    else:
        local.parent.mkdir(parents=True, exist_ok=True)
    try:
        with framework_output_to(str(local) if local is not None else tmp) as console:
            console.line(f"[{command}] framework output: {store.uri(name)}")
            yield console
    finally:
        if tmp is not None:
            with open(tmp, "rb") as f:
                store.write_bytes(name, f.read())
            os.unlink(tmp)
