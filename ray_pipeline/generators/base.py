"""The text-to-video backend interface.

A backend is built once per Ray actor (model loading is expensive) and then called on batches:
one prompt and one seed per clip in, one uint8 clip (T, H, W, 3) per prompt out. Backends register
themselves by name; the generate stage looks them up from ``generate.backend``. A backend that knows
which of its clips failed (the procedural world does) says so through :meth:`VideoGenerator.failures`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

_REGISTRY: dict[str, type[VideoGenerator]] = {}


class VideoGenerator(ABC):
    """A text-to-video model behind a batch-of-prompts interface."""

    name: ClassVar[str]

    @abstractmethod
    def __init__(self, config: Any, device: str = "cpu", cache_dir: str | None = None) -> None:
        """Load the model once; ``cache_dir`` is a weights cache shared by all actors of a node."""

    @property
    @abstractmethod
    def fps(self) -> int:
        """Frames per second of the encoded clips."""

    @classmethod
    @abstractmethod
    def identity(cls, config: Any) -> dict[str, Any]:
        """Everything in ``config`` that changes this backend's output for a (prompt, seed): model
        id, steps, resolution... It goes into the clip ids, so a changed setting never reuses old
        clips. A classmethod: the driver computes ids without loading the model."""

    @abstractmethod
    def generate(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        """Render one clip per prompt, each seeded by its own seed; uint8 arrays (T, H, W, 3)."""

    def failures(self, prompts: list[str], seeds: list[int]) -> list[str | None] | None:
        """How each of these clips failed (a failure mode's name; None: a good clip), or None when
        the backend cannot tell, as for a real text-to-video model (the default).

        Args:
            prompts: the clips' prompts, as given to :meth:`generate`.
            seeds: their seeds.
        """
        return None


def register_generator(cls: type[VideoGenerator]) -> type[VideoGenerator]:
    _REGISTRY[cls.name] = cls
    return cls


def get_generator_class(name: str) -> type[VideoGenerator]:
    # Importing the package registers the built-in backends.
    import ray_pipeline.generators  # noqa: F401

    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown generator backend {name!r}; known: {sorted(_REGISTRY)}") from None
