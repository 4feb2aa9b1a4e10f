"""Train stage: a video-text model (TC-CLIP, ViFi-CLIP or X-CLIP) trained in phases with Ray Train.

The task hands the stage its recipe as a list of :class:`PhaseSpec` (what data, which schedule,
which phase it starts from, and the role of its model in the summary). Data is ``generated`` (the
handed-over clips with their CLIP uncertainty: this config's score rows, entropy normalised over
the generated set), ``source`` (the source dataset's train split), both mixed, or records the task
built itself (a few-shot list...). In a mixed set the loss variant (the paper's UL, or LS/UW/UF)
acts on the generated clips, and real clips get the same label smoothing under every variant.
A phase may keep the models of chosen epochs (``keep_epochs``): each is handed on as a row of its
own, so that a protocol can score them on its test list and report the best (the released
fine-tuning code's rule).

Each phase is one ``TorchTrainer`` run (:mod:`ray_pipeline.training.loop`) whose checkpoints live
in ``train/ray/<phase>-<id>/``. The id hashes the phase's data, its start (the id of the phase it
starts from, not a path) and every setting that changes its weights, so a rerun finds a finished
phase without starting Ray and an interrupted one continues from its last epoch. A ``shared``
phase (the source phase) keeps its checkpoints in the data store, where every run and sweep trial
with the same source data and settings finds it by id instead of training it again. The stage
hands on one row per model with a role (``baseline``, ``generated``, ...) and writes
``train/result.json``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ray_pipeline.cluster import plan_train_workers, torch_threads
from ray_pipeline.config import ConfigError, ExperimentConfig, PhaseSettings
from ray_pipeline.console import format_duration
from ray_pipeline.ids import row_id
from ray_pipeline.models.resolve import model_fingerprint
from ray_pipeline.runstore import RunStore, join_uri
from ray_pipeline.stages.base import Inputs, Stage, StageContext, StageResult
from ray_pipeline.training.loop import MODEL_DIR, RANK_METRIC, epoch_checkpoints, latest_checkpoint
from ray_pipeline.training.records import (
    TrainingRecords,
    generated_records,
    merge_records,
    split_records,
)

RESULT = "train/result.json"
# Settings that decide a phase's weights (besides its data, start, schedule and loss).
_WEIGHT_SETTINGS = ("model", "backbone", "model_options", "lr_min_ratio", "weight_decay", "batch_size", "num_frames",
                    "augment", "mixed_precision", "seed")

# How the summary names each video-text model.
MODEL_LABELS = {"tcclip": "TC-CLIP", "vificlip": "ViFi-CLIP", "xclip": "X-CLIP"}

MODEL_SCHEMA = pa.schema([
    ("model_key", pa.string()), ("role", pa.string()), ("label", pa.string()), ("model_dir", pa.string()),
    ("phase", pa.string()), ("model", pa.string()), ("recipe", pa.string()), ("loss", pa.string()),
    ("w", pa.float64()), ("num_clips", pa.int64()), ("num_classes", pa.int64()), ("shared", pa.bool_()),
    ("epoch", pa.int64()),
])


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of a recipe.

    Attributes:
        name: the phase's name (folder prefix, metric prefix).
        data: ``"generated"``, ``"source"``, ``"generated+source"``, or records the task built.
        schedule: epochs, lr and warm-up (unset: the ``train`` section's).
        loss: the loss on generated clips (``ls`` for real-only phases).
        init_from: the phase whose final model this one starts from (None: the backbone).
        role, label: the model's row in the summary (None: an intermediate model, not evaluated).
        shared: checkpoints in the data store, reused by id across runs and trials.
        loss_options: loss settings that replace the ``train`` section's (``real_epsilon``...).
        classes: with ``data="generated"``, keep only these classes' clips (None: every class).
        keep_epochs: 0-based epochs whose models are kept and handed on, one row each (labelled
            ``<label> @ epoch <e + 1>``); empty: the final model only, under ``label``.
    """

    name: str
    data: str | TrainingRecords
    schedule: PhaseSettings = field(default_factory=PhaseSettings)
    loss: str = "ul"
    init_from: str | None = None
    role: str | None = None
    label: str | None = None
    shared: bool = False
    loss_options: dict[str, float] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None
    keep_epochs: tuple[int, ...] = ()

    def model_label(self, epoch: int) -> str:
        """The label of the model of ``epoch`` (0-based) in the handed-on rows."""
        label = self.label or self.name
        return f"{label} @ epoch {epoch + 1}" if self.keep_epochs else label


