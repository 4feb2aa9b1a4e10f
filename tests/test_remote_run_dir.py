"""A whole run with its run directory in S3 (moto's S3 server): `ray-pipeline run` (prompts ->
generate -> score -> train -> evaluate), then `ray-pipeline train` twice more: once finding the
finished phase in the bucket and skipping it, once resuming from the newest checkpoint left there.
The CLI runs in this process, on the session's Ray (its workers have the S3 credentials: conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from ray_pipeline.models.base import WEIGHTS_FILE
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.train import RESULT
from ray_pipeline.training.loop import INFO_FILE
from tests.helpers import S3_BUCKET, TINY_CLASSES, write_tiny_dataset

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
PER_CLASS = 2  # clips per class: 4 classes -> 8 clips, two training steps of 4 per epoch


def _cli(capfd, command: str, config: Path, run_dir: str) -> tuple[str, dict]:
    """Run one CLI command; returns its console (stderr) and the metrics its last stage logged to
    its nested MLflow run."""
    import mlflow

    from ray_pipeline.cli import main

    capfd.readouterr()
    code = main([command, str(config), "--run-dir", run_dir])
    log = capfd.readouterr().err
    assert code == 0, log[-4000:]
    last = "evaluate" if command == "run" else command
    assert f"[{last}] done in " in log, log[-4000:]
    client = mlflow.MlflowClient(yaml.safe_load(config.read_text())["mlflow"]["tracking_uri"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string=f"tags.stage = '{last}'", order_by=["attributes.start_time DESC"])
    return log, runs[0].data.metrics


def _checkpoints(store: RunStore, phase_name: str) -> dict[int, str]:
    """Epoch -> checkpoint folder (relative) of a phase, read from the bucket."""
    out = {}
    for rel in store.list_dirs(f"train/ray/{phase_name}"):
        if store.exists(f"{rel}/{INFO_FILE}"):
            out[json.loads(store.read_text(f"{rel}/{INFO_FILE}"))["epoch"]] = rel
    return out


def test_run_train_resume_and_evaluate_with_the_run_directory_in_s3(tmp_path, monkeypatch, capfd, s3_endpoint,
                                                                    ray_cluster, tiny_clip):
    run_dir = f"s3://{S3_BUCKET}/runs/tiny?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    dataset = write_tiny_dataset(tmp_path / "eval", TINY_CLASSES, per_class=2)  # 8 videos, 2 splits
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "ray": {"num_cpus": 2}, "cache_dir": str(tmp_path / "cache"),
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "prompts": {"classes": TINY_CLASSES},
        "generate": {"backend": "procedural", "clips_per_class": PER_CLASS, "pool": {"actors": 1, "batch_size": 4},
                     "procedural": {"size": 32, "num_frames": 4}},
        "score": {"model": tiny_clip, "num_frames": 2, "pool": {"actors": 1, "batch_size": 8}},
        "train": {"model": "vificlip", "backbone": tiny_clip, "epochs": 2, "batch_size": 4, "num_frames": 2,
                  "lr": 1e-3, "warmup_epochs": 0, "max_failures": 0},
        "evaluate": {"datasets": [dataset], "baseline": False, "num_clips": 1, "pool": {"batch_size": 8}},
    }, sort_keys=False))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a URI taken for a relative path would show up here

    _, evaluated = _cli(capfd, "run", config, run_dir)
    store = RunStore(run_dir)
    n = len(TINY_CLASSES) * PER_CLASS
    assert store.manifest("prompts", "prompt_id").read().num_rows == n
    clips = store.manifest("generate", "clip_id").read()
    assert clips.num_rows == n
    for uri in clips.column("video_uri").to_pylist():
        # A URI other processes can open: the path, then the store's endpoint options.
        assert uri.startswith(f"s3://{S3_BUCKET}/runs/tiny/generate/videos/")
        assert uri.endswith(f"?{run_dir.partition('?')[2]}")
        parent, name = RunStore.split(uri)
        assert parent.exists(name)
    assert store.manifest("score", "score_id").read().num_rows == n

    result = json.loads(store.read_text(RESULT))
    assert result["num_clips"] == n
    trained_loss = result["phases"][0]["metrics"]["loss"]
    phase = result["phases"][0]["name"]
    checkpoints = _checkpoints(store, phase)
    assert sorted(checkpoints) == [0, 1]
    assert result["model_dir"].startswith(store.uri(checkpoints[1]).partition("?")[0])
    assert RunStore(result["model_dir"]).exists(WEIGHTS_FILE)

    assert evaluated["rows_new"] == n
    assert store.manifest("evaluate", "eval_id").read().num_rows == n
    summary = json.loads(store.read_text("summary.json"))
    [row] = summary["rows"]
    assert row["label"].startswith("ViFi-CLIP + generated") and row["role"] == "generated"
    entry = row["datasets"]["tiny"]
    assert entry["videos"] == n and entry["top1"]["n"] == 2 and entry["corrupt_videos"] == 0
    assert 0.0 <= entry["top1"]["mean"] <= 100.0 and entry["top1"]["std"] >= 0.0
    # MLflow's artifacts (each stage's config.yaml) went to the run directory too.
    artifacts = store.fs.get_file_info(pafs.FileSelector(store.fs_path("mlartifacts"), recursive=True))
    assert any(i.base_name == "config.yaml" for i in artifacts)

    # A rerun finds the finished phase in the bucket and trains nothing.
    log, again = _cli(capfd, "train", config, run_dir)
    assert "already trained" in log and f"{n} clips" not in log, log[-4000:]  # no trainer started
    assert again["epochs"] == 2 and again["final_loss"] == trained_loss
    assert _checkpoints(store, phase) == checkpoints
    assert json.loads(store.read_text(RESULT))["model_dir"] == result["model_dir"]

    # As after a driver killed once epoch 0's checkpoint was uploaded, before Ray saved its own
    # record of the run: the newest checkpoint and Ray's files in the phase folder gone. The rerun
    # resumes from epoch 0's checkpoint, which the worker finds in and fetches from the bucket,
    # and trains only the missing epoch.
    store.fs.delete_dir(store.fs_path(checkpoints[1]))
    for rel in store.list_files(f"train/ray/{phase}"):
        store.fs.delete_file(store.fs_path(rel))
    log, resumed = _cli(capfd, "train", config, run_dir)
    assert f"resuming after epoch 1 from s3://{S3_BUCKET}/runs/tiny/train/ray/{phase}/" in log, log[-4000:]
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 2
    # The same weights, optimizer and schedule as before (the same RNG streams too): the same loss.
    assert resumed["final_loss"] == pytest.approx(trained_loss, rel=1e-5)
    assert sorted(_checkpoints(store, phase)) == [0, 1]
    assert RunStore(json.loads(store.read_text(RESULT))["model_dir"]).exists(WEIGHTS_FILE)

    # A URI taken for a local path becomes "<working dir>/s3:/<bucket>/...": in this process's
    # working directory, or in the repository, where the session's Ray workers run.
    assert list(cwd.iterdir()) == []
    assert not (REPO / "s3:").exists() and not list(tmp_path.glob("**/s3:"))


def test_sqlite_tracking_for_an_s3_endpoint_run_dir_needs_mlflow_s3_endpoint(tmp_path, s3_endpoint, monkeypatch):
    from ray_pipeline.config import ConfigError, ExperimentConfig
    from ray_pipeline.tracking import resolve_tracking_uri

    store = RunStore(f"s3://{S3_BUCKET}/runs/x?endpoint_override={s3_endpoint}&scheme=http")
    cfg = ExperimentConfig.model_validate({"mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}})
    assert resolve_tracking_uri(cfg, store) == cfg.mlflow.tracking_uri
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL")
    # Else MLflow's S3 client would send the artifacts to AWS, not to the endpoint.
    with pytest.raises(ConfigError, match="MLFLOW_S3_ENDPOINT_URL"):
        resolve_tracking_uri(cfg, store)
