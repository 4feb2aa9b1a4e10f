"""A real sweep in a subprocess, killed mid-way (SIGKILL to its process group) and resumed.

One clips-per-class sweep (2 and 4 clips per class, tiny CogVideoX / tiny CLIP) checks at once:
- work sharing: the data stages ran once for the largest size and every clip was generated once;
- Tuner.restore: the trial that had finished before the kill is not started again, the
  interrupted one continues, and MLflow holds exactly one parent run and one run per trial;
- the report's numbers equal the mean ± population std of the trials' summary.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import TINY_CLASSES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def tiny_dataset(root: Path, classes: list[str], per_class: int) -> dict:
    """An evaluation dataset in the real layout (class folders of mp4s, split lists, label CSV)."""
    from tests.helpers import write_tiny_dataset

    return write_tiny_dataset(root, classes, per_class)


def tiny_sweep_file(path: Path, cogvideox: str, clip: str, dataset: dict, **axes) -> Path:
    """A sweep over tiny models: CogVideoX generation, CLIP scoring, TC-CLIP training, evaluation."""
    data = {
        "name": "tiny-sweep", "ray": {"num_cpus": 2}, "cache_dir": str(path.parent / "cache"),
        "prompts": {"classes": TINY_CLASSES},
        "generate": {"backend": "cogvideox", "clips_per_class": 2, "pool": {"actors": 1, "batch_size": 4},
                     "cogvideox": {"model": cogvideox, "dtype": "float32", "num_inference_steps": 2,
                                   "num_frames": 9, "height": 16, "width": 16, "max_sequence_length": 16}},
        "score": {"model": clip, "num_frames": 4, "pool": {"actors": 1, "batch_size": 8}},
        "train": {"model": "vificlip", "backbone": clip, "epochs": 2, "batch_size": 4, "num_frames": 4,
                  "lr": 1e-3, "warmup_epochs": 0, "max_failures": 0},
        "evaluate": {"datasets": [dataset], "num_clips": 1, "pool": {"batch_size": 8}},
        **axes,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
               RAY_DEDUP_LOGS="0", TUNE_DISABLE_STRICT_METRIC_CHECKING="1")
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _sweep_cmd(sweep_file: Path, sweep_dir: Path) -> list[str]:
    return [sys.executable, "-m", "ray_pipeline", "sweep", str(sweep_file), "--run-dir", str(sweep_dir)]


def _tune_statuses(sweep_dir: Path) -> dict[str, str]:
    """Trial key -> status, as Tune's last saved experiment state has it."""
    states = sorted((sweep_dir / "tune").glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
    except (json.JSONDecodeError, OSError):
        return {}
    out = {}
    for entry in data.get("trial_data", []):
        trial = json.loads(entry[0]) if isinstance(entry, (list, tuple)) else entry
        trial = json.loads(trial) if isinstance(trial, str) else trial
        config = trial.get("config", {})
        config = json.loads(config) if isinstance(config, str) else config
        key = config.get("trial_key") if isinstance(config, dict) else None
        status = trial.get("status")
        if key is None:
            # Older/other layouts pickle the config; fall back to the trial dir name.
            key = str(trial.get("relative_logdir") or trial.get("trial_dirname") or "").removeprefix("trial_")
        out[key] = status
    return out


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, tiny_cogvideox, tiny_clip):
    base = tmp_path_factory.mktemp("sweep")
    dataset = tiny_dataset(base / "eval", TINY_CLASSES, per_class=2)
    sweep_file = tiny_sweep_file(base / "cpc.yaml", tiny_cogvideox, tiny_clip, dataset,
                                 **{"generate.clips_per_class": {"grid": [2, 4]}})
    sweep_dir = base / "out"
    log1 = (base / "launch1.log").open("w")
    proc = subprocess.Popen(_sweep_cmd(sweep_file, sweep_dir), cwd=REPO, env=_env(), stdout=log1,
                            stderr=subprocess.STDOUT, start_new_session=True)
    killed_while = None
    try:
        # Kill once Tune has recorded one trial as finished and the next one has started (so the
        # restore has both a finished trial to keep and an interrupted one to resume).
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and proc.poll() is None:
            statuses = _tune_statuses(sweep_dir)
            started = {p.parent.name for p in (sweep_dir / "trials").glob("*/attempts.jsonl")}
            if "TERMINATED" in statuses.values() and started - {k for k, s in statuses.items() if s == "TERMINATED"}:
                killed_while = {k: statuses.get(k, "RUNNING") for k in started | set(statuses)}
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray cluster it started
        proc.wait()
        log1.close()
    first = (base / "launch1.log").read_text()
    assert killed_while is not None, f"no trial finished before the deadline:\n{first[-4000:]}"
    time.sleep(1)
    second = subprocess.run(_sweep_cmd(sweep_file, sweep_dir), cwd=REPO, env=_env(), capture_output=True,
                            text=True, timeout=420)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-6000:]
    return sweep_dir, killed_while, first, second.stdout + second.stderr


def _trials(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "trials.json").read_text())


