"""A real process kill mid-generation, then a rerun: exactly the expected rows, none duplicated,
every video decodable, no half-written files."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ray_pipeline.runstore import RunStore
from ray_pipeline.video_io import count_frames
from tests.helpers import tiny_cogvideox_config, write_prompt_rows

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def _generate_cmd(config: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "ray_pipeline", "generate", str(config), "--run-dir", str(run_dir)]


def test_kill_mid_generation_then_rerun(tmp_path, tiny_cogvideox, tiny_clip):
    run_dir = tmp_path / "run"
    store = RunStore(run_dir)
    cfg = tiny_cogvideox_config(tiny_cogvideox, tiny_clip, clips_per_class=12)
    cfg.generate.pool.batch_size = 1
    cfg.generate.cogvideox.num_inference_steps = 4
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    prompts = write_prompt_rows(store, cfg)  # 4 classes x 12 clips
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    # The driver (and the local Ray it started) gets SIGKILL once a few batches have landed.
    proc = subprocess.Popen(_generate_cmd(config, run_dir), cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts_dir = run_dir / "generate" / "manifest"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if parts_dir.exists() and len(list(parts_dir.glob("part-*.parquet"))) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "generation finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    partial = store.manifest("generate", "clip_id").read()
    assert 3 <= partial.num_rows < prompts.num_rows

    done = subprocess.run(_generate_cmd(config, run_dir), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    # Raw parts, not the de-duplicating reader: no clip may have been written twice.
    raw = pa.concat_tables([pq.read_table(p) for p in sorted(parts_dir.glob("part-*.parquet"))])
    ids = raw.column("clip_id").to_pylist()
    assert len(ids) == len(set(ids)) == prompts.num_rows
    assert sorted(raw.column("prompt_id").to_pylist()) == sorted(prompts.column("prompt_id").to_pylist())
    for uri in raw.column("video_uri").to_pylist():
        assert count_frames(uri) == cfg.generate.cogvideox.num_frames
    videos = run_dir / "generate" / "videos"
    assert sorted(p.stem for p in videos.glob("*.mp4")) == sorted(ids)
    assert not [p for p in videos.iterdir() if ".tmp-" in p.name]
