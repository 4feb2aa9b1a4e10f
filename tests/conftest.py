"""Shared fixtures: one local Ray cluster for the whole session, tiny offline models, an S3 server."""

from __future__ import annotations

import logging
import os

import pytest

# No hub here: anything that tries to download must fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# S3 credentials for the s3_endpoint fixture's local server, in the environment before any Ray
# starts: Ray workers keep the environment Ray was started with, so the fixture's monkeypatch
# reaches only this process. Fake values, and only where none are set; no EC2 metadata lookups
# (seconds of timeouts in every process that opens S3 off EC2).
S3_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
for _name, _value in S3_TEST_CREDENTIALS.items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU local Ray shared by every test that needs one (start-up costs seconds)."""
    import ray

    from ray_pipeline.cluster import start_ray
    from ray_pipeline.config import RayConfig

    resources = start_ray(RayConfig(num_cpus=2))
    yield resources
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_cogvideox(tmp_path_factory) -> str:
    from ray_pipeline.tiny import build_tiny_cogvideox

    return str(build_tiny_cogvideox(tmp_path_factory.mktemp("tiny") / "cogvideox"))


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory) -> str:
    from ray_pipeline.tiny import build_tiny_wan

    return str(build_tiny_wan(tmp_path_factory.mktemp("tiny") / "wan"))


@pytest.fixture(scope="session")
def tiny_ltx(tmp_path_factory) -> str:
    from ray_pipeline.tiny import build_tiny_ltx

    return str(build_tiny_ltx(tmp_path_factory.mktemp("tiny") / "ltx"))


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


@pytest.fixture
def s3_endpoint(monkeypatch):
    """moto's S3 server (the real S3 API over HTTP) on a free port, with the empty bucket
    ``S3_BUCKET`` and credentials in the environment; returns its "host:port"."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    from tests.helpers import S3_BUCKET

    for name, value in {**S3_TEST_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                      allow_bucket_creation=True).create_dir(S3_BUCKET)
    # MLflow's own S3 client (artifacts next to the run, see tracking.py) takes the endpoint here.
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://{endpoint}")
    yield endpoint
    server.stop()
