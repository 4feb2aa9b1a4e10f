"""MIL stage: each model learns segment scores from the training videos' video-level labels.

Two heads behind ``anomaly.head`` (docs/models.md):

* ``ranking`` (Sultani et al.): a :class:`~ray_pipeline.training.mil.SegmentScorer` trained on
  the features stage's frozen segment embeddings with the ranking loss. Plain PyTorch on the
  driver's CPU (a d -> 512 -> 32 -> 1 MLP; 20,000 steps are minutes); the scorer is written as
  safetensors under ``mil/ranking-<id>/`` and found by id on a rerun (an interrupted fit starts
  again: it has no checkpoints).
* ``topk_ce`` (Lv et al.'s MIL baseline, the paper's row): the video-text model fine-tuned on the
  bags with the top-k MIL cross-entropy, one ``TorchTrainer`` run per model
  (:mod:`ray_pipeline.training.mil_loop`), checkpoints every epoch under ``mil/ray/topk-<id>/``;
  a rerun finds a finished fine-tune by id and continues an interrupted one.

Models: the backbone (``baseline``) and every model the train stage handed on. An id hashes the
head and its settings, the seed, the model's content key and the training data (feature row ids
for ``ranking``; videos and labels, class texts and segment sampling for ``topk_ce``).

Rows handed on (one per model): ``mil_key, model (label), role, head, model_dir`` (the
video-text model that scores test segments: the frozen source for ``ranking``, the fine-tuned
model for ``topk_ce``; None = the backbone), ``scorer_uri`` (``ranking``), ``final_loss,
train_videos, unreadable``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ray_pipeline.cluster import plan_train_workers, torch_threads
from ray_pipeline.config import ConfigError, ExperimentConfig
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore, join_uri
from ray_pipeline.stages.base import Inputs, Stage, StageContext, StageResult
from ray_pipeline.training.loop import MODEL_DIR, latest_checkpoint
from ray_pipeline.training.mil_data import BagSampling, BagVideo, MilModel, model_refs

SCHEMA = pa.schema([
    ("mil_key", pa.string()), ("model", pa.string()), ("role", pa.string()), ("head", pa.string()),
    ("model_dir", pa.string()), ("scorer_uri", pa.string()), ("final_loss", pa.float64()),
    ("train_videos", pa.int64()), ("unreadable", pa.int64()),
])
SCORER_FILE = "scorer.safetensors"


@dataclass
class MilStage(Stage):
    """See the module docstring.

    Attributes:
        cfg: the experiment (its ``anomaly`` section, ``train.seed``, ``train.model``, Ray reserve).
        videos: the training videos and their video-level labels.
        backbone: ``train.backbone`` resolved to a hub id or path.
        sampling: how a video becomes segment clips.
        class_texts: what the top-k head scores segments against (normal one among them).
        normal: index of the normal class in ``class_texts``.
        callbacks: Ray Train ``UserCallback``s for the top-k fine-tunes (a sweep trial passes Tune's).
    """

    name = "mil"

    cfg: ExperimentConfig
    videos: list[BagVideo]
    backbone: str
    sampling: BagSampling
    class_texts: list[str]
    normal: int
    callbacks: list[Any] = field(default_factory=list)

    @property
    def head(self) -> str:
        return self.cfg.anomaly.head

    def settings(self) -> dict[str, Any]:
        a = self.cfg.anomaly
        return getattr(a, self.head).model_dump(mode="json")

    def identity(self) -> dict[str, Any]:
        return {"head": self.head, "settings": self.settings(), "seed": self.cfg.train.seed,
                **dataclasses.asdict(self.sampling)}

    def describe(self) -> str:
        a = self.cfg.anomaly
        n_anomalous = sum(v.anomalous for v in self.videos)
        what = (f"ranking scorer, {a.ranking.iterations} steps" if self.head == "ranking" else
                f"top-{a.topk_ce.k} MIL cross-entropy fine-tune, {a.topk_ce.epochs} epochs")
        return f"{what} on {n_anomalous} anomalous + {len(self.videos) - n_anomalous} normal videos"

    def summary_line(self, result: StageResult) -> str:
        losses = [f"{r['model']}: {r['final_loss']:.4f}" for r in result.rows.to_pylist()]
        return f"{result.rows.num_rows} MIL model(s); final loss " + ", ".join(losses)

    def models(self, inputs: Inputs) -> list[MilModel]:
        trained = inputs.get("train")
        return model_refs(trained.rows.to_pylist() if trained is not None else None, self.backbone)

    # ---------------------------------------------------------------- run / resolve
    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._mil(ctx, inputs, fit=True)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        """The MIL models already trained for this config (none unless every model's is)."""
        return self._mil(ctx, inputs, fit=False)

    def _mil(self, ctx: StageContext, inputs: Inputs, *, fit: bool) -> StageResult:
        log = ctx.console.logger(self.name)
        rows = []
        for model in self.models(inputs):
            fn = self._ranking if self.head == "ranking" else self._topk
            row = fn(ctx, inputs, model, fit=fit, log=log)
            if row is None:
                return StageResult(pa.Table.from_pylist([], schema=SCHEMA), {"models_missing": model.label})
            rows.append(row)
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        stats = {"models": len(rows), **{f"final_loss.{r['role']}": r["final_loss"] for r in rows}}
        return StageResult(table, stats)

    # ---------------------------------------------------------------- ranking
    def _bags(self, inputs: Inputs, model: MilModel) -> tuple[np.ndarray, np.ndarray, list[str], int]:
        """(anomalous bags, normal bags, feature ids, unreadable videos) of one model's features."""
        features = self.upstream(inputs, "features")
        mine = [r for r in features.to_pylist() if r["model"] == model.label]
        by_video = {r["video"]: r for r in mine}
        missing = [v.video for v in self.videos if v.video not in by_video]
        if missing:
            raise FileNotFoundError(f"{model.label}: no segment features of {len(missing)} training videos "
                                    f"(e.g. {missing[:3]}): run `ray-pipeline features` first")
        ok = [by_video[v.video] for v in self.videos if by_video[v.video]["error"] is None]
        bags = {True: [], False: []}
        for r in ok:
            bags[bool(r["anomalous"])].append(np.asarray(r["features"], np.float32).reshape(-1, r["dim"]))
        if not bags[True] or not bags[False]:
            raise ValueError(f"{model.label}: MIL needs readable anomalous and normal training videos, got "
                             f"{len(bags[True])} and {len(bags[False])}")
        return np.stack(bags[True]), np.stack(bags[False]), sorted(r["feature_id"] for r in ok), len(mine) - len(ok)

    def _ranking(self, ctx: StageContext, inputs: Inputs, model: MilModel, *, fit: bool,
                 log: Any) -> dict[str, Any] | None:
        from ray_pipeline.training.mil import ScorerTrainConfig, scorer_bytes, scorer_from_bytes, train_segment_scorer

        anomalous, normal, ids, unreadable = self._bags(inputs, model)
        key = row_id("mil", **self.identity(), model=model.key, features=ids)
        path = f"mil/ranking-{key}/{SCORER_FILE}"
        store = ctx.run_store
        if store.exists(path):
            _, info = scorer_from_bytes(store.read_bytes(path))
            log(f"{model.label}: scorer already trained in {store.uri(path)}")
        elif not fit:
            return None
        else:
            r = self.cfg.anomaly.ranking
            config = ScorerTrainConfig(head="ranking", iterations=r.iterations, bags_per_side=r.bags_per_side,
                                       lr=r.lr, weight_decay=r.weight_decay, dropout=r.dropout,
                                       smoothness=r.smoothness, sparsity=r.sparsity, seed=self.cfg.train.seed)
            log(f"{model.label}: ranking scorer on {len(anomalous)} + {len(normal)} bags of "
                f"{anomalous.shape[1]} x {anomalous.shape[2]}, {r.iterations} steps")
            result = _one_thread(train_segment_scorer, anomalous, normal, config)
            tail = result.losses[-min(100, len(result.losses)):]
            info = {"final_loss": float(np.mean(tail)), "iterations": r.iterations}
            store.write_bytes(path, scorer_bytes(result.scorer, **info))
            store.write_text(f"mil/ranking-{key}/losses.json", json.dumps(result.losses))
        return {"mil_key": key, "model": model.label, "role": model.role, "head": "ranking",
                "model_dir": model.model_dir, "scorer_uri": store.uri(path), "final_loss": float(info["final_loss"]),
                "train_videos": len(anomalous) + len(normal), "unreadable": unreadable}

    # ---------------------------------------------------------------- top-k fine-tune
    def _topk(self, ctx: StageContext, inputs: Inputs, model: MilModel, *, fit: bool,
              log: Any) -> dict[str, Any] | None:
        data = {"videos": [v.path for v in self.videos], "labels": [int(v.anomalous) for v in self.videos]}
        key = row_id("mil", **self.identity(), model=model.key, data=data, texts=self.class_texts,
                     normal=self.normal)
        store = ctx.run_store
        folder = f"mil/ray/topk-{key}"
        epochs = self.cfg.anomaly.topk_ce.epochs
        checkpoint, info = latest_checkpoint(store, folder)
        if info is not None and info["epoch"] >= epochs - 1:
            log(f"{model.label}: already fine-tuned ({epochs} epochs) in {store.uri(folder)}")
        elif not fit:
            return None
        else:
            checkpoint, info = self._fit(ctx, store, model, data, folder, log)
        return {"mil_key": key, "model": model.label, "role": model.role, "head": "topk_ce",
                "model_dir": join_uri(checkpoint, MODEL_DIR), "scorer_uri": None,
                "final_loss": float(info["loss"]), "train_videos": len(self.videos), "unreadable": 0}

    def _fit(self, ctx: StageContext, store: RunStore, model: MilModel, data: dict[str, Any], folder: str,
             log: Any) -> tuple[str, dict]:
        import ray.train
        from ray.train.torch import TorchTrainer

        from ray_pipeline.training.mil_loop import mil_train_loop_per_worker

        h = self.cfg.anomaly.topk_ce
        if h.bags_per_side * 2 < h.num_workers:
            raise ConfigError(f"anomaly.topk_ce: {h.num_workers} workers share a batch of only "
                              f"{2 * h.bags_per_side} videos (bags_per_side)")
        workers = plan_train_workers(h, ctx.cluster.nodes(), self.cfg.ray.reserve_cpus, section="anomaly.topk_ce")
        cpus = workers.num_cpus
        loop = {
            "model": self.cfg.train.model, "backbone": self.backbone, "init_model": model.model_dir,
            "preprocess_from": self.backbone, "data": data, "sampling": dataclasses.asdict(self.sampling),
            "class_texts": self.class_texts, "normal_index": self.normal,
            "head": {"k": h.k, "smoothness": h.smoothness, "sparsity": h.sparsity},
            "epochs": h.epochs, "bags_per_side": h.bags_per_side, "lr": h.lr, "warmup_epochs": h.warmup_epochs,
            "lr_min_ratio": h.lr_min_ratio, "weight_decay": h.weight_decay, "augment": h.augment,
            "mixed_precision": h.mixed_precision, "seed": self.cfg.train.seed,
            "run_store": store.root, "checkpoint_folder": folder, "torch_threads": torch_threads(self.cfg.ray, cpus),
        }
        resume_from, info = latest_checkpoint(store, folder)
        if resume_from:
            log(f"{model.label}: resuming after epoch {info['epoch'] + 1} from {resume_from}")
        log(f"{model.label}: top-{h.k} MIL fine-tune, {len(data['videos'])} videos, {h.epochs} epochs, "
            f"{h.num_workers} worker(s) x {cpus:g} CPU")
        trainer = TorchTrainer(
            mil_train_loop_per_worker, train_loop_config=loop,
            scaling_config=ray.train.ScalingConfig(**workers.scaling_kwargs()),
            run_config=ray.train.RunConfig(
                name=folder.rpartition("/")[2], storage_path=store.fs_path("mil/ray"), storage_filesystem=store.fs,
                failure_config=ray.train.FailureConfig(max_failures=h.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2), callbacks=list(self.callbacks)),
        )
        result = trainer.fit()
        if result.error:
            raise result.error
        checkpoint, info = latest_checkpoint(store, folder)
        if checkpoint is None:
            raise RuntimeError(f"{model.label}: the MIL fine-tune finished but {store.uri(folder)} holds no checkpoint")
        log(f"{model.label}: fine-tuned, final loss {info['loss']:.4f}")
        return checkpoint, info


def _one_thread(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with one torch thread: the scorer's steps are small matrix products, and on
    a busy 2-core machine two OpenMP threads spin-wait on each (39 ms a step with one thread,
    357 ms with two, measured with 60 bags of 32 x 128)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(previous)