def test_each_clip_generated_once_for_all_clips_per_class_values(killed_and_resumed):
    import pyarrow.parquet as pq

    sweep_dir, _, first, second = killed_and_resumed
    data = sweep_dir / "data"
    rows = [r for part in sorted((data / "generate" / "manifest").glob("part-*.parquet"))
            for r in pq.read_table(part).to_pylist()]
    n_clips = len(TINY_CLASSES) * 4  # the largest clips_per_class, once
    assert len(rows) == n_clips  # no clip written twice, across both launches
    assert len({r["clip_id"] for r in rows}) == n_clips
    assert len(list((data / "generate" / "videos").glob("*.mp4"))) == n_clips
    assert sorted({r["clip_index"] for r in rows}) == [0, 1, 2, 3]
    history = json.loads((sweep_dir / "data_stages.json").read_text())
    assert [len(h["groups"]) for h in history] == [1, 1]  # one data group for both trials
    assert history[0]["groups"][0]["generate"]["rows_new"] == n_clips
    assert history[1]["groups"][0]["generate"] == {**history[1]["groups"][0]["generate"], "rows_new": 0,
                                                   "rows_reused": n_clips}
    assert f"generate: {n_clips} rows, {n_clips} new" in first
    assert f"generate: {n_clips} rows, 0 new, {n_clips} reused" in second
    assert "read nested subsets" in first
    # Each trial trained on its own nested subset of the pool.
    for t in _trials(sweep_dir):
        result = json.loads((sweep_dir / "trials" / t["key"] / "train" / "result.json").read_text())
        assert result["num_clips"] == len(TINY_CLASSES) * t["variant"]["generate.clips_per_class"]


def test_resume_skips_finished_trials_and_keeps_one_mlflow_run_per_trial(killed_and_resumed):
    from mlflow.tracking import MlflowClient

    sweep_dir, killed_while, _, second = killed_and_resumed
    trials = _trials(sweep_dir)
    finished_before = {k for k, s in killed_while.items() if s == "TERMINATED"}
    assert finished_before and finished_before <= {t["key"] for t in trials}
    assert "restoring the Tune experiment" in second
    for t in trials:
        d = sweep_dir / "trials" / t["key"]
        assert (d / "trial_result.json").is_file() and (d / "summary.json").is_file()
        attempts = (d / "attempts.jsonl").read_text().splitlines()
        if t["key"] in finished_before:
            assert len(attempts) == 1, f"finished trial {t['key']} was started again"
        else:  # interrupted by the kill, continued by the restore
            assert len(attempts) == 2
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["launches"] == 2
    client = MlflowClient(f"sqlite:///{sweep_dir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ray_pipeline")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.sweep_id = '{meta['sweep_id']}'")
    parents = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
    children = [r for r in runs if r.data.tags.get("sweep_role") == "trial"]
    assert len(parents) == 1 and len(runs) == 1 + len(trials)
    assert sorted(r.data.tags["trial_key"] for r in children) == sorted(t["key"] for t in trials)
    for r in children:
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.info.status == "FINISHED"
        assert r.data.tags["variant"].startswith("clips_per_class=")
        assert r.data.params["generate.clips_per_class"] == r.data.tags["variant.generate.clips_per_class"]
        assert "tiny.generated.top1_mean" in r.data.metrics and "tiny.backbone.top1_mean" in r.data.metrics
        epochs = client.get_metric_history(r.info.run_id, "train.synthetic.loss")
        assert sorted({m.step for m in epochs}) == [0, 1]
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"config.yaml", "report.md"} <= artifacts
    assert parents[0].info.status == "FINISHED"
    assert "report.md" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}


def test_sweep_report_matches_trial_summaries(killed_and_resumed):
    from ray_pipeline.report.sweep import BACKBONE_ROW

    sweep_dir, _, _, _ = killed_and_resumed
    report = (sweep_dir / "report.md").read_text()
    assert (sweep_dir / "report.html").is_file()
    png = sweep_dir / "report" / "clips_per_class_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for t in _trials(sweep_dir):
        summary = json.loads((sweep_dir / "trials" / t["key"] / "summary.json").read_text())
        rows = {r["role"]: r for r in summary["rows"]}
        top1 = rows["generated"]["datasets"]["tiny"]["top1"]["mean"]
        label = f"clips_per_class={t['variant']['generate.clips_per_class']}"
        assert f"| {label} | {top1:.1f} ± " in report
        base = rows["backbone"]["datasets"]["tiny"]["top1"]["mean"]
        assert f"| {BACKBONE_ROW} | {base:.1f} ± " in report
    # The backbone is evaluated once, into the shared store, and every trial's summary has it.
    import pyarrow.parquet as pq

    shared = [r for part in sorted((sweep_dir / "data" / "evaluate" / "manifest").glob("part-*.parquet"))
              for r in pq.read_table(part).to_pylist()]
    assert shared and {r["role"] for r in shared} == {"backbone"}
    assert len(shared) == len({r["eval_id"] for r in shared})  # no video evaluated twice
