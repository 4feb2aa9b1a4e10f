"""The sweep's MLflow runs are found by tag, so a new process (a restored sweep) never duplicates them."""

from __future__ import annotations

import json

from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import TRIAL_SPEC
from ray_pipeline.sweep.tracking import SweepTracker


def test_runs_are_looked_up_by_tag_across_processes(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root would be ./mlruns here

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    root = RunStore(tmp_path / "sweep")
    spec = {"key": "abc123", "name": "s", "variant": {"train.loss": "ul", "train.seed": 1}, "data_group": "g1",
            "config": {"train": {"loss": "ul", "seed": 1}, "prompts": {"strategy": "ie"}}}
    root.write_text(f"trials/abc123/{TRIAL_SPEC}", json.dumps(spec))
    root.write_text("trials/abc123/report.md", "# a report\n")

    first = SweepTracker(uri, "exp", "sweep-1", root.root)
    parent = first.parent_run("s", {"sweep.axis.train.loss": "{grid: [ls, ul]}"}, {})
    run = first.trial_run(parent, "abc123")
    checkpoint = f"{root.root}/trials/abc123/train/ray/synthetic-0123456789abcdef/checkpoint_x"
    first.log_epoch(run, {"epoch": 0, "loss": 2.0, "lr": 1e-4, "checkpoint_path": checkpoint})
    # A "restored" sweep: a new tracker with nothing in memory finds the same runs.
    second = SweepTracker(uri, "exp", "sweep-1", root.root)
    assert second.parent_run("s", {"sweep.axis.train.loss": "{grid: [ls, ul]}"}, {}) == parent
    assert second.trial_run(parent, "abc123") == run
    second.finish_trial("abc123", {"world_hmdb.generated.top1_mean": 41.0, "final": 1, "epoch": 3}, "FINISHED")
    # A third launch that re-reports the finished trial does not log its metrics twice.
    third = SweepTracker(uri, "exp", "sweep-1", root.root)
    third.trial_run(parent, "abc123")
    third.finish_trial("abc123", {"world_hmdb.generated.top1_mean": 41.0}, "FINISHED")
    # Another sweep's trial with the same key is another run.
    other = SweepTracker(uri, "exp", "sweep-2", root.root)
    assert other.trial_run(other.parent_run("s2", {}, {}), "abc123") != run

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.sweep_id = 'sweep-1'")
    assert len(runs) == 2
    r = client.get_run(run)
    assert r.data.tags["mlflow.parentRunId"] == parent and r.data.tags["variant"] == "+UL"
    assert r.data.tags["variant.train.seed"] == "1" and r.data.params["train.loss"] == "ul"
    assert r.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run, "world_hmdb.generated.top1_mean")] == [41.0]
    assert [(m.step, m.value) for m in client.get_metric_history(run, "train.synthetic.loss")] == [(0, 2.0)]
    assert "final" not in r.data.metrics and "epoch" not in r.data.metrics
    assert {"report.md", "trial.json"} <= {a.path for a in client.list_artifacts(run)}
    # Artifacts live in the sweep directory (a job's working dir is temporary), not ./mlruns.
    stored = {p.name for p in (tmp_path / "sweep" / "mlartifacts").rglob("*") if p.is_file()}
    assert {"report.md", "trial.json"} <= stored
    assert not (tmp_path / "mlruns").exists()


def test_progress_counts_the_whole_sweep_and_paces_the_eta_on_trials_this_launch_ran(monkeypatch):
    """Tune lists trials as it creates them; the line counts all of sweep.json's and estimates the
    rest from this launch's wall time per trial it ran (not from trials an earlier launch finished)."""
    from types import SimpleNamespace

    from ray_pipeline.sweep import tracking

    clock = [100.0]
    monkeypatch.setattr(tracking.time, "monotonic", lambda: clock[0])
    cb = tracking.SweepMlflowCallback("unused")
    cb.total = 12
    cb.tracker = SimpleNamespace(_finished={"old"})
    trials = [SimpleNamespace(status="TERMINATED", config={"trial_key": "old"}),
              SimpleNamespace(status="RUNNING", config={"trial_key": "new"})]
    assert cb.progress(trials) == "1/12 done"
    assert cb.progress(trials, ending=trials[1]) == "2/12 done"  # Tune sets the status after the callback
    cb._first_start, cb._ran = 100.0, 1
    trials[1].status = "TERMINATED"
    clock[0] = 400.0  # one trial run in 300 s, 10 left
    assert cb.progress(trials) == "2/12 done, ETA 50m00s"
