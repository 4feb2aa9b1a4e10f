"""Content-derived row ids.

An id is a hash of the upstream row id and every parameter of a stage that changes its output,
so the same inputs give the same id on any machine. Reruns skip ids already done, crashes redo only
what is missing, and sweeps share work whose ids match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def row_id(kind: str, **fields: Any) -> str:
    """16 hex digits of BLAKE2b over a canonical JSON of ``kind`` and ``fields``."""
    payload = json.dumps({"kind": kind, **fields}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=8).hexdigest()
