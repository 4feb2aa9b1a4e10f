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
   (:mod:`ray_pipeline.report`).

Modules: :mod:`.space` (axes, trials), :mod:`.sharing` (data groups, baselines),
:mod:`.resources` (concurrency and CPU shares), :mod:`.trial` (what runs in a Tune trial),
:mod:`.tracking` (MLflow), :mod:`.layout` (the sweep directory), and this driver.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ray import tune

from ray_pipeline.config import ConfigError
from ray_pipeline.console import Console, run_console
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import (
    DATA_STATS,
    SWEEP_FILE,
    SWEEP_YAML,
    TRIAL_RESULT,
    TRIAL_SPEC,
    TRIALS_FILE,
    TUNE_DIR,
    trial_dir,
)
from ray_pipeline.sweep.resources import ResourcePlan, plan_resources
from ray_pipeline.sweep.sharing import prepare_trial_inputs, run_data_stages, train_shared_phases
from ray_pipeline.sweep.space import Sweep, TrialSpec, attach, load_sweep
from ray_pipeline.sweep.tracking import SweepMlflowCallback, SweepTracker
from ray_pipeline.sweep.trial import run_trial, trial_dirname


def _trial_record(t: TrialSpec) -> dict[str, Any]:
    cfg = t.config.model_copy(deep=True)
    return {"key": t.key, "index": t.index, "name": cfg.name, "variant": t.variant,
            "data_group": t.data_group,
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
    for t in sweep.trials:
        lines.append(f"  trial {t.key} [{t.label()}] data {t.data_group}")
    return lines


def _read_json(store: RunStore, name: str) -> Any:
    return json.loads(store.read_text(name)) if store.exists(name) else None


def run_sweep(path: str, overrides: list[str], sweep_dir: str | None, *, dry_run: bool = False,
              retry_failed: bool = False, verbose: bool = False) -> int:
    """The ``sweep`` subcommand; returns the exit status (0: every trial finished)."""
    from ray_pipeline.tracking import resolve_tracking_uri

    sweep = load_sweep(path, overrides)
    root = RunStore(sweep_dir or f"runs/{sweep.name}")
    attach(sweep, root)
    tracking_uri = resolve_tracking_uri(sweep.trials[0].config, root)
    if dry_run:
        console = Console()
        for line in describe_plan(sweep):
            console.line(f"[sweep] {line}")
        return 0
    with run_console(root, "sweep", verbose) as console:
        for line in describe_plan(sweep):
            console.line(f"[sweep] {line}")
        return _launch(sweep, path, overrides, root, tracking_uri, console, retry_failed=retry_failed)


def _launch(sweep: Sweep, path: str, overrides: list[str], root: RunStore, tracking_uri: str, console: Console, *,
            retry_failed: bool) -> int:
    """One launch of a sweep: data stages, then the Tune experiment (new or restored), then the report."""
    from ray_pipeline.cluster import Cluster
    from ray_pipeline.tracking import flatten

    log = console.logger("sweep")
    base_cfg = sweep.trials[0].config

    state = _read_json(root, SWEEP_FILE) or {}
    if state and state.get("sweep_id") != sweep.sweep_id:
        raise ConfigError(
            f"{root.root} holds another sweep ({state.get('source')}, {len(state.get('trials', []))} trials): "
            "a restored Tune experiment cannot change its search space or trial configs; use another --run-dir")
    launch = int(state.get("launches", 0)) + 1
    trials_json = [_trial_record(t) for t in sweep.trials]
    for rec in trials_json:
        root.write_text(f"{trial_dir(rec['key'])}/{TRIAL_SPEC}", json.dumps(rec, indent=2))
    root.write_text(TRIALS_FILE, json.dumps(trials_json, indent=2))
    root.write_text(SWEEP_YAML, Path(path).read_text()
                    + ("".join(f"\n# --set {o}" for o in overrides) + "\n" if overrides else ""))

    cluster = Cluster(base_cfg.ray)
    resources = cluster.resources()
    plan = plan_resources(sweep, cluster.nodes())
    log(f"cluster {resources.get('CPU', 0):g} CPU / {resources.get('GPU', 0):g} GPU: "
        f"{plan.max_concurrent_trials} concurrent trial(s), each {plan.driver_cpus:g} driver CPU + "
        f"train workers {sorted(set(plan.train_cpus_per_worker.values()))} CPU each")

    tracker = SweepTracker(tracking_uri, base_cfg.mlflow.experiment, sweep.sweep_id, root.root)
    axis_params = {f"sweep.axis.{a.path}": a.describe() for a in sweep.axes}
    parent = tracker.parent_run(sweep.name, {**axis_params, "sweep.num_trials": str(len(sweep.trials)),
                                             **{f"base.{k}": v for k, v in flatten(sweep.base).items()}},
                                {"sweep_source": sweep.source})
    already = [t.key for t in sweep.trials if root.exists(f"{trial_dir(t.key)}/{TRIAL_RESULT}")]
    root.write_text(SWEEP_FILE, json.dumps({
        "sweep_id": sweep.sweep_id, "source": sweep.source, "overrides": overrides, "name": sweep.name,
        "axes": [a.__dict__ for a in sweep.axes], "trials": [t.key for t in sweep.trials],
        "launches": launch, "mlflow": {"tracking_uri": tracking_uri, "experiment": base_cfg.mlflow.experiment,
                                       "parent_run_id": parent},
        "resources": plan.as_dict()}, indent=2))

    status = "FAILED"
    try:
        stats = run_data_stages(sweep.groups, root, console)
        prepare_trial_inputs(sweep.trials, log)
        if train_shared_phases(sweep.trials, root, console):
            log("shared training phases ready (trials find them by content id)")
        history = _read_json(root, DATA_STATS) or []
        history.append({"launch": launch, "time": time.time(), "groups": stats})
        root.write_text(DATA_STATS, json.dumps(history, indent=2))
        tracker.log_parent(parent, {f"data.{g['group']}.{n}.{k}": g[n][k] for g in stats
                                    for n in ("prompts", "generate", "score") for k in ("rows_new", "rows_reused")},
                           step=launch)
        if already:
            log(f"{len(already)} of {len(sweep.trials)} trials already finished: they are not run again")
        results = _run_tune(sweep, root, plan, log, retry_failed=retry_failed, launch=launch)
        errored = [r for r in results if r.error]
        log(f"trials: {len(results) - len(errored)} finished "
            f"({len(already)} before this launch), {len(errored)} failed")
        if errored:
            log("failed trials keep their error in SWEEP_DIR/tune/trial_<key>/error.txt; fix the cause "
                "and rerun with --retry-failed (finished trials are not run again)")
        status = "FINISHED" if not errored else "FAILED"
    finally:
        try:
            from ray_pipeline.report import write_report

            written = write_report(root)
            for name in written:
                data = root.read_bytes(name)
                if name.endswith((".md", ".html", ".json")):
                    tracker.log_parent_text(parent, data.decode("utf-8"), name)
                else:
                    tracker.log_parent_file(parent, data, name)
            log(f"report: {root.uri('report.md')} and report.html")
        except FileNotFoundError as exc:
            log(f"no report: {exc}")
        tracker.end_parent(parent, status)
        cluster.close()
    return 0 if status == "FINISHED" else 1


def _run_tune(sweep: Sweep, root: RunStore, plan: ResourcePlan, log: Any, *,
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
        log(f"--retry-failed: a fresh Tune experiment over all trials (the previous one is in {moved})")
        restorable = False
    if restorable:
        # The restored run config brings back the SweepMlflowCallback pickled at the first launch;
        # its setup() reads this launch's sweep.json and looks runs up by tag.
        log(f"restoring the Tune experiment in {exp_path} (finished trials are kept)")
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
