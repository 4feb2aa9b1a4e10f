"""Train stage: a video-text model (TC-CLIP or ViFi-CLIP) on the handed-over clips with Ray Train.

Generated clips carry their CLIP uncertainty (this config's score rows: entropy normalised over the
generated set) into the loss: the paper's UL smooths each clip's label by eps_i = w * u_i; LS, UW
and UF are the ablation's alternatives. Recipes (``train.recipe``): ``synthetic`` (the paper's
zero-shot: generated clips only), ``source_synthetic`` (plus the source dataset's train split) and
``synthetic_then_real`` (pre-train on generated, fine-tune on ``train.real``).

Each phase is one ``TorchTrainer`` run (:mod:`ray_pipeline.training.loop`) whose checkpoints live
in ``train/ray/<phase>-<id>/`` of the run store; the id hashes the phase's data, its start and every
training setting, so a rerun finds a finished phase without starting Ray and an interrupted one
continues from its last epoch. The stage hands on one row per trained model (``model_dir``,
``role``, ``label``) and writes ``train/result.json``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ray_pipeline.config import ConfigError, ExperimentConfig
from ray_pipeline.console import format_duration
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore, join_uri
from ray_pipeline.stages.base import Inputs, Stage, StageContext, StageResult
from ray_pipeline.training.loop import MODEL_DIR, latest_checkpoint
from ray_pipeline.training.records import TrainingRecords, generated_records, merge_records, split_records

RESULT = "train/result.json"
# Training settings that do not change the trained weights (where and how fast it runs).
_NOT_IDENTITY = {"num_workers", "cpus_per_worker", "max_failures", "use_gpu"}

MODEL_SCHEMA = pa.schema([
    ("model_key", pa.string()), ("role", pa.string()), ("label", pa.string()), ("model_dir", pa.string()),
    ("model", pa.string()), ("recipe", pa.string()), ("loss", pa.string()), ("w", pa.float64()),
    ("num_clips", pa.int64()), ("num_classes", pa.int64()),
])


@dataclass
class Phase:
    """One training run: its data, its start (the backbone, or an earlier phase's final model)."""

    name: str
    data: TrainingRecords
    epochs: int
    loss: str
    loss_options: dict[str, Any]
    init_from: str | None = None  # name of the phase whose final model this one starts from


@dataclass
class TrainStage(Stage):
    """See the module docstring.

    Attributes:
        cfg: the experiment (its ``train`` section, datasets, Ray reserve, cache).
        class_names: the generated clips' classes, by label id.
        backbone_path: ``train.backbone`` resolved to a hub id or path.
        callbacks: Ray Train ``UserCallback``s for every phase (a sweep trial passes Tune's).
    """

    name = "train"

    cfg: ExperimentConfig
    class_names: list[str]
    backbone_path: str
    callbacks: list[Any] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        return self.cfg.train.model_dump(mode="json", exclude=_NOT_IDENTITY)

    def describe(self) -> str:
        t = self.cfg.train
        return f"{t.model} on {t.backbone}, recipe {t.recipe}, loss {t.loss}, {t.num_workers} worker(s)"

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        return f"{result.rows.num_rows} model(s); final loss {s.get('final_loss', float('nan')):.4f}"

    # ---------------------------------------------------------------- the recipe
    def phases(self, ctx: StageContext, inputs: Inputs) -> list[Phase]:
        from ray_pipeline.evaluation.datasets import load_splits

        t = self.cfg.train
        clips = self.upstream(inputs, "generate")
        scores = inputs["score"].rows if "score" in inputs else None
        data = generated_records(clips, scores, self.class_names, loss=t.loss, uncertainty_norm=t.uncertainty_norm,
                                 uf_drop_fraction=t.uf_drop_fraction)
        options: dict[str, Any] = {"weight": t.w, "epsilon": t.epsilon}
        if t.loss == "uf":
            options["uf_threshold"] = data.uf_threshold
        if t.recipe == "source_synthetic":
            split = load_splits(t.source, self.cfg)[0]
            data = merge_records(data, split_records(split.class_names, split.videos, split.labels))
        phases = [Phase("synthetic", data, t.epochs, t.loss, options)]
        if t.recipe == "synthetic_then_real":
            split = load_splits(t.real, self.cfg)[0]
            # Real clips are trusted: plain LS as in TC-CLIP's own recipe.
            phases.append(Phase("real", split_records(split.class_names, split.videos, split.labels),
                                t.finetune_epochs, "ls", {"epsilon": t.epsilon}, init_from="synthetic"))
        return phases

    def phase_folder(self, phase: Phase, init_model: str | None) -> str:
        t = self.cfg.train
        d = phase.data
        phase_id = row_id("train", phase=phase.name, data=d.clip_ids, classes=d.class_names, u=d.uncertainty,
                          init=init_model, epochs=phase.epochs, loss=phase.loss, opts=phase.loss_options,
                          train=t.model_dump(mode="json", exclude=_NOT_IDENTITY))
        return f"train/ray/{phase.name}-{phase_id}"

    # ---------------------------------------------------------------- run / resolve
    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._train(ctx, inputs, fit=True)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        """The trained models of this config's finished phases (none if the last is unfinished)."""
        return self._train(ctx, inputs, fit=False)

    def _train(self, ctx: StageContext, inputs: Inputs, *, fit: bool) -> StageResult:
        t = self.cfg.train
        log = ctx.console.logger(self.name)
        finals: dict[str, dict[str, Any]] = {}
        phases = self.phases(ctx, inputs)
        if fit and phases[0].data.dropped:
            log(f"UF dropped the {phases[0].data.dropped} most uncertain clips")
        for phase in phases:
            init = join_uri(finals[phase.init_from]["checkpoint"], MODEL_DIR) if phase.init_from else None
            folder = self.phase_folder(phase, init)
            checkpoint, info = latest_checkpoint(ctx.run_store, folder)
            if info is not None and info["epoch"] >= phase.epochs - 1:
                log(f"{phase.name}: already trained ({phase.epochs} epochs) in {ctx.run_store.uri(folder)}")
            elif not fit:
                return StageResult(pa.Table.from_pylist([], schema=MODEL_SCHEMA), {"phases_missing": phase.name})
            else:
                checkpoint, info = self._fit(ctx, phase, folder, init, log)
            finals[phase.name] = {"checkpoint": checkpoint, "metrics": info, "name": folder.rpartition("/")[2]}
        last = finals[phases[-1].name]
        model_dir = join_uri(last["checkpoint"], MODEL_DIR)
        data = phases[0].data
        label = f"{t.model}+generated ({t.loss}, {t.recipe})"
        row = {"model_key": row_id("model", dir=model_dir), "role": "generated", "label": label,
               "model_dir": model_dir, "model": t.model, "recipe": t.recipe, "loss": t.loss, "w": t.w,
               "num_clips": len(data), "num_classes": len(data.class_names)}
        result = {"model_dir": model_dir, "recipe": t.recipe, "model": t.model, "loss": t.loss, "w": t.w,
                  "phases": list(finals.values()), "normalizer": data.normalizer, "num_clips": len(data),
                  "num_classes": len(data.class_names)}
        ctx.run_store.write_text(RESULT, json.dumps(result, indent=2, default=str))
        m = last["metrics"]
        stats = {"final_loss": m.get("loss"), "epochs": m.get("epoch", -1) + 1, "num_clips": len(data),
                 "resumed_from_epoch": m.get("start_epoch", 0)}
        return StageResult(pa.Table.from_pylist([row], schema=MODEL_SCHEMA), stats)

    def _fit(self, ctx: StageContext, phase: Phase, folder: str, init_model: str | None,
             log: Callable[[str], None]) -> tuple[str, dict]:
        """Train one phase with a TorchTrainer; returns its final checkpoint and metrics."""
        import ray.train
        from ray.train.torch import TorchTrainer

        from ray_pipeline.training.loop import train_loop_per_worker

        t, store = self.cfg.train, ctx.run_store
        resources = ctx.cluster.resources()
        if t.use_gpu and resources.get("GPU", 0) < t.num_workers:
            raise ConfigError(f"train.use_gpu with {t.num_workers} workers, but the cluster has "
                              f"{resources.get('GPU', 0):g} GPUs")
        cpus = t.cpus_per_worker or max(0.5, (resources.get("CPU", 1) - self.cfg.ray.reserve_cpus) / t.num_workers)
        resume_from, info = latest_checkpoint(store, folder)
        if resume_from:
            log(f"{phase.name}: resuming after epoch {info['epoch'] + 1} from {resume_from}")
        loop = {
            "phase": phase.name, "model": t.model, "backbone": self.backbone_path, "model_options": t.model_options,
            "init_model": init_model, "preprocess_from": self.backbone_path, "data": phase.data.as_dict(),
            "epochs": phase.epochs, "lr": t.lr, "lr_min_ratio": t.lr_min_ratio, "warmup_epochs": t.warmup_epochs,
            "weight_decay": t.weight_decay, "batch_size": t.batch_size, "num_frames": t.num_frames,
            "augment": t.augment, "mixed_precision": t.mixed_precision, "seed": t.seed,
            "loss": phase.loss, "loss_options": phase.loss_options,
            "run_store": store.root, "checkpoint_folder": folder, "torch_threads": max(1, int(cpus)),
        }
        log(f"{phase.name}: {len(phase.data)} clips, {len(phase.data.class_names)} classes, {phase.epochs} epochs, "
            f"{t.num_workers} worker(s) x {cpus:g} CPU, loss {phase.loss}")
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config=loop,
            scaling_config=ray.train.ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu,
                                                   resources_per_worker={"CPU": cpus}),
            run_config=ray.train.RunConfig(
                # The store's own filesystem: a URI's options (endpoint_override, scheme) are in it.
                name=folder.rpartition("/")[2], storage_path=store.fs_path("train/ray"),
                storage_filesystem=store.fs,
                failure_config=ray.train.FailureConfig(max_failures=t.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
                callbacks=list(self.callbacks)),
        )
        with EpochWatcher(store, folder, phase, log, ctx.metrics):
            result = trainer.fit()
        if result.error:
            raise result.error
        checkpoint, info = latest_checkpoint(store, folder)
        if checkpoint is None:
            raise RuntimeError(f"{phase.name}: training finished but {store.uri(folder)} holds no checkpoint")
        return checkpoint, info


