"""Generation and CLIP scoring through Ray Data actor pools vs a plain Python loop.

Same tiny models (built offline), same rows, one torch thread per worker. Reports wall time and
steady-state time per clip: Ray Data with one actor against the loop (goal <= 1.15x), and two
actors against one on two cores (goal >= 1.6x faster). Steady state excludes what happens before
the first block returns (Ray Data start-up, actor processes importing torch and loading the
model: seconds that a real CogVideoX clip, ~45-90 s each, makes negligible); the loop's time
likewise excludes its one model load.

    .venv/bin/python bench/bench_stages.py [--clips 48] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402

from ray_pipeline.cluster import Cluster, PoolPlan  # noqa: E402
from ray_pipeline.config import ActorPoolConfig, CogVideoXConfig, GenerateConfig, RayConfig, ScoreConfig  # noqa: E402
from ray_pipeline.console import Console  # noqa: E402
from ray_pipeline.runstore import RunStore  # noqa: E402
from ray_pipeline.stages.base import StageContext  # noqa: E402
from ray_pipeline.stages.generate import GenerateStage  # noqa: E402
from ray_pipeline.stages.runner import map_rows  # noqa: E402
from ray_pipeline.stages.score import ScoreStage  # noqa: E402
from ray_pipeline.tiny import build_tiny_clip, build_tiny_cogvideox  # noqa: E402

CLASSES = ["brush hair", "wave", "run", "jump"]


def rows(n: int, store: RunStore, tag: str) -> pa.Table:
    return pa.table({
        "clip_id": [f"{tag}{i}" for i in range(n)],
        "prompt": [f"a person {CLASSES[i % 4]} in a park" for i in range(n)],
        "seed": list(range(n)), "class_index": [i % 4 for i in range(n)],
        "class_name": [CLASSES[i % 4] for i in range(n)],
        "video_uri": [store.uri(f"{tag}/{i}.mp4") for i in range(n)],
    })


def plain_loop(stage, table: pa.Table) -> tuple[float, float]:
    """The stage's own setup/process in this process: (total seconds, seconds per row after the
    first batch)."""
    batch = stage.pool.batch_size
    start = time.perf_counter()
    stage.setup("cpu")
    first = 0.0
    for i in range(0, table.num_rows, batch):
        stage.process(table.slice(i, batch))
        first = first or time.perf_counter() - start
    total = time.perf_counter() - start
    return total, (total - first) / max(1, table.num_rows - batch)


def ray_pool(stage, table: pa.Table, actors: int, store: RunStore, name: str) -> tuple[float, float]:
    """The same stage through the pipeline's Ray Data runner, its manifest in its own folder."""
    plan = PoolPlan(actors=actors, num_cpus=0.75, num_gpus=0.0, torch_threads=1)
    stage.name = name  # one manifest per run (an instance attribute; the class keeps its name)
    ctx = StageContext(store, store, Cluster(RayConfig(num_cpus=2)), Console(open(os.devnull, "w")), "")
    run = map_rows(stage, table, plan, ctx, total=table.num_rows, done=0)
    return run.seconds, 1.0 / run.steady_rows_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--steps", type=int, default=30, help="denoising steps (work per clip)")
    ap.add_argument("--layers", type=int, default=4, help="transformer layers of the tiny CogVideoX")
    ap.add_argument("--latent", type=int, default=4, help="latent size (x8 pixels) of the tiny CogVideoX")
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_stages_"))
    cog = build_tiny_cogvideox(tmp / "cog", num_layers=args.layers, latent_size=args.latent)
    clip = build_tiny_clip(tmp / "clip")
    size = 8 * args.latent
    store = RunStore(tmp / "out")
    config = CogVideoXConfig(model=str(cog), dtype="float32", num_inference_steps=args.steps, num_frames=9,
                             height=size, width=size, max_sequence_length=16)
    generate = GenerateConfig(backend="cogvideox", cogvideox=config, pool=ActorPoolConfig(batch_size=args.batch))
    Cluster(RayConfig(num_cpus=2)).resources()

    results = []
    # Generation: each run writes its own clips (the scorer below reads the loop's).
    loop_rows = rows(args.clips, store, "loop")
    t_loop = plain_loop(GenerateStage(generate), loop_rows)
    t_one = ray_pool(GenerateStage(generate), rows(args.clips, store, "one"), 1, store, "gen1")
    t_two = ray_pool(GenerateStage(generate), rows(args.clips, store, "two"), 2, store, "gen2")
    results.append(("generate", t_loop, t_one, t_two))

    score_rows = loop_rows.append_column("score_id", loop_rows.column("clip_id")).append_column(
        "scorer", pa.array(["bench"] * args.clips))
    score_rows = score_rows.select(["score_id", "clip_id", "class_index", "class_name", "video_uri", "scorer"])
    score = ScoreConfig(model=str(clip), num_frames=8, pool=ActorPoolConfig(batch_size=8))

    def scorer() -> ScoreStage:
        return ScoreStage(score, CLASSES, str(clip))

    s_loop = plain_loop(scorer(), score_rows)
    s_one = ray_pool(scorer(), score_rows, 1, store, "score1")
    s_two = ray_pool(scorer(), score_rows, 2, store, "score2")
    results.append(("score", s_loop, s_one, s_two))

    print(f"\n{args.clips} clips of {size}x{size}, {args.layers}-layer CogVideoX, {args.steps} steps, "
          f"{os.cpu_count()} cores, 1 torch thread per worker")
    print("total wall seconds (start-up included), then steady-state ms per clip")
    print(f"{'stage':<10}{'loop':>8}{'1 actor':>9}{'2 actors':>10}  |{'loop':>8}{'1 actor':>9}{'2 actors':>10}"
          f"{'1 actor/loop':>14}{'2 vs 1 speed-up':>17}")
    for name, loop, one, two in results:
        print(f"{name:<10}{loop[0]:>8.2f}{one[0]:>9.2f}{two[0]:>10.2f}  |{1e3 * loop[1]:>8.1f}{1e3 * one[1]:>9.1f}"
              f"{1e3 * two[1]:>10.1f}{one[1] / loop[1]:>13.2f}x{one[1] / two[1]:>16.2f}x")


if __name__ == "__main__":
    main()
