"""Running a batch of pending rows through a Ray Data actor pool, streaming results to a manifest.

Shared by the generate and score stages. The actors (one model copy each) do the work and write
any large outputs themselves; only small metadata rows flow back to the driver, which writes one
manifest part per finished block. Killing the driver therefore loses only the blocks in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa

from ray_pipeline.cluster import PoolPlan
from ray_pipeline.progress import Progress
from ray_pipeline.runstore import Manifest


@dataclass(frozen=True)
class PoolRun:
    """What a pool run did: rows written, wall time, and when the first block came back (actor
    start-up and model loading; what is left is steady-state throughput)."""

    written: int = 0
    seconds: float = 0.0
    first_block_seconds: float = 0.0

    @property
    def steady_rows_per_s(self) -> float:
        steady = self.seconds - self.first_block_seconds
        return 0.0 if steady <= 0 else self.written / steady


def run_actor_pool(
    stage: str,
    pending: pa.Table,
    actor_cls: type,
    actor_kwargs: dict[str, Any],
    plan: PoolPlan,
    batch_size: int,
    manifest: Manifest,
    *,
    total: int,
    done: int,
    log: Callable[[str], None],
) -> PoolRun:
    """Process ``pending`` rows, writing one manifest part per block as it finishes."""
    import ray.data

    if pending.num_rows == 0:
        log(f"[{stage}] nothing to do: all {total} rows already in {manifest.store.uri(manifest.folder)}")
        return PoolRun()
    start = time.perf_counter()
    progress = Progress(stage, total, done=done, log=log)
    # One block per batch, so the pool sees work at once and manifest parts stay small. (Not
    # .repartition(): that is a 1-CPU task which starves behind actors holding the CPUs.)
    blocks = [pending.slice(i, batch_size) for i in range(0, pending.num_rows, batch_size)]
    ds = ray.data.from_arrow(blocks)
    ds = ds.map_batches(
        actor_cls,
        fn_constructor_kwargs=actor_kwargs,
        compute=ray.data.ActorPoolStrategy(size=plan.actors),
        batch_size=batch_size,
        batch_format="pyarrow",
        num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus,
    )
    written, first = 0, 0.0
    for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        manifest.write_part(block)
        written += block.num_rows
        first = first or time.perf_counter() - start
        progress.update(block.num_rows)
    progress.close()
    return PoolRun(written, time.perf_counter() - start, first)
