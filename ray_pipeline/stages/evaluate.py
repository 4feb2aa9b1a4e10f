"""Evaluate stage: zero-shot action recognition of every model on every configured dataset split.

Each split is scored only against its own class names (HMDB-51/UCF-101: 3 test splits of all
classes; K600: 3 splits of 160 new classes each). A video is seen through ``num_clips`` random TSN
samples (TC-CLIP's 2 clips x 1 centre crop); per-view softmaxes are summed. A video that cannot be
decoded is counted and reported, never fatal.

Models: the backbone as is (frame-averaged CLIP: vanilla CLIP's role; an X-CLIP backbone as the
X-CLIP it is) when ``evaluate.baseline``, and every model the train stage handed on. One actor
pool per model (an actor holds one model).
The class-name side that does not depend on the video (TC-CLIP: text blocks 1..L-1; ViFi-CLIP: all
of it) is computed once per split and reused for every video. On a GPU the views of several videos
go through one forward pass under autocast (``evaluate.batched``, ``videos_per_forward``,
``precision``); on CPU each video is one pass in fp32, as the tests' numbers were measured.

Manifest ``evaluate/manifest`` (id ``eval_id``): ``eval_id, model (its label), role, dataset, split,
split_key, video, label, predicted, top1, top5, error``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ray_pipeline.config import ActorPoolConfig, ConfigError, EvaluateConfig
from ray_pipeline.evaluation.datasets import Split
from ray_pipeline.ids import row_id
from ray_pipeline.models.resolve import model_fingerprint
from ray_pipeline.runstore import RunStore, local_copy
from ray_pipeline.stages.base import Inputs, RowStage, Stage, StageContext, StageResult

BACKBONE_LABEL = "backbone (no generated data)"

OUT_SCHEMA = pa.schema([
    ("eval_id", pa.string()), ("model", pa.string()), ("role", pa.string()), ("dataset", pa.string()),
    ("split", pa.string()), ("split_key", pa.string()), ("video", pa.string()), ("label", pa.int64()),
    ("predicted", pa.int64()), ("top1", pa.bool_()), ("top5", pa.bool_()), ("error", pa.string()),
])


def view_rng(seed: int, video_key: str) -> np.random.Generator:
    """The random TSN offsets of one test video's views (as TC-CLIP's multi-clip test): seeded by
    the evaluation seed and the video's path below its dataset root, so repeatable anywhere."""
    return np.random.default_rng([seed, int(row_id("v", v=video_key), 16) % (2**32)])


@dataclass(frozen=True)
class ModelRef:
    """A model to evaluate: ``model_dir`` None is the untrained backbone. A ``shared`` model (the
    backbone; a model trained in a shared phase) is evaluated into the shared store, so every run
    and sweep trial that evaluates it with the same protocol finds its rows instead of redoing them."""

    label: str
    role: str
    model_dir: str | None
    shared: bool = False


