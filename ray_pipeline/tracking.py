"""MLflow tracking: one MLflow run per stage invocation, tagged with the run directory.

The tracking URI is the config's, else ``$MLFLOW_TRACKING_URI``, else a sqlite file in the (local)
run directory: MLflow 3 rejects the legacy ``./mlruns`` file store. A remote run directory needs a
tracking URI; with a sqlite one, the artifacts still go to the run directory's ``mlartifacts``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ray_pipeline.config import ConfigError, ExperimentConfig
from ray_pipeline.runstore import RunStore

# MLflow caps param values at 6000 characters and rejects changed values on a resumed run.
_MAX_PARAM = 500


def resolve_tracking_uri(cfg: ExperimentConfig, store: RunStore) -> str:
    uri = cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        if (uri.startswith("sqlite:") and store.root.startswith("s3://") and "endpoint_override=" in store.root
                and not os.environ.get("MLFLOW_S3_ENDPOINT_URL")):
            # With a sqlite store the artifacts go to the run directory (ensure_experiment), through
            # MLflow's own S3 client: it does not read pyarrow's URI options, so it would go to AWS.
            raise ConfigError(
                f"mlflow.tracking_uri: {uri} keeps artifacts in the run directory {store.root}, whose "
                "endpoint_override MLflow's S3 client does not see: set MLFLOW_S3_ENDPOINT_URL to the same "
                "endpoint (e.g. http://host:port), or use a tracking server (http://...)")
        return uri
    if not store.is_local:
        raise ConfigError(
            f"mlflow.tracking_uri: the run directory {store.root} is remote, so MLflow needs a "
            "tracking server: set mlflow.tracking_uri or MLFLOW_TRACKING_URI"
        )
    return f"sqlite:///{store.local_path('mlflow.db')}"


def ensure_experiment(tracking_uri: str, name: str, store: RunStore) -> str:
    """The id of MLflow experiment ``name``, created on first use.

    With a sqlite store MLflow's default artifact root is ./mlruns in the current directory: under
    `ray job submit` that is a temporary copy of the working dir, lost with the job. Experiments
    created here keep their artifacts in the run (or sweep) directory instead; a tracking server
    keeps its own artifact root.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:"):
        # MLflow parses a bucket URI itself: pyarrow's options (the query) mean nothing to it.
        location = store.uri("mlartifacts") if store.is_local else store.uri("mlartifacts").partition("?")[0]
    return client.create_experiment(name, artifact_location=location)


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"generate.pool.actors": "1", ...} (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
    else:
        out[prefix.rstrip(".")] = str(data)[:_MAX_PARAM]
    return out


@contextlib.contextmanager
def stage_run(cfg: ExperimentConfig, store: RunStore, stage: str,
              extra_tags: dict[str, str] | None = None) -> Iterator[Any]:
    """An MLflow run for one stage invocation, with the resolved config as params and artifact."""
    import mlflow

    uri = resolve_tracking_uri(cfg, store)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=ensure_experiment(uri, cfg.mlflow.experiment, store))
    tags = {"run_dir": store.root, "stage": stage, "experiment_name": cfg.name, **(extra_tags or {})}
    with mlflow.start_run(run_name=f"{cfg.name}/{stage}", tags=tags) as run:
        mlflow.log_params(flatten(cfg.model_dump(mode="json")))
        mlflow.log_text(cfg.to_yaml(), "config.yaml")
        yield run


def log_stage_metrics(metrics: dict[str, float | int]) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
