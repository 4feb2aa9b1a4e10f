"""``ray-pipeline analyze CONFIG --run-dir DIR [--compare RUN_DIR ...]``.

Resolves this config's generate and score rows in ``DIR`` (no work: the data stages must have run),
the same rows of every ``--compare`` run from its own ``config.yaml``, and the real videos of
``evaluate.datasets``; then runs :class:`~ray_pipeline.stages.analyze.AnalyzeStage` through the
pipeline (console lines, a nested MLflow run like every stage's) and attaches ``metrics.json``, the
t-SNE picture and the data-quality report to the invocation's MLflow run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from ray_pipeline.analysis.outputs import METRICS_JSON, QUALITY_HTML, TSNE_PNG
from ray_pipeline.analysis.report import table8_rows
from ray_pipeline.cluster import Cluster
from ray_pipeline.config import ConfigError, DatasetConfig, ExperimentConfig, format_validation_error
from ray_pipeline.console import Console
from ray_pipeline.evaluation.datasets import load_splits, resolve_path
from ray_pipeline.ids import row_id
from ray_pipeline.pipeline import Pipeline
from ray_pipeline.runstore import RunStore, local_copy
from ray_pipeline.stages.analyze import AnalyzeStage, VideoSet
from ray_pipeline.stages.base import Inputs
from ray_pipeline.tracking import RunTracker

# Row labels of generated sets, as the paper's tables name the prompt strategies.
STRATEGY_LABELS = {"basic": "Basic", "env": "Env", "cha": "Cha", "ie": "IE"}


def set_label(cfg: ExperimentConfig) -> str:
    """A generated set's row label: its prompt strategy as the paper writes it."""
    return STRATEGY_LABELS.get(cfg.prompts.strategy, cfg.prompts.strategy)


def _unique(name: str, run_name: str, taken: set[str]) -> str:
    candidate, k = name, 2
    if candidate in taken:
        candidate = f"{name} ({run_name})"
    while candidate in taken:
        candidate, k = f"{name} ({run_name}, {k})", k + 1
    taken.add(candidate)
    return candidate


def run_config(store: RunStore) -> ExperimentConfig:
    """The resolved config a run directory was last run with (its ``config.yaml``)."""
    where = store.uri("config.yaml")
    if not store.exists("config.yaml"):
        raise ConfigError(f"--compare {store.root}: no config.yaml there (not a run directory, or nothing "
                          "ran there yet)")
    try:
        data = yaml.safe_load(store.read_text("config.yaml")) or {}
        return ExperimentConfig.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where, [])) from None


def scored_clips(results: Inputs, store: RunStore, name: str) -> VideoSet:
    """A run's generated set from its resolved rows; a clear error when it has none yet."""
    scores = results.get("score")
    if scores is None or scores.rows.num_rows == 0:
        raise FileNotFoundError(f"{store.root}: no scored clips for its config yet; run `ray-pipeline run` "
                                "(or prompts, generate and score) there first")
    return VideoSet.generated(name, store.root, results["generate"].rows, scores.rows)


def dataset_video_key(ds: DatasetConfig, cfg: ExperimentConfig, root: str, video: str) -> str:
    """A real video's content id: the dataset and the video's path inside it, the same on any
    machine; a world dataset is named by its build (the folder named after its settings)."""
    rel = video[len(root):].lstrip("/") if video.startswith(root) else video
    where = ds.name
    if ds.is_world:
        built = resolve_path("world:", cfg)
        where = f"world:{built.name}/{ds.root.split(':', 1)[1]}"
    return row_id("dataset-video", dataset=where, video=rel)


def real_sets(cfg: ExperimentConfig) -> list[VideoSet]:
    """Every video of every configured split of ``evaluate.datasets``, once each, with its class."""
    sets = []
    for ds in cfg.evaluate.datasets:
        root = str(resolve_path(ds.root, cfg))
        videos: dict[str, str] = {}
        for split in load_splits(ds, cfg):
            for video, label in zip(split.videos, split.labels):
                videos.setdefault(video, split.class_names[label])
        uris = sorted(videos)
        sets.append(VideoSet(ds.name, "real", [dataset_video_key(ds, cfg, root, v) for v in uris], uris,
                             [videos[v] for v in uris]))
    return sets


def analyze(cfg: ExperimentConfig, store: RunStore, compare: Sequence[str], console: Console, *,
            tracker: RunTracker | None = None, cluster: Cluster | None = None) -> dict[str, Any]:
    """Analyse the generated set of ``cfg`` in ``store`` beside ``compare`` runs' and the real sets.

    Args:
        cfg: the experiment (its score stage's model extracts the features).
        store: the run directory; outputs go to its ``analysis/``.
        compare: other run directories whose generated sets are compared too.
        console: status and progress lines.
        tracker: the invocation's MLflow runs (None: no tracking).
        cluster: Ray (default: one for this config, started only if features are missing).

    Returns:
        ``analysis/metrics.json`` as a dict.
    """
    if not cfg.evaluate.datasets:
        raise ConfigError("evaluate.datasets: analyze compares the generated clips with real datasets and "
                          "needs at least one (MMD is measured against the first)")
    pipeline = Pipeline(cfg, store, console, tracker=tracker, cluster=cluster)
    results = pipeline.run([], until="score")
    own_name = set_label(cfg)
    scored_clips(results, store, own_name)  # nothing to analyse: say so before reading anything else
    taken = {ds.name for ds in cfg.evaluate.datasets} | {own_name}
    others = []
    for path in compare:
        other_store = RunStore(path)
        other_cfg = run_config(other_store)
        other = Pipeline(other_cfg, other_store, console, cluster=pipeline.cluster).run([], until="score")
        name = _unique(set_label(other_cfg), other_store.name, taken)
        others.append(scored_clips(other, other_store, name))
    score = pipeline.build("score")
    stage = AnalyzeStage(cfg.analysis, cfg.score, score.model_path, list(score.class_names), own_name,
                         real_sets(cfg), others, cfg.generate.weights_cache)
    pipeline.run_extra(stage, results)
    metrics = json.loads(store.read_text(METRICS_JSON))
    header, rows = table8_rows(metrics)
    console.line("\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                           + ["| " + " | ".join(r) + " |" for r in rows]))
    console.line(f"[analyze] data-quality report: {store.uri(QUALITY_HTML)}")
    if tracker is not None:
        attach(tracker, store)
    return metrics


def attach(tracker: RunTracker, store: RunStore) -> None:
    """The analysis files as artifacts of the invocation's MLflow run, and the report's location as a tag."""
    client, run = tracker.client, tracker.parent
    for rel in (METRICS_JSON, TSNE_PNG, QUALITY_HTML):
        with local_copy(store.uri(rel)) as path:
            client.log_artifact(run, path, "analysis")
    with local_copy(store.uri(QUALITY_HTML.removesuffix(".html"))) as path:  # the report's images
        client.log_artifacts(run, path, "analysis/quality")
    client.set_tag(run, "quality_report", store.uri(QUALITY_HTML))
