"""The task interface: an evaluation task is a recipe of stages plus its own metrics and summary.

A task names its stages in order (``stage_names``) and builds each on demand (:meth:`Task.build`),
so a command that needs only the first stages never loads what the later ones need (datasets,
models). After its evaluation ran, :meth:`Task.summarize` turns the handed-over rows into the
``summary.json`` every task writes (schema in ``docs/architecture.md``): rows with a ``role`` and
a label, per dataset the task's metrics with mean, std, CI and counts, paired comparisons, the
generated data's figures and the protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ray_pipeline.analysis.failures import failure_figures
from ray_pipeline.config import ExperimentConfig
from ray_pipeline.prompts.classlists import ClassEntry
from ray_pipeline.stages.base import Inputs, Stage

# The stages every task shares: they make this config's generated clips and their scores.
DATA_STAGES = ("prompts", "generate", "score")


def class_entries(cfg: ExperimentConfig) -> list[ClassEntry]:
    """The classes the clips are generated for (``prompts.classes``), by label id."""
    from ray_pipeline.prompts.classlists import get_class_entries

    p = cfg.prompts
    return get_class_entries(p.classes, fix_hmdb_swap=p.hmdb_fix_swap)


def build_data_stage(cfg: ExperimentConfig, name: str) -> Stage:
    """The prompts, generate or score stage of ``cfg``.

    Args:
        cfg: the experiment.
        name: one of ``DATA_STAGES``.
    """
    from ray_pipeline.models.resolve import resolve_model_path

    if name == "prompts":
        from ray_pipeline.stages.prompts import PromptsStage

        return PromptsStage.from_config(cfg, class_entries(cfg))
    if name == "generate":
        from ray_pipeline.stages.generate import GenerateStage

        return GenerateStage(cfg.generate)
    if name == "score":
        from ray_pipeline.stages.score import ScoreStage

        scorer = resolve_model_path(cfg.score.model, str(cfg.resolved_cache_dir()))
        return ScoreStage(cfg.score, [e.name for e in class_entries(cfg)], scorer, cfg.generate.weights_cache)
    raise KeyError(f"{name!r} is not a data stage; data stages: {', '.join(DATA_STAGES)}")


class Task(ABC):
    """See the module docstring."""

    name: ClassVar[str]
    stage_names: ClassVar[tuple[str, ...]]
    # The stage after which the task can summarise (its evaluation).
    summary_after: ClassVar[str] = "evaluate"

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def build(self, name: str) -> Stage:
        """The stage called ``name``, configured for this task."""

    @abstractmethod
    def summarize(self, results: Inputs) -> dict[str, Any]:
        """``summary.json`` from the rows every stage handed over."""

    @abstractmethod
    def summary_markdown(self, summary: dict[str, Any]) -> str:
        """``summary.md``: the summary as a person reads it."""

    def prepare(self) -> list[str]:
        """Build (world) or check (real) what the task's train and evaluate stages read beyond
        ``evaluate.datasets``, once, before a sweep's trials start; returns what it prepared."""
        return []

    def metrics(self, summary: dict[str, Any]) -> dict[str, float]:
        """Flat metrics for the tracker: ``<dataset>.<role>.<metric>_{mean,std,ci_low,ci_high}``,
        where ``<metric>`` is the metric's path under the dataset (``top1``, ``k2.top1``, ``hm``)."""
        out: dict[str, float] = {}
        seen: dict[str, int] = {}

        def walk(prefix: str, node: dict[str, Any]) -> None:
            for name, value in node.items():
                if not isinstance(value, dict):
                    continue
                if "mean" not in value:
                    walk(f"{prefix}.{name}", value)
                    continue
                path = f"{prefix}.{name}"
                out[f"{path}_mean"] = value["mean"]
                if value.get("std") is not None:
                    out[f"{path}_std"] = value["std"]
                if value.get("ci95"):
                    out[f"{path}_ci_low"], out[f"{path}_ci_high"] = value["ci95"]

        for row in summary.get("rows", []):
            role = row["role"]
            seen[role] = seen.get(role, 0) + 1
            key = role if seen[role] == 1 else f"{role}{seen[role]}"
            for ds, metrics in row.get("datasets", {}).items():
                walk(f"{ds}.{key}", metrics)
        for name, value in summary.get("data", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
                out[f"data.{name}"] = float(value)
        return out


def generated_data_figures(results: Inputs) -> dict[str, Any]:
    """``summary.json``'s ``data``: how many generated clips and classes this config trained on and,
    where the generator knows which clips failed, how well the scorer's entropy finds them
    (``failure_auroc``, a fraction)."""
    data: dict[str, Any] = {}
    if "generate" in results and results["generate"].rows.num_rows:
        clips = results["generate"].rows
        data["clips"] = clips.num_rows
        data["classes"] = len(set(clips.column("class_name").to_pylist()))
        if "score" in results:
            data.update(failure_figures(clips, results["score"].rows))
    return data
