"""MLflow tracking: one parent run per invocation, one nested run per stage it ran.

The tracking URI is the config's, else ``$MLFLOW_TRACKING_URI``, else a sqlite file in the (local)
run directory: MLflow 3 rejects the legacy ``./mlruns`` file store. A remote run directory needs a
tracking URI; with a sqlite one, the artifacts still go to the run directory's ``mlartifacts``.

Everything goes through ``MlflowClient`` with explicit run ids (no fluent "active run"), so the
training stage's epoch watcher can log from its own thread. Only the driver writes.
"""

from __future__ import annotations

import math
import os
import time
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


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a stats dict (MLflow metrics are floats)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


class RunTracker:
    """An invocation's MLflow runs: the parent (config as params and artifact) and one nested run
    per stage, created when the stage starts."""

    def __init__(self, cfg: ExperimentConfig, store: RunStore, command: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = resolve_tracking_uri(cfg, store)
        self.client = MlflowClient(self.uri)
        self.experiment_id = ensure_experiment(self.uri, cfg.mlflow.experiment, store)
        self.tags = {"run_dir": store.root, "experiment_name": cfg.name, "task": cfg.task, "command": command}
        parent = self.client.create_run(self.experiment_id, run_name=f"{cfg.name}/{command}", tags=self.tags)
        self.parent = parent.info.run_id
        self.log_params(self.parent, flatten(cfg.model_dump(mode="json")))
        self.client.log_text(self.parent, cfg.to_yaml(), "config.yaml")

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in numeric(metrics).items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i:i + 500])

    def stage_run(self, stage: str, identity: dict[str, Any]) -> str:
        """A nested run for ``stage`` under the parent; returns its id."""
        run = self.client.create_run(self.experiment_id, run_name=stage, tags={
            **self.tags, "stage": stage, "mlflow.parentRunId": self.parent})
        self.log_params(run.info.run_id, flatten(identity))
        return run.info.run_id

    def end(self, run_id: str, ok: bool) -> None:
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.parent, text, name)
