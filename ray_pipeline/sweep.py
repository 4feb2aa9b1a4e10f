"""``ray-pipeline sweep CONFIG``: search spaces in the experiment YAML, shared data stages, Ray Tune.

A sweep file is an experiment YAML in which any field may be a *search axis*, a mapping with one
key naming how its values are chosen::

    prompts.strategy: {grid: [basic, env, cha, ie]}      # every value (Cartesian product)
    train.seed: {grid: [0, 1]}                           # seeds are just another grid axis
    train.w: {uniform: [0.1, 0.5]}                       # a draw per trial (with sweep.num_samples)
    train.loss: {choice: [ls, ul]}

(written nested, ``train: {w: {grid: [...]}}``, or with dotted keys at the top level). An optional
``sweep:`` section holds the sweep's own settings (:class:`SweepSettings`). The axes are taken out,
every trial's config is expanded and validated with :mod:`ray_pipeline.config` before any Ray work
(errors name the file, the trial and the field), then:

1. **Data stages once per distinct upstream config, on the driver.** Trials are grouped by the
   fields that decide their prompts, clips and scores (everything in ``prompts``, ``generate``
   and ``score`` except ``clips_per_class`` and actor-pool sizing, plus ``seed`` and
   ``cache_dir``); each group runs prompts -> generate -> score once, into one shared store
   (``SWEEP_DIR/data``), for the *largest* ``clips_per_class`` of its trials. Prompt rows are
   nested (clip ``i`` is the same row whatever ``clips_per_class`` is), so the smaller values
   select subsets of the same clips. Stages skip rows whose content ids are already there, so a
   rerun or another sweep on the same ``data_dir`` reuses everything; the output says how much.
2. **Ray Tune runs train + evaluate per trial** (``SWEEP_DIR/trials/<trial_key>``), each trial
   function being the driver of a Ray Train ``TorchTrainer`` (the Train V2 pattern; per-epoch
   metrics reach Tune through ``TuneReportCallback``). ``max_concurrent_trials`` comes from the
   cluster's resources and each trial's needs; a trial reserves only its driver's fractional CPU
   and the CPUs of its workers are set so that drivers plus workers fit (no deadlock on 2 cores).
3. **Resume**: rerunning the same command finds ``SWEEP_DIR/tune`` and calls ``Tuner.restore``;
   finished trials are not run again, an interrupted trial continues from its last Train
   checkpoint. MLflow runs are looked up by tag (``sweep_id`` + ``trial_key``) before one is
   created, so a restore never duplicates them (Ray's ``MLflowLoggerCallback`` keeps its
   trial->run map in memory and would).
4. **MLflow** is written only by the driver process (no "database is locked" on sqlite): one
   parent run per sweep, one nested run per trial with flattened params, variant tags, per-epoch
   and final metrics, and the trial's config and report as artifacts.
5. The sweep's report (``report.md``/``report.html``, plots) is written at the end
   (:mod:`ray_pipeline.stages.report`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from ray import tune

from ray_pipeline.config import (ConfigError, ExperimentConfig, StrictModel, apply_overrides,
                                 format_validation_error, read_yaml_mapping)
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore

# How a search axis is written: a mapping with exactly one of these keys.
GRID = "grid"
DISTRIBUTIONS = ("choice", "uniform", "quniform", "loguniform", "randint")
AXIS_KINDS = (GRID, *DISTRIBUTIONS)
# Fields one sweep cannot vary: one cluster, one MLflow experiment, one shared data store.
FIXED_FIELDS = ("name", "ray", "mlflow", "data_dir")

SWEEP_FILE = "sweep.json"
TRIALS_FILE = "trials.json"
TRIAL_SPEC = "trial.json"
TRIAL_RESULT = "trial_result.json"
TRIAL_ATTEMPTS = "attempts.jsonl"
DATA_STATS = "data_stages.json"
TUNE_DIR = "tune"


class SweepSettings(StrictModel):
    """The ``sweep:`` section of a sweep file."""

    num_samples: int = Field(1, ge=1, description="repeats of the grid; each repeat draws the "
                             "distributions anew (seeds belong in a grid axis)")
    sample_seed: int = Field(0, description="seed of the draws from distributions (reproducible trials)")
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="default: as many as the cluster fits (1 unless train.cpus_per_worker is set)")
    trial_driver_cpus: float = Field(
        0.5, gt=0, description="CPU reserved by each trial's driver (the Tune trial) besides its Train workers")
    max_failures: int = Field(1, ge=0, description="Tune retries of a failed trial (stages resume by row id)")


# --------------------------------------------------------------------------------------------
# Search space: parsing, validation, expansion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One swept field: a dotted path and how its values are chosen."""

    path: str
    kind: str
    spec: Any

    @property
    def is_grid(self) -> bool:
        return self.kind == GRID

    def describe(self) -> str:
        return f"{{{self.kind}: {json.dumps(self.spec)}}}"


@dataclass
class TrialSpec:
    """One expanded trial: its swept values, its validated config and where it runs."""

    index: int
    key: str
    variant: dict[str, Any]
    config: ExperimentConfig
    data_group: str = ""
    evaluate_baseline: bool = True

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.variant.items()) or "(no axes)"


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


