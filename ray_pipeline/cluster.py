"""Ray start-up and actor sizing.

The pipeline owns Ray's start-up (:class:`Cluster`): it joins the cluster named by ``ray.address``
or ``RAY_ADDRESS`` (``ray job submit`` sets the latter for its drivers), and otherwise always starts
a fresh local cluster, whatever else runs on the machine. A bare ``ray.init()`` would instead join
the last cluster started here (a ``ray start --head`` left running, or the stale
``ray_current_cluster`` file of one that crashed) and then refuse our ``num_cpus``.

Actor pools and Ray Train workers are sized from what the cluster actually has, node by node: a
request is only made if some node type can hold it, and the requests of a pool (or of a training
run) only if the nodes can hold all of them at once, since Ray would otherwise wait forever for a
node that never comes. With ``ray.node_types`` the cluster autoscales and planning counts the nodes
the autoscaler may add. CPU headroom is left for Ray Data's read tasks: on a 2-core machine two
1-CPU actors would otherwise hold every CPU and the read task would wait forever.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ray_pipeline.config import ActorPoolConfig, ConfigError, NodeTypeConfig, RayConfig, TopkHeadConfig, TrainConfig


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
        self._nodes: list[NodeShape] | None = None
        self._started = False

    def resources(self) -> dict[str, float]:
        if self._resources is None:
            import ray

            self._started = not ray.is_initialized()
            self._resources = start_ray(self.cfg, log_to_driver=self.log_to_driver)
        return self._resources

    def nodes(self) -> list[NodeShape]:
        """The node shapes requests are planned against (running nodes, plus what the autoscaler
        may add when ``ray.node_types`` lists types)."""
        if self._nodes is None:
            import ray

            self.resources()
            self._nodes = node_shapes(ray.nodes(), self.cfg.node_types)
        return self._nodes

    def close(self) -> None:
        """Disconnect if this object connected (a local cluster it started stops with it); Ray
        started by someone else (a test's fixture, a Tune trial) is left alone."""
        import ray

        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started, self._resources, self._nodes = False, None, None

    def plan_pool(self, pool: ActorPoolConfig, what: str) -> PoolPlan:
        plan = plan_actor_pool(pool, self.nodes(), self.cfg.reserve_cpus, what)
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


def plan_actor_pool(pool: ActorPoolConfig, nodes: list[NodeShape], reserve_cpus: float, what: str) -> PoolPlan:
    """Fit ``pool`` to the nodes or fail with a message naming the config field.

    Each actor must fit on one node, and all of them at once (a pool Ray can only partly place
    never finishes); GPU requests beyond the nodes' GPUs would never be scheduled (the job hangs),
    so they are errors here rather than a silent wait. Unset ``num_cpus``: the most CPUs per actor
    that still fit, leaving ``reserve_cpus`` free (on one node: an equal share of the rest).
    """
    fields = RequestFields(f"{what}.pool.actors", f"{what}.pool.num_cpus", f"{what}.pool.num_gpus")
    per_actor = fit_requests(pool.actors, pool.num_cpus, pool.num_gpus, nodes, reserve_cpus, fields)
    return PoolPlan(pool.actors, per_actor, pool.num_gpus, max(1, int(per_actor)))


@dataclass(frozen=True)
class WorkerPlan:
    """What a training run's Ray Train workers request (one GPU each with ``train.use_gpu``)."""

    num_workers: int
    num_cpus: float
    num_gpus: float

    def scaling_kwargs(self) -> dict:
        """``ray.train.ScalingConfig`` arguments."""
        return {"num_workers": self.num_workers, "use_gpu": self.num_gpus > 0,
                "resources_per_worker": {"CPU": self.num_cpus, **({"GPU": self.num_gpus} if self.num_gpus else {})}}


def plan_train_workers(train: TrainConfig | TopkHeadConfig, nodes: list[NodeShape], reserve_cpus: float,
                       section: str = "train") -> WorkerPlan:
    """Fit ``train``'s workers to the nodes (all at once: DDP starts only when every worker runs), or
    fail with a message naming the field; unset ``cpus_per_worker``: the most that fit.

    Args:
        train: a section with ``num_workers``, ``cpus_per_worker`` and ``use_gpu`` (``train``, or
            ``anomaly.topk_ce``, whose MIL fine-tune is a Ray Train run of its own).
        nodes: the cluster's node shapes.
        reserve_cpus: CPUs left free for the driver and Ray Data.
        section: the section's path in the config, for the error messages.
    """
    gpus = 1.0 if train.use_gpu else 0.0
    fields = RequestFields(f"{section}.num_workers", f"{section}.cpus_per_worker", f"{section}.use_gpu")
    return WorkerPlan(train.num_workers, fit_requests(train.num_workers, train.cpus_per_worker, gpus, nodes,
                                                      reserve_cpus, fields), gpus)


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeShape:
    """Nodes of one shape: per-node CPUs and GPUs, and how many such nodes there are (or may be)."""

    name: str
    cpus: float
    gpus: float
    count: int

    def describe(self) -> str:
        return f"{self.count} x {self.name} ({self.cpus:g} CPU, {self.gpus:g} GPU)"


def node_shapes(ray_nodes: Iterable[dict], node_types: list[NodeTypeConfig] = ()) -> list[NodeShape]:
    """Alive nodes of ``ray.nodes()`` grouped by (CPU, GPU); with ``node_types`` (an autoscaling
    cluster) each type counts as many nodes as it may have: its ``max_workers``, or the nodes of its
    shape already running if those are more. Running nodes of no listed shape (the head) count as they are."""
    running: dict[tuple[float, float], int] = {}
    for node in ray_nodes:
        if not node.get("Alive", node.get("alive", False)):
            continue
        res = node.get("Resources", {})
        key = (float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0)))
        running[key] = running.get(key, 0) + 1
    shapes = []
    for t in node_types:
        key = (float(t.cpus), float(t.gpus))
        shapes.append(NodeShape(t.name, t.cpus, t.gpus, max(t.max_workers, running.pop(key, 0))))
    shapes += [NodeShape("node", c, g, n) for (c, g), n in sorted(running.items())]
    return shapes


