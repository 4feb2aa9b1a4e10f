"""Score stage: CLIP scores every generated clip against every class name (Ray Data actors).

Per clip the actor decodes only the frames it samples (decord) and scores them with
:class:`~ray_pipeline.models.clip_scorer.ClipScorer`. The stored row holds enough to recompute any
normalisation later: the raw cosine similarities and the logit scale, the softmax, its entropy H
(nats; the paper's eq. 3), p(intended class) and the prediction.

A row's id is the clip's id and the scorer's identity (model, prompt template, frames, dtype, class
names), so a data directory scored by two scorers holds both, and each config gets its own.

Manifest ``score/manifest`` (id ``score_id``): ``score_id, clip_id, class_index, class_name,
similarity (list<float>), logit_scale, probs (list<float>), entropy, entropy_max (= log K),
p_intended, predicted_index, predicted_class, scorer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ray_pipeline.analysis.failures import failure_figures
from ray_pipeline.config import ActorPoolConfig, ScoreConfig
from ray_pipeline.ids import row_id
from ray_pipeline.models.resolve import model_fingerprint
from ray_pipeline.stages.base import Inputs, RowStage, StageContext, StageResult
from ray_pipeline.video_io import read_frames


@dataclass
class ScoreStage(RowStage):
    """CLIP uncertainty of every generated clip of this config.

    Attributes:
        settings: the ``score`` section.
        class_names: every class name, by label id (the prompts stage's classes).
        model_path: ``settings.model`` resolved to a hub id or path (``world:clip`` -> its folder).
        weights_cache: the HF cache shared by actors.
    """

    name = "score"
    data_stage = True
    id_column = "score_id"

    settings: ScoreConfig
    class_names: list[str]
    model_path: str
    weights_cache: str | None = None
    scorer: Any = field(default=None, repr=False)

    @property
    def pool(self) -> ActorPoolConfig:
        return self.settings.pool

    def identity(self) -> dict[str, Any]:
        s = self.settings
        # The configured name (world:clip), not the resolved path: the same model on any machine.
        return {"model": model_fingerprint(s.model), "template": s.prompt_template, "num_frames": s.num_frames,
                "dtype": s.dtype, "classes": self.class_names}

    def scorer_id(self) -> str:
        return row_id("scorer", **self.identity())

    def describe(self) -> str:
        return f"{self.settings.model} against {len(self.class_names)} class names"

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        text = f"{s.get('rows', 0)} clips ({s.get('rows_new', 0)} new)"
        if "entropy_mean" in s:
            text += f", entropy {s['entropy_mean']:.3f} ± {s['entropy_std']:.3f} nats, CLIP top-1 {s['clip_top1']:.2f}"
        if s.get("failure_auroc") is not None:
            text += f", failure AUROC {s['failure_auroc']:.3f} ({s['failed_clips']} failed)"
        return text

    def plan(self, ctx: StageContext, inputs: Inputs) -> pa.Table:
        clips = self.upstream(inputs, "generate")
        scorer = self.scorer_id()
        ids = [row_id("score", clip_id=c, scorer=scorer) for c in clips.column("clip_id").to_pylist()]
        rows = clips.select(["clip_id", "class_index", "class_name", "video_uri"])
        return (rows.append_column("score_id", pa.array(ids, pa.string()))
                .append_column("scorer", pa.array([scorer] * rows.num_rows, pa.string())))

    def setup(self, device: str = "cpu") -> None:
        from ray_pipeline.models.clip_scorer import ClipScorer

        s = self.settings
        self.scorer = ClipScorer(self.model_path, self.class_names, s.prompt_template, s.num_frames, device=device,
                                 dtype=s.dtype, cache_dir=self.weights_cache)

    def process(self, batch: pa.Table) -> pa.Table:
        assert self.scorer is not None, "setup() was not called"
        n = self.scorer.num_frames
        clips = [read_frames(uri, num_segments=n) for uri in batch.column("video_uri").to_pylist()]
        intended = [int(i) for i in batch.column("class_index").to_pylist()]
        out = self.scorer.score(clips, intended)
        k, rows = len(self.class_names), len(clips)
        return pa.table({
            "score_id": batch.column("score_id"), "clip_id": batch.column("clip_id"),
            "class_index": batch.column("class_index"), "class_name": batch.column("class_name"),
            "similarity": pa.array(out["similarity"], pa.list_(pa.float32())),
            "logit_scale": pa.array([self.scorer.logit_scale] * rows, pa.float64()),
            "probs": pa.array(out["probs"], pa.list_(pa.float32())),
            "entropy": pa.array(out["entropy"], pa.float64()),
            "entropy_max": pa.array([float(np.log(k))] * rows, pa.float64()),
            "p_intended": pa.array(out["p_intended"], pa.float64()),
            "predicted_index": pa.array(out["predicted_index"], pa.int32()),
            "predicted_class": pa.array([self.class_names[i] for i in out["predicted_index"]]),
            "scorer": batch.column("scorer"),
        })

    def stats(self, rows: pa.Table) -> dict[str, Any]:
        """Entropy and CLIP's own top-1 over this config's clips (no other scorer's rows)."""
        if rows.num_rows == 0 or not {"entropy", "predicted_index"} <= set(rows.column_names):
            return {}
        entropy = np.asarray(rows.column("entropy").to_pylist(), dtype=np.float64)
        correct = (np.asarray(rows.column("predicted_index").to_pylist())
                   == np.asarray(rows.column("class_index").to_pylist()))
        return {"entropy_mean": float(entropy.mean()), "entropy_std": float(entropy.std()),
                "clip_top1": float(correct.mean())}

    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._with_failures(super().run(ctx, inputs), inputs)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._with_failures(super().resolve(ctx, inputs), inputs)

    @staticmethod
    def _with_failures(result: StageResult, inputs: Inputs) -> StageResult:
        """Adds the failure-detection AUROC where the generator knows its failures (stats() sees
        only score rows; the failures are in the generate rows)."""
        result.stats.update(failure_figures(inputs["generate"].rows, result.rows))
        return result

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "scorer": None}
