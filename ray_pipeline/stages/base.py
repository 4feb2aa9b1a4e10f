"""The stage interface.

A stage turns the rows the stages before it handed over into its own rows. It declares

- ``name`` and, for a stage whose rows live in the shared data store, ``data_stage = True``;
- :meth:`Stage.identity`: the settings that change its output, computed from config alone (no model
  loaded, no writer built); it goes into every row id the stage makes;
- :meth:`Stage.run`: do the work still missing for *this* config and return this config's rows;
- :meth:`Stage.resolve`: the same rows, from what is already stored, without doing any work (what
  a single-stage command hands to the stage it runs).

A :class:`RowStage` maps batches of rows through a model: :meth:`RowStage.plan` says which rows this
config wants (with their content ids), :meth:`RowStage.setup` loads the model and
:meth:`RowStage.process` turns a batch into finished rows. Both run without Ray (tests call them
directly); :mod:`ray_pipeline.stages.runner` maps them onto a Ray Data actor pool sized by
``pool`` (resources as data). Stages never import each other: the pipeline hands rows forward.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from ray_pipeline.cluster import Cluster
from ray_pipeline.config import ActorPoolConfig
from ray_pipeline.console import Console
from ray_pipeline.runstore import Manifest, RunStore


class UpstreamMissing(FileNotFoundError):
    """A stage needs rows that no earlier stage has written yet; the message names the command."""


@dataclass
class StageContext:
    """What a stage runs with.

    Attributes:
        store: where this stage's rows live (the shared data store for data stages).
        run_store: the run directory (checkpoints, summaries, logs).
        cluster: Ray, started on first use.
        console: progress and status lines.
        cache_dir: built artefacts shared across runs (world datasets and CLIP, LLM answers).
        metrics: ``(metrics, step)`` -> the stage's tracking run (per-epoch training metrics).
        shared_store: the store shared by runs and sweep trials (``data_dir``; else the run directory).
    """

    store: RunStore
    run_store: RunStore
    cluster: Cluster
    console: Console
    cache_dir: str
    metrics: Callable[[dict[str, float], int], None] | None = None
    shared_store: RunStore | None = None

    def __post_init__(self) -> None:
        if self.shared_store is None:
            self.shared_store = self.run_store


@dataclass
class StageResult:
    """A stage's rows for this config and what the invocation did (logged as metrics)."""

    rows: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


# The rows of every stage that ran or was resolved so far, by stage name.
Inputs = dict[str, StageResult]


class Stage(ABC):
    """See the module docstring."""

    name: ClassVar[str]
    data_stage: ClassVar[bool] = False

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """The settings that change this stage's output (JSON-serialisable)."""

    @abstractmethod
    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        """Do what is missing for this config; returns this config's rows."""

    @abstractmethod
    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        """This config's rows as already stored; no work, no Ray."""

    def describe(self) -> str:
        """One line for the console when the stage starts."""
        return ""

    def summary_line(self, result: StageResult) -> str:
        """One line for the console when the stage ends."""
        return f"{result.rows.num_rows} rows"

    @staticmethod
    def upstream(inputs: Inputs, name: str, command: str | None = None) -> pa.Table:
        """The rows stage ``name`` handed over; a clear error when it has none."""
        result = inputs.get(name)
        if result is None or result.rows.num_rows == 0:
            raise UpstreamMissing(f"no {name} rows for this config yet: run `ray-pipeline {command or name}` "
                                  "first (or `ray-pipeline run`)")
        return result.rows


class RowStage(Stage):
    """A stage that maps batches of rows through a model on an actor pool."""

    id_column: ClassVar[str]
    pool: ActorPoolConfig

    @abstractmethod
    def plan(self, ctx: StageContext, inputs: Inputs) -> pa.Table:
        """Every row this config wants, with its content id in ``id_column``, in work order."""

    @abstractmethod
    def setup(self, device: str = "cpu") -> None:
        """Load the model (once per actor)."""

    @abstractmethod
    def process(self, batch: pa.Table) -> pa.Table:
        """Finished rows for a batch of planned rows (same ids)."""

    def manifest(self, store: RunStore) -> Manifest:
        return store.manifest(self.name, self.id_column)

    def store(self, ctx: StageContext) -> RunStore:
        """Where this stage's rows live (``ctx.store``; a stage whose rows every run shares may
        choose ``ctx.shared_store``)."""
        return ctx.store

    def before_run(self, ctx: StageContext) -> None:
        """Driver-side clean-up before work starts (e.g. files half-written by a crash)."""

    def stats(self, rows: pa.Table) -> dict[str, Any]:
        """Figures over this config's finished rows (logged as the stage's metrics)."""
        return {}

    def run(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        """The planned rows not done yet, through the Ray Data runner (the only way to run a row stage)."""
        from ray_pipeline.stages.runner import run_row_stage

        rows, stats = run_row_stage(self, ctx, self.plan(ctx, inputs))
        return StageResult(rows, {**stats, **self.stats(rows)})

    def resolve(self, ctx: StageContext, inputs: Inputs) -> StageResult:
        planned = self.plan(ctx, inputs)
        rows = self.manifest(self.store(ctx)).rows_with_ids(planned.column(self.id_column))
        return StageResult(rows, {"rows": rows.num_rows, "rows_planned": planned.num_rows, **self.stats(rows)})
