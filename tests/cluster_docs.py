"""The shell commands docs/cluster.md tells users to run, parsed so that tests run those commands.

docs/cluster.md marks the local-head walkthrough with ``<!-- tested-by: tests/test_job_submit.py -->``
right above its fenced block; ``walkthrough_commands()`` returns that block's commands as argv lists.
``submit_commands()`` returns every ``cluster/submit.sh`` invocation anywhere in the document, so
a test can check each of them against the script's own ``--dry-run`` output.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "cluster.md"
TESTED_MARK = "<!-- tested-by: tests/test_job_submit.py -->"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(offset, language, body) of every fenced code block."""
    return [(m.start(), m.group(1), m.group(2)) for m in _FENCE.finditer(text)]


def shell_commands(body: str) -> list[list[str]]:
    """A shell block's commands as argv lists: continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n", " ", body)
    commands = []
    for line in joined.splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            commands.append(argv)
    return commands


def walkthrough_commands(text: str | None = None) -> list[list[str]]:
    """The commands of the block right after the tested-by marker (exactly one must exist)."""
    text = DOC.read_text() if text is None else text
    marks = [m.end() for m in re.finditer(re.escape(TESTED_MARK), text)]
    if len(marks) != 1:
        raise AssertionError(f"{DOC}: expected exactly one {TESTED_MARK!r}, found {len(marks)}")
    following = [b for b in fenced_blocks(text) if b[0] >= marks[0]]
    if not following or text[marks[0]:following[0][0]].strip():
        raise AssertionError(f"{DOC}: {TESTED_MARK!r} must sit directly above a fenced block")
    _, lang, body = following[0]
    if lang not in ("bash", "sh", "shell"):
        raise AssertionError(f"{DOC}: the tested block is {lang!r}, not a shell block")
    return shell_commands(body)


def shell_blocks(text: str | None = None) -> list[list[list[str]]]:
    text = DOC.read_text() if text is None else text
    return [shell_commands(body) for _, lang, body in fenced_blocks(text) if lang in ("bash", "sh", "shell")]


def submit_commands(text: str | None = None) -> list[list[str]]:
    """Every ``cluster/submit.sh ...`` command in the document's shell blocks."""
    return [argv for block in shell_blocks(text) for argv in block if argv[0] == "cluster/submit.sh"]


def entrypoint(submit_argv: list[str]) -> list[str]:
    """What follows ``--`` in a submit.sh (or ``ray job submit``) command."""
    if "--" not in submit_argv:
        raise AssertionError(f"no '--' before the entrypoint in {shlex.join(submit_argv)}")
    return submit_argv[submit_argv.index("--") + 1:]


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` (last one wins), else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value