@dataclass
class Sweep:
    source: str
    name: str
    settings: SweepSettings
    axes: list[Axis]
    base: dict[str, Any]  # the YAML with the axes taken out
    trials: list[TrialSpec]
    groups: list[DataGroup]

    @property
    def sweep_id(self) -> str:
        """Identity of the search: the trial keys (a changed space is a different sweep)."""
        return row_id("sweep", trials=[t.key for t in self.trials])


def _is_axis(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in AXIS_KINDS


def _check_axis(source: str, path: str, kind: str, spec: Any) -> None:
    """Reject malformed axes with a message naming the file and field."""
    where = f"{source}: {path}: {{{kind}: ...}}"

    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if kind in (GRID, "choice"):
        if not isinstance(spec, list) or not spec:
            raise ConfigError(f"{where} needs a non-empty list of values; got {spec!r}")
        return
    if kind == "randint":
        ok = isinstance(spec, list) and len(spec) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                for x in spec) and spec[0] < spec[1]
        if not ok:
            raise ConfigError(f"{where} needs [low, high) integers with low < high; got {spec!r}")
        return
    n = 3 if kind == "quniform" else 2
    if not (isinstance(spec, list) and len(spec) == n and all(number(x) for x in spec) and spec[0] < spec[1]):
        form = "[low, high, q]" if kind == "quniform" else "[low, high]"
        raise ConfigError(f"{where} needs {form} numbers with low < high; got {spec!r}")
    if kind == "loguniform" and spec[0] <= 0:
        raise ConfigError(f"{where} needs low > 0; got {spec!r}")
    if kind == "quniform" and spec[2] <= 0:
        raise ConfigError(f"{where} needs q > 0; got {spec!r}")


