"""Evaluation tasks: one recipe file per task (``task:`` in the config names it).

Adding a task means adding its module here and its config; the pipeline, the CLI and sweeps run
any task through :class:`~ray_pipeline.tasks.base.Task`.
"""

from __future__ import annotations

import importlib

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.tasks.base import Task

# task name -> "module:class", imported on use so the CLI's --help stays fast.
TASKS = {
    "zero_shot": "ray_pipeline.tasks.zero_shot:ZeroShotTask",
    "few_shot": "ray_pipeline.tasks.few_shot:FewShotTask",
    "base_to_novel": "ray_pipeline.tasks.base_to_novel:BaseToNovelTask",
    "long_tail": "ray_pipeline.tasks.long_tail:LongTailTask",
    "anomaly": "ray_pipeline.tasks.anomaly:AnomalyTask",
}


def get_task(cfg: ExperimentConfig) -> Task:
    """The configured task, built on ``cfg``."""
    module, cls = TASKS[cfg.task].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
