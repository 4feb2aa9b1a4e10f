"""Work sharing between a sweep's trials.

Trials are grouped by the fields that decide their prompt, clip and score rows (everything in
``prompts``, ``generate`` and ``score`` except ``clips_per_class`` and actor-pool sizing, plus
``seed``, ``cache_dir`` and ``data_dir``); each group's data stages run once, on the driver, for
the *largest* ``clips_per_class`` of its trials. Prompt rows are nested (clip ``i`` is the same
row whatever ``clips_per_class`` is), so the smaller values select subsets of the same clips.
Models shared across trials (the backbone, the source-trained baseline) are trained and evaluated
into the shared store by content id, so only the first trial that needs one does the work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.ids import row_id


class TrialLike(Protocol):
    """What sharing needs of a trial (:class:`ray_pipeline.sweep.space.TrialSpec`)."""

    key: str
    config: ExperimentConfig
    data_group: str


@dataclass
class DataGroup:
    """Trials whose prompts, clips and scores are the same rows; run once for the largest size."""

    key: str
    trial_keys: list[str]
    clips_per_class: list[int]
    config: ExperimentConfig  # the group's config with clips_per_class = max of its trials
    differs_by: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.differs_by.items()) or "all trials"


# What decides a trial's prompt, clip and score rows (clips_per_class only selects a prefix).
_DATA_SECTIONS = ("seed", "cache_dir", "data_dir", "prompts", "generate", "score")
_NOT_DATA = {("generate", "clips_per_class"), ("generate", "pool"), ("score", "pool")}


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"a.b": value} keeping the values' types."""
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def data_fields(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config fields the data stages' rows depend on (flattened)."""
    dump = cfg.model_dump(mode="json")
    picked = {k: dump[k] for k in _DATA_SECTIONS}
    for section, key in _NOT_DATA:
        picked[section] = {k: v for k, v in picked[section].items() if k != key}
    return _flat(picked)


def group_data_stages(trials: list[TrialLike]) -> list[DataGroup]:
    """Group trials by their data fields; each group's stages run once, at its largest size."""
    by_key: dict[str, list[TrialLike]] = {}
    fields: dict[str, dict[str, Any]] = {}
    for t in trials:
        f = data_fields(t.config)
        k = row_id("data-group", fields=f)[:8]
        t.data_group = k
        by_key.setdefault(k, []).append(t)
        fields[k] = f
    # Label groups by the data fields that differ between them (usually the strategy axis).
    varying = {name for name in next(iter(fields.values()), {})
               if len({json.dumps(f.get(name)) for f in fields.values()}) > 1}
    groups = []
    for k, members in by_key.items():
        sizes = sorted({t.config.generate.clips_per_class for t in members})
        largest = next(t for t in members if t.config.generate.clips_per_class == sizes[-1])
        groups.append(DataGroup(key=k, trial_keys=[t.key for t in members], clips_per_class=sizes,
                                config=largest.config,
                                differs_by={n: fields[k][n] for n in sorted(varying)}))
    return groups


def run_data_stages(groups: list[DataGroup], root: Any, console: Any) -> list[dict[str, Any]]:
    """prompts -> generate -> score once per data group (largest clips_per_class), on the driver,
    through the same pipeline as ``ray-pipeline run``."""
    from ray_pipeline.pipeline import Pipeline

    log = console.logger("sweep")
    out = []
    for i, g in enumerate(groups):
        log(f"data group {i + 1}/{len(groups)} {g.key} ({g.label()}): {len(g.trial_keys)} trial(s), "
            f"{g.clips_per_class[-1]} clips/class")
        results = Pipeline(g.config, root, console).run(until="score")
        stats: dict[str, Any] = {"group": g.key, "label": g.label(), "trials": len(g.trial_keys),
                                 "clips_per_class": g.clips_per_class}
        for name in ("prompts", "generate", "score"):
            s = results[name].stats
            rows, new = int(s.get("rows", 0)), int(s.get("rows_new", 0))
            stats[name] = {"rows": rows, "rows_new": new, "rows_reused": rows - new,
                           "seconds": round(float(s.get("seconds", 0.0)), 2)}
        log(" | ".join(f"{n}: {stats[n]['rows']} rows, {stats[n]['rows_new']} new, {stats[n]['rows_reused']} reused"
                       for n in ("prompts", "generate", "score")))
        sizes = g.clips_per_class
        if len(sizes) > 1:
            n_classes = max(1, stats["generate"]["rows"] // sizes[-1])
            log(f"clips_per_class {sizes[:-1]} read nested subsets of the {sizes[-1]}/class pool: "
                f"{sum(sizes[:-1]) * n_classes} clips not generated again")
        out.append(stats)
    return out


def prepare_trial_inputs(trials: list[TrialLike], log: Callable[[str], None]) -> None:
    """Build (world) or check (real) every evaluation dataset and backbone once, on the driver.

    The procedural world's datasets and CLIP are built on first use; doing it here keeps the
    trials (whose drivers hold a fraction of a CPU) from building them, concurrently, and a
    missing split file fails the sweep before any trial starts.
    """
    from ray_pipeline.evaluation.datasets import load_splits
    from ray_pipeline.models.resolve import resolve_model_path
    from ray_pipeline.tasks import get_task

    done: set[str] = set()

    def once(key: str, what: str, fn: Callable[[], Any]) -> None:
        if key not in done:
            done.add(key)
            start = time.perf_counter()
            fn()
            log(f"{what} ready ({time.perf_counter() - start:.1f}s)")

    for t in trials:
        c = t.config
        once(json.dumps(["backbone", c.train.backbone, c.cache_dir]), f"backbone {c.train.backbone}",
             lambda c=c: resolve_model_path(c.train.backbone, str(c.resolved_cache_dir())))
        for d in c.evaluate.datasets:
            once(json.dumps(["dataset", d.model_dump(mode="json"), c.world.model_dump(mode="json"), c.cache_dir]),
                 f"evaluation dataset {d.name}", lambda d=d, c=c: load_splits(d, c))
        section = getattr(c, c.task, None)
        if section is not None:
            once(json.dumps(["task", c.task, section.model_dump(mode="json"), c.world.model_dump(mode="json"),
                             c.cache_dir]), f"{c.task} lists", lambda c=c: get_task(c).prepare())


def train_shared_phases(trials: list[TrialLike], root: Any, console: Any) -> int:
    """Train, on the driver and before any trial starts, the phases trials share by content id
    (the source-only phase: one per seed and source setting), so concurrent trials never train the
    same phase at once; returns how many distinct shared phases the trials use."""
    from ray_pipeline.pipeline import Pipeline
    from ray_pipeline.stages.train import zero_shot_phases

    seen: set[str] = set()
    for t in trials:
        shared = [spec for spec in zero_shot_phases(t.config) if spec.shared]
        if not shared:
            continue
        # What the shared phases depend on: not the loss of the generated phase that follows them.
        train = t.config.train.model_dump(mode="json", exclude={"loss", "w", "epsilon", "uf_drop_fraction"})
        key = row_id("shared-phases", train=train, data_dir=t.config.data_dir)
        if key in seen:
            continue
        seen.add(key)
        # A scratch run directory for the driver's part (the phase itself lands in the shared store).
        Pipeline(t.config, root.__class__(root.uri(f"shared/{key}")), console,
                 stage_options={"train": {"phases_spec": shared}}).run(["train"], until="train")
    return len(seen)
