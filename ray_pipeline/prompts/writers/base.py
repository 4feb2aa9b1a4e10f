"""The prompt-writer interface and its registry.

A writer answers :class:`~ray_pipeline.prompts.messages.Job` s: per class, an action description,
N environments, N characters, and (for the ``llm`` composer) final prompts. Writers are registered
by name; ``prompts.writer`` in the config picks one.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ray_pipeline.prompts.messages import Job


class WriterError(RuntimeError):
    """A writer that cannot work at all (no key, a failed batch); per-class failures are results."""


@dataclass
class JobResult:
    """A job's answer: ``values`` (exactly ``job.n`` strings) or an ``error`` naming the class."""

    job: Job
    values: list[str] | None
    error: str | None = None


@dataclass
class WriterStats:
    """What a writer cost: requests sent, answers served from the cache, tokens and dollars."""

    requests: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    est_cost_usd: float = 0.0
    failed_requests: int = 0
    batches_submitted: int = 0
    batches_resumed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v)
                for k, v in self.__dict__.items() if not k.startswith("_")}


class PromptWriter(ABC):
    """Answers description and composition jobs; ``identity()`` goes into every prompt id."""

    name: ClassVar[str]
    stats: WriterStats

    @classmethod
    @abstractmethod
    def identity_of(cls, settings: Any) -> dict[str, Any]:
        """Everything that changes the writer's answers (model, temperature, versions), from its
        settings alone: prompt ids are computed without building a writer."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """This writer's :meth:`identity_of`."""

    @abstractmethod
    def answer(self, jobs: list[Job]) -> list[JobResult]:
        """One result per job, in order; a failed job carries an error and never raises."""

    def close(self) -> None:  # noqa: B027  (optional: writers without clients have nothing to release)
        """Release clients and pools."""


_REGISTRY: dict[str, type[PromptWriter]] = {}


def register_writer(name: str) -> Callable[[type[PromptWriter]], type[PromptWriter]]:
    def deco(cls: type[PromptWriter]) -> type[PromptWriter]:
        _REGISTRY[name] = cls
        return cls

    return deco


def get_writer_class(name: str) -> type[PromptWriter]:
    # Importing the package imports every writer module, which registers them.
    import ray_pipeline.prompts.writers  # noqa: F401

    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown prompt writer {name!r}; known: {sorted(_REGISTRY)}") from None
