"""One Ray Data runner for every row stage: done-filter, pool plan, ``map_batches`` over the stage's
``setup``/``process``, one manifest part per finished block, progress and throughput.

The actors (one model copy each) do the work and write any large outputs themselves; only small
metadata rows flow back to the driver, which writes one manifest part per finished block. Killing
the driver therefore loses only the blocks in flight, and a rerun skips every id already written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


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


class StageActor:
    """A Ray Data actor around one row stage: ``setup`` once, ``process`` per batch."""

    def __init__(self, stage: Any, device: str, torch_threads: int) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.stage = stage
        self.stage.setup(device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.stage.process(batch)


def pending_rows(planned: pa.Table, id_column: str, done: set[str]) -> pa.Table:
    """The planned rows whose id is not done yet, in plan order."""
    if not done:
        return planned
    return planned.filter(pc.invert(pc.is_in(planned.column(id_column), pa.array(sorted(done), pa.string()))))


def run_row_stage(stage: Any, ctx: Any, planned: pa.Table) -> tuple[pa.Table, dict[str, Any]]:
    """Process the planned rows of ``stage`` (a :class:`~ray_pipeline.stages.base.RowStage`) that
    are not in its manifest yet; returns all of this config's finished rows (sorted by id) and
    the run's figures. ``ctx`` is the stage's :class:`~ray_pipeline.stages.base.StageContext`."""
    manifest = stage.manifest(stage.store(ctx))
    todo = pending_rows(planned, stage.id_column, manifest.done_ids())
    pool = PoolRun()
    stats: dict[str, Any] = {}
    if todo.num_rows:
        stage.before_run(ctx)
        plan = ctx.cluster.plan_pool(stage.pool, stage.name)
        pool = map_rows(stage, todo, plan, ctx, total=planned.num_rows, done=planned.num_rows - todo.num_rows)
        stats.update(actors=plan.actors, cpus_per_actor=plan.num_cpus, gpus_per_actor=plan.num_gpus,
                     startup_seconds=pool.first_block_seconds, steady_rows_per_s=pool.steady_rows_per_s)
    rows = manifest.rows_with_ids(planned.column(stage.id_column))
    stats.update(rows=rows.num_rows, rows_new=pool.written, rows_skipped=planned.num_rows - todo.num_rows,
                 seconds=pool.seconds, rows_per_s=pool.written / pool.seconds if pool.seconds else 0.0)
    return rows, stats


def map_rows(stage: Any, todo: pa.Table, plan: Any, ctx: Any, *, total: int,
             done: int) -> PoolRun:
    """``todo`` through an actor pool of ``stage``, one manifest part per finished block."""
    import ray.data

    manifest = stage.manifest(stage.store(ctx))
    batch_size = stage.pool.batch_size
    start = time.perf_counter()
    progress = ctx.console.progress(stage.name, total, done=done)
    # One block per batch, so the pool sees work at once and manifest parts stay small. (Not
    # .repartition(): that is a 1-CPU task which starves behind actors holding the CPUs.)
    blocks = [todo.slice(i, batch_size) for i in range(0, todo.num_rows, batch_size)]
    ds = ray.data.from_arrow(blocks).map_batches(
        StageActor,
        fn_constructor_kwargs={"stage": stage, "device": plan.device, "torch_threads": plan.torch_threads},
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
    return PoolRun(written, time.perf_counter() - start, first)