@dataclass
class ModelEvaluation(RowStage):
    """One model on every (dataset, split, video) row."""

    name = "evaluate"
    id_column = "eval_id"

    model: ModelRef
    backbone: str
    splits: list[tuple[str, Split]]
    num_frames: int
    num_clips: int
    seed: int
    pool: ActorPoolConfig
    batched: str = "auto"
    videos_per_forward: int = 16
    precision: str = "auto"
    backbone_model: str = "vificlip"
    _loaded: Any = field(default=None, repr=False)

    def identity(self) -> dict[str, Any]:
        # Batching is left out, like generation's prompts_per_call: it reorders float sums only (on
        # CPU batched and one-by-one predictions agree; a test checks). Autocast changes precision;
        # "auto" is fp32 on CPU as before, so it keeps the ids rows had before the setting existed.
        # "views": the test views are seeded by the video's path below its dataset root (they were
        # once seeded by the absolute path); naming the rule keeps rows of the old rule from reuse.
        ident = {"model": self.model.model_dir or model_fingerprint(self.backbone), "frames": self.num_frames,
                 "clips": self.num_clips, "seed": self.seed, "views": "relative-path"}
        return ident if self.precision == "auto" else {**ident, "precision": self.precision}

    def store(self, ctx: StageContext) -> RunStore:
        return ctx.shared_store if self.model.shared else ctx.store

    def plan(self, ctx: StageContext, inputs: Inputs) -> pa.Table:
        model_key = row_id("eval-model", **self.identity())
        rows = [{"eval_id": row_id("eval", m=model_key, d=ds, s=split.name, v=v), "model": self.model.label,
                 "role": self.model.role, "dataset": ds, "split": split.name, "split_key": f"{ds}/{split.name}",
                 "video": v, "label": int(y)}
                for ds, split in self.splits for v, y in zip(split.videos, split.labels)]
        return pa.Table.from_pylist(rows)

    def setup(self, device: str = "cpu") -> None:
        from ray_pipeline.models.base import build_video_text_model, load_video_text_model
        from ray_pipeline.models.preprocess import Preprocess

        if self.model.model_dir:
            # A remote model (a run directory in a bucket) is fetched to a temporary folder on this
            # actor's node, loaded, and the copy dropped: everything needed is in memory then.
            with local_copy(self.model.model_dir) as local_dir:
                model = load_video_text_model(local_dir)
                # A trained model was fed the backbone's preprocessing; its checkpoint holds no
                # preprocessor_config.json.
                own = os.path.isfile(os.path.join(local_dir, "preprocessor_config.json"))
                pre = Preprocess.from_pretrained(local_dir if own else self.backbone)
        else:
            model = build_video_text_model(self.backbone_model, self.backbone)
            pre = Preprocess.from_pretrained(self.backbone)
        self._loaded = (model.to(device).eval(), pre, device)
        self._names = {f"{ds}/{split.name}": split.class_names for ds, split in self.splits}
        self._splits = {f"{ds}/{split.name}": split for ds, split in self.splits}
        self._classes: dict[str, Any] = {}
        self._autocast = autocast_dtype(self.precision, device)
        self._batched = self.batched == "on" or (self.batched == "auto" and device.startswith("cuda"))
        print(f"[evaluate] {self.model.label} on {device}: "
              f"{f'{self.videos_per_forward} videos per pass' if self._batched else 'one video per pass'}, "
              f"{self._autocast or 'fp32'}", flush=True)

    def _class_text(self, split_key: str) -> Any:
        """The split's class-name side, computed on first use (under this actor's autocast)."""
        if split_key not in self._classes:
            model = self._loaded[0]
            with torch_inference(self._autocast, self._loaded[2]):
                self._classes[split_key] = model.encode_classes(self._names[split_key])
        return self._classes[split_key]

    def _views(self, video: str, split_key: str, pre: Any) -> Any:
        import torch

        from ray_pipeline.models.preprocess import clip_tensor
        from ray_pipeline.video_io import read_frames

        rng = view_rng(self.seed, self._splits[split_key].view_key(video))
        views = [read_frames(video, num_segments=self.num_frames, random=self.num_clips > 1, rng=rng)
                 for _ in range(self.num_clips)]
        return torch.stack([clip_tensor(v, pre, train=False) for v in views])

    def process(self, batch: pa.Table) -> pa.Table:
        assert self._loaded is not None, "setup() was not called"
        model, pre, device = self._loaded
        rows = batch.to_pylist()
        decoded: dict[str, list[tuple[dict, Any]]] = {}  # split key -> (row, views) in row order
        for row in rows:
            row.update(predicted=-1, top1=False, top5=False, error=None)
            try:
                views = self._views(row["video"], row["split_key"], pre)
            except Exception as exc:  # unreadable or corrupt file: count it, go on
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            decoded.setdefault(row["split_key"], []).append((row, views))
        step = self.videos_per_forward if self._batched else 1
        for split_key, items in decoded.items():
            classes = self._class_text(split_key)
            for start in range(0, len(items), step):
                chunk = items[start:start + step]
                top5 = self._top5(model, [v for _, v in chunk], classes, device)
                for (row, _), order in zip(chunk, top5):
                    row.update(predicted=order[0], top1=order[0] == row["label"], top5=row["label"] in order)
        return pa.Table.from_pylist(rows, schema=OUT_SCHEMA)

    def _top5(self, model: Any, views: list[Any], classes: Any, device: str) -> list[list[int]]:
        """The 5 best classes of each video (views' softmaxes summed), from one forward pass over
        all their views and one read of the result by the host."""
        import torch

        pixels = torch.cat(views).to(device, non_blocking=True)  # [videos x clips, T, 3, S, S]
        with torch_inference(self._autocast, device):
            logits = model.class_logits(pixels, list(classes.names), classes)
        probs = logits.float().softmax(-1).view(len(views), self.num_clips, -1).sum(1)
        return probs.argsort(dim=-1, descending=True)[:, :5].cpu().tolist()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}


