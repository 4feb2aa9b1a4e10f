"""Analyze stage: what the generated data looks like next to the real data (the paper's Table 8 and
Figure 1) and the data-quality report. Not part of a task's recipe: ``ray-pipeline analyze`` runs it
after the data stages it resolves (:mod:`ray_pipeline.analysis.command`).

The sets: the run's own generated clips (the generate and score rows handed over), other runs'
generated clips (``--compare``) and the real videos of ``evaluate.datasets``. Their CLIP video
features come from :class:`FeatureExtraction`, a row stage on Ray Data actors with the score stage's
model (``score.model``, ``score.num_frames`` TSN frames, ``score.dtype``: the features the score
stage compares with class prompts). A feature's id is the video's content id (clip id, or dataset
video) and the extractor's identity, and the rows are kept in the data store's
``analysis/features/manifest``: a rerun, or another analysis of the same clips, extracts nothing.
What is computed from the features is :func:`ray_pipeline.analysis.outputs.write_analysis`.

Manifest ``analysis/features/manifest`` (id ``feature_id``): ``feature_id, key, video_uri,
feature (list<float32>, null when the video could not be decoded), error, extractor``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ray_pipeline.analysis.compare import FeatureSet
from ray_pipeline.analysis.outputs import METRICS_JSON, GeneratedSet, flat_metrics, write_analysis
from ray_pipeline.analysis.quality_report import ClipRecord
from ray_pipeline.config import ActorPoolConfig, AnalysisConfig, ScoreConfig
from ray_pipeline.ids import row_id
from ray_pipeline.models.resolve import model_fingerprint
from ray_pipeline.runstore import Manifest, RunStore
from ray_pipeline.stages.base import Inputs, RowStage, Stage, StageContext, StageResult

FEATURES_MANIFEST = "analysis/features/manifest"


@dataclass(frozen=True)
class VideoSet:
    """The videos of one set, by content id, with their classes (and, generated, their scores).

    Attributes:
        name: the row label ("world_hmdb", "IE", ...).
        kind: "real" or "generated".
        keys: each video's content id (a clip id; a dataset video's id).
        uris: where each video is.
        labels: each video's class name.
        run_dir: the run a generated set comes from.
        uncertainty: generated: each clip's score-stage entropy.
        failed: generated: whether the generator failed on each clip (None: unknown).
    """

    name: str
    kind: str
    keys: list[str]
    uris: list[str]
    labels: list[str]
    run_dir: str = ""
    uncertainty: list[float] | None = None
    failed: list[bool | None] | None = None

    @classmethod
    def generated(cls, name: str, run_dir: str, clips: pa.Table, scores: pa.Table) -> VideoSet:
        """A run's scored clips: its generate rows joined with its score rows on ``clip_id``."""
        entropy = dict(zip(scores.column("clip_id").to_pylist(), scores.column("entropy").to_pylist()))
        failed = (clips.column("failed").to_pylist() if "failed" in clips.column_names
                  else [None] * clips.num_rows)
        rows = [(c, u, n, entropy[c], f) for c, u, n, f in zip(
            clips.column("clip_id").to_pylist(), clips.column("video_uri").to_pylist(),
            clips.column("class_name").to_pylist(), failed) if c in entropy]
        rows.sort(key=lambda r: r[0])  # by clip id, whatever order the manifest parts came in
        keys, uris, labels, entropies, flags = (list(c) for c in zip(*rows)) if rows else ([], [], [], [], [])
        return cls(name, "generated", keys, uris, labels, run_dir, [float(h) for h in entropies], flags)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class FeatureExtraction(RowStage):
    """CLIP video features of a list of videos, cached by content id and extractor.

    Attributes:
        score: the ``score`` section (model, frames, dtype, template: the score stage's model).
        model_path: ``score.model`` resolved to a hub id or path.
        class_names: the score stage's class names (the scorer is built with them; features do
            not depend on them).
        pool: actor pool sizing.
        videos: rows with ``key`` (content id) and ``video_uri``.
        weights_cache: the HF cache shared by actors.
    """

    name = "features"
    data_stage = True
    id_column = "feature_id"

    score: ScoreConfig
    model_path: str
    class_names: list[str]
    pool: ActorPoolConfig
    videos: pa.Table
    weights_cache: str | None = None
    scorer: Any = field(default=None, repr=False)

    def identity(self) -> dict[str, Any]:
        # Image features depend on the model, the frames sampled and the dtype, not on prompts.
        s = self.score
        return {"model": model_fingerprint(s.model), "num_frames": s.num_frames, "dtype": s.dtype}

    def extractor_id(self) -> str:
        return row_id("extractor", **self.identity())

    def manifest(self, store: RunStore) -> Manifest:
        return Manifest(store, FEATURES_MANIFEST, self.id_column)

    def plan(self, ctx: StageContext, inputs: Inputs) -> pa.Table:
        extractor = self.extractor_id()
        seen: dict[str, str] = {}
        videos = self.videos
        for key, uri in zip(videos.column("key").to_pylist(), videos.column("video_uri").to_pylist()):
            seen.setdefault(key, uri)
        keys = sorted(seen)
        return pa.table({"feature_id": [row_id("feature", key=k, extractor=extractor) for k in keys],
                         "key": keys, "video_uri": [seen[k] for k in keys],
                         "extractor": [extractor] * len(keys)})

    def setup(self, device: str = "cpu") -> None:
        from ray_pipeline.models.clip_scorer import ClipScorer

        s = self.score
        self.scorer = ClipScorer(self.model_path, self.class_names, s.prompt_template, s.num_frames,
                                 device=device, dtype=s.dtype, cache_dir=self.weights_cache)

    def process(self, batch: pa.Table) -> pa.Table:
        from ray_pipeline.video_io import read_frames

        assert self.scorer is not None, "setup() was not called"
        uris = batch.column("video_uri").to_pylist()
        clips, readable, errors = [], [], [None] * len(uris)
        for i, uri in enumerate(uris):
            try:
                clips.append(read_frames(uri, num_segments=self.scorer.num_frames))
                readable.append(i)
            except Exception as exc:  # an unreadable real video is left out and counted, not fatal
                errors[i] = f"{type(exc).__name__}: {exc}"[:300]
        features: list[list[float] | None] = [None] * len(uris)
        if clips:
            for i, f in zip(readable, self.scorer.video_features(clips).cpu().numpy().astype(np.float32)):
                features[i] = f.tolist()
        return pa.table({"feature_id": batch.column("feature_id"), "key": batch.column("key"),
                         "video_uri": batch.column("video_uri"),
                         "feature": pa.array(features, pa.list_(pa.float32())),
                         "error": pa.array(errors, pa.string()), "extractor": batch.column("extractor")})

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "scorer": None}


