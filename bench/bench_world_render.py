"""Throughput of the procedural world's renderer: clips per second on one core.

Run: ``python bench/bench_world_render.py [--clips 60] [--size 64] [--frames 16]``. The renderer is
numpy, single-threaded; one process is one core (BLAS threads are pinned to 1 here so the figure
is per core). Prints one row per configuration.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from ray_pipeline.world.render import RealStyle, real_scene, render_clip, stereotype_scene  # noqa: E402
from ray_pipeline.world.vocabulary import ACTIONS  # noqa: E402


def bench(kind: str, clips: int, frames: int, size: int, sub: int | None) -> tuple[float, float]:
    """Render ``clips`` clips (cycling through the actions); returns (clips/s, ms/clip)."""
    rng = np.random.default_rng(0)
    scenes = []
    for i in range(clips):
        action = ACTIONS[i % len(ACTIONS)].name
        if kind == "generated":
            scenes.append(stereotype_scene(action))
        elif kind == "failed":
            s = stereotype_scene(action)
            scenes.append(type(s)(**{**s.__dict__, "failure": ("frozen", "wrong", "garbled")[i % 3]}))
        else:
            scenes.append(real_scene(action, rng, RealStyle()))
    pick = None if sub is None else np.linspace(0, frames - 1, sub).round().astype(int).tolist()
    render_clip(scenes[0], 0, frames, size, pick)  # warm-up
    t0 = time.perf_counter()
    for i, scene in enumerate(scenes):
        render_clip(scene, i, frames, size, pick)
    dt = time.perf_counter() - t0
    return clips / dt, 1000 * dt / clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=82)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=16)
    args = ap.parse_args()
    rows = []
    for kind in ("generated", "real", "failed"):
        rows.append((kind, args.frames, args.size, *bench(kind, args.clips, args.frames, args.size, None)))
    rows.append(("real, 2 of the frames", 2, args.size, *bench("real", args.clips, args.frames, args.size, 2)))
    rows.append(("real", args.frames, 128, *bench("real", max(8, args.clips // 4), args.frames, 128, None)))
    print(f"{'scenes':<24}{'frames':>7}{'size':>6}{'clips/s/core':>14}{'ms/clip':>9}")
    for kind, frames, size, rate, ms in rows:
        print(f"{kind:<24}{frames:>7}{size:>6}{rate:>14.1f}{ms:>9.1f}")


if __name__ == "__main__":
    main()
