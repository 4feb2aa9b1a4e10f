"""Ray bootstrap and actor sizing.

Inside ``ray job submit`` (or with RAY_ADDRESS / ``ray.address`` set) we join that cluster;
otherwise we start a local one sized to this machine. Actor pools are sized from what the cluster
actually has, leaving CPU headroom for Ray Data's read tasks: on a 2-core machine two 1-CPU actors
would otherwise hold every CPU and the read task would wait forever.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ray_pipeline.config import ActorPoolConfig, ConfigError, RayConfig


def init_ray(cfg: RayConfig) -> dict[str, float]:
    """Connect to (or start) Ray once per process; returns the cluster's resources."""
    import ray

    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS")
        # Workers import ray_pipeline from this checkout/venv; quiet logs keep stage progress readable.
        common = dict(logging_level=logging.WARNING, log_to_driver=True, configure_logging=True)
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=cfg.num_cpus or os.cpu_count() or 1, include_dashboard=False, **common)
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # our own progress lines work in job logs and terminals
        ctx.print_on_execution_start = False
    return {k: float(v) for k, v in ray.cluster_resources().items()}


@dataclass(frozen=True)
class PoolPlan:
    """What an actor pool will request from the cluster."""

    actors: int
    num_cpus: float
    num_gpus: float
    torch_threads: int

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"


def plan_actor_pool(
    pool: ActorPoolConfig, resources: dict[str, float], reserve_cpus: float, what: str
) -> PoolPlan:
    """Fit ``pool`` to the cluster or fail with a message naming the config field.

    GPU requests beyond the cluster's GPUs would never be scheduled (the job hangs), so they are
    errors here rather than a silent wait.
    """
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if pool.num_gpus > 0 and pool.actors * pool.num_gpus > gpus + 1e-9:
        raise ConfigError(
            f"{what}.pool: {pool.actors} actors x {pool.num_gpus} GPUs = {pool.actors * pool.num_gpus} "
            f"GPUs, but the cluster has {gpus:g}; lower {what}.pool.actors or {what}.pool.num_gpus"
        )
    available = cpus - reserve_cpus
    if available <= 0:
        raise ConfigError(f"ray.reserve_cpus={reserve_cpus} leaves no CPU for {what} on {cpus:g} CPUs")
    if pool.num_cpus is None:
        per_actor = available / pool.actors
    else:
        per_actor = pool.num_cpus
        if per_actor * pool.actors > available + 1e-9:
            raise ConfigError(
                f"{what}.pool: {pool.actors} actors x {per_actor} CPUs exceeds the {available:g} CPUs "
                f"left after ray.reserve_cpus={reserve_cpus}; the read tasks would starve"
            )
    per_actor = round(per_actor, 3)
    return PoolPlan(pool.actors, per_actor, pool.num_gpus, max(1, int(per_actor)))