def extract_axes(data: dict[str, Any], source: str) -> tuple[dict[str, Any], list[Axis]]:
    """Take the search axes out of a (nested) config mapping.

    Returns the mapping without them and the axes in file order. Top-level dotted keys
    (``train.w: {grid: ...}``) are folded into their sections first.
    """
    nested: dict[str, Any] = {}
    for key, value in apply_overrides(data, []).items():  # a deep copy, in file order
        parts = [p for p in key.split(".") if p]
        node = nested
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: {key}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        last = parts[-1] if parts else key
        if isinstance(value, dict) and not _is_axis(value) and isinstance(node.get(last), dict):
            node[last].update(value)  # `train.seed: ...` before `train: {...}`: merge the section
        else:
            node[last] = value
    axes: list[Axis] = []

    def walk(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            path = f"{prefix}{key}"
            if _is_axis(value):
                kind, spec = next(iter(value.items()))
                _check_axis(source, path, kind, spec)
                if path == "sweep" or path.split(".")[0] in FIXED_FIELDS:
                    raise ConfigError(f"{source}: {path}: cannot be swept (one sweep has one "
                                      f"{path.split('.')[0]}: it is shared by every trial)")
                axes.append(Axis(path, kind, spec))
            elif isinstance(value, dict):
                out[key] = walk(value, f"{path}.")
            else:
                out[key] = value
        return out

    return walk(nested, ""), axes


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _plain(value: Any) -> Any:
    """numpy scalars (Tune's samplers) -> Python values, so configs stay YAML/JSON-clean."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value


def _draw(axis: Axis, rng: Any) -> Any:
    """One value from a distribution axis, using Ray Tune's own samplers."""
    if axis.kind == "choice":
        # Sample an index: Tune's categorical would turn list-valued choices into arrays.
        return axis.spec[int(tune.randint(0, len(axis.spec)).sample(random_state=rng))]
    lo, hi = axis.spec[0], axis.spec[1]
    if axis.kind == "uniform":
        return float(tune.uniform(lo, hi).sample(random_state=rng))
    if axis.kind == "quniform":
        return _plain(tune.quniform(lo, hi, axis.spec[2]).sample(random_state=rng))
    if axis.kind == "loguniform":
        return float(tune.loguniform(lo, hi).sample(random_state=rng))
    return int(tune.randint(lo, hi).sample(random_state=rng))


def trial_key(config: ExperimentConfig) -> str:
    """A trial's identity: a hash of its whole resolved config (12 hex digits).

    Content-derived like row ids, so the same trial gets the same folder and MLflow run after a
    restart, and an edited sweep file cannot silently reuse another trial's results.
    """
    return row_id("trial", config=config.model_dump(mode="json"))[:12]


def load_sweep(path: str | os.PathLike, overrides: list[str] | None = None) -> Sweep:
    """Parse, expand and validate a sweep file; raises :class:`ConfigError` naming file and field.

    ``overrides`` (``--set``) apply before the axes are taken out, so they can also add or replace
    axes (``--set 'train.seed={grid: [0, 1, 2]}'``). :func:`attach` then places it in a directory.
    """
    overrides = list(overrides or [])
    source = str(path)
    raw = apply_overrides(read_yaml_mapping(path, "sweep"), overrides)
    sweep_section = raw.pop("sweep", None) or {}
    try:
        settings = SweepSettings.model_validate(sweep_section)
    except ValidationError as exc:
        msg = format_validation_error(exc, source, overrides).replace(f"  {source}: ", f"  {source}: sweep.")
        raise ConfigError(msg) from None
    base, axes = extract_axes(raw, source)
    seen: set[str] = set()
    for axis in axes:
        if axis.path in seen:
            raise ConfigError(f"{source}: {axis.path}: swept twice")
        seen.add(axis.path)
    grid_axes = [a for a in axes if a.is_grid]
    random_axes = [a for a in axes if not a.is_grid]
    if settings.num_samples > 1 and not random_axes:
        raise ConfigError(
            f"{source}: sweep.num_samples: {settings.num_samples} repeats of a grid without "
            "distributions would be identical trials; sweep a seed instead (train.seed: {grid: [0, 1]})")

    import numpy as np

    rng = np.random.default_rng(settings.sample_seed)
    variants: list[dict[str, Any]] = []
    for _ in range(settings.num_samples):
        for combo in itertools.product(*(a.spec for a in grid_axes)):
            values = dict(zip((a.path for a in grid_axes), combo))
            for axis in random_axes:
                values[axis.path] = _draw(axis, rng)
            # Keep the file's axis order in every variant.
            variants.append({a.path: values[a.path] for a in axes})

    trials: list[TrialSpec] = []
    errors: list[str] = []
    for i, variant in enumerate(variants):
        data = apply_overrides(base, [])
        for k, v in variant.items():
            _set_path(data, k, v)
        label = ", ".join(f"{k}={v}" for k, v in variant.items())
        where = f"{source} (trial {i + 1} of {len(variants)}: {label})" if variant else source
        try:
            cfg = ExperimentConfig.model_validate(data)
        except ValidationError as exc:
            errors.append(format_validation_error(exc, where, overrides))
            continue
        trials.append(TrialSpec(index=i, key=trial_key(cfg), variant=variant, config=cfg))
    if errors:
        shown = errors[:5]
        more = f"\n... and {len(errors) - 5} more invalid trials" if len(errors) > 5 else ""
        raise ConfigError("\n".join(shown) + more)
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        same = [t.label() for t in trials if t.key == dup]
        raise ConfigError(f"{source}: trials {same} have identical configs; give them a distinguishing axis")
    name = trials[0].config.name if trials else "sweep"
    assign_baselines(trials)
    return Sweep(source=source, name=name, settings=settings, axes=axes, base=base, trials=trials,
                 groups=group_data_stages(trials))


def attach(sweep: Sweep, root: RunStore) -> None:
    """Point every trial without its own ``data_dir`` at the sweep's shared store ``SWEEP_DIR/data``.

    Trial keys were computed before, so they do not depend on where the sweep lives.
    """
    for t in sweep.trials:
        # Absolute, so that trial processes (another working directory) find the same store.
        data_dir = RunStore(t.config.data_dir).root if t.config.data_dir else root.uri("data")
        t.config = t.config.model_copy(update={"data_dir": data_dir})
    sweep.groups = group_data_stages(sweep.trials)


# --------------------------------------------------------------------------------------------
# Work sharing
# --------------------------------------------------------------------------------------------

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


def group_data_stages(trials: list[TrialSpec]) -> list[DataGroup]:
    """Group trials by their data fields; each group's stages run once, at its largest size."""
    by_key: dict[str, list[TrialSpec]] = {}
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


def baseline_fields(cfg: ExperimentConfig) -> dict[str, Any]:
    """What the untrained backbone's evaluation depends on (not the trial's training or data)."""
    ev = cfg.evaluate.model_dump(mode="json", exclude={"pool", "baseline"})
    return {"backbone": cfg.train.backbone, "num_frames": ev.pop("num_frames") or cfg.train.num_frames,
            "evaluate": ev, "world": cfg.world.model_dump(mode="json"), "cache_dir": cfg.cache_dir}


def assign_baselines(trials: list[TrialSpec]) -> None:
    """Evaluate the backbone baseline once per distinct evaluation setup, in its first trial.

    The baseline is the same model on the same videos in every trial of a group, so evaluating
    it per trial would only repeat work; the report takes it from the trial that ran it.
    """
    seen: set[str] = set()
    for t in trials:
        if not t.config.evaluate.baseline:
            t.evaluate_baseline = False
            continue
        k = row_id("baseline", **baseline_fields(t.config))
        t.evaluate_baseline = k not in seen
        seen.add(k)


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourcePlan:
    """What each trial reserves and how many run at once; applied when a trial starts."""

    max_concurrent_trials: int
    driver_cpus: float
    cpus_per_trial: float
    gpus_per_trial: float
    train_cpus_per_worker: dict[str, float]
    evaluate_cpus_per_actor: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        # The driver's working directory travels along: relative paths in a config (dataset
        # roots, cache_dir) mean the same in a trial process as on the driver.
        return {**self.__dict__, "cwd": os.getcwd()}


def _floor3(x: float) -> float:
    """Rounded down to 1/1000 CPU: shares must never add up to more than the cluster has."""
    return math.floor(x * 1000 + 1e-9) / 1000


def plan_resources(sweep: Sweep, resources: dict[str, float]) -> ResourcePlan:
    """Fit trials to the cluster: ``max_concurrent_trials`` and per-trial CPU shares.

    A Tune trial reserves only its driver's (fractional) CPU; its Train workers and evaluate
    actors are scheduled by the trial itself, so concurrency must be derived here or idle drivers
    hold the CPUs the workers need (deadlock). Rule: ``sweep.max_concurrent_trials`` if set; else
    with ``train.cpus_per_worker`` set, as many trials as fit (driver + workers); else as many as
    the GPUs fit for GPU trials, and one at a time for CPU trials (as a single run, it gets the
    whole cluster). Never more than the GPUs fit; CPUs are shared equally among concurrent trials.
    """
    s = sweep.settings
    cpus, gpus = float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))
    driver = s.trial_driver_cpus
    explicit = all(t.config.train.cpus_per_worker is not None for t in sweep.trials)
    needs = [driver + t.config.train.num_workers * (t.config.train.cpus_per_worker or 0.0) for t in sweep.trials]
    gpus_per_trial = max((max(t.config.train.num_workers if t.config.train.use_gpu else 0,
                              t.config.evaluate.pool.actors * t.config.evaluate.pool.num_gpus)
                          for t in sweep.trials), default=0.0)
    gpu_fit = int(math.floor(gpus / gpus_per_trial + 1e-9)) if gpus_per_trial > 0 else None
    if gpu_fit == 0:
        raise ConfigError(f"{sweep.source}: a trial needs {gpus_per_trial:g} GPUs (train.num_workers with "
                          f"train.use_gpu, or evaluate.pool), but the cluster has {gpus:g}")
    if s.max_concurrent_trials:
        conc = s.max_concurrent_trials
    elif explicit:
        conc = max(1, int(math.floor(cpus / max(needs) + 1e-9)))
    elif gpu_fit:
        conc = gpu_fit  # GPU trials: as many as the GPUs fit, CPUs shared equally
    else:
        conc = 1
    if gpu_fit:
        conc = min(conc, gpu_fit)
    conc = max(1, min(conc, len(sweep.trials) or 1))
    share = cpus / conc
    train_cpus, eval_cpus = {}, {}
    for t in sweep.trials:
        tr, ev = t.config.train, t.config.evaluate
        per_worker = tr.cpus_per_worker or _floor3((share - driver) / tr.num_workers)
        if per_worker <= 0 or driver + tr.num_workers * per_worker > share + 1e-6:
            raise ConfigError(
                f"{sweep.source}: trial {t.label()}: {driver:g} driver CPU + {tr.num_workers} x {per_worker:g} "
                f"worker CPUs exceeds its share of {share:g} CPUs ({cpus:g} CPUs / {conc} concurrent trials); "
                "lower train.cpus_per_worker, train.num_workers, sweep.trial_driver_cpus or "
                "sweep.max_concurrent_trials")
        train_cpus[t.key] = per_worker
        per_actor = ev.pool.num_cpus or _floor3((share - driver - t.config.ray.reserve_cpus) / ev.pool.actors)
        if per_actor <= 0:
            raise ConfigError(f"{sweep.source}: trial {t.label()}: no CPU left for evaluate actors in a share "
                              f"of {share:g} CPUs; set evaluate.pool.num_cpus or lower ray.reserve_cpus")
        eval_cpus[t.key] = per_actor
    return ResourcePlan(conc, driver, share, gpus_per_trial, train_cpus, eval_cpus)


