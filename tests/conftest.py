"""Shared fixtures: one local Ray cluster for the whole session, tiny offline models."""

from __future__ import annotations

import os

import pytest

# No hub here: anything that tries to download must fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU local Ray shared by every test that needs one (start-up costs seconds)."""
    import ray

    from ray_pipeline.cluster import init_ray
    from ray_pipeline.config import RayConfig

    resources = init_ray(RayConfig(num_cpus=2))
    yield resources
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_cogvideox(tmp_path_factory) -> str:
    from ray_pipeline.tiny import build_tiny_cogvideox

    return str(build_tiny_cogvideox(tmp_path_factory.mktemp("tiny") / "cogvideox"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    from ray_pipeline.tiny import build_tiny_clip

    return str(build_tiny_clip(tmp_path_factory.mktemp("tiny") / "clip"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine two OpenMP threads
    spin-wait on every small op (30x slower steps were seen under load)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
