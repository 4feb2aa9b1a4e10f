"""Fitting a sweep's trials to the cluster.

A Tune trial reserves only its driver's (fractional) CPU; its Train workers and evaluate actors are
scheduled by the trial itself, so concurrency must be derived here or idle drivers hold the CPUs
the workers need (deadlock). The plan travels to each trial, which applies its CPU shares to the
config fields the user left open.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from ray_pipeline.config import ConfigError, ExperimentConfig
from ray_pipeline.sweep.space import Sweep


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
