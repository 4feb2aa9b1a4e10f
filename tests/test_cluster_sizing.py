"""Per-node sizing of actor pools, Ray Train workers and sweep trials: requests every node type can
hold, clear errors for one none can, the autoscaler's node types, and the GPU paths on Ray's
multi-node test cluster with declared (fake) GPUs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pytest

from ray_pipeline.cluster import (
    Cluster,
    NodeShape,
    capacity,
    node_shapes,
    plan_actor_pool,
    plan_train_workers,
    single_node,
)
from ray_pipeline.config import ActorPoolConfig, ConfigError, NodeTypeConfig, RayConfig, TrainConfig

HEAD = NodeShape("head", 2.0, 0.0, 1)
GPU_NODES = NodeShape("gpu", 4.0, 1.0, 2)


def _pool(**kw) -> ActorPoolConfig:
    return ActorPoolConfig(**kw)


# --------------------------------------------------------------------------------------------
# Planning, without Ray
# --------------------------------------------------------------------------------------------


def test_one_node_gets_the_equal_share_it_always_had():
    # The quickstart on 2 cores: (2 - 0.5 reserved) / actors.
    node = single_node({"CPU": 2.0})
    assert plan_actor_pool(_pool(actors=2), node, 0.5, "generate").num_cpus == 0.75
    assert plan_actor_pool(_pool(actors=1), node, 0.5, "score").num_cpus == 1.5
    assert plan_train_workers(TrainConfig(), node, 0.5).num_cpus == 1.5
    plan = plan_actor_pool(_pool(actors=3), single_node({"CPU": 16.0}), 0.5, "evaluate")
    assert plan.num_cpus == 5.166 and 3 * plan.num_cpus <= 15.5  # rounded down, never over


def test_gpu_actors_are_sized_to_the_gpu_nodes_not_the_cluster_total():
    nodes = [HEAD, GPU_NODES]
    plan = plan_actor_pool(_pool(actors=2, num_gpus=1), nodes, 0.5, "generate")
    # The cluster-wide share (10 - 0.5) / 2 = 4.75 CPUs fits on no 4-CPU GPU node: Ray would wait forever.
    assert (plan.num_cpus, plan.num_gpus, plan.device) == (4.0, 1.0, "cuda")
    plan = plan_actor_pool(_pool(actors=4, num_gpus=0.5), nodes, 0.5, "score")  # two actors share a GPU
    assert plan.num_cpus == 2.0
    # Three CPU actors: 9.5 / 3 = 3.17 CPUs each fits only twice (once per 4-CPU node); 2 CPUs fit
    # on every node, so that is the most an actor can get with all three running.
    assert plan_actor_pool(_pool(actors=3), nodes, 0.5, "generate").num_cpus == 2.0
    assert capacity(nodes, 3.166, 0.0) == 2 and capacity(nodes, 2.0, 0.0) == 5


@pytest.mark.parametrize(("pool", "match"), [
    ({"actors": 1, "num_gpus": 2}, r"generate\.pool\.num_gpus: 2 GPUs per request, but no node type has that many"),
    ({"actors": 3, "num_gpus": 1}, r"generate\.pool\.actors x generate\.pool\.num_gpus: 3 x 1 = 3 GPUs, but the "
                                   r"cluster has 2"),
    ({"actors": 1, "num_cpus": 6}, r"generate\.pool\.num_cpus: 6 CPUs per request, but no node type"),
    ({"actors": 1, "num_cpus": 3, "num_gpus": 1}, None),
    ({"actors": 1, "num_cpus": 5, "num_gpus": 1}, r"no node type that could host it has more than 4"),
    ({"actors": 3, "num_cpus": 3}, r"generate\.pool\.actors: 3 requests of 3 CPU \+ 0 GPU, but the nodes hold "
                                   r"only 2 at once"),
])
def test_requests_no_node_can_hold_are_config_errors(pool, match):
    nodes = [HEAD, GPU_NODES]
    if match is None:
        assert plan_actor_pool(_pool(**pool), nodes, 0.5, "generate").num_cpus == pool["num_cpus"]
        return
    with pytest.raises(ConfigError, match=match) as err:
        plan_actor_pool(_pool(**pool), nodes, 0.5, "generate")
    assert "2 x gpu (4 CPU, 1 GPU)" in str(err.value)  # the message lists the node types


def test_train_workers_fit_the_gpu_nodes_or_fail_naming_the_field():
    nodes = [HEAD, GPU_NODES]
    plan = plan_train_workers(TrainConfig(num_workers=2, use_gpu=True), nodes, 0.5)
    assert plan.scaling_kwargs() == {"num_workers": 2, "use_gpu": True,
                                     "resources_per_worker": {"CPU": 4.0, "GPU": 1.0}}
    with pytest.raises(ConfigError, match=r"train\.num_workers x train\.use_gpu: 4 x 1 = 4 GPUs"):
        plan_train_workers(TrainConfig(num_workers=4, use_gpu=True, batch_size=32), nodes, 0.5)
    with pytest.raises(ConfigError, match=r"train\.cpus_per_worker: 8 CPUs per request"):
        plan_train_workers(TrainConfig(cpus_per_worker=8), nodes, 0.5)
    with pytest.raises(ConfigError, match=r"train\.use_gpu: 1 GPUs per request, but no node type"):
        plan_train_workers(TrainConfig(use_gpu=True), [HEAD], 0.5)


def test_node_shapes_group_alive_nodes_and_add_what_the_autoscaler_may_start():
    alive = [{"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e9}},
             {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
             {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}}]
    assert node_shapes(alive) == [NodeShape("node", 2.0, 0.0, 1), NodeShape("node", 8.0, 1.0, 1)]
    types = [NodeTypeConfig(name="gpu", cpus=8, gpus=1, max_workers=4)]
    shapes = node_shapes(alive, types)
    # The running GPU node is one of the (at most) 4 of its type; the head counts as it is.
    assert shapes == [NodeShape("gpu", 8.0, 1.0, 4), NodeShape("node", 2.0, 0.0, 1)]
    # Four 1-GPU actors: an error on the nodes running now, fine where the autoscaler may add three.
    with pytest.raises(ConfigError, match="4 GPUs, but the cluster has 1"):
        plan_actor_pool(_pool(actors=4, num_gpus=1), node_shapes(alive), 0.5, "generate")
    assert plan_actor_pool(_pool(actors=4, num_gpus=1), shapes, 0.5, "generate").num_cpus == 8.0


def test_node_types_are_validated_with_the_field_named(tmp_path):
    from ray_pipeline.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("ray:\n  node_types:\n    - {name: gpu, cpus: 8, gpus: 1, max_workers: 0}\n")
    with pytest.raises(ConfigError, match=r"ray\.node_types\.0\.max_workers"):
        load_config(path)
    path.write_text("ray:\n  node_types:\n    - {name: a, cpus: 8, max_workers: 1}\n"
                    "    - {name: a, cpus: 4, max_workers: 1}\n")
    with pytest.raises(ConfigError, match="node type names must be unique"):
        load_config(path)


def test_sweep_trials_fit_per_node(tmp_path):
    from ray_pipeline.sweep.resources import plan_resources
    from ray_pipeline.sweep.space import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text("train: {use_gpu: true, seed: {grid: [0, 1, 2, 3]}}\n")
    sweep = load_sweep(path)
    plan = plan_resources(sweep, [HEAD, GPU_NODES])
    # One GPU per trial: two at a time. A trial's share is 10 / 2 = 5 CPUs, so 4.5 for its worker,
    # but a worker runs on a 4-CPU GPU node (the drivers fit on the head).
    assert plan.max_concurrent_trials == 2
    assert set(plan.train_cpus_per_worker.values()) == {4.0}
    assert set(plan.evaluate_cpus_per_actor.values()) == {4.0}
    assert plan_resources(sweep, {"CPU": 32.0, "GPU": 4.0}).max_concurrent_trials == 4  # one node, as before
    with pytest.raises(ConfigError, match="a trial needs 1 GPUs"):
        plan_resources(sweep, [HEAD])


# --------------------------------------------------------------------------------------------
# On Ray's multi-node test cluster, GPUs declared
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_node_types():
    """A head of 2 CPUs and two nodes of 2 CPUs + 1 (declared) GPU each. A Ray this process had
    started (the session's) is shut down first and a 2-CPU one started again afterwards."""
    import ray
    from ray.cluster_utils import Cluster as TestCluster

    from ray_pipeline.cluster import start_ray

    had_ray = ray.is_initialized()
    if had_ray:
        ray.shutdown()
    cluster = TestCluster(initialize_head=True, head_node_args={"num_cpus": 2})
    for _ in range(2):
        cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    if had_ray:
        start_ray(RayConfig(num_cpus=2))


class NodeProbe:
    """A row stage recording where each actor ran and which GPU Ray gave it."""

    name = "probe"
    id_column = "row_id"

    def __init__(self, pool: ActorPoolConfig) -> None:
        self.pool = pool

    def setup(self, device: str = "cpu") -> None:
        import ray

        ctx = ray.get_runtime_context()
        self.where = {"device": device, "node": ctx.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def process(self, batch: pa.Table) -> pa.Table:
        # Slow enough that one actor cannot take every block while the other is still starting
        # (under load an instant probe once ran all 6 blocks on the first actor up).
        time.sleep(1.0)
        n = batch.num_rows
        return batch.append_column("where", pa.array([json.dumps(self.where)] * n))

    def store(self, ctx):
        return ctx.store

    def manifest(self, store):
        return store.manifest(self.name, self.id_column)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_gpu_actor_pool_is_placed_on_the_gpu_nodes(two_node_types, tmp_path):
    from ray_pipeline.runstore import RunStore
    from ray_pipeline.stages.runner import map_rows
    from tests.helpers import quiet_console

    cluster = Cluster(RayConfig(address=two_node_types.address))
    nodes = cluster.nodes()
    assert sorted((n.cpus, n.gpus, n.count) for n in nodes) == [(2.0, 0.0, 1), (2.0, 1.0, 2)]
    stage = NodeProbe(ActorPoolConfig(actors=2, num_gpus=1, batch_size=1))
    plan = cluster.plan_pool(stage.pool, "generate")
    # The old cluster-wide share, (6 - 0.5) / 2 = 2.75 CPUs, fits on no node: the pool never started.
    assert (plan.num_cpus, plan.num_gpus) == (2.0, 1.0)

    class Ctx:
        store = RunStore(tmp_path / "run")
        console = quiet_console()

    todo = pa.table({"row_id": [f"r{i}" for i in range(6)]})
    run = map_rows(stage, todo, plan, Ctx, total=6, done=0)
    assert run.written == 6
    rows = [json.loads(w) for w in stage.manifest(Ctx.store).read().column("where").to_pylist()]
    gpu_nodes = {n["NodeID"] for n in __import__("ray").nodes() if n["Resources"].get("GPU")}
    assert {r["device"] for r in rows} == {"cuda"}
    assert all(len(r["gpus"]) == 1 and r["node"] in gpu_nodes for r in rows)
    assert len({r["node"] for r in rows}) == 2  # one actor per GPU node

    with pytest.raises(ConfigError, match=r"generate\.pool\.num_gpus: 2 GPUs per request"):
        cluster.plan_pool(ActorPoolConfig(actors=1, num_gpus=2), "generate")
    with pytest.raises(ConfigError, match=r"generate\.pool\.num_cpus: 3 CPUs per request"):
        cluster.plan_pool(ActorPoolConfig(actors=1, num_cpus=3), "generate")


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_training_workers_get_one_gpu_each_on_the_gpu_nodes(two_node_types, tmp_path):
    import ray
    import ray.train
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    cluster = Cluster(RayConfig(address=two_node_types.address))
    plan = plan_train_workers(TrainConfig(num_workers=2, use_gpu=True), cluster.nodes(), 0.5)
    assert plan.scaling_kwargs()["resources_per_worker"] == {"CPU": 2.0, "GPU": 1.0}

    out = tmp_path / "workers"
    out.mkdir()

    def probe(config: dict) -> None:
        import os

        import ray
        import ray.train

        rank = ray.train.get_context().get_world_rank()
        record = {"node": ray.get_runtime_context().get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()],
                  "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
        Path(config["out"], f"{rank}.json").write_text(json.dumps(record))

    trainer = DataParallelTrainer(probe, train_loop_config={"out": str(out)},
                                  scaling_config=ray.train.ScalingConfig(**plan.scaling_kwargs()),
                                  run_config=ray.train.RunConfig(storage_path=str(tmp_path / "ray")))
    trainer.fit()
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    gpu_nodes = {n["NodeID"] for n in ray.nodes() if n["Resources"].get("GPU")}
    assert len(records) == 2
    assert all(len(r["gpus"]) == 1 and r["node"] in gpu_nodes and r["visible"] is not None for r in records)
    with pytest.raises(ConfigError, match=r"train\.num_workers x train\.use_gpu: 3 x 1 = 3 GPUs"):
        plan_train_workers(TrainConfig(num_workers=3, use_gpu=True, batch_size=33), cluster.nodes(), 0.5)


def test_the_node_types_example_in_docs_validates():
    import re

    import yaml

    doc = (Path(__file__).resolve().parents[1] / "docs" / "cluster.md").read_text()
    section = doc[doc.index("### Sizing per node"):doc.index("### Keeping the GPUs busy")]
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.S)
    ray_cfg = RayConfig.model_validate(yaml.safe_load(block)["ray"])
    shapes = node_shapes([{"Alive": True, "Resources": {"CPU": 8.0}}], ray_cfg.node_types)
    plan = plan_actor_pool(_pool(actors=64, num_gpus=1), shapes, 0.5, "generate")
    assert plan.num_cpus == 12.0  # 8 one-GPU actors per node; the A100 nodes (96 CPUs / 8) bound the share
