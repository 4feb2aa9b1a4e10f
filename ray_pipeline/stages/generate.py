"""Generate stage: prompt rows -> mp4 clips, on a Ray Data actor pool (one model per actor).

Actors write the videos themselves (atomically, named by clip id) and return only metadata, so
frame tensors never pass through the object store.

Manifest ``generate/manifest`` (id ``clip_id``): every column of the prompt row, plus
``clip_id, backend, generator, video_uri, num_frames, height, width, fps, gen_seconds``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from ray_pipeline.cluster import init_ray, plan_actor_pool
from ray_pipeline.config import ExperimentConfig
from ray_pipeline.generators.base import VideoGenerator, get_generator_class
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.ray_data import run_actor_pool
from ray_pipeline.video_io import write_mp4

VIDEO_DIR = "generate/videos"


def clip_rows(cfg: ExperimentConfig, store: RunStore, prompts: pa.Table) -> pa.Table:
    """The generate stage's rows: each prompt row with its clip id and video location."""
    backend = get_generator_class(cfg.generate.backend)
    identity = json.dumps(backend.identity(cfg.generate.backend_config()), sort_keys=True)
    ids = [
        row_id("clip", prompt_id=p, prompt=t, seed=s, backend=backend.name, generator=identity)
        for p, t, s in zip(prompts.column("prompt_id").to_pylist(), prompts.column("prompt").to_pylist(),
                           prompts.column("seed").to_pylist())
    ]
    n = prompts.num_rows
    return prompts.append_column("clip_id", pa.array(ids)).append_column(
        "backend", pa.array([backend.name] * n)
    ).append_column("generator", pa.array([identity] * n)).append_column(
        "video_uri", pa.array([store.uri(f"{VIDEO_DIR}/{i}.mp4") for i in ids])
    )


def current_clips(cfg: ExperimentConfig, store: RunStore) -> pa.Table:
    """The generated clips of this config (a run directory may hold other configs' clips too),
    sorted by clip id: manifest parts are in the order batches finished, which differs from run
    to run, and training data in that order would make results depend on actor timing."""
    from ray_pipeline.stages.prompts import prompt_rows

    wanted = clip_rows(cfg, store, prompt_rows(cfg, store)).column("clip_id")
    table = store.manifest("generate", "clip_id").require("generated clips (ray-pipeline generate)")
    return table.filter(pc.is_in(table.column("clip_id"), wanted)).sort_by("clip_id")


class GenerateActor:
    """Ray Data actor: loads the backend once, renders batches and writes their mp4 files."""

    def __init__(self, backend: str, config: Any, device: str, torch_threads: int,
                 cache_dir: str | None) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.generator: VideoGenerator = get_generator_class(backend)(config, device, cache_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        prompts = batch.column("prompt").to_pylist()
        seeds = [int(s) for s in batch.column("seed").to_pylist()]
        start = time.perf_counter()
        clips = self.generator.generate(prompts, seeds)
        per_clip = (time.perf_counter() - start) / max(len(clips), 1)
        for clip, uri in zip(clips, batch.column("video_uri").to_pylist()):
            write_mp4(clip, uri, fps=self.generator.fps)
        shapes = [c.shape for c in clips]
        return (batch.append_column("num_frames", pa.array([s[0] for s in shapes], pa.int32()))
                .append_column("height", pa.array([s[1] for s in shapes], pa.int32()))
                .append_column("width", pa.array([s[2] for s in shapes], pa.int32()))
                .append_column("fps", pa.array([self.generator.fps] * len(clips), pa.int32()))
                .append_column("gen_seconds", pa.array([per_clip] * len(clips), pa.float64())))


def run_generate(cfg: ExperimentConfig, store: RunStore, *, log: Callable[[str], None] = print) -> dict:
    """Render every prompt row not yet in the manifest; returns counts and timings."""
    from ray_pipeline.stages.prompts import prompt_rows

    rows = clip_rows(cfg, store, prompt_rows(cfg, store))
    manifest = store.manifest("generate", "clip_id")
    done = manifest.done_ids()
    todo = rows.filter(pc.invert(pc.is_in(rows.column("clip_id"), pa.array(sorted(done), pa.string()))))
    if "clip_index" in todo.column_names:
        # Round-robin over classes: an interrupted run still has balanced classes.
        todo = todo.sort_by([("clip_index", "ascending"), ("class_index", "ascending")])
    stale = store.remove_temporaries(VIDEO_DIR)
    if stale:
        log(f"[generate] removed {stale} half-written videos left by an earlier crash")
    resources = init_ray(cfg.ray)
    plan = plan_actor_pool(cfg.generate.pool, resources, cfg.ray.reserve_cpus, "generate")
    start = time.perf_counter()
    pool = run_actor_pool(
        "generate", todo, GenerateActor,
        dict(backend=cfg.generate.backend, config=cfg.generate.backend_config(), device=plan.device,
             torch_threads=plan.torch_threads, cache_dir=cfg.generate.weights_cache),
        plan, cfg.generate.pool.batch_size, manifest, total=rows.num_rows,
        done=rows.num_rows - todo.num_rows, log=log,
    )
    seconds = time.perf_counter() - start
    written = pool.written
    return {"rows": rows.num_rows, "rows_new": written, "rows_skipped": rows.num_rows - todo.num_rows,
            "seconds": seconds, "clips_per_s": written / seconds if written else 0.0,
            "startup_seconds": pool.first_block_seconds, "steady_clips_per_s": pool.steady_rows_per_s,
            "actors": plan.actors, "cpus_per_actor": plan.num_cpus, "gpus_per_actor": plan.num_gpus}
