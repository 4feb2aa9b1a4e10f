"""A sweep file's search space: axes taken out of an experiment YAML, expanded into trials, every
trial's config validated before any Ray work (errors name the file, the trial and the field).

Axes are mappings with one key naming how values are chosen: ``{grid: [...]}`` (Cartesian
product), or a distribution drawn per trial with Ray Tune's samplers (``choice``, ``uniform``,
``quniform``, ``loguniform``, ``randint``; ``sweep.num_samples`` repeats). A trial's key is a
hash of its whole resolved config, so the same trial gets the same folder and MLflow run after a
restart and an edited sweep file cannot silently reuse another trial's results.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from ray_pipeline.config import (
    ConfigError,
    ExperimentConfig,
    StrictModel,
    apply_overrides,
    format_validation_error,
    read_yaml_mapping,
)
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import DATA_DIR
from ray_pipeline.sweep.sharing import DataGroup, group_data_stages

GRID = "grid"
DISTRIBUTIONS = ("choice", "uniform", "quniform", "loguniform", "randint")
AXIS_KINDS = (GRID, *DISTRIBUTIONS)
# Fields one sweep cannot vary: one cluster, one MLflow experiment, one shared data store.
FIXED_FIELDS = ("name", "ray", "mlflow", "data_dir")


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

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.variant.items()) or "(no axes)"


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
    from ray import tune

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
    # ``analysis`` changes what `ray-pipeline analyze` draws, never a trial's result.
    return row_id("trial", config=config.model_dump(mode="json", exclude={"analysis"}))[:12]


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
    return Sweep(source=source, name=name, settings=settings, axes=axes, base=base, trials=trials,
                 groups=group_data_stages(trials))


def attach(sweep: Sweep, root: RunStore) -> None:
    """Point every trial without its own ``data_dir`` at the sweep's shared store ``SWEEP_DIR/data``.

    Trial keys were computed before, so they do not depend on where the sweep lives.
    """
    for t in sweep.trials:
        # Absolute, so that trial processes (another working directory) find the same store.
        data_dir = RunStore(t.config.data_dir).root if t.config.data_dir else root.uri(DATA_DIR)
        t.config = t.config.model_copy(update={"data_dir": data_dir})
    sweep.groups = group_data_stages(sweep.trials)
