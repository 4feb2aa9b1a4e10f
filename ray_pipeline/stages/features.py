"""Features stage: frozen segment embeddings of the anomaly training videos, per model (Ray Data actors).

What the ranking MIL head learns from (Sultani et al. train their scorer on frozen C3D features).
Every training video of ``Anomaly_Train.txt`` is cut into its segments
(:mod:`ray_pipeline.training.mil_data`) and each segment clip embedded by the model's video
encoder (L2-normalised). Models: the backbone as is (the ``baseline`` row: MIL without generated
pre-training) and every model the train stage handed on.

A row's id is the model's identity (the backbone's resolved location, or a trained model's
content key), the video and the segment sampling. The backbone's rows (and those of a model of a
shared train phase) do not depend on any setting of the run, so they live in the shared store,
where every run and sweep trial finds them.

Manifest ``features/manifest`` (id ``feature_id``): ``feature_id, model (label), role, video
(file name), path, anomalous, num_frames, features (list<float32>, S x P row-major), dim,
error``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ray_pipeline.config import ActorPoolConfig
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.base import Inputs, RowStage, Stage, StageContext, StageResult
from ray_pipeline.training.mil_data import BagSampling, BagVideo, MilModel, model_refs

OUT_SCHEMA = pa.schema([
    ("feature_id", pa.string()), ("model", pa.string()), ("role", pa.string()), ("video", pa.string()),
    ("path", pa.string()), ("anomalous", pa.bool_()), ("num_frames", pa.int64()),
    ("features", pa.list_(pa.float32())), ("dim", pa.int64()), ("error", pa.string()),
])


@dataclass
class ModelSegmentFeatures(RowStage):
    """One model's segment embeddings of every training video."""

    name = "features"
    id_column = "feature_id"

    model: MilModel
    backbone: str
    backbone_model: str
    videos: list[BagVideo]
    sampling: BagSampling
    pool: ActorPoolConfig
    _loaded: Any = field(default=None, repr=False)

    def identity(self) -> dict[str, Any]:
        return {"model": self.model.key, **dataclasses.asdict(self.sampling)}

    def store(self, ctx: StageContext) -> RunStore:
        # The backbone's features (and a shared phase's model's) depend on no seed or head setting:
        # every run and sweep trial finds them there.
        return ctx.shared_store if self.model.shared else ctx.store

    def plan(self, ctx: StageContext, inputs: Inputs) -> pa.Table:
        ident = self.identity()
        rows = [{"feature_id": row_id("segment-features", video=v.path, **ident), "model": self.model.label,
                 "role": self.model.role, "video": v.video, "path": v.path, "anomalous": v.anomalous}
                for v in self.videos]
        return pa.Table.from_pylist(rows)

    def setup(self, device: str = "cpu") -> None:
        from ray_pipeline.training.mil_data import load_model

        self._loaded = (*load_model(self.model.model_dir, self.backbone, self.backbone_model, device), device)

    def process(self, batch: pa.Table) -> pa.Table:
        from ray_pipeline.training.mil_data import segment_outputs, segment_pixels

        assert self._loaded is not None, "setup() was not called"
        model, pre, device = self._loaded
        rows = batch.to_pylist()
        for row in rows:
            row.update(num_frames=0, features=[], dim=0, error=None)
            try:
                pixels, frames = segment_pixels(row["path"], pre, self.sampling)
            except Exception as exc:  # an unreadable video is counted, not fatal
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            embedding, _ = segment_outputs(model, pixels.to(device))
            row.update(num_frames=frames, features=embedding.reshape(-1).tolist(), dim=int(embedding.shape[1]))
        return pa.Table.from_pylist(rows, schema=OUT_SCHEMA)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}


@dataclass
class FeaturesStage(Stage):
    """Segment embeddings of the training videos for every model (see the module docstring).

    Attributes:
        videos: the training videos (``Anomaly_Train.txt``, resolved under the video root).
        backbone: ``train.backbone`` resolved to a hub id or path.
        backbone_model: the video-text model the backbone is built as (``xclip``).
        sampling: how a video becomes segment clips.
        pool: the actor pool (``anomaly.pool``).
    """

    name = "features"

    videos: list[BagVideo]
    backbone: str
    backbone_model: str
    sampling: BagSampling
    pool: ActorPoolConfig

    def identity(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "videos": len(self.videos), **dataclasses.asdict(self.sampling)}

    def describe(self) -> str:
        s = self.sampling
        return (f"{len(self.videos)} training videos x {s.num_segments} segments x {s.frames_per_segment} frames, "
                "frozen")

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        return f"{s.get('models', 0)} model(s) x {len(self.videos)} videos ({s.get('rows_new', 0)} new rows)"

    def per_model(self, model: MilModel) -> ModelSegmentFeatures:
        return ModelSegmentFeatures(model, self.backbone, self.backbone_model, self.videos, self.sampling, self.pool)

    def _features(self, ctx: StageContext, inputs: Inputs, *, run: bool) -> StageResult:
        log = ctx.console.logger(self.name)
        tables, new = [], 0
        trained = inputs.get("train")
        models = model_refs(trained.rows.to_pylist() if trained is not None else None, self.backbone)
        for model in models:
            stage = self.per_model(model)
            if run:
                log(model.label)
            result = stage.run(ctx, inputs) if run else stage.resolve(ctx, inputs)
            tables.append(result.rows)
            new += int(result.stats.get("rows_new", 0))
        rows = pa.concat_tables(tables, promote_options="permissive")
        errors = sum(e is not None for e in rows.column("error").to_pylist()) if rows.num_rows else 0
        return StageResult(rows, {"rows": rows.num_rows, "rows_new": new, "models": len(models),
                                  "unreadable_videos": errors})

    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._features(ctx, inputs, run=True)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._features(ctx, inputs, run=False)
