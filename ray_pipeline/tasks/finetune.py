"""What the fine-tuning tasks share: few-shot, base-to-novel and long-tail (the paper's Tables 2-4).

"For tasks where real samples are available such as few-shot, long-tail, etc., we pre-train the
model with synthetic samples and then fine-tune with the real samples" (the paper, §4.1). Recipe:
prompts -> generate -> score -> train -> evaluate, where the train stage's phases are

- ``synthetic``: the backbone trained on the generated clips with the ``train`` section's loss (the
  paper's UL) and schedule. It depends on nothing the task reads, so one copy, kept in the data
  store, is found by id by every fine-tune that starts from it: every K, every base seed, and other
  runs and sweep trials with the same generated data;
- per training list (a K-shot list, a seed's base list, the long-tailed set), with the task's
  ``finetune`` schedule and loss: ``baseline_<key>``, fine-tuned from the backbone (role
  ``baseline``; the paper's rows are "directly fine-tuned from CLIP"), and ``generated_<key>``,
  fine-tuned from ``synthetic`` (role ``generated``, the paper's "+Ours").

The evaluate stage scores the untrained backbone (role ``backbone``) and every fine-tuned model on
the task's test lists (``evaluate.num_clips`` clips x 1 crop; TC-CLIP tests these protocols with 2).
``finetune.epoch_rule`` says which epoch is reported: ``last`` (the default: only the final model
is scored), or ``best``, the released code's rule, which keeps the models of epochs 0, k, 2k, ...
and the last, scores them all on the test list and reports the best on the task's selection metric
(model selection on the test data: evaluation-protocols.md, pitfall 5). ``protocol.epoch_rule``
in ``summary.json`` says which was used; epochs there are counted from 1.

The lists come from a world protocol dataset (``data.lists: world:world_hmdb_fs``, sizes from
``world.protocol_sizes``) or from the published ViFi-CLIP files (``data.lists``, ``data.videos``).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ray_pipeline.config import (
    BaseToNovelConfig,
    ConfigError,
    ExperimentConfig,
    FewShotConfig,
    LongTailConfig,
    ProtocolDataConfig,
)
from ray_pipeline.evaluation.datasets import HMDB_SWAPS, Split
from ray_pipeline.evaluation.selection import EpochChoice, select_epoch
from ray_pipeline.evaluation.statistics import describe, paired_difference
from ray_pipeline.models.resolve import resolve_model_path
from ray_pipeline.stages.base import Inputs, Stage
from ray_pipeline.tasks.base import DATA_STAGES, Task, build_data_stage, class_entries, generated_data_figures
from ray_pipeline.training.records import TrainingRecords, split_records

PRETRAIN = "synthetic"
ROLES = ("backbone", "baseline", "generated")
Entry = tuple[str, int]


@dataclass
class SplitOutcome:
    """One model on one test list: true and predicted labels of the decodable videos."""

    y_true: list[int] = field(default_factory=list)
    y_pred: list[int] = field(default_factory=list)
    corrupt: int = 0

    def top1(self) -> float:
        """Top-1 accuracy in percent over the decodable videos."""
        if not self.y_true:
            return 0.0
        return 100.0 * float(np.mean(np.asarray(self.y_true) == np.asarray(self.y_pred)))


@dataclass
class ModelOutcome:
    """An evaluated model: its role, the training list it was fine-tuned on (None: the backbone),
    its 0-based epoch (None: the backbone) and its outcome per test list."""

    label: str
    role: str
    key: str | None
    epoch: int | None
    splits: dict[str, SplitOutcome]


@dataclass
class Reported:
    """The model a (role, training list) reports under the epoch rule, and what was chosen from."""

    model: ModelOutcome
    choice: EpochChoice | None  # None: the backbone
    per_epoch: dict[int, float]  # 1-based epoch -> the selection metric


class FinetuneTask(Task):
    """See the module docstring. Subclasses name their section and read their lists."""

    stage_names = ("prompts", "generate", "score", "train", "evaluate")
    # The task's config section (``few_shot``, ...) and its selection metric's name.
    section_name: ClassVar[str]
    selection_metric: ClassVar[str]

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        if cfg.train.recipe != "synthetic":
            raise ConfigError(f"train.recipe: {self.section_name} names its own phases (the pre-training on the "
                              f"generated clips, then the fine-tunes); leave train.recipe at synthetic, got "
                              f"{cfg.train.recipe}")
        self._sizes = self._world_sizes()
        self._root: tuple[Path, Path] | None = None

    # ---------------------------------------------------------------- what a subclass says
    @property
    def section(self) -> FewShotConfig | BaseToNovelConfig | LongTailConfig:
        return getattr(self.cfg, self.section_name)

    @abstractmethod
    def list_keys(self) -> list[str]:
        """The training lists' keys in order (``k2``, ``s1``...), from config alone."""

    @abstractmethod
    def key_label(self, key: str) -> str:
        """How a training list is named in model labels (``K=2``); empty for a single list."""

    @abstractmethod
    def training_lists(self) -> dict[str, TrainingRecords]:
        """Each training list's records, by key (reads the lists)."""

    @abstractmethod
    def test_splits(self) -> list[tuple[str, Split]]:
        """The (dataset name, test list) pairs every model is scored on."""

    @abstractmethod
    def selection_value(self, model: ModelOutcome) -> float:
        """The metric the ``best`` epoch rule maximises for one model."""

    def generated_classes(self) -> tuple[str, ...] | None:
        """The generated clips' classes the pre-training uses (None: all of them)."""
        return None

    # ---------------------------------------------------------------- data
    def _world_sizes(self) -> Any:
        data = self.section.data
        if not data.is_world:
            return None
        from ray_pipeline.world.protocol_datasets import PROTOCOL_DATASETS, ProtocolDatasetSizes

        if data.world_name not in PROTOCOL_DATASETS:
            raise ConfigError(f"{self.section_name}.data.lists: unknown world protocol dataset "
                              f"{data.world_name!r}; known: {', '.join(sorted(PROTOCOL_DATASETS))}")
        try:
            return ProtocolDatasetSizes(**self.cfg.world.protocol_sizes)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"world.protocol_sizes: {exc}") from None

    @property
    def data(self) -> ProtocolDataConfig:
        return self.section.data

    def roots(self) -> tuple[Path, Path]:
        """(where the lists are, where their video paths start): the world dataset's folder (built
        on first use) and its ``videos/``, or the configured ViFi-CLIP checkout and videos."""
        if self._root is None:
            data = self.data
            if data.is_world:
                from ray_pipeline.world.protocol_datasets import ensure_protocol_dataset

                folder = ensure_protocol_dataset(self.cfg.resolved_cache_dir(), data.world_name, self._sizes)
                self._root = (folder / data.world_name, folder / data.world_name / "videos")
            else:
                self._root = (Path(data.lists).expanduser(), Path(data.videos).expanduser())
        return self._root

    def label_fix(self, labels: list[int], swaps: dict[int, int] | None = None) -> list[int]:
        """Labels as ``data.label_fix`` says (``hmdb_swap``: HMDB-51's two swapped pairs)."""
        if self.data.label_fix == "none":
            return list(labels)
        swaps = HMDB_SWAPS if swaps is None else swaps
        return [swaps.get(y, y) for y in labels]

    def records(self, class_names: list[str], entries: list[Entry], swaps: dict[int, int] | None = None
                ) -> TrainingRecords:
        """A training list's rows as training records (videos under the videos root)."""
        videos = self.roots()[1]
        return split_records(class_names, [str(videos / rel) for rel, _ in entries],
                             self.label_fix([y for _, y in entries], swaps))

    def split(self, name: str, class_names: list[str], entries: list[Entry], swaps: dict[int, int] | None = None
              ) -> Split:
        """A test list as an evaluation split."""
        videos = self.roots()[1]
        return Split(name=name, class_names=list(class_names), videos=[str(videos / rel) for rel, _ in entries],
                     labels=self.label_fix([y for _, y in entries], swaps), root=str(videos))

    def prepare(self) -> list[str]:
        self.test_splits()
        return [f"{self.section_name} lists of {self.data.name}"]

    # ---------------------------------------------------------------- the recipe
    def model_name(self) -> str:
        return {"tcclip": "TC-CLIP", "vificlip": "ViFi-CLIP"}[self.cfg.train.model]

    def row_label(self, role: str) -> str:
        """A summary row's label (the paper's: TC-CLIP, TC-CLIP + Ours)."""
        if role == "backbone":
            return "backbone (no training)"
        if role == "baseline":
            return f"{self.model_name()} fine-tuned"
        p, t = self.cfg.prompts, self.cfg.train
        strategy = p.strategy.upper() if p.strategy == "ie" else p.strategy.capitalize()
        return f"{self.model_name()} + generated ({strategy}, {t.loss.upper()}), fine-tuned"

    def model_label(self, role: str, key: str) -> str:
        suffix = self.key_label(key)
        return f"{self.row_label(role)}, {suffix}" if suffix else self.row_label(role)

    def phase_specs(self, lists: dict[str, TrainingRecords]) -> list[Any]:
        """The train stage's phases (module docstring)."""
        from ray_pipeline.stages.train import PhaseSpec

        t, ft = self.cfg.train, self.section.finetune
        keep = ft.scored_epochs() if ft.epoch_rule == "best" else ()
        # Real clips get LS with real_epsilon under every loss (training/losses.py); ce is eps = 0.
        options = {"real_epsilon": ft.epsilon if ft.loss == "ls" else 0.0}
        specs = [PhaseSpec(PRETRAIN, "generated", loss=t.loss, shared=True, classes=self.generated_classes())]
        for key, records in lists.items():
            for role, start in (("baseline", None), ("generated", PRETRAIN)):
                specs.append(PhaseSpec(f"{role}_{key}", records, ft.schedule(), loss=ft.loss, init_from=start,
                                       role=role, label=self.model_label(role, key), loss_options=options,
                                       keep_epochs=keep))
        return specs

    def build(self, name: str) -> Stage:
        cfg = self.cfg
        if name in DATA_STAGES:
            return build_data_stage(cfg, name)
        backbone = resolve_model_path(cfg.train.backbone, str(cfg.resolved_cache_dir()))
        if name == "train":
            from ray_pipeline.stages.train import TrainStage

            return TrainStage(cfg, [e.name for e in class_entries(cfg)], backbone,
                              phases_spec=self.phase_specs(self.training_lists()))
        if name == "evaluate":
            from ray_pipeline.stages.evaluate import EvaluateStage

            return EvaluateStage(cfg.evaluate, self.test_splits(), backbone,
                                 cfg.evaluate.num_frames or cfg.train.num_frames)
        raise KeyError(f"{self.name} has no stage {name!r}; stages: {', '.join(self.stage_names)}")

    # ---------------------------------------------------------------- outcomes
    def outcomes(self, results: Inputs) -> list[ModelOutcome]:
        """Every evaluated model with its role, training list and epoch (from the train rows)."""
        ev = results["evaluate"].rows
        trained = {}
        if "train" in results and results["train"].rows.num_rows:
            trained = {r["label"]: r for r in results["train"].rows.to_pylist()}
        models: dict[str, ModelOutcome] = {}
        for r in ev.select(["model", "role", "split", "label", "predicted", "error"]).to_pylist():
            m = models.get(r["model"])
            if m is None:
                t = trained.get(r["model"])
                if r["role"] != "backbone" and t is None:
                    continue  # a model of another config evaluated into this run directory
                key = t["phase"].split("_", 1)[1] if t else None
                m = models[r["model"]] = ModelOutcome(r["model"], r["role"], key, t["epoch"] if t else None, {})
            s = m.splits.setdefault(r["split"], SplitOutcome())
            if r["error"]:
                s.corrupt += 1
            else:
                s.y_true.append(int(r["label"]))
                s.y_pred.append(int(r["predicted"]))
        return list(models.values())

    def reported(self, outcomes: list[ModelOutcome]) -> dict[tuple[str, str | None], Reported]:
        """Per (role, training list): the model the epoch rule reports."""
        rule = self.section.finetune.epoch_rule
        groups: dict[tuple[str, str | None], dict[int, ModelOutcome]] = {}
        for m in outcomes:
            groups.setdefault((m.role, m.key), {})[-1 if m.epoch is None else m.epoch] = m
        out = {}
        for (role, key), by_epoch in groups.items():
            if role == "backbone":
                out[(role, key)] = Reported(by_epoch[-1], None, {})
                continue
            values = {e: self.selection_value(m) for e, m in by_epoch.items()}
            choice = select_epoch(values, rule)
            out[(role, key)] = Reported(by_epoch[choice.epoch], choice, {e + 1: v for e, v in sorted(values.items())})
        return out

    @staticmethod
    def epoch_fields(rep: Reported) -> dict[str, Any]:
        """What a metric entry says about its epoch (1-based)."""
        if rep.choice is None:
            return {}
        return {"epoch": rep.choice.epoch + 1, "epoch_rule": rep.choice.rule, "per_epoch": rep.per_epoch}

    # ---------------------------------------------------------------- summary
    def summary_base(self, results: Inputs) -> dict[str, Any]:
        """The parts of ``summary.json`` every fine-tuning task writes the same way."""
        data = generated_data_figures(results)
        t, ft, ev = self.cfg.train, self.section.finetune, self.cfg.evaluate
        protocol = {
            "dataset": self.data.model_dump(mode="json"),
            "num_clips": ev.num_clips, "num_frames": ev.num_frames or t.num_frames,
            "views": f"{ev.num_clips} clips x 1 crop", "std": "population (ddof=0)", "metric_unit": "percent",
            "epoch_rule": ft.epoch_rule,
            "epoch_rule_text": ("the last epoch's model" if ft.epoch_rule == "last" else
                                f"the best {self.selection_metric} on the test list among epochs "
                                f"{[e + 1 for e in ft.scored_epochs()]} (model selection on the test data, as the "
                                "released code does)"),
            "epochs_counted_from": 1,
            "pretrain": {"phase": PRETRAIN, "epochs": t.epochs, "lr": t.lr, "warmup_epochs": t.warmup_epochs,
                         "loss": t.loss, "w": t.w, "batch_size": t.batch_size,
                         "classes": list(self.generated_classes() or []) or "all"},
            "finetune": ft.model_dump(mode="json"),
            "baseline": "fine-tuned from the backbone on the same list, with the same schedule",
        }
        if self.data.is_world:
            protocol["world_protocol_sizes"] = self._sizes.key_fields()
        return {"task": self.name, "data": data, "protocol": protocol}

    def seeds(self, role: str) -> list[int]:
        return [] if role == "backbone" else [self.cfg.train.seed]

    def compare(self, rows: dict[str, dict[str, Any]], cells: dict[tuple[str, str], dict], metrics: list[str]
                ) -> list[dict[str, Any]]:
        """generated − baseline and each fine-tuned row − backbone, per metric path, paired by cell."""
        out = []
        ds = self.data.name
        for a, b in (("generated", "baseline"), ("baseline", "backbone"), ("generated", "backbone")):
            if a not in rows or b not in rows:
                continue
            for metric in metrics:
                ca, cb = cells.get((a, metric)), cells.get((b, metric))
                if ca and cb and set(ca) & set(cb):
                    out.append({"a": rows[a]["label"], "b": rows[b]["label"], "metric": metric, "dataset": ds,
                                **paired_difference(ca, cb)})
        return out

    def summary_markdown(self, summary: dict[str, Any]) -> str:
        from ray_pipeline.report.protocols import protocol_run_document

        return protocol_run_document(summary).markdown()


def metric_entry(cells: dict[tuple[int, str], float], **extra: Any) -> dict[str, Any]:
    """``describe`` of a metric's cells plus the task's own fields."""
    return {**describe(cells), **extra}