class EpochWatcher:
    """Prints one line per finished epoch while ``trainer.fit()`` blocks the driver, from the
    checkpoints rank 0 reports into the run store (the driver sees nothing else of the workers),
    and hands each epoch's metrics to ``metrics`` (the stage's MLflow run)."""

    def __init__(self, store: RunStore, folder: str, phase: Phase, log: Callable[[str], None],
                 metrics: Callable[[dict[str, float], int], None] | None, every_s: float = 2.0) -> None:
        self.store, self.folder, self.phase, self.log, self.metrics = store, folder, phase, log, metrics
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        _, info = latest_checkpoint(store, folder)
        self._seen = info["epoch"] if info else -1

    def __enter__(self) -> EpochWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # the last epoch, if it landed after the last poll

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            self._poll()

    def _poll(self) -> None:
        try:
            _, info = latest_checkpoint(self.store, self.folder)
        except (OSError, ValueError):  # a checkpoint being written; the next poll sees it whole
            return
        if info is None or info["epoch"] <= self._seen:
            return
        self._seen = epoch = int(info["epoch"])
        total = self.phase.epochs
        left = (total - epoch - 1) * float(info.get("epoch_seconds", 0.0))
        self.log(f"{self.phase.name}: epoch {epoch + 1}/{total}, loss {info['loss']:.4f}, "
                 f"{info.get('epoch_seconds', 0.0):.1f} s/epoch, ETA {format_duration(left)}")
        if self.metrics is not None:
            self.metrics({f"train.{self.phase.name}.{k}": float(info[k]) for k in ("loss", "lr", "epoch_seconds")
                          if isinstance(info.get(k), (int, float))}, epoch)
