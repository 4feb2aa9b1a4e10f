"""Detect stage: every MIL model scores every test video's segments (Ray Data actors).

Per test video of ``Temporal_Anomaly_Annotation.txt``: its segments as clips of the model's
frame count (:mod:`ray_pipeline.training.mil_data`), then a score per segment: the ranking
scorer's output on the frozen segment embeddings, or, for the top-k head, the fine-tuned model's
P(abnormal) (its logits against the class texts folded into normal vs the rest). The summary
spreads the scores over the video's frames (``segment_to_frame_scores``) and computes the
frame-level AUC and AUC_A. An unreadable video is counted, never fatal.

Manifest ``detect/manifest`` (id ``detect_id``): ``detect_id, model (label), role, head, video,
num_frames, scores (list<float32>, one per segment), error``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ray_pipeline.config import ActorPoolConfig
from ray_pipeline.ids import row_id
from ray_pipeline.stages.base import Inputs, RowStage, Stage, StageContext, StageResult
from ray_pipeline.training.mil_data import BagSampling

OUT_SCHEMA = pa.schema([
    ("detect_id", pa.string()), ("model", pa.string()), ("role", pa.string()), ("head", pa.string()),
    ("video", pa.string()), ("num_frames", pa.int64()), ("scores", pa.list_(pa.float32())), ("error", pa.string()),
])


@dataclass(frozen=True)
class TestVideo:
    """A test video: its file name (as the annotation file writes it) and where it is."""

    video: str
    path: str


@dataclass
class ModelDetection(RowStage):
    """One MIL model on every test video."""

    name = "detect"
    id_column = "detect_id"

    mil: dict[str, Any]  # a row of the mil stage
    backbone: str
    backbone_model: str
    videos: list[TestVideo]
    sampling: BagSampling
    class_texts: list[str]
    normal: int
    pool: ActorPoolConfig
    _loaded: Any = field(default=None, repr=False)

    def identity(self) -> dict[str, Any]:
        return {"mil": self.mil["mil_key"], **dataclasses.asdict(self.sampling)}

    def plan(self, ctx: StageContext, inputs: Inputs) -> pa.Table:
        ident = self.identity()
        return pa.Table.from_pylist([
            {"detect_id": row_id("detect", video=v.path, **ident), "model": self.mil["model"],
             "role": self.mil["role"], "head": self.mil["head"], "video": v.video, "path": v.path}
            for v in self.videos])

    def setup(self, device: str = "cpu") -> None:
        from ray_pipeline.runstore import RunStore
        from ray_pipeline.training.mil import scorer_from_bytes
        from ray_pipeline.training.mil_data import load_model

        model, pre = load_model(self.mil["model_dir"], self.backbone, self.backbone_model, device)
        scorer = None
        if self.mil["scorer_uri"]:
            store, name = RunStore.split(self.mil["scorer_uri"])
            scorer, _ = scorer_from_bytes(store.read_bytes(name))
            scorer = scorer.to(device)
        self._loaded = (model, pre, scorer, device)

    def process(self, batch: pa.Table) -> pa.Table:
        import torch

        from ray_pipeline.training.mil_data import segment_outputs, segment_pixels

        assert self._loaded is not None, "setup() was not called"
        model, pre, scorer, device = self._loaded
        rows = batch.to_pylist()
        for row in rows:
            path = row.pop("path")
            row.update(num_frames=0, scores=[], error=None)
            try:
                pixels, frames = segment_pixels(path, pre, self.sampling)
            except Exception as exc:  # an unreadable video is counted, not fatal
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            texts = None if scorer is not None else self.class_texts
            embedding, p_abnormal = segment_outputs(model, pixels.to(device), texts, self.normal)
            if scorer is not None:
                with torch.no_grad():
                    scores = scorer.score(torch.as_tensor(embedding, device=device)).cpu().numpy()
            else:
                scores = p_abnormal
            row.update(num_frames=frames, scores=[float(s) for s in scores])
        return pa.Table.from_pylist(rows, schema=OUT_SCHEMA)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}


@dataclass
class DetectStage(Stage):
    """Segment scores of every test video for every MIL model (see the module docstring).

    Attributes:
        videos: the annotated test videos, resolved under the video root.
        backbone: ``train.backbone`` resolved to a hub id or path.
        backbone_model: the video-text model the backbone is built as (``xclip``).
        sampling: how a video becomes segment clips.
        class_texts: what the top-k head scores against; ``normal`` the normal one's index.
        pool: the actor pool (``anomaly.pool``).
    """

    name = "detect"

    videos: list[TestVideo]
    backbone: str
    backbone_model: str
    sampling: BagSampling
    class_texts: list[str]
    normal: int
    pool: ActorPoolConfig

    def identity(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "videos": len(self.videos), **dataclasses.asdict(self.sampling)}

    def describe(self) -> str:
        return f"{len(self.videos)} test videos x {self.sampling.num_segments} segments"

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        return f"{s.get('models', 0)} model(s) x {len(self.videos)} videos ({s.get('rows_new', 0)} new rows)"

    def per_model(self, mil: dict[str, Any]) -> ModelDetection:
        return ModelDetection(mil, self.backbone, self.backbone_model, self.videos, self.sampling, self.class_texts,
                              self.normal, self.pool)

    def _detect(self, ctx: StageContext, inputs: Inputs, *, run: bool) -> StageResult:
        log = ctx.console.logger(self.name)
        tables, new = [], 0
        mils = self.upstream(inputs, "mil").to_pylist()
        for mil in mils:
            stage = self.per_model(mil)
            if run:
                log(mil["model"])
            result = stage.run(ctx, inputs) if run else stage.resolve(ctx, inputs)
            tables.append(result.rows)
            new += int(result.stats.get("rows_new", 0))
        rows = pa.concat_tables(tables, promote_options="permissive")
        return StageResult(rows, {"rows": rows.num_rows, "rows_new": new, "models": len(mils)})

    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._detect(ctx, inputs, run=True)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._detect(ctx, inputs, run=False)
