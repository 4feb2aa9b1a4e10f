"""The pipeline: runs a task's stages in order and hands each the rows of *this* config.

``run`` does every stage's work; a single-stage command (``ray-pipeline score``) runs that stage
and resolves the ones before it (their rows as stored, without work), so every stage sees exactly
the rows its config implies whichever command started it. Sweeps go through the same object: the
data stages once per group, then train and evaluate per trial.

The pipeline owns Ray's start-up (:class:`~ray_pipeline.cluster.Cluster`: started only when a stage
has work for it) and the invocation's tracking (one parent run, a nested run per stage). After the
task's evaluation ran it writes ``summary.json`` and ``summary.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ray_pipeline.cluster import Cluster
from ray_pipeline.config import ConfigError, ExperimentConfig
from ray_pipeline.console import Console
from ray_pipeline.runstore import RunStore, data_store
from ray_pipeline.stages.base import Inputs, Stage, StageContext, StageResult, UpstreamMissing
from ray_pipeline.tasks import get_task
from ray_pipeline.tasks.base import Task
from ray_pipeline.tracking import RunTracker

SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"


class Pipeline:
    """A task's stages over one run directory.

    Args:
        cfg: the validated experiment.
        store: the run directory.
        console: where status and progress lines go.
        tracker: the invocation's MLflow runs (None: no tracking, as in sweep trials).
        cluster: Ray (default: one for this config, started on first use).
        stage_options: extra constructor settings per stage name (a sweep trial's Train callbacks).
    """

    def __init__(self, cfg: ExperimentConfig, store: RunStore, console: Console, *,
                 tracker: RunTracker | None = None, cluster: Cluster | None = None,
                 stage_options: dict[str, dict[str, Any]] | None = None) -> None:
        self.cfg, self.store, self.console, self.tracker = cfg, store, console, tracker
        self.cluster = cluster or Cluster(cfg.ray)
        self.task: Task = get_task(cfg)
        self.data_store = data_store(cfg.data_dir, store)
        self.stage_options = stage_options or {}

    def context(self, stage: Stage, metrics_run: str | None = None) -> StageContext:
        metrics = None
        if self.tracker is not None and metrics_run is not None:
            tracker = self.tracker

            def metrics(values: dict[str, float], step: int) -> None:
                tracker.log_metrics(metrics_run, values, step)

        return StageContext(store=self.data_store if stage.data_stage else self.store, run_store=self.store,
                            cluster=self.cluster, console=self.console, cache_dir=str(self.cfg.resolved_cache_dir()),
                            metrics=metrics, shared_store=self.data_store)

    def build(self, name: str) -> Stage:
        stage = self.task.build(name)
        for key, value in self.stage_options.get(name, {}).items():
            setattr(stage, key, value)
        return stage

    def run(self, work: Iterable[str] | None = None, *, until: str | None = None) -> Inputs:
        """Run the task's stages in order up to ``until`` (default: all); those in ``work``
        (default: all) do their work, the others are resolved. Returns every stage's result."""
        names = list(self.task.stage_names)
        if until is not None:
            if until not in names:
                raise ConfigError(f"task {self.task.name} has no stage {until!r}; its stages: {', '.join(names)}")
            names = names[: names.index(until) + 1]
        work = set(names if work is None else work)
        results: Inputs = {}
        for name in names:
            stage = self.build(name)
            results[name] = self._run_stage(stage, results) if name in work else self._resolve(stage, results)
        if self.task.summary_after in work and self.task.summary_after in results:
            self.write_summary(results)
        return results

    def run_extra(self, stage: Stage, results: Inputs) -> StageResult:
        """Run a stage outside the task's recipe (``analyze``) on the rows ``run`` handed over,
        with the same console lines and nested tracking run as the task's own stages."""
        return self._run_stage(stage, results)

    def _resolve(self, stage: Stage, results: Inputs) -> StageResult:
        try:
            return stage.resolve(self.context(stage), results)
        except UpstreamMissing:
            # Nothing upstream yet: this stage has no rows either (the stage that needs them says so).
            import pyarrow as pa

            return StageResult(pa.table({}), {"rows": 0})

    def _run_stage(self, stage: Stage, results: Inputs) -> StageResult:
        run_id = self.tracker.stage_run(stage.name, stage.identity()) if self.tracker else None
        started = self.console.stage_start(stage.name, stage.describe())
        ok = False
        try:
            result = stage.run(self.context(stage, run_id), results)
            ok = True
        finally:
            if self.tracker is not None and run_id is not None:
                self.tracker.end(run_id, ok)
        if self.tracker is not None and run_id is not None:
            self.tracker.log_metrics(run_id, result.stats)
        self.console.stage_end(stage.name, started, stage.summary_line(result))
        return result

    def write_summary(self, results: Inputs) -> dict[str, Any]:
        summary = self.task.summarize(results)
        markdown = self.task.summary_markdown(summary)
        self.store.write_text(SUMMARY_JSON, json.dumps(summary, indent=2))
        self.store.write_text(SUMMARY_MD, markdown)
        self.console.line("\n" + markdown.rstrip())
        if self.tracker is not None:
            self.tracker.log_metrics(self.tracker.parent, self.task.metrics(summary))
            self.tracker.log_text(json.dumps(summary, indent=2), SUMMARY_JSON)
            self.tracker.log_text(markdown, SUMMARY_MD)
        return summary