def apply_resources(cfg: ExperimentConfig, key: str, plan: dict[str, Any]) -> ExperimentConfig:
    """The trial's config with the plan's CPU shares where the config leaves them open."""
    cfg = cfg.model_copy(deep=True)
    if cfg.train.cpus_per_worker is None:
        cfg.train.cpus_per_worker = plan["train_cpus_per_worker"][key]
    if cfg.evaluate.pool.num_cpus is None:
        cfg.evaluate.pool.num_cpus = plan["evaluate_cpus_per_actor"][key]
    return cfg


# --------------------------------------------------------------------------------------------
# The trial (runs inside a Ray Tune trial actor)
# --------------------------------------------------------------------------------------------


def final_metrics(summary: dict | None, train_stats: dict) -> dict[str, float]:
    """Flat final metrics of a trial: per dataset, the trained model's and the baseline's top-1."""
    from ray_pipeline.stages.evaluate import BASELINE

    out: dict[str, float] = {}
    for k in ("final_loss", "epochs", "num_clips"):
        if isinstance(train_stats.get(k), (int, float)):
            out[f"train.{k}"] = float(train_stats[k])
    for model, per_ds in (summary or {}).get("models", {}).items():
        prefix = "baseline" if model == BASELINE else "eval"
        for ds, e in per_ds.items():
            out[f"{prefix}.{ds}.top1_mean"] = float(e["top1_mean"])
            out[f"{prefix}.{ds}.top1_std"] = float(e["top1_std"])
            if "top5_mean" in e:
                out[f"{prefix}.{ds}.top5_mean"] = float(e["top5_mean"])
    return out


