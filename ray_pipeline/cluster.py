"""Ray start-up and actor sizing.

The pipeline owns Ray's start-up (:class:`Cluster`): it joins the cluster named by ``ray.address``
or ``RAY_ADDRESS`` (``ray job submit`` sets the latter for its drivers), and otherwise always starts
a fresh local cluster, whatever else runs on the machine. A bare ``ray.init()`` would instead join
the last cluster started here (a ``ray start --head`` left running, or the stale
``ray_current_cluster`` file of one that crashed) and then refuse our ``num_cpus``.

Actor pools are sized from what the cluster actually has, leaving CPU headroom for Ray Data's read
tasks: on a 2-core machine two 1-CPU actors would otherwise hold every CPU and the read task would
wait forever.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

from ray_pipeline.config import ActorPoolConfig, ConfigError, RayConfig


def ray_address(cfg: RayConfig) -> str | None:
    """The cluster to join, or None for a fresh local one."""
    return cfg.address or os.environ.get("RAY_ADDRESS") or None


# CPU kernels every x86-64 machine of the last decade has: PyTorch's own, oneDNN's and MKL's
# dispatch pinned to them give the same bits on an AVX2 and an AVX-512 machine.
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def portable_kernel_env() -> dict[str, str]:
    """:data:`PORTABLE_KERNELS` where this machine has AVX2 (elsewhere the variables mean nothing)."""
    try:
        with open("/proc/cpuinfo") as f:
            has_avx2 = " avx2" in f.read()
    except OSError:
        has_avx2 = False
    return dict(PORTABLE_KERNELS) if has_avx2 else {}


def torch_threads(cfg: RayConfig, cpus: float) -> int:
    """Threads of an actor or worker reserving ``cpus`` CPUs (see ``ray.numerics``)."""
    if cfg.torch_threads is not None:
        return cfg.torch_threads
    return 1 if cfg.numerics == "portable" else max(1, int(cpus))


def start_ray(cfg: RayConfig, *, log_to_driver: bool = True) -> dict[str, float]:
    """Join the configured cluster or start a fresh local one, once per process; returns the
    cluster's resources. Inside a Ray worker (a Tune trial) Ray is already up and is kept.

    A local cluster's workers get the portable kernel pins (``ray.numerics``); a cluster that is
    joined keeps its own environment (set them in its runtime_env to have them there too).
    """
    import ray

    if not ray.is_initialized():
        address = ray_address(cfg)
        common = dict(logging_level=logging.WARNING, log_to_driver=log_to_driver, configure_logging=True)
        if address:
            ray.init(address=address, **common)
        else:
            env = portable_kernel_env() if cfg.numerics == "portable" else {}
            # "local" starts a new instance even when another one is running on this machine.
            ray.init(address="local", num_cpus=cfg.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     runtime_env={"env_vars": env} if env else None, **common)
    quiet_ray_data()
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def quiet_ray_data() -> None:
    """Our own progress lines replace Ray Data's bars and execution banners (also in trials,
    where Ray was started by Tune)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


class Cluster:
    """Ray for one pipeline invocation, started on first use: a run whose stages find all their
    rows done never starts Ray at all."""

    def __init__(self, cfg: RayConfig, *, log_to_driver: bool = True) -> None:
        self.cfg, self.log_to_driver = cfg, log_to_driver
        self._resources: dict[str, float] | None = None
        self._started = False

    def resources(self) -> dict[str, float]:
        if self._resources is None:
            import ray

            self._started = not ray.is_initialized()
            self._resources = start_ray(self.cfg, log_to_driver=self.log_to_driver)
        return self._resources

    def close(self) -> None:
        """Disconnect if this object connected (a local cluster it started stops with it); Ray
        started by someone else (a test's fixture, a Tune trial) is left alone."""
        import ray

        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started, self._resources = False, None

    def plan_pool(self, pool: ActorPoolConfig, what: str) -> PoolPlan:
        plan = plan_actor_pool(pool, self.resources(), self.cfg.reserve_cpus, what)
        return replace(plan, torch_threads=torch_threads(self.cfg, plan.num_cpus))


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