@dataclass
class AnalyzeStage(Stage):
    """Davies-Bouldin, MMD², t-SNE and the data-quality report of this run's generated set.

    Attributes:
        settings: the ``analysis`` section.
        score: the ``score`` section (the feature extractor is the score stage's model).
        model_path: ``score.model`` resolved.
        class_names: the classes of this config, by label id.
        own_name: the row label of this run's generated set.
        real: the real sets (MMD is measured against the first).
        compare: other runs' generated sets.
        weights_cache: the HF cache shared by actors.
    """

    name = "analyze"

    settings: AnalysisConfig
    score: ScoreConfig
    model_path: str
    class_names: list[str]
    own_name: str
    real: list[VideoSet]
    compare: list[VideoSet] = field(default_factory=list)
    weights_cache: str | None = None

    def extraction(self, sets: list[VideoSet]) -> FeatureExtraction:
        videos = pa.table({"key": [k for s in sets for k in s.keys],
                           "video_uri": [u for s in sets for u in s.uris]})
        pool = self.settings.pool or self.score.pool
        return FeatureExtraction(self.score, self.model_path, self.class_names, pool, videos,
                                 self.weights_cache)

    def identity(self) -> dict[str, Any]:
        return {"extractor": self.extraction([]).identity(), "own": self.own_name,
                "real": [s.name for s in self.real], "compare": [s.run_dir for s in self.compare],
                "tsne_seed": self.settings.tsne_seed}

    def describe(self) -> str:
        names = [s.name for s in self.real] + [self.own_name] + [s.name for s in self.compare]
        return f"{', '.join(names)}; CLIP features from {self.score.model}"

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        return (f"{s.get('sets', 0)} sets, {s.get('videos', 0)} videos "
                f"({s.get('features_new', 0)} features new); wrote analysis/metrics.json, tsne.png, "
                "quality.html")

    def own_set(self, inputs: Inputs) -> VideoSet:
        clips, scores = self.upstream(inputs, "generate"), self.upstream(inputs, "score")
        return VideoSet.generated(self.own_name, "", clips, scores)

    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        own = dataclasses.replace(self.own_set(inputs), run_dir=ctx.run_store.root)
        sets = [*self.real, own, *self.compare]
        extraction = self.extraction(sets)
        # Features live beside the clips (the shared data store), so other runs and reruns reuse them.
        extracted = extraction.run(dataclasses.replace(ctx, store=ctx.shared_store), {})
        features = {r["key"]: r["feature"] for r in extracted.rows.to_pylist()}
        skipped: dict[str, int] = {}
        real, generated = [], []
        for s in sets:
            keep = [i for i, k in enumerate(s.keys) if features.get(k) is not None]
            skipped[s.name] = len(s) - len(keep)
            if not keep:
                raise ValueError(f"analyze: no video of set {s.name!r} could be decoded ({len(s)} tried)")
            x = np.asarray([features[s.keys[i]] for i in keep], dtype=np.float64)
            if s.kind == "real":
                real.append(FeatureSet(s.name, "real", x, np.array([s.labels[i] for i in keep])))
            else:
                clips = [ClipRecord(s.keys[i], s.labels[i], s.uncertainty[i], s.failed[i], s.uris[i])
                         for i in keep]
                generated.append(GeneratedSet(s.name, s.run_dir, clips, x))
        a = self.settings
        metrics = write_analysis(ctx.run_store, real, generated, report_set=own.name,
                                 class_names=self.class_names, tsne_seed=a.tsne_seed,
                                 frames_per_strip=a.frames_per_strip, clips_per_strip=a.clips_per_strip,
                                 extractor={**extraction.identity(), "id": extraction.extractor_id()},
                                 skipped=skipped)
        stats = {**flat_metrics(metrics), "sets": len(sets), "videos": sum(len(s) for s in sets),
                 "features_new": extracted.stats.get("rows_new", 0), "videos_skipped": sum(skipped.values()),
                 "feature_seconds": extracted.stats.get("seconds", 0.0)}
        return StageResult(pa.Table.from_pylist(metrics["sets"]), stats)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        if not ctx.run_store.exists(METRICS_JSON):
            return StageResult(pa.table({}), {"sets": 0})
        metrics = json.loads(ctx.run_store.read_text(METRICS_JSON))
        stats = {**flat_metrics(metrics), "sets": len(metrics["sets"])}
        return StageResult(pa.Table.from_pylist(metrics["sets"]), stats)