def run_trial(config: dict[str, Any], *, sweep_uri: str, plan: dict[str, Any]) -> None:
    """A Tune trial: the Ray Train driver for one trial's train + evaluate stages.

    Idempotent like every stage: a trial whose result is already stored reports it and returns;
    an interrupted one continues (the train stage resumes from its checkpoint, evaluate skips the
    rows it has).
    """
    from ray.tune.integration.ray_train import TuneReportCallback

    from ray_pipeline.stages.evaluate import run_evaluate
    from ray_pipeline.stages.report import write_run_report
    from ray_pipeline.stages.train import run_train

    import ray.data

    # Ray is already up in a trial process, so init_ray's settings never ran here.
    ray.data.DataContext.get_current().enable_progress_bars = False
    os.chdir(plan["cwd"])  # Tune starts trials in their own folder; configs are relative to the driver's
    key = config["trial_key"]
    store = RunStore(RunStore(sweep_uri).uri(f"trials/{key}"))

    def log(line: str) -> None:
        print(f"[trial {key}] {line}", file=sys.stderr, flush=True)

    if store.exists(TRIAL_RESULT):
        log("already finished: reporting its stored result")
        tune.report({**json.loads(store.read_text(TRIAL_RESULT)), "final": 1})
        return
    attempts = store.read_text(TRIAL_ATTEMPTS) if store.exists(TRIAL_ATTEMPTS) else ""
    store.write_text(TRIAL_ATTEMPTS, attempts + json.dumps({"started": time.time(), "pid": os.getpid()}) + "\n")
    spec = json.loads(store.read_text(TRIAL_SPEC))
    cfg = apply_resources(ExperimentConfig.model_validate(spec["config"]), key, plan)
    store.write_text("config.yaml", cfg.to_yaml())
    start = time.perf_counter()
    # Rank 0's per-epoch reports reach Tune (and the driver's MLflow callback) through this.
    train_stats = run_train(cfg, store, log=log, callbacks=[TuneReportCallback()])
    run_evaluate(cfg, store, log=log)
    summary = json.loads(store.read_text("summary.json")) if store.exists("summary.json") else None
    write_run_report(store)
    result = {**final_metrics(summary, train_stats), "trial_seconds": time.perf_counter() - start}
    store.write_text(TRIAL_RESULT, json.dumps(result, indent=2))
    tune.report({**result, "final": 1})


def trial_dirname(trial: Any) -> str:
    """Tune's folder for a trial: its content key (stable across restores)."""
    return f"trial_{trial.config['trial_key']}"


# --------------------------------------------------------------------------------------------
# MLflow (driver process only)
# --------------------------------------------------------------------------------------------

_SWEEP_TAG, _TRIAL_TAG, _ROLE_TAG = "sweep_id", "trial_key", "sweep_role"
_PARENT_TAG = "mlflow.parentRunId"


def _variant_tags(variant: dict[str, Any]) -> dict[str, str]:
    """Tags for the ablation variant: one per axis, plus the paper's row name for known axes."""
    from ray_pipeline.stages.report import variant_label

    tags = {f"variant.{k}": str(v) for k, v in variant.items()}
    tags["variant"] = variant_label(variant)
    return tags


class SweepTracker:
    """MLflow for a sweep: finds or creates the parent run and one nested run per trial.

    Lookups go by tags (``sweep_id``, ``trial_key``), never by an in-memory map, so a restored
    sweep (new process, new callback) finds the runs it made before instead of duplicating them.
    """

    def __init__(self, tracking_uri: str, experiment: str, sweep_id: str, sweep_uri: str) -> None:
        self.tracking_uri, self.experiment, self.sweep_id, self.sweep_uri = (
            tracking_uri, experiment, sweep_id, sweep_uri)
        self._client: Any = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}
        self._finished: set[str] = set()

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            from ray_pipeline.tracking import ensure_experiment

            self._client = MlflowClient(self.tracking_uri)
            self._experiment_id = ensure_experiment(self.tracking_uri, self.experiment, RunStore(self.sweep_uri))
        return self._client

    def _find(self, **tags: str) -> list[Any]:
        client = self.client
        flt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        return client.search_runs([self._experiment_id], filter_string=flt, max_results=50)

    def parent_run(self, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
        """The sweep's parent run, created on the first launch and found on every later one."""
        found = self._find(**{_SWEEP_TAG: self.sweep_id, _ROLE_TAG: "parent"})
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(self._experiment_id, run_name=name, tags={
            _SWEEP_TAG: self.sweep_id, _ROLE_TAG: "parent", "sweep_dir": self.sweep_uri, **tags})
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[i:i + 100])

    def trial_run(self, parent: str, key: str) -> str:
        """The trial's nested run: looked up by tag first, created only if there is none."""
        if key in self._runs:
            return self._runs[key]
        found = self._find(**{_SWEEP_TAG: self.sweep_id, _TRIAL_TAG: key})
        if found:
            run = found[0]
            if run.info.status == "FINISHED":
                self._finished.add(key)
            self._runs[key] = run.info.run_id
            return run.info.run_id
        from ray_pipeline.tracking import flatten

        spec = json.loads(RunStore(self.sweep_uri).read_text(f"trials/{key}/{TRIAL_SPEC}"))
        run = self.client.create_run(self._experiment_id, run_name=f"{spec['name']}/{key}", tags={
            _SWEEP_TAG: self.sweep_id, _TRIAL_TAG: key, _ROLE_TAG: "trial", _PARENT_TAG: parent,
            "data_group": spec["data_group"], "trial_dir": RunStore(self.sweep_uri).uri(f"trials/{key}"),
            **_variant_tags(spec["variant"])})
        self._log_params(run.info.run_id, flatten(spec["config"]))
        self._runs[key] = run.info.run_id
        return run.info.run_id

    def log_epoch(self, run_id: str, result: dict[str, Any]) -> None:
        """A per-epoch report from the trial's Train run (via TuneReportCallback)."""
        phase = "train"
        path = str(result.get("checkpoint_path") or "")
        # Checkpoints live under train/ray/<phase>-<id>/: the phase names the metric.
        for part in path.split("/"):
            if part.startswith(("synthetic-", "real-")):
                phase = f"train.{part.split('-')[0]}"
        step = int(result.get("epoch", 0))
        metrics = {f"{phase}.{k}": float(v) for k, v in result.items()
                   if k in ("loss", "lr", "epoch_seconds") and isinstance(v, (int, float))}
        self._log_metrics(run_id, metrics, step)

    def _log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(float(v))]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i:i + 500])

    def finish_trial(self, key: str, result: dict[str, Any] | None, status: str) -> None:
        run_id = self._runs.get(key)
        if run_id is None:
            return
        if status == "FINISHED" and key not in self._finished:
            if result:
                self._log_metrics(run_id, {k: v for k, v in result.items()
                                           if isinstance(v, (int, float)) and k.startswith(
                                               ("eval.", "baseline.", "train.", "trial_seconds"))})
            store = RunStore(RunStore(self.sweep_uri).uri(f"trials/{key}"))
            for name in ("config.yaml", "report.md", "summary.json", "summary.md", TRIAL_SPEC,
                         "train/result.json"):
                if store.exists(name):
                    self.client.log_text(run_id, store.read_text(name), name.replace("/", "_"))
            self._finished.add(key)
        self.client.set_terminated(run_id, status)

    def log_parent(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        self._log_metrics(run_id, metrics, step)

    def log_parent_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_parent_file(self, run_id: str, data: bytes, name: str) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, Path(name).name)
            path.write_bytes(data)
            self.client.log_artifact(run_id, str(path), str(Path(name).parent) if "/" in name else None)

    def end_parent(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)


