"""The LLM response cache: one JSON file per validated answer, keyed by the request itself.

The key is a hash of the model name, the messages and every request parameter that can change the
answer (temperature, response format, token limit), so a rerun, a sweep over strategies or a
second run directory asks nothing twice. The server's address and the API key are not part of the
key (the same model behind another proxy gives the same kind of answer), and the key is never
written. Entries are written atomically through :class:`RunStore`, so the cache may live on any
filesystem pyarrow reaches.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from ray_pipeline.runstore import RunStore


def request_key(body: dict[str, Any]) -> str:
    """32 hex digits of BLAKE2b over the canonical JSON of a request body."""
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


class ResponseCache:
    """Validated answers under ``folder`` of ``store``: ``<key[:2]>/<key>.json``."""

    def __init__(self, store: RunStore, folder: str) -> None:
        self.store, self.folder = store, folder.strip("/")

    def _path(self, key: str) -> str:
        return f"{self.folder}/{key[:2]}/{key}.json"

    def location(self) -> str:
        return self.store.uri(self.folder)

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry (``content``, ``usage``, ``request``...) or None."""
        path = self._path(key)
        try:
            return json.loads(self.store.read_text(path))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            # A damaged entry is a miss, not a crash: the answer is asked for again and rewritten.
            return None

    def put(self, key: str, body: dict[str, Any], content: str, usage: dict[str, int] | None,
            source: str) -> None:
        entry = {"key": key, "request": body, "content": content, "usage": usage or {},
                 "source": source, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.store.write_text(self._path(key), json.dumps(entry, ensure_ascii=False, indent=1))