@dataclass
class Phase:
    """A phase with its data resolved and its schedule filled in."""

    spec: PhaseSpec
    data: TrainingRecords
    epochs: int
    lr: float
    warmup_epochs: float
    loss_options: dict[str, Any]
    batch_size: int
    lr_min_ratio: float

    @property
    def name(self) -> str:
        return self.spec.name


def zero_shot_phases(cfg: ExperimentConfig) -> list[PhaseSpec]:
    """The phases of ``train.recipe`` (zero-shot and the generic real-data fine-tune)."""
    t = cfg.train
    model = MODEL_LABELS[t.model]
    what = f"{cfg.prompts.strategy.upper() if cfg.prompts.strategy == 'ie' else cfg.prompts.strategy.capitalize()}"
    generated = f"{model} + generated ({what}, {t.loss.upper()})"
    source = PhaseSpec("source", "source", t.source_phase, loss="ls", role="baseline", label=f"{model} (source)",
                       shared=True)
    if t.recipe == "synthetic":
        return [PhaseSpec("synthetic", "generated", loss=t.loss, role="generated", label=generated)]
    if t.recipe == "source":
        return [source]
    if t.recipe == "source_then_generated":
        return [source, PhaseSpec("generated", "generated", loss=t.loss, init_from="source", role="generated",
                                  label=generated)]
    if t.recipe == "source_synthetic":
        return [source, PhaseSpec("mixed", "generated+source", loss=t.loss, role="generated",
                                  label=f"{model} on source + generated ({what}, {t.loss.upper()})")]
    # synthetic_then_real: the generated-data model fine-tuned on train.real.
    return [PhaseSpec("synthetic", "generated", loss=t.loss),
            PhaseSpec("real", "real", t.finetune, loss="ls", init_from="synthetic", role="generated",
                      label=f"{generated}, fine-tuned on {t.real.name}")]


