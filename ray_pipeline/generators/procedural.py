"""The ``procedural`` text-to-video backend: the procedural action world behind the generator API.

It reads a prompt the way the world's parser does (``ray_pipeline.world.parse``), renders the
action with the named environment and character, and otherwise behaves like the paper's generator
(see docs/world.md):

- what the prompt leaves open falls back to the class stereotype (Basic prompts: low diversity);
- clips look synthetic: clean, centred, static camera, no sensor noise;
- a ``failure_rate`` fraction of seeds fail (held pose, incoherent motion or garbled frames),
  decided by the seed alone, so the same seed fails the same way for every prompt.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ray_pipeline.config import ProceduralConfig
from ray_pipeline.generators.base import VideoGenerator, register_generator
from ray_pipeline.world import WORLD_VERSION
from ray_pipeline.world.parse import parse_prompt, resolve_character
from ray_pipeline.world.render import FAILURE_MODES, Scene, render_clip, stereotype_scene
from ray_pipeline.world.vocabulary import CHARACTER_BY_NAME, CHARACTERS, ENVIRONMENTS

# What a prompt without any action still gets: someone standing around in a park.
_IDLE_ENV = "park"
_IDLE_CHARACTER = "tall man in a red shirt"


@register_generator
class ProceduralGenerator(VideoGenerator):
    """Renders prompts in the procedural world; CPU only and deterministic per (prompt, seed)."""

    name: ClassVar[str] = "procedural"

    def __init__(self, config: ProceduralConfig | None = None, device: str = "cpu",
                 cache_dir: str | None = None) -> None:
        self.config = config or ProceduralConfig()
        self.device = device  # unused: numpy rendering; no weights, so no cache_dir either

    @property
    def fps(self) -> int:
        return self.config.fps

    @classmethod
    def identity(cls, config: ProceduralConfig) -> dict[str, Any]:
        c = config
        return {"backend": cls.name, "world_version": WORLD_VERSION, "num_frames": c.num_frames,
                "size": c.size, "fps": c.fps, "failure_rate": c.failure_rate,
                "failure_modes": list(c.failure_modes), "stereotype_p": c.stereotype_p}

    def failure_of(self, seed: int) -> str | None:
        """The failure mode of a seed's clip (None: a good clip). Depends on the seed only, and a
        seed that fails at some rate also fails at every higher rate."""
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF, 0xFA11])
        u, pick = rng.random(), int(rng.integers(len(FAILURE_MODES)))
        if u >= self.config.failure_rate:
            return None
        modes = list(self.config.failure_modes)
        return modes[pick % len(modes)]

    def failures(self, prompts: list[str], seeds: list[int]) -> list[str | None]:
        """Every clip's failure mode (None: good); the world knows them, since it decides them."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        return [self.failure_of(s) for s in seeds]

    def scene(self, prompt: str, seed: int) -> Scene:
        """What a prompt renders as with this seed (before the seed's motion and camera details)."""
        parsed = parse_prompt(prompt)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF, 0xB1A5])
        if parsed.action is None:
            env, look = _IDLE_ENV, CHARACTER_BY_NAME[_IDLE_CHARACTER].look
        else:
            stereo = stereotype_scene(parsed.action)
            env, look = stereo.environment, stereo.character
        # A generator's bias: unspecified context is the stereotype, unless stereotype_p < 1.
        if rng.random() >= self.config.stereotype_p:
            env = ENVIRONMENTS[int(rng.integers(len(ENVIRONMENTS)))].name
        if rng.random() >= self.config.stereotype_p:
            look = CHARACTERS[int(rng.integers(len(CHARACTERS)))].look
        return Scene(
            action=parsed.action,
            environment=parsed.environment or env,
            character=resolve_character(parsed, look),
            lighting=parsed.lighting,
            failure=self.failure_of(seed),
        )

    def generate(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        c = self.config
        return [render_clip(self.scene(p, s), s, c.num_frames, c.size) for p, s in zip(prompts, seeds)]
