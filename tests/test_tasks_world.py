"""The three world task configs (experiments/world/) end to end at tiny scale, and the fine-tune's
start: each config with tiny sizes (a tiny world protocol set, one clip per class, a tiny random
CLIP, one epoch), run through the pipeline; its summary is checked against the evaluate stage's
rows and the lists it trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ray_pipeline.config import load_config
from ray_pipeline.evaluation.base_to_novel import harmonic_mean
from ray_pipeline.evaluation.datasets import read_split_list
from ray_pipeline.report import write_run_report
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.train import RESULT
from ray_pipeline.training.loop import epoch_checkpoints
from tests.helpers import pipeline, run_stage

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
TINY_WORLD = ("world.protocol_sizes={train_per_class: 4, test_per_class: 2, few_shot_ks: [2], base_shots: 2, "
              "base_seeds: [1, 2], long_tail_n_max: 4, num_frames: 4, size: 32}")


def _tiny(path: str, tmp_path: Path, clip: str, section: str, *more: str):
    overrides = [
        f"cache_dir={tmp_path / 'cache'}", "ray.num_cpus=2", TINY_WORLD,
        "generate.clips_per_class=1", "generate.procedural.size=32", "generate.procedural.num_frames=4",
        "generate.pool.actors=1", f"score.model={clip}", "score.num_frames=2", "score.pool.batch_size=32",
        f"train.backbone={clip}", "train.epochs=1", "train.batch_size=8", "train.num_frames=2",
        "evaluate.num_clips=1", "evaluate.num_frames=2", "evaluate.pool.actors=1", "evaluate.pool.batch_size=64",
        f"{section}.finetune.epochs=1", f"{section}.finetune.batch_size=8", f"{section}.finetune.warmup_epochs=0",
        *more]
    return load_config(REPO / "experiments" / "world" / path, overrides)


def _accuracy(rows: list[dict]) -> float:
    ok = [r for r in rows if not r["error"]]
    return 100.0 * sum(r["predicted"] == r["label"] for r in ok) / len(ok)


def _run(cfg, tmp_path: Path) -> tuple[RunStore, dict, list[dict]]:
    store = RunStore(tmp_path / "run")
    results = pipeline(cfg, store).run()
    summary = json.loads(store.read_text("summary.json"))
    assert summary == json.loads(json.dumps(summary))  # plain JSON
    return store, summary, results["evaluate"].rows.to_pylist()


def test_world_fewshot_config_end_to_end(tmp_path, ray_cluster, tiny_clip, one_torch_thread):
    cfg = _tiny("fewshot.yaml", tmp_path, tiny_clip, "few_shot", "few_shot.ks=[2]")
    store, summary, ev = _run(cfg, tmp_path)
    assert summary["task"] == "few_shot" and summary["data"]["clips"] == 29
    rows = {r["role"]: r for r in summary["rows"]}
    assert list(rows) == ["backbone", "baseline", "generated"]
    for role, row in rows.items():
        entry = row["datasets"]["world_hmdb_fs"]["k2"]
        mine = [r for r in ev if r["role"] == role]
        assert entry["videos"] == len(mine) == 29 * 2
        assert entry["top1"]["mean"] == pytest.approx(_accuracy(mine))
        assert row["seeds"] == ([] if role == "backbone" else [0])
    assert rows["generated"]["datasets"]["world_hmdb_fs"]["k2"]["train_videos"] == 58
    assert rows["generated"]["datasets"]["world_hmdb_fs"]["k2"]["top1"]["epoch"] == 1
    result = json.loads(store.read_text(RESULT))
    names = [p["name"].rsplit("-", 1)[0] for p in result["phases"]]
    assert names == ["synthetic", "baseline_k2", "generated_k2"]
    # The pre-training lives in the data store (the run directory here: no data_dir), shared by id.
    assert result["phases"][0]["num_clips"] == 29 and result["phases"][1]["num_clips"] == 58
    write_run_report(store)
    report = store.read_text("report.md")
    assert "Table 2 layout" in report and "world_hmdb_fs K=2" in report


def test_world_base2novel_config_end_to_end(tmp_path, ray_cluster, tiny_clip, one_torch_thread):
    cfg = _tiny("base2novel.yaml", tmp_path, tiny_clip, "base_to_novel", "base_to_novel.seeds=[1, 2]",
                "base_to_novel.shots=2")
    store, summary, ev = _run(cfg, tmp_path)
    rows = {r["role"]: r for r in summary["rows"]}
    assert list(rows) == ["backbone", "baseline", "generated"]
    for role in ("baseline", "generated"):
        d = rows[role]["datasets"]["world_hmdb_fs"]
        base, novel = {}, {}
        for seed in (1, 2):
            mine = [r for r in ev if r["role"] == role and r["model"].endswith(f"base seed {seed}")]
            base[seed] = _accuracy([r for r in mine if r["split"] == "base_val"])
            novel[seed] = _accuracy([r for r in mine if r["split"] == "novel_val"])
            # Each half is scored against its own names only: 15 base classes, 14 novel classes.
            assert max(r["predicted"] for r in mine if r["split"] == "base_val") < 15
            assert max(r["predicted"] for r in mine if r["split"] == "novel_val") < 14
        assert d["base"]["mean"] == pytest.approx(np.mean(list(base.values())))
        assert d["novel"]["mean"] == pytest.approx(np.mean(list(novel.values())))
        assert d["hm"]["mean"] == pytest.approx(harmonic_mean(np.mean(list(base.values())),
                                                              np.mean(list(novel.values()))))
        assert d["base"]["n"] == d["hm"]["n"] == 2
    assert summary["protocol"]["base_classes"] == 15 and summary["protocol"]["novel_classes"] == 14
    write_run_report(store)
    assert "Table 3 layout" in store.read_text("report.md")


def test_world_longtail_config_end_to_end(tmp_path, ray_cluster, tiny_clip, one_torch_thread):
    from sklearn.metrics import balanced_accuracy_score

    cfg = _tiny("longtail.yaml", tmp_path, tiny_clip, "long_tail", "long_tail.n_max=4")
    store, summary, ev = _run(cfg, tmp_path)
    lt = summary["protocol"]["long_tail"]
    # The same profile as the world set's own long-tailed list: the same draw.
    world = next((tmp_path / "cache" / "world_protocol_datasets").glob("*/world_hmdb_fs"))
    info = json.loads((world / "info.json").read_text())
    assert lt["counts"] == info["long_tail"]["counts"] and lt["groups"] == info["long_tail"]["groups"]
    result = json.loads(store.read_text(RESULT))
    assert result["phases"][1]["num_clips"] == len(read_split_list(world / "splits" / "train1_long_tail.txt", 29))
    groups = lt["groups"]
    for row in summary["rows"]:
        d = row["datasets"]["world_hmdb_fs"]
        mine = [r for r in ev if r["role"] == row["role"] and not r["error"]]
        y, p = [r["label"] for r in mine], [r["predicted"] for r in mine]
        assert d["acc"]["mean"] == pytest.approx(100 * balanced_accuracy_score(y, p))
        per_class = np.array(d["per_class"])
        for g in ("head", "tail", "few"):
            members = [c for c, x in enumerate(groups) if x == g]
            assert (d[g] is None) if not members else d[g]["mean"] == pytest.approx(per_class[members].mean())
    write_run_report(store)
    assert "Table 4 layout" in store.read_text("report.md")


def _max_weight_difference(a: str, b: str) -> float:
    from safetensors.torch import load_file

    from ray_pipeline.models.base import WEIGHTS_FILE

    wa, wb = load_file(f"{a}/{WEIGHTS_FILE}"), load_file(f"{b}/{WEIGHTS_FILE}")
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def test_finetune_starts_where_the_pretraining_ended(tmp_path, ray_cluster, tiny_clip, one_torch_thread):
    """lr ~ 0 in the fine-tune: the generated row's models equal the pre-trained model, the baseline's
    equal the backbone's; the best-epoch rule keeps exactly the scored epochs' models."""
    import torch

    from ray_pipeline.models.base import build_video_text_model

    cfg = _tiny("fewshot.yaml", tmp_path, tiny_clip, "few_shot", "few_shot.ks=[2]", "train.lr=1e-2",
                "few_shot.finetune.lr=1e-12", "few_shot.finetune.epochs=5", "few_shot.finetune.epoch_rule=best",
                "few_shot.finetune.validate_every=3")
    cfg.data_dir = str(tmp_path / "data")
    store = RunStore(tmp_path / "run")
    run_stage(cfg, store, "prompts")
    run_stage(cfg, store, "generate")
    run_stage(cfg, store, "score")
    run_stage(cfg, store, "train")
    result = json.loads(store.read_text(RESULT))
    pre = result["phases"][0]
    assert pre["checkpoint"].startswith(str(tmp_path / "data" / "train" / "ray" / "synthetic-"))  # shared
    models = {(m["role"], m["epoch"]): m for m in result["models"]}
    assert sorted(models) == [(r, e) for r in ("baseline", "generated") for e in (0, 3, 4)]
    assert models[("generated", 4)]["label"].endswith("K=2 @ epoch 5")
    pretrained = f"{pre['checkpoint']}/model"
    torch.manual_seed(cfg.train.seed)  # the worker's seed before it builds the model
    fresh = build_video_text_model("tcclip", tiny_clip)
    fresh.save(str(tmp_path / "fresh"))
    for e in (0, 3, 4):
        assert _max_weight_difference(models[("generated", e)]["model_dir"], pretrained) < 1e-6
        assert _max_weight_difference(models[("baseline", e)]["model_dir"], str(tmp_path / "fresh")) < 1e-6
    # The pre-training moved the weights (lr 1e-2): the two starts differ.
    assert _max_weight_difference(pretrained, str(tmp_path / "fresh")) > 1e-4
    # Ray Train kept the scored epochs (and the newest), and dropped the others.
    folder = next(p for p in result["phases"] if p["name"].startswith("generated_k2"))["name"]
    kept = epoch_checkpoints(store, f"train/ray/{folder}")
    assert {0, 3, 4} <= set(kept) and 1 not in kept
