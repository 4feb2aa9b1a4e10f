"""MLflow for a sweep, written only by the driver process (no "database is locked" on sqlite): one
parent run per sweep, one nested run per trial with flattened params, variant tags, per-epoch and
final metrics, and the trial's config and report as artifacts. Runs are looked up by tag
(``sweep_id`` + ``trial_key``) before one is created, so a restore never duplicates them (Ray's
``MLflowLoggerCallback`` keeps its trial->run map in memory and would).

The Tune callback also prints one console line when a trial starts, finishes an epoch, or ends.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

from ray import tune

from ray_pipeline.console import current_console, format_duration
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import SWEEP_FILE, TRIAL_SPEC, trial_dir

_SWEEP_TAG, _TRIAL_TAG, _ROLE_TAG = "sweep_id", "trial_key", "sweep_role"
_PARENT_TAG = "mlflow.parentRunId"


def _variant_tags(variant: dict[str, Any]) -> dict[str, str]:
    """Tags for the ablation variant: one per axis, plus the paper's row name for known axes."""
    from ray_pipeline.report import variant_label

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

        spec = json.loads(RunStore(self.sweep_uri).read_text(f"{trial_dir(key)}/{TRIAL_SPEC}"))
        run = self.client.create_run(self._experiment_id, run_name=f"{spec['name']}/{key}", tags={
            _SWEEP_TAG: self.sweep_id, _TRIAL_TAG: key, _ROLE_TAG: "trial", _PARENT_TAG: parent,
            "data_group": spec["data_group"], "trial_dir": RunStore(self.sweep_uri).uri(trial_dir(key)),
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
            match = re.fullmatch(r"([a-z_]+)-[0-9a-f]{16}", part)
            if match:
                phase = f"train.{match.group(1)}"
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
                wanted = ("train.", "trial_seconds", "data.")
                self._log_metrics(run_id, {k: v for k, v in result.items() if isinstance(v, (int, float))
                                           and (k.startswith(wanted) or ".top" in k)})
            store = RunStore(RunStore(self.sweep_uri).uri(trial_dir(key)))
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
        self._started: dict[str, float] = {}
        # Tune creates trials one by one, so its list is not the sweep: the total comes from
        # sweep.json, and the ETA from this launch's pace over the trials it ran to the end.
        self.total = 0
        self._first_start: float | None = None
        self._ran = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"sweep_uri": self.sweep_uri}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["sweep_uri"])

    def setup(self, **info: Any) -> None:
        meta = json.loads(RunStore(self.sweep_uri).read_text(SWEEP_FILE))
        self.tracker = SweepTracker(meta["mlflow"]["tracking_uri"], meta["mlflow"]["experiment"],
                                    meta["sweep_id"], self.sweep_uri)
        self.parent = meta["mlflow"]["parent_run_id"]
        self.total = len(meta.get("trials", []))

    def _run(self, trial: Any) -> tuple[str, str]:
        assert self.tracker is not None, "setup() was not called"
        key = trial.config["trial_key"]
        return key, self.tracker.trial_run(self.parent, key)

    def progress(self, trials: list, ending: Any = None) -> str:
        """``3/12 done, ETA 20m`` (the ETA once this launch has run a trial to the end). ``ending``
        counts as done: Tune calls back about a trial that ended before it sets its status."""
        done = sum(t.status in ("TERMINATED", "ERROR") or t is ending for t in trials)
        total = max(self.total, len(trials))
        text = f"{done}/{total} done"
        if self._ran and self._first_start is not None and done < total:
            pace = (time.monotonic() - self._first_start) / self._ran
            text += f", ETA {format_duration(pace * (total - done))}"
        return text

    def _say(self, trials: list, trial: Any, text: str, ended: bool = False) -> None:
        progress = self.progress(trials, trial if ended else None)
        current_console().line(f"[sweep] trial {trial.config['trial_key']} ({progress}): {text}")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key, run_id = self._run(trial)
        self._started[key] = time.monotonic()
        if key not in self.tracker._finished:
            if self._first_start is None:
                self._first_start = self._started[key]
            self.tracker.client.update_run(run_id, status="RUNNING")
        self._say(trials, trial, "started")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        key, run_id = self._run(trial)
        if result.get("final"):
            self._last[key] = dict(result)
        elif "epoch" in result and key not in self.tracker._finished:
            self.tracker.log_epoch(run_id, result)
            if "loss" in result:
                self._say(trials, trial, f"epoch {int(result['epoch']) + 1}/{int(result.get('epochs', 0))}, "
                                         f"loss {float(result['loss']):.4f}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key, _ = self._run(trial)
        result = self._last.get(key) or trial.last_result
        self._ran += key not in self.tracker._finished  # not one an earlier launch finished
        self.tracker.finish_trial(key, result, "FINISHED")
        top1 = ", ".join(f"{k.split('.')[0]} top-1 {v:.1f}" for k, v in result.items()
                         if k.endswith(".generated.top1_mean"))
        took = time.monotonic() - self._started.get(key, time.monotonic())
        self._say(trials, trial, f"finished in {took:.0f}s" + (f": {top1}" if top1 else ""), ended=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        key, _ = self._run(trial)
        self.tracker.finish_trial(key, None, "FAILED")
        self._say(trials, trial, "FAILED (its error is in SWEEP_DIR/tune/trial_<key>/error.txt)", ended=True)
