"""Generate stage: prompt rows -> mp4 clips, on a Ray Data actor pool (one model per actor).

Actors write the videos themselves (atomically, named by clip id) and return only metadata, so
frame tensors never pass through the object store.

Manifest ``generate/manifest`` (id ``clip_id``): every column of the prompt row, plus
``clip_id, backend, generator, video_uri, num_frames, height, width, fps, gen_seconds, failed,
failure``. ``failed`` (bool) and ``failure`` (the failure mode) come from the backend where it knows
them (the procedural world); both are null where it cannot tell (``failure`` is null for good clips).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ray_pipeline.config import ActorPoolConfig, GenerateConfig
from ray_pipeline.generators.base import VideoGenerator, get_generator_class
from ray_pipeline.ids import row_id
from ray_pipeline.stages.base import Inputs, RowStage, StageContext, StageResult
from ray_pipeline.video_io import write_mp4

VIDEO_DIR = "generate/videos"


@dataclass
class GenerateStage(RowStage):
    """Renders one clip per prompt row with the configured text-to-video backend.

    Attributes:
        settings: the ``generate`` section (backend and its settings, pool, weights cache).
    """

    name = "generate"
    data_stage = True
    id_column = "clip_id"

    settings: GenerateConfig
    generator: VideoGenerator | None = field(default=None, repr=False)

    @property
    def pool(self) -> ActorPoolConfig:
        return self.settings.pool

    def backend_identity(self) -> str:
        backend = get_generator_class(self.settings.backend)
        return json.dumps(backend.identity(self.settings.backend_config()), sort_keys=True)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.settings.backend, "generator": self.backend_identity()}

    def describe(self) -> str:
        return f"backend {self.settings.backend}, {self.settings.pool.actors} actor(s)"

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        return f"{s.get('rows', 0)} clips ({s.get('rows_new', 0)} new, {s.get('rows_skipped', 0)} already there)"

    def plan(self, ctx: StageContext, inputs: Inputs) -> pa.Table:
        """Each prompt row with its clip id and video location, round-robin over classes (an
        interrupted run still has balanced classes)."""
        prompts = self.upstream(inputs, "prompts")
        name, identity = self.settings.backend, self.backend_identity()
        ids = [row_id("clip", prompt_id=p, prompt=t, seed=s, backend=name, generator=identity)
               for p, t, s in zip(prompts.column("prompt_id").to_pylist(), prompts.column("prompt").to_pylist(),
                                  prompts.column("seed").to_pylist())]
        n = prompts.num_rows
        rows = (prompts.append_column("clip_id", pa.array(ids, pa.string()))
                .append_column("backend", pa.array([name] * n, pa.string()))
                .append_column("generator", pa.array([identity] * n, pa.string()))
                .append_column("video_uri", pa.array([ctx.store.uri(f"{VIDEO_DIR}/{i}.mp4") for i in ids],
                                                     pa.string())))
        return rows.sort_by([("clip_index", "ascending"), ("class_index", "ascending")])

    def before_run(self, ctx: StageContext) -> None:
        stale = ctx.store.remove_temporaries(VIDEO_DIR)
        if stale:
            ctx.console.logger(self.name)(f"removed {stale} half-written videos left by an earlier crash")

    def setup(self, device: str = "cpu") -> None:
        s = self.settings
        self.generator = get_generator_class(s.backend)(s.backend_config(), device, s.weights_cache)

    def process(self, batch: pa.Table) -> pa.Table:
        assert self.generator is not None, "setup() was not called"
        prompts = batch.column("prompt").to_pylist()
        seeds = [int(s) for s in batch.column("seed").to_pylist()]
        start = time.perf_counter()
        clips = self.generator.generate(prompts, seeds)
        per_clip = (time.perf_counter() - start) / max(len(clips), 1)
        for clip, uri in zip(clips, batch.column("video_uri").to_pylist()):
            write_mp4(clip, uri, fps=self.generator.fps)
        shapes = [c.shape for c in clips]
        failures = self.generator.failures(prompts, seeds)
        known = failures is not None
        return (batch.append_column("num_frames", pa.array([s[0] for s in shapes], pa.int32()))
                .append_column("height", pa.array([s[1] for s in shapes], pa.int32()))
                .append_column("width", pa.array([s[2] for s in shapes], pa.int32()))
                .append_column("fps", pa.array([self.generator.fps] * len(clips), pa.int32()))
                .append_column("gen_seconds", pa.array([per_clip] * len(clips), pa.float64()))
                .append_column("failed", pa.array([f is not None for f in failures] if known else [None] * len(clips),
                                                  pa.bool_()))
                .append_column("failure", pa.array(failures if known else [None] * len(clips), pa.string())))

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to actors before setup(): the loaded model never travels.
        return {**self.__dict__, "generator": None}