class SweepMlflowCallback(tune.Callback):
    """Tune callback (driver process) writing each trial's nested MLflow run.

    It holds only the sweep's location: Tune pickles it into the experiment state, and a restored
    sweep (a new process) unpickles it; ``setup`` then reads this launch's tracking URI and parent
    run from ``SWEEP_DIR/sweep.json`` and every run is found by its tags before one is created.
    """

    def __init__(self, sweep_uri: str) -> None:
        self.sweep_uri = sweep_uri
        self.tracker: SweepTracker | None = None
        self.parent = ""
        self._last: dict[str, dict] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"sweep_uri": self.sweep_uri}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["sweep_uri"])

    def setup(self, **info: Any) -> None:
        meta = json.loads(RunStore(self.sweep_uri).read_text(SWEEP_FILE))
        self.tracker = SweepTracker(meta["mlflow"]["tracking_uri"], meta["mlflow"]["experiment"],
                                    meta["sweep_id"], self.sweep_uri)
        self.parent = meta["mlflow"]["parent_run_id"]

    def _run(self, trial: Any) -> tuple[str, str]:
        assert self.tracker is not None, "setup() was not called"
        key = trial.config["trial_key"]
        return key, self.tracker.trial_run(self.parent, key)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key, run_id = self._run(trial)
        if key not in self.tracker._finished:
            self.tracker.client.update_run(run_id, status="RUNNING")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        key, run_id = self._run(trial)
        if result.get("final"):
            self._last[key] = dict(result)
        elif "epoch" in result and key not in self.tracker._finished:
            self.tracker.log_epoch(run_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key, _ = self._run(trial)
        self.tracker.finish_trial(key, self._last.get(key) or trial.last_result, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key, _ = self._run(trial)
        self.tracker.finish_trial(key, None, "FAILED")


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


def _trial_record(t: TrialSpec) -> dict[str, Any]:
    cfg = t.config.model_copy(deep=True)
    cfg.evaluate.baseline = t.evaluate_baseline
    return {"key": t.key, "index": t.index, "name": cfg.name, "variant": t.variant,
            "data_group": t.data_group, "evaluate_baseline": t.evaluate_baseline,
            "config": cfg.model_dump(mode="json")}


def describe_plan(sweep: Sweep) -> list[str]:
    """Human-readable lines: axes, trials, data groups and what they share."""
    lines = [f"{len(sweep.trials)} trials from {len(sweep.axes)} axes: "
             + "; ".join(f"{a.path} {a.describe()}" for a in sweep.axes)]
    for g in sweep.groups:
        sizes = g.clips_per_class
        nested = (f"; clips_per_class {sizes} share one pool of {sizes[-1]}/class (smaller values "
                  f"are nested subsets)") if len(sizes) > 1 else ""
        lines.append(f"data group {g.key} ({g.label()}): {len(g.trial_keys)} trial(s) share prompts, clips "
                     f"and scores{nested}")
    n_base = sum(t.evaluate_baseline for t in sweep.trials)
    lines.append(f"backbone baseline evaluated in {n_base} trial(s), skipped in "
                 f"{sum(t.config.evaluate.baseline for t in sweep.trials) - n_base} (same model, same videos)")
    for t in sweep.trials:
        lines.append(f"  trial {t.key} [{t.label()}] data {t.data_group}"
                     + (" +baseline" if t.evaluate_baseline else ""))
    return lines


def run_data_stages(sweep: Sweep, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """prompts -> generate -> score once per data group (largest clips_per_class), on the driver."""
    from ray_pipeline.stages.generate import run_generate
    from ray_pipeline.stages.prompts import run_prompts
    from ray_pipeline.stages.score import run_score

    out = []
    for i, g in enumerate(sweep.groups):
        store = RunStore(g.config.data_dir)
        log(f"[sweep] data group {i + 1}/{len(sweep.groups)} {g.key} ({g.label()}): "
            f"{len(g.trial_keys)} trial(s), {g.clips_per_class[-1]} clips/class")
        stats: dict[str, Any] = {"group": g.key, "label": g.label(), "trials": len(g.trial_keys),
                                 "clips_per_class": g.clips_per_class}
        for name, fn in (("prompts", run_prompts), ("generate", run_generate), ("score", run_score)):
            s = fn(g.config, store, log=log)
            rows, new = int(s.get("rows", 0)), int(s.get("rows_new", 0))
            stats[name] = {"rows": rows, "rows_new": new, "rows_reused": rows - new,
                           "seconds": round(float(s.get("seconds", 0.0)), 2)}
        line = " | ".join(f"{n}: {stats[n]['rows']} rows, {stats[n]['rows_new']} new, "
                          f"{stats[n]['rows_reused']} reused" for n in ("prompts", "generate", "score"))
        log(f"[sweep]   {line}")
        sizes = g.clips_per_class
        if len(sizes) > 1:
            n_classes = max(1, stats["generate"]["rows"] // sizes[-1])
            saved = sum(sizes[:-1]) * n_classes
            log(f"[sweep]   clips_per_class {sizes[:-1]} read nested subsets of the {sizes[-1]}/class pool: "
                f"{saved} clips not generated again")
        out.append(stats)
    return out


def prepare_trial_inputs(sweep: Sweep, log: Callable[[str], None]) -> None:
    """Build (world) or check (real) every evaluation dataset and backbone once, on the driver.

    The procedural world's datasets and CLIP are built on first use; doing it here keeps the
    trials (whose drivers hold a fraction of a CPU) from building them, concurrently, and a
    missing split file fails the sweep before any trial starts.
    """
    from ray_pipeline.evaluation.datasets import load_splits
    from ray_pipeline.stages.score import resolve_model_path

    done: set[str] = set()

    def once(key: str, what: str, fn: Callable[[], Any]) -> None:
        if key not in done:
            done.add(key)
            start = time.perf_counter()
            fn()
            log(f"[sweep] {what} ready ({time.perf_counter() - start:.1f}s)")

    for t in sweep.trials:
        c = t.config
        once(json.dumps(["backbone", c.train.backbone, c.cache_dir]), f"backbone {c.train.backbone}",
             lambda: resolve_model_path(c.train.backbone, str(c.resolved_cache_dir())))
        for d in c.evaluate.datasets:
            once(json.dumps(["dataset", d.model_dump(mode="json"), c.world.model_dump(mode="json"), c.cache_dir]),
                 f"evaluation dataset {d.name}", lambda: load_splits(d, c))


def _read_json(store: RunStore, name: str) -> Any:
    return json.loads(store.read_text(name)) if store.exists(name) else None


def run_sweep(path: str, overrides: list[str], sweep_dir: str | None, *, dry_run: bool = False,
              retry_failed: bool = False, log: Callable[[str], None] = print) -> int:
    """The ``sweep`` subcommand; returns the exit status (0: every trial finished)."""
    from ray_pipeline.cluster import init_ray
    from ray_pipeline.tracking import flatten, resolve_tracking_uri

    sweep = load_sweep(path, overrides)
    root = RunStore(sweep_dir or f"runs/{sweep.name}")
    attach(sweep, root)
    base_cfg = sweep.trials[0].config
    tracking_uri = resolve_tracking_uri(base_cfg, root)
    for line in describe_plan(sweep):
        log(f"[sweep] {line}")
    if dry_run:
        return 0

    state = _read_json(root, SWEEP_FILE) or {}
    if state and state.get("sweep_id") != sweep.sweep_id:
        raise ConfigError(
            f"{root.root} holds another sweep ({state.get('source')}, {len(state.get('trials', []))} trials): "
            "a restored Tune experiment cannot change its search space or trial configs; use another --run-dir")
    launch = int(state.get("launches", 0)) + 1
    trials_json = [_trial_record(t) for t in sweep.trials]
    for rec in trials_json:
        root.write_text(f"trials/{rec['key']}/{TRIAL_SPEC}", json.dumps(rec, indent=2))
    root.write_text(TRIALS_FILE, json.dumps(trials_json, indent=2))
    root.write_text("sweep.yaml", Path(path).read_text()
                    + ("".join(f"\n# --set {o}" for o in overrides) + "\n" if overrides else ""))

    resources = init_ray(base_cfg.ray)
    plan = plan_resources(sweep, resources)
    log(f"[sweep] cluster {resources.get('CPU', 0):g} CPU / {resources.get('GPU', 0):g} GPU: "
        f"{plan.max_concurrent_trials} concurrent trial(s), each {plan.driver_cpus:g} driver CPU + "
        f"train workers {sorted(set(plan.train_cpus_per_worker.values()))} CPU each")

    tracker = SweepTracker(tracking_uri, base_cfg.mlflow.experiment, sweep.sweep_id, root.root)
    axis_params = {f"sweep.axis.{a.path}": a.describe() for a in sweep.axes}
    parent = tracker.parent_run(sweep.name, {**axis_params, "sweep.num_trials": str(len(sweep.trials)),
                                             **{f"base.{k}": v for k, v in flatten(sweep.base).items()}},
                                {"sweep_source": sweep.source})
    already = [t.key for t in sweep.trials if root.exists(f"trials/{t.key}/{TRIAL_RESULT}")]
    root.write_text(SWEEP_FILE, json.dumps({
        "sweep_id": sweep.sweep_id, "source": sweep.source, "overrides": overrides, "name": sweep.name,
        "axes": [a.__dict__ for a in sweep.axes], "trials": [t.key for t in sweep.trials],
        "launches": launch, "mlflow": {"tracking_uri": tracking_uri, "experiment": base_cfg.mlflow.experiment,
                                       "parent_run_id": parent},
        "resources": plan.as_dict()}, indent=2))

    status = "FAILED"
    try:
        stats = run_data_stages(sweep, log)
        prepare_trial_inputs(sweep, log)
        history = _read_json(root, DATA_STATS) or []
        history.append({"launch": launch, "time": time.time(), "groups": stats})
        root.write_text(DATA_STATS, json.dumps(history, indent=2))
        tracker.log_parent(parent, {f"data.{g['group']}.{n}.{k}": g[n][k] for g in stats
                                    for n in ("prompts", "generate", "score") for k in ("rows_new", "rows_reused")},
                           step=launch)
        if already:
            log(f"[sweep] {len(already)} of {len(sweep.trials)} trials already finished: they are not run again")
        results = _run_tune(sweep, root, plan, log, retry_failed=retry_failed, launch=launch)
        errored = [r for r in results if r.error]
        log(f"[sweep] trials: {len(results) - len(errored)} finished "
            f"({len(already)} before this launch), {len(errored)} failed")
        if errored:
            log("[sweep] failed trials keep their error in SWEEP_DIR/tune/trial_<key>/error.txt; fix the cause "
                "and rerun with --retry-failed (finished trials are not run again)")
        status = "FINISHED" if not errored else "FAILED"
    finally:
        try:
            from ray_pipeline.stages.report import write_report

            written = write_report(root)
            for name in written:
                data = root.read_bytes(name)
                if name.endswith((".md", ".html", ".json")):
                    tracker.log_parent_text(parent, data.decode("utf-8"), name)
                else:
                    tracker.log_parent_file(parent, data, name)
            log(f"[sweep] report: {root.uri('report.md')} and report.html")
        except FileNotFoundError as exc:
            log(f"[sweep] no report: {exc}")
        tracker.end_parent(parent, status)
    return 0 if status == "FINISHED" else 1


def _run_tune(sweep: Sweep, root: RunStore, plan: ResourcePlan, log: Callable[[str], None], *,
              retry_failed: bool = False, launch: int = 1) -> list[Any]:
    """Start the Tune experiment, or restore it when this sweep directory already has one.

    A restore resumes the trials that were running when the sweep stopped (never more than
    ``max_concurrent_trials``: Tune's searcher let no more start) and keeps finished ones. Failed
    trials are *not* resumed by the restore: Tune would start every one of them at once, past
    ``max_concurrent_trials``, and on a small cluster their drivers would hold the CPUs their
    workers wait for. ``retry_failed`` instead starts a fresh Tune experiment over all trials
    (the old one is kept as ``tune.before-<launch>``): finished trials return their stored result
    at once, the others resume from their checkpoints, and concurrency is enforced as usual.
    """
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep_uri=root.root, plan=plan.as_dict()),
        {"CPU": plan.driver_cpus})
    exp_path = root.uri(TUNE_DIR)
    restorable = tune.Tuner.can_restore(exp_path)
    if restorable and retry_failed:
        moved = f"{TUNE_DIR}.before-{launch}"
        root.move_dir(TUNE_DIR, moved)
        log(f"[sweep] --retry-failed: a fresh Tune experiment over all trials (the previous one is in {moved})")
        restorable = False
    if restorable:
        # The restored run config brings back the SweepMlflowCallback pickled at the first launch;
        # its setup() reads this launch's sweep.json and looks runs up by tag.
        log(f"[sweep] restoring the Tune experiment in {exp_path} (finished trials are kept)")
        tuner = tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"trial_key": tune.grid_search([t.key for t in sweep.trials])},
            tune_config=tune.TuneConfig(max_concurrent_trials=plan.max_concurrent_trials,
                                        trial_dirname_creator=trial_dirname),
            run_config=tune.RunConfig(
                name=TUNE_DIR, storage_path=root.root, callbacks=[SweepMlflowCallback(root.root)], verbose=1,
                failure_config=tune.FailureConfig(max_failures=sweep.settings.max_failures)),
        )
    grid = tuner.fit()
    return [grid[i] for i in range(len(grid))]