def single_node(resources: dict[str, float]) -> list[NodeShape]:
    """One node holding ``resources`` (a local cluster, or a test's)."""
    return [NodeShape("node", float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0)), 1)]


def floor3(x: float) -> float:
    """Rounded down to 1/1000 CPU: shares must never add up to more than the nodes have."""
    return math.floor(x * 1000 + 1e-9) / 1000


def capacity(nodes: list[NodeShape], num_cpus: float, num_gpus: float) -> int:
    """How many requests of (``num_cpus`` > 0, ``num_gpus``) the nodes hold at once."""
    total = 0
    for n in nodes:
        per_node = math.floor(n.cpus / num_cpus + 1e-9)
        if num_gpus > 0:
            per_node = min(per_node, math.floor(n.gpus / num_gpus + 1e-9))
        total += n.count * per_node
    return total


@dataclass(frozen=True)
class RequestFields:
    """The config fields behind a group of requests, named in errors."""

    count: str
    cpus: str
    gpus: str


def fit_requests(count: int, num_cpus: float | None, num_gpus: float, nodes: list[NodeShape], reserve_cpus: float,
                 fields: RequestFields) -> float:
    """CPUs per request for ``count`` requests of (``num_cpus`` or unset, ``num_gpus``) that the nodes
    hold at once with ``reserve_cpus`` left over; a :class:`ConfigError` naming the fields otherwise.

    Args:
        count: requests that must run at the same time (actors of a pool, workers of a run).
        num_cpus: CPUs per request; None: the most that fit, rounded down to 1/1000.
        num_gpus: GPUs per request (fractions share a GPU).
        nodes: the node shapes (:func:`node_shapes`).
        reserve_cpus: CPUs left free for Ray Data's tasks and the driver (``ray.reserve_cpus``).
        fields: the config fields to name in errors.
    """
    shapes = "; ".join(n.describe() for n in nodes) or "no nodes"
    total_cpus = sum(n.cpus * n.count for n in nodes)
    total_gpus = sum(n.gpus * n.count for n in nodes)
    if num_gpus > 0:
        if not any(n.gpus + 1e-9 >= num_gpus for n in nodes):
            raise ConfigError(f"{fields.gpus}: {num_gpus:g} GPUs per request, but no node type has that many "
                              f"({shapes})")
        if count * num_gpus > total_gpus + 1e-9:
            raise ConfigError(f"{fields.count} x {fields.gpus}: {count} x {num_gpus:g} = {count * num_gpus:g} GPUs, "
                              f"but the cluster has {total_gpus:g} ({shapes}); lower {fields.count} or {fields.gpus}")
    available = total_cpus - reserve_cpus
    if available <= 0:
        raise ConfigError(f"ray.reserve_cpus={reserve_cpus} leaves no CPU for {fields.count} on {total_cpus:g} CPUs")
    hosts = [n for n in nodes if n.gpus + 1e-9 >= num_gpus] if num_gpus > 0 else nodes
    if num_cpus is not None:
        if not any(n.cpus + 1e-9 >= num_cpus for n in hosts):
            largest = max((n.cpus for n in hosts), default=0.0)
            raise ConfigError(f"{fields.cpus}: {num_cpus:g} CPUs per request, but no node type that could host it "
                              f"has more than {largest:g} ({shapes})")
        if num_cpus * count > available + 1e-9:
            raise ConfigError(f"{fields.count} x {fields.cpus}: {count} x {num_cpus:g} CPUs exceeds the "
                              f"{available:g} CPUs left after ray.reserve_cpus={reserve_cpus}; the read tasks "
                              "would starve")
        held = capacity(hosts, num_cpus, num_gpus)
        if held < count:
            raise ConfigError(f"{fields.count}: {count} requests of {num_cpus:g} CPU + {num_gpus:g} GPU, but the "
                              f"nodes hold only {held} at once ({shapes}); lower {fields.count} or {fields.cpus}")
        return num_cpus
    # The largest share that fits: an equal split of what is left, or a node's CPUs split k ways.
    candidates = {floor3(available / count)}
    candidates |= {floor3(n.cpus / k) for n in hosts for k in range(1, count + 1)}
    for c in sorted((c for c in candidates if c > 0), reverse=True):
        if c * count <= available + 1e-9 and capacity(hosts, c, num_gpus) >= count:
            return c
    raise ConfigError(f"{fields.count}: {count} requests of {num_gpus:g} GPU each do not fit on the nodes at once "
                      f"({shapes}); lower {fields.count} or {fields.gpus}")