def autocast_dtype(precision: str, device: str) -> Any:
    """The autocast dtype of ``evaluate.precision`` on ``device`` (None: fp32).

    ``auto``: bf16 on a GPU that has it, else fp16; fp32 on CPU. bf16 asked for on a GPU without
    it falls back to fp16."""
    import torch

    if precision == "fp32" or (precision == "auto" and not device.startswith("cuda")):
        return None
    if device.startswith("cuda") and precision in ("auto", "bf16"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def torch_inference(dtype: Any, device: str) -> Iterator[None]:
    """Inference mode, under autocast to ``dtype`` unless it is None."""
    import torch

    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
        yield


@dataclass
class EvaluateStage(Stage):
    """Every model (the backbone, then the trained ones) on every configured split.

    Attributes:
        settings: the ``evaluate`` section.
        splits: (dataset name, split) pairs, loaded by the task.
        backbone: ``train.backbone`` resolved to a hub id or path.
        num_frames: frames per view.
        backbone_model: the video-text model the untrained backbone is evaluated as (``vificlip``:
            frame-averaged CLIP; ``xclip`` for an X-CLIP backbone).
    """

    name = "evaluate"

    settings: EvaluateConfig
    splits: list[tuple[str, Split]]
    backbone: str
    num_frames: int
    backbone_model: str = "vificlip"

    def identity(self) -> dict[str, Any]:
        ev = self.settings
        return {"num_clips": ev.num_clips, "num_frames": self.num_frames, "seed": ev.seed, "backbone": self.backbone,
                "datasets": [d.model_dump(mode="json") for d in ev.datasets], "precision": ev.precision}

    def describe(self) -> str:
        videos = sum(len(s) for _, s in self.splits)
        return (f"{videos} videos over {len(self.splits)} splits, {self.settings.num_clips} clips x "
                f"{self.num_frames} frames")

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        return f"{s.get('models', 0)} model(s) x {s.get('videos', 0)} videos ({s.get('rows_new', 0)} new rows)"

    def models(self, inputs: Inputs) -> list[ModelRef]:
        models = [ModelRef(BACKBONE_LABEL, "backbone", None, shared=True)] if self.settings.baseline else []
        trained = inputs.get("train")
        if trained is not None:
            models += [ModelRef(r["label"], r["role"], r["model_dir"], bool(r.get("shared")))
                       for r in trained.rows.to_pylist()]
        if not models:
            raise ConfigError("evaluate: nothing to evaluate: no trained model for this config in the run directory "
                              "(run `ray-pipeline train` first) and evaluate.baseline is false")
        return models

    def per_model(self, model: ModelRef) -> ModelEvaluation:
        ev = self.settings
        return ModelEvaluation(model, self.backbone, self.splits, self.num_frames, ev.num_clips, ev.seed, ev.pool,
                               batched=ev.batched, videos_per_forward=ev.videos_per_forward, precision=ev.precision,
                               backbone_model=self.backbone_model)

    def _evaluate(self, ctx: StageContext, inputs: Inputs, *, run: bool) -> StageResult:
        log = ctx.console.logger(self.name)
        tables, new = [], 0
        models = self.models(inputs)
        for model in models:
            stage = self.per_model(model)
            if run:
                log(f"{model.label}")
            result = stage.run(ctx, inputs) if run else stage.resolve(ctx, inputs)
            tables.append(result.rows)
            new += int(result.stats.get("rows_new", 0))
        rows = pa.concat_tables(tables, promote_options="permissive")
        return StageResult(rows, {"rows": rows.num_rows, "rows_new": new, "models": len(models),
                                  "videos": sum(len(s) for _, s in self.splits)})

    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._evaluate(ctx, inputs, run=True)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._evaluate(ctx, inputs, run=False)
