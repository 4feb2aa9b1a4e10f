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

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.stages.base import Inputs, Stage


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

    def metrics(self, summary: dict[str, Any]) -> dict[str, float]:
        """Flat metrics for the tracker: ``<dataset>.<role>.<metric>_{mean,std,ci_low,ci_high}``."""
        out: dict[str, float] = {}
        seen: dict[str, int] = {}
        for row in summary.get("rows", []):
            role = row["role"]
            seen[role] = seen.get(role, 0) + 1
            key = role if seen[role] == 1 else f"{role}{seen[role]}"
            for ds, metrics in row.get("datasets", {}).items():
                for metric, value in metrics.items():
                    if not isinstance(value, dict) or "mean" not in value:
                        continue
                    prefix = f"{ds}.{key}.{metric}"
                    out[f"{prefix}_mean"], out[f"{prefix}_std"] = value["mean"], value["std"]
                    if value.get("ci95"):
                        out[f"{prefix}_ci_low"], out[f"{prefix}_ci_high"] = value["ci95"]
        for name, value in summary.get("data", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
                out[f"data.{name}"] = float(value)
        return out