@dataclass
class TrainStage(Stage):
    """See the module docstring.

    Attributes:
        cfg: the experiment (its ``train`` section, datasets, Ray reserve, cache).
        class_names: the generated clips' classes, by label id.
        backbone_path: ``train.backbone`` resolved to a hub id or path.
        phases_spec: the recipe (default: :func:`zero_shot_phases` of ``cfg``).
        callbacks: Ray Train ``UserCallback``s for every phase (a sweep trial passes Tune's).
    """

    name = "train"

    cfg: ExperimentConfig
    class_names: list[str]
    backbone_path: str
    phases_spec: list[PhaseSpec] | None = None
    callbacks: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.phases_spec is None:
            self.phases_spec = zero_shot_phases(self.cfg)

    def identity(self) -> dict[str, Any]:
        t = self.cfg.train
        return {"recipe": t.recipe, **t.model_dump(mode="json", include=set(_WEIGHT_SETTINGS) | {
            "loss", "w", "epsilon", "uf_drop_fraction", "uncertainty_norm", "epochs", "lr", "warmup_epochs"}),
            "backbone": model_fingerprint(t.backbone)}

    def describe(self) -> str:
        t = self.cfg.train
        phases = " -> ".join(s.name for s in self.phases_spec)
        return f"{t.model} on {t.backbone}, phases {phases}, loss {t.loss}, {t.num_workers} worker(s)"

    def summary_line(self, result: StageResult) -> str:
        s = result.stats
        return f"{result.rows.num_rows} model(s); final loss {s.get('final_loss', float('nan')):.4f}"

    # ---------------------------------------------------------------- the recipe
    def _records(self, spec: PhaseSpec, inputs: Inputs) -> TrainingRecords:
        from ray_pipeline.evaluation.datasets import load_splits

        data = spec.data
        if spec.classes is not None and data != "generated":
            raise ValueError(f"{spec.name}: classes selects generated clips; the task selects its own records")
        if isinstance(data, TrainingRecords):
            return data
        t = self.cfg.train
        parts: list[TrainingRecords] = []
        for part in data.split("+"):
            if part == "generated":
                clips = self.upstream(inputs, "generate")
                scores = inputs["score"].rows if "score" in inputs else None
                parts.append(generated_records(clips, scores, self.class_names, loss=t.loss,
                                               uncertainty_norm=t.uncertainty_norm,
                                               uf_drop_fraction=t.uf_drop_fraction,
                                               classes=None if spec.classes is None else list(spec.classes)))
            elif part in ("source", "real"):
                ds = t.source if part == "source" else t.real
                split = load_splits(ds, self.cfg)[0]
                parts.append(split_records(split.class_names, split.videos, split.labels))
            else:
                raise ValueError(f"unknown phase data {part!r}")
        records = parts[0]
        for more in parts[1:]:
            records = merge_records(records, more)
        return records

    def phases(self, ctx: StageContext, inputs: Inputs) -> list[Phase]:
        """The recipe with its data resolved (the generated phase needs the handed-over clips)."""
        t = self.cfg.train
        out = []
        for spec in self.phases_spec:
            data = self._records(spec, inputs)
            options: dict[str, Any] = {"weight": t.w, "epsilon": t.epsilon, "real_epsilon": t.real_epsilon,
                                       **spec.loss_options}
            if spec.loss == "uf":
                options["uf_threshold"] = data.uf_threshold
            s = spec.schedule
            epochs = s.epochs or t.epochs
            outside = [e for e in spec.keep_epochs if not 0 <= e < epochs]
            if outside:
                raise ValueError(f"{spec.name}: keep_epochs {outside} outside 0..{epochs - 1}")
            out.append(Phase(spec, data, epochs, s.lr or t.lr,
                             t.warmup_epochs if s.warmup_epochs is None else s.warmup_epochs, options,
                             s.batch_size or t.batch_size,
                             t.lr_min_ratio if s.lr_min_ratio is None else s.lr_min_ratio))
        return out

    def phase_id(self, phase: Phase, init_id: str | None) -> str:
        """Content id of a phase: its data, its start, its schedule, its loss and the settings that
        decide its weights; the loss options only where the data has generated clips."""
        d = phase.data
        opts = phase.loss_options if "generated" in d.source else {"real_epsilon": phase.loss_options["real_epsilon"]}
        settings = {**self.cfg.train.model_dump(mode="json", include=set(_WEIGHT_SETTINGS)),
                    "batch_size": phase.batch_size, "lr_min_ratio": phase.lr_min_ratio,
                    "backbone": model_fingerprint(self.cfg.train.backbone)}
        # Kept epochs only where there are some: every other phase keeps the id it always had.
        keep = {"keep": list(phase.spec.keep_epochs)} if phase.spec.keep_epochs else {}
        return row_id("train-phase", phase=phase.name, data=d.clip_ids, classes=d.class_names, u=d.uncertainty,
                      init=init_id, epochs=phase.epochs, lr=phase.lr, warmup=phase.warmup_epochs,
                      loss=phase.spec.loss, opts=opts, norm=d.normalizer if "generated" in d.source else None,
                      settings=settings, **keep)

    # ---------------------------------------------------------------- run / resolve
    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        return self._train(ctx, inputs, fit=True)

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        """The trained models of this config's finished phases (none if the last is unfinished)."""
        return self._train(ctx, inputs, fit=False)

    def _train(self, ctx: StageContext, inputs: Inputs, *, fit: bool) -> StageResult:
        t = self.cfg.train
        log = ctx.console.logger(self.name)
        done: dict[str, dict[str, Any]] = {}
        phases = self.phases(ctx, inputs)
        for phase in phases:
            if fit and phase.data.dropped:
                log(f"{phase.name}: UF dropped the {phase.data.dropped} most uncertain clips")
        rows = []
        for phase in phases:
            start = done[phase.spec.init_from] if phase.spec.init_from else None
            phase_id = self.phase_id(phase, start["id"] if start else None)
            store = ctx.shared_store if phase.spec.shared else ctx.run_store
            folder = f"train/ray/{phase.name}-{phase_id}"
            init_model = join_uri(start["checkpoint"], MODEL_DIR) if start else None
            checkpoint, info = latest_checkpoint(store, folder)
            if _finished(info, phase):
                log(f"{phase.name}: already trained ({phase.epochs} epochs) in {store.uri(folder)}")
            elif not fit:
                return StageResult(pa.Table.from_pylist([], schema=MODEL_SCHEMA), {"phases_missing": phase.name})
            else:
                checkpoint, info = self._fit_once(ctx, store, phase, folder, init_model, log)
            done[phase.name] = {"id": phase_id, "checkpoint": checkpoint, "metrics": info,
                                "name": folder.rpartition("/")[2], "num_clips": len(phase.data)}
            if phase.spec.role is not None:
                rows += self._model_rows(store, folder, phase, phase_id, checkpoint, int(info["epoch"]))
        last = done[phases[-1].name]
        generated = next((p.data for p in phases if "generated" in p.data.source), None)
        result = {"model_dir": rows[-1]["model_dir"] if rows else None, "recipe": t.recipe, "model": t.model,
                  "loss": t.loss, "w": t.w, "phases": list(done.values()), "models": rows,
                  "normalizer": generated.normalizer if generated else None,
                  "num_clips": len(generated) if generated else 0,
                  "num_classes": len(generated.class_names) if generated else len(phases[-1].data.class_names)}
        ctx.run_store.write_text(RESULT, json.dumps(result, indent=2, default=str))
        m = last["metrics"]
        stats = {"final_loss": m.get("loss"), "epochs": m.get("epoch", -1) + 1, "num_clips": result["num_clips"],
                 "resumed_from_epoch": m.get("start_epoch", 0), "phases": len(phases)}
        return StageResult(pa.Table.from_pylist(rows, schema=MODEL_SCHEMA), stats)

    def _model_rows(self, store: RunStore, folder: str, phase: Phase, phase_id: str, checkpoint: str,
                    final_epoch: int) -> list[dict[str, Any]]:
        """One row per handed-on model of a finished phase: the final one, or each kept epoch's."""
        t = self.cfg.train
        keep = phase.spec.keep_epochs
        if keep:
            kept = epoch_checkpoints(store, folder)
            missing = sorted(set(keep) - set(kept))
            if missing:
                raise RuntimeError(f"{phase.name}: the models of epochs {[e + 1 for e in missing]} are not in "
                                   f"{store.uri(folder)}")
            models = [(e, kept[e]) for e in sorted(keep)]
        else:
            models = [(final_epoch, checkpoint)]
        base = {"role": phase.spec.role, "phase": phase.name, "model": t.model, "recipe": t.recipe,
                "loss": phase.spec.loss, "w": t.w, "num_clips": len(phase.data),
                "num_classes": len(phase.data.class_names), "shared": phase.spec.shared}
        return [{**base, "model_key": row_id("model", phase=phase_id, **({"epoch": e} if keep else {})),
                 "label": phase.spec.model_label(e), "model_dir": join_uri(uri, MODEL_DIR), "epoch": e}
                for e, uri in models]

    def _fit_once(self, ctx: StageContext, store: RunStore, phase: Phase, folder: str, init_model: str | None,
                  log: Callable[[str], None]) -> tuple[str, dict]:
        """Train the phase under its lock in the store, unless the run that held the lock trained it:
        two sweeps on one data store would otherwise both train a shared phase into one Ray Train
        folder, and the second's checkpoint manager fails on the first's."""
        with store.lock(folder, on_wait=lambda: log(f"{phase.name}: waiting for another run that is training it "
                                                    f"into {store.uri(folder)}")):
            checkpoint, info = latest_checkpoint(store, folder)
            if _finished(info, phase):
                log(f"{phase.name}: trained by another run meanwhile ({phase.epochs} epochs) in {store.uri(folder)}")
                return checkpoint, info
            return self._fit(ctx, store, phase, folder, init_model, log)

    def _fit(self, ctx: StageContext, store: RunStore, phase: Phase, folder: str, init_model: str | None,
             log: Callable[[str], None]) -> tuple[str, dict]:
        """Train one phase with a TorchTrainer into ``store``; returns its final checkpoint and metrics."""
        import ray.train
        from ray.train.torch import TorchTrainer

        from ray_pipeline.training.loop import train_loop_per_worker

        t = self.cfg.train
        if len(phase.data) < phase.batch_size:  # checked here: in the workers it would fail max_failures times
            raise ValueError(f"{phase.name}: {len(phase.data)} training clips, fewer than one global batch of "
                             f"{phase.batch_size} (the phase's batch_size)")
        if phase.batch_size % t.num_workers:
            raise ConfigError(f"{phase.name}: batch_size {phase.batch_size} must divide evenly over "
                              f"{t.num_workers} workers")
        workers = plan_train_workers(t, ctx.cluster.nodes(), self.cfg.ray.reserve_cpus)
        cpus = workers.num_cpus
        resume_from, info = latest_checkpoint(store, folder)
        if resume_from:
            log(f"{phase.name}: resuming after epoch {info['epoch'] + 1} from {resume_from}")
        loop = {
            "phase": phase.name, "model": t.model, "backbone": self.backbone_path, "model_options": t.model_options,
            "init_model": init_model, "preprocess_from": self.backbone_path, "data": phase.data.as_dict(),
            "epochs": phase.epochs, "lr": phase.lr, "lr_min_ratio": phase.lr_min_ratio,
            "warmup_epochs": phase.warmup_epochs, "weight_decay": t.weight_decay, "batch_size": phase.batch_size,
            "num_frames": t.num_frames, "augment": t.augment, "mixed_precision": t.mixed_precision, "seed": t.seed,
            "loss": phase.spec.loss, "loss_options": phase.loss_options,
            "run_store": store.root, "checkpoint_folder": folder, "torch_threads": torch_threads(self.cfg.ray, cpus),
            "worker_cpus": cpus, "loader": t.loader.model_dump(mode="json"),
            "keep_epochs": list(phase.spec.keep_epochs),
        }
        log(f"{phase.name}: {len(phase.data)} clips, {len(phase.data.class_names)} classes, {phase.epochs} epochs, "
            f"{t.num_workers} worker(s) x {cpus:g} CPU, loss {phase.spec.loss}")
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config=loop,
            scaling_config=ray.train.ScalingConfig(**workers.scaling_kwargs()),
            run_config=ray.train.RunConfig(
                # The store's own filesystem: a URI's options (endpoint_override, scheme) are in it.
                name=folder.rpartition("/")[2], storage_path=store.fs_path("train/ray"),
                storage_filesystem=store.fs,
                failure_config=ray.train.FailureConfig(max_failures=t.max_failures),
                checkpoint_config=checkpoint_config(phase.spec.keep_epochs),
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


def _finished(info: dict | None, phase: Phase) -> bool:
    """Whether a phase's newest checkpoint info is its last epoch's."""
    return info is not None and info["epoch"] >= phase.epochs - 1


def checkpoint_config(keep_epochs: tuple[int, ...]) -> Any:
    """Ray Train keeps the 2 newest checkpoints (enough to resume). With kept epochs it ranks them by
    ``RANK_METRIC`` (kept epochs above every other) and keeps one more than there are kept epochs:
    the kept ones and the newest (which Ray never deletes) stay.

    Args:
        keep_epochs: the phase's kept epochs.
    """
    import ray.train

    if not keep_epochs:
        return ray.train.CheckpointConfig(num_to_keep=2)
    return ray.train.CheckpointConfig(num_to_keep=len(keep_epochs) + 1, checkpoint_score_attribute=RANK_METRIC,
                                      checkpoint_score_order="max")


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
        self._announced = False

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
        if not self._announced and info.get("precision_note"):  # this run's first epoch: how it trains
            self._announced = True
            self.log(f"{self.phase.name}: {info['precision_note']}; {info.get('loader', '')}")
        self._seen = epoch = int(info["epoch"])
        total = self.phase.epochs
        left = (total - epoch - 1) * float(info.get("epoch_seconds", 0.0))
        self.log(f"{self.phase.name}: epoch {epoch + 1}/{total}, loss {info['loss']:.4f}, "
                 f"{info.get('epoch_seconds', 0.0):.1f} s/epoch, ETA {format_duration(left)}")
        if self.metrics is not None:
            self.metrics({f"train.{self.phase.name}.{k}": float(info[k]) for k in ("loss", "lr", "epoch_seconds")
                          if isinstance(info.get(k), (int, float))}, epoch)
