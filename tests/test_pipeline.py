"""The pipeline hands each stage this config's rows only; stages run without Ray; Ray starts fresh.

The first three tests are the bugs the old per-stage code had: the train stage took entropies from
any scorer in the data directory, the score stage dropped ``prompts.hmdb_fix_swap``, and the score
stage's statistics averaged other configs' rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.base import StageResult
from tests.helpers import TINY_CLASSES, pipeline, prompt_rows, run_prompts, stage_context, write_synthetic_clips

REPO = Path(__file__).resolve().parents[1]


def _cfg(**sections) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "prompts": {"classes": TINY_CLASSES}, "generate": {"backend": "procedural", "clips_per_class": 3,
                                                           "procedural": {"size": 32, "num_frames": 4}},
        "train": {"loss": "ul"}, **sections})


def _other_scorer_rows(store: RunStore, cfg: ExperimentConfig, entropy: float) -> None:
    """Score rows for the same clips by another scorer (another ``score.num_frames``)."""
    other = cfg.model_copy(deep=True)
    other.score.num_frames = cfg.score.num_frames + 1
    scorer = pipeline(other, store).build("score").scorer_id()
    clips = store.manifest("generate", "clip_id").read()
    rows = [{"score_id": row_id("score", clip_id=c, scorer=scorer), "clip_id": c, "class_index": k,
             "class_name": n, "entropy": entropy, "predicted_index": 0, "scorer": scorer}
            for c, k, n in zip(clips.column("clip_id").to_pylist(), clips.column("class_index").to_pylist(),
                               clips.column("class_name").to_pylist())]
    store.manifest("score", "score_id").write_part(pa.Table.from_pylist(rows))


def test_train_uses_the_entropies_of_this_configs_scorer_only(tmp_path):
    cfg = _cfg()
    store = RunStore(tmp_path / "run")
    write_synthetic_clips(store, cfg, frames=2, size=8)
    p = pipeline(cfg, store)
    train = p.build("train")
    before = train.phases(p.context(train), p.run([], until="score"))[0].data
    # Another scorer's rows land after this config's (a later sweep over score.num_frames).
    _other_scorer_rows(store, cfg, entropy=5.0)
    after = train.phases(p.context(train), p.run([], until="score"))[0].data
    assert after.uncertainty == before.uncertainty and after.normalizer == before.normalizer
    mine = {r["clip_id"]: r["entropy"] for r in store.manifest("score", "score_id").read().to_pylist()
            if r["entropy"] != 5.0}
    assert after.normalizer["high"] == pytest.approx(max(mine.values()))


def test_score_stats_cover_this_configs_rows_only(tmp_path):
    cfg = _cfg()
    store = RunStore(tmp_path / "run")
    write_synthetic_clips(store, cfg, frames=2, size=8)
    # Complete this config's score rows with what the stats need, then add another scorer's rows.
    table = store.manifest("score", "score_id").read()
    table = table.append_column("predicted_index", table.column("class_index"))
    for part in store.manifest("score", "score_id").parts():
        store.fs.delete_file(store.fs_path(part))
    store.manifest("score", "score_id").write_part(table)
    _other_scorer_rows(store, cfg, entropy=5.0)
    stats = pipeline(cfg, store).run([], until="score")["score"].stats
    expected = np.asarray(table.column("entropy").to_pylist())
    assert stats["rows"] == table.num_rows
    assert stats["entropy_mean"] == pytest.approx(expected.mean())
    assert stats["clip_top1"] == 1.0  # the other scorer predicted class 0 for every clip


def test_hmdb_fix_swap_reaches_scoring_and_training(tmp_path):
    cfg = ExperimentConfig.model_validate({"prompts": {"classes": "hmdb51", "hmdb_fix_swap": True},
                                           "generate": {"clips_per_class": 1}})
    store = RunStore(tmp_path / "run")
    run_prompts(cfg, store)
    by_index = {r["class_index"]: r["class_name"] for r in prompt_rows(cfg, store).to_pylist()}
    p = pipeline(cfg, store)
    for stage in (p.build("score"), p.build("train")):
        assert stage.class_names == [by_index[i] for i in range(51)]
    # As the split files label them: 20 = kick, 21 = kick ball, 44 = sword, 45 = sword exercise.
    assert [by_index[i] for i in (20, 21, 44, 45)] == ["kick", "kick ball", "sword", "sword exercise"]


def test_single_stage_gets_the_rows_the_stages_before_it_hand_over(tmp_path):
    """Two configs in one data directory: each stage sees its own config's rows."""
    store = RunStore(tmp_path / "run")
    small, large = _cfg(), _cfg()
    large.generate.clips_per_class = 5
    run_prompts(large, store)
    p = pipeline(small, store)
    generate = p.build("generate")
    planned = generate.plan(p.context(generate), p.run([], until="prompts"))
    assert planned.num_rows == len(TINY_CLASSES) * 3  # nested prefix of the larger config's rows
    assert set(planned.column("clip_index").to_pylist()) == {0, 1, 2}


# --------------------------------------------------------------------------------------------
# Row stages' process() without Ray
# --------------------------------------------------------------------------------------------


