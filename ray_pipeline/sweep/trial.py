"""A sweep trial: runs inside a Ray Tune trial actor as the driver of its train and evaluate stages.

The data stages' rows are resolved from the sweep's shared store (the driver ran them), training
reports every epoch to Tune through ``TuneReportCallback`` (and thus to the driver's MLflow
callback), and the trial's result is stored so that a restored sweep never runs it again.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ray import tune

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import TRIAL_ATTEMPTS, TRIAL_RESULT, TRIAL_SPEC, trial_dir
from ray_pipeline.sweep.resources import apply_resources


def final_metrics(summary: dict | None, train_stats: dict, cfg: ExperimentConfig) -> dict[str, float]:
    """Flat final metrics of a trial: the task's own (``<dataset>.<role>.top1_mean``, ``_std``, CI
    bounds, per role) and the training figures (``train.*``)."""
    from ray_pipeline.tasks import get_task

    out: dict[str, float] = {}
    for k in ("final_loss", "epochs", "num_clips"):
        if isinstance(train_stats.get(k), (int, float)):
            out[f"train.{k}"] = float(train_stats[k])
    if summary:
        out.update(get_task(cfg).metrics(summary))
    return out


def run_trial(config: dict[str, Any], *, sweep_uri: str, plan: dict[str, Any]) -> None:
    """A Tune trial: train + evaluate of one trial's config.

    Idempotent like every stage: a trial whose result is already stored reports it and returns;
    an interrupted one continues (the train stage resumes from its checkpoint, evaluate skips the
    rows it has).
    """
    from ray.tune.integration.ray_train import TuneReportCallback

    from ray_pipeline.cluster import Cluster, quiet_ray_data
    from ray_pipeline.console import Console
    from ray_pipeline.pipeline import SUMMARY_JSON, Pipeline
    from ray_pipeline.report import write_run_report
    from ray_pipeline.tasks.base import DATA_STAGES

    quiet_ray_data()  # Ray was started by Tune here, not by our Cluster
    os.chdir(plan["cwd"])  # Tune starts trials in their own folder; configs are relative to the driver's
    key = config["trial_key"]
    store = RunStore(RunStore(sweep_uri).uri(trial_dir(key)))
    console = Console()

    if store.exists(TRIAL_RESULT):
        console.line(f"[trial {key}] already finished: reporting its stored result")
        tune.report({**json.loads(store.read_text(TRIAL_RESULT)), "final": 1})
        return
    attempts = store.read_text(TRIAL_ATTEMPTS) if store.exists(TRIAL_ATTEMPTS) else ""
    store.write_text(TRIAL_ATTEMPTS, attempts + json.dumps({"started": time.time(), "pid": os.getpid()}) + "\n")
    spec = json.loads(store.read_text(TRIAL_SPEC))
    cfg = apply_resources(ExperimentConfig.model_validate(spec["config"]), key, plan)
    store.write_text("config.yaml", cfg.to_yaml())
    start = time.perf_counter()
    # Rank 0's per-epoch reports reach Tune (and the driver's MLflow callback) through this.
    pipeline = Pipeline(cfg, store, console, cluster=Cluster(cfg.ray),
                        stage_options={"train": {"callbacks": [TuneReportCallback()]}})
    # Everything after the data stages (which the sweep driver ran): train, then the task's own.
    work = [n for n in pipeline.task.stage_names if n not in DATA_STAGES]
    results = pipeline.run(work)
    summary = json.loads(store.read_text(SUMMARY_JSON)) if store.exists(SUMMARY_JSON) else None
    write_run_report(store)
    result = {**final_metrics(summary, results["train"].stats, cfg), "trial_seconds": time.perf_counter() - start}
    store.write_text(TRIAL_RESULT, json.dumps(result, indent=2))
    tune.report({**result, "final": 1})


def trial_dirname(trial: Any) -> str:
    """Tune's folder for a trial: its content key (stable across restores)."""
    return f"trial_{trial.config['trial_key']}"
