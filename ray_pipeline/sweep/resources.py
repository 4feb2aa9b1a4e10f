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

from ray_pipeline.cluster import NodeShape, RequestFields, fit_requests, floor3, single_node
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


def _gpu_slots(nodes: list[NodeShape], per_request: float) -> int:
    """How many requests of ``per_request`` GPUs the nodes hold (a request stays on one node)."""
    return sum(n.count * math.floor(n.gpus / per_request + 1e-9) for n in nodes)


def _trial_gpu_fit(nodes: list[NodeShape], cfg: ExperimentConfig) -> int | None:
    """Trials of ``cfg`` whose GPU requests the nodes hold at once (None: it requests no GPU)."""
    tr, pool = cfg.train, cfg.evaluate.pool
    fits = []
    if tr.use_gpu:
        fits.append(_gpu_slots(nodes, 1.0) // tr.num_workers)
    if pool.num_gpus > 0:
        fits.append(_gpu_slots(nodes, pool.num_gpus) // pool.actors)
    return min(fits) if fits else None


def plan_resources(sweep: Sweep, resources: dict[str, float] | list[NodeShape]) -> ResourcePlan:
    """Fit trials to the cluster: ``max_concurrent_trials`` and per-trial CPU shares.

    A Tune trial reserves only its driver's (fractional) CPU; its Train workers and evaluate
    actors are scheduled by the trial itself, so concurrency must be derived here or idle drivers
    hold the CPUs the workers need (deadlock). Rule: ``sweep.max_concurrent_trials`` if set; else
    with ``train.cpus_per_worker`` set, as many trials as fit (driver + workers); else as many as
    the GPUs fit for GPU trials, and one at a time for CPU trials (as a single run, it gets the
    whole cluster). Never more than the GPUs fit; CPUs are shared equally among concurrent trials,
    and every request must fit on a node, all trials' at once (fewer trials run at a time when they
    would not, unless ``max_concurrent_trials`` says how many: then it is an error).

    Args:
        sweep: the expanded sweep.
        resources: the cluster's nodes (:func:`ray_pipeline.cluster.node_shapes`), or one node's
            resources (``{"CPU": ..., "GPU": ...}``).
    """
    nodes = single_node(resources) if isinstance(resources, dict) else resources
    s = sweep.settings
    cpus, gpus = sum(n.cpus * n.count for n in nodes), sum(n.gpus * n.count for n in nodes)
    driver = s.trial_driver_cpus
    explicit = all(t.config.train.cpus_per_worker is not None for t in sweep.trials)
    needs = [driver + t.config.train.num_workers * (t.config.train.cpus_per_worker or 0.0) for t in sweep.trials]
    gpus_per_trial = max((max(t.config.train.num_workers if t.config.train.use_gpu else 0,
                              t.config.evaluate.pool.actors * t.config.evaluate.pool.num_gpus)
                          for t in sweep.trials), default=0.0)
    fits = [f for f in (_trial_gpu_fit(nodes, t.config) for t in sweep.trials) if f is not None]
    gpu_fit = min(fits) if fits else None
    if gpu_fit == 0:
        raise ConfigError(f"{sweep.source}: a trial needs {gpus_per_trial:g} GPUs (train.num_workers with "
                          f"train.use_gpu, or evaluate.pool), but the cluster has {gpus:g} "
                          f"({'; '.join(n.describe() for n in nodes)})")
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
    while True:
        try:
            train_cpus, eval_cpus = _trial_shares(sweep, nodes, conc)
            break
        except ConfigError:
            if s.max_concurrent_trials or conc == 1:
                raise
            conc -= 1  # the derived concurrency does not fit on the nodes: fewer trials at a time
    return ResourcePlan(conc, driver, cpus / conc, gpus_per_trial, train_cpus, eval_cpus)


def _trial_shares(sweep: Sweep, nodes: list[NodeShape], conc: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per-trial CPUs of train workers and evaluate actors with ``conc`` trials at a time."""
    driver = sweep.settings.trial_driver_cpus
    cpus = sum(n.cpus * n.count for n in nodes)
    share = cpus / conc
    train_cpus, eval_cpus = {}, {}
    for t in sweep.trials:
        tr, ev = t.config.train, t.config.evaluate
        where = f"{sweep.source}: trial {t.label()}"
        per_worker = tr.cpus_per_worker or floor3((share - driver) / tr.num_workers)
        if per_worker <= 0 or driver + tr.num_workers * per_worker > share + 1e-6:
            raise ConfigError(
                f"{where}: {driver:g} driver CPU + {tr.num_workers} x {per_worker:g} "
                f"worker CPUs exceeds its share of {share:g} CPUs ({cpus:g} CPUs / {conc} concurrent trials); "
                "lower train.cpus_per_worker, train.num_workers, sweep.trial_driver_cpus or "
                "sweep.max_concurrent_trials")
        try:
            # Every concurrent trial's workers at once, with the trials' drivers held back.
            fitted = fit_requests(conc * tr.num_workers, tr.cpus_per_worker, 1.0 if tr.use_gpu else 0.0, nodes,
                                  conc * driver, RequestFields("train.num_workers", "train.cpus_per_worker",
                                                               "train.use_gpu"))
        except ConfigError as exc:
            raise ConfigError(f"{where} ({conc} at a time): {exc}") from None
        per_worker = min(per_worker, fitted)
        train_cpus[t.key] = per_worker
        per_actor = ev.pool.num_cpus or floor3((share - driver - t.config.ray.reserve_cpus) / ev.pool.actors)
        if per_actor <= 0:
            raise ConfigError(f"{where}: no CPU left for evaluate actors in a share "
                              f"of {share:g} CPUs; set evaluate.pool.num_cpus or lower ray.reserve_cpus")
        try:
            fitted = fit_requests(conc * ev.pool.actors, ev.pool.num_cpus, ev.pool.num_gpus, nodes,
                                  conc * (driver + t.config.ray.reserve_cpus),
                                  RequestFields("evaluate.pool.actors", "evaluate.pool.num_cpus",
                                                "evaluate.pool.num_gpus"))
        except ConfigError as exc:
            raise ConfigError(f"{where} ({conc} at a time): {exc}") from None
        eval_cpus[t.key] = ev.pool.num_cpus or min(per_actor, fitted)
    return train_cpus, eval_cpus


def apply_resources(cfg: ExperimentConfig, key: str, plan: dict[str, Any]) -> ExperimentConfig:
    """The trial's config with the plan's CPU shares where the config leaves them open."""
    cfg = cfg.model_copy(deep=True)
    if cfg.train.cpus_per_worker is None:
        cfg.train.cpus_per_worker = plan["train_cpus_per_worker"][key]
    if cfg.evaluate.pool.num_cpus is None:
        cfg.evaluate.pool.num_cpus = plan["evaluate_cpus_per_actor"][key]
    return cfg