def _prompts(cfg: ExperimentConfig, store: RunStore) -> dict:
    run_prompts(cfg, store)
    return {"prompts": StageResult(prompt_rows(cfg, store))}


def test_generate_process_without_ray(tmp_path):
    from ray_pipeline.video_io import read_frames

    cfg = _cfg()
    store = RunStore(tmp_path / "run")
    stage = pipeline(cfg, store).build("generate")
    planned = stage.plan(stage_context(cfg, store, "generate"), _prompts(cfg, store))
    stage.setup("cpu")
    out = stage.process(planned.slice(0, 3))
    assert out.column("clip_id").to_pylist() == planned.column("clip_id").to_pylist()[:3]
    for uri in out.column("video_uri").to_pylist():
        assert read_frames(uri).shape == (4, 32, 32, 3)
    assert set(out.column("num_frames").to_pylist()) == {4}


def test_score_process_without_ray(tmp_path, tiny_clip, one_torch_thread):
    cfg = _cfg(score={"model": tiny_clip, "num_frames": 2})
    store = RunStore(tmp_path / "run")
    p = pipeline(cfg, store)
    generate = p.build("generate")
    clips = generate.plan(p.context(generate), _prompts(cfg, store)).slice(0, 4)
    generate.setup("cpu")
    clips = generate.process(clips)
    score = p.build("score")
    planned = score.plan(p.context(score), {"generate": StageResult(clips)})
    score.setup("cpu")
    out = score.process(planned)
    assert out.column("score_id").to_pylist() == planned.column("score_id").to_pylist()
    for probs, h in zip(out.column("probs").to_pylist(), out.column("entropy").to_pylist()):
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert h == pytest.approx(-sum(q * np.log(q) for q in probs if q > 0), abs=1e-5)


def test_evaluate_process_without_ray(tmp_path, tiny_clip, one_torch_thread):
    from tests.helpers import write_tiny_dataset

    dataset = write_tiny_dataset(tmp_path / "data", ["wave", "run", "jump"], per_class=2, broken=True)
    cfg = _cfg(train={"backbone": tiny_clip, "num_frames": 2}, evaluate={"datasets": [dataset], "num_clips": 1})
    store = RunStore(tmp_path / "run")
    stage = pipeline(cfg, store).build("evaluate")
    [model] = stage.models({})
    per_model = stage.per_model(model)
    planned = per_model.plan(stage_context(cfg, store, "evaluate"), {})
    assert planned.num_rows == sum(len(s) for _, s in stage.splits)
    per_model.setup("cpu")
    out = per_model.process(planned)
    broken = [r for r in out.to_pylist() if r["video"].endswith("broken.mp4")]
    assert broken and all(r["error"] and r["predicted"] == -1 for r in broken)
    ok = [r for r in out.to_pylist() if not r["error"]]
    assert all(0 <= r["predicted"] < 3 and r["top1"] == (r["predicted"] == r["label"]) for r in ok)


# --------------------------------------------------------------------------------------------
# Ray start-up
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_local_run_starts_its_own_cluster_despite_a_stale_cluster_file(tmp_path):
    """A crashed `ray start --head` leaves ``ray_current_cluster`` behind; a bare ``ray.init()``
    would try to join it and refuse ``num_cpus``. Ray's temp folder is redirected so nothing
    else on the machine sees the stale file."""
    import yaml

    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a limit
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:6999")
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "name": "fresh", "ray": {"num_cpus": 2}, "cache_dir": str(tmp_path / "cache"),
        "prompts": {"classes": ["wave", "run"]},
        "generate": {"backend": "procedural", "clips_per_class": 1, "procedural": {"size": 32, "num_frames": 4}}}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db")
    for command in ("prompts", "generate"):
        done = subprocess.run([sys.executable, "-m", "ray_pipeline", command, str(config), "--run-dir",
                               str(tmp_path / "run")], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "[generate] done" in done.stderr
    assert RunStore(tmp_path / "run").manifest("generate", "clip_id").read().num_rows == 2


@pytest.mark.integration
def test_portable_numerics_pin_the_workers_kernels(ray_cluster):
    """The local cluster's workers compute with AVX2 kernels (the same bits on any x86 machine
    with AVX2), whatever this machine's widest instruction set is."""
    import ray

    from ray_pipeline.cluster import portable_kernel_env

    env = portable_kernel_env()
    if not env:
        pytest.skip("no AVX2 on this machine: nothing to pin")

    @ray.remote(num_cpus=0)
    def kernels() -> tuple[dict, str]:
        import torch

        return {k: os.environ.get(k) for k in env}, torch.backends.cpu.get_cpu_capability()

    seen, capability = ray.get(kernels.remote())
    assert seen == env and capability == "AVX2"


def test_torch_threads_follow_the_numerics_setting():
    from ray_pipeline.cluster import torch_threads
    from ray_pipeline.config import RayConfig

    assert torch_threads(RayConfig(), 3.5) == 1
    assert torch_threads(RayConfig(numerics="native"), 3.5) == 3
    assert torch_threads(RayConfig(numerics="native", torch_threads=2), 0.5) == 2
