"""The anomaly task: the world config end to end at tiny scale, its summary against its rows, both MIL
heads, resumption, the row stages without Ray, X-CLIP in the train loop and evaluate, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from ray_pipeline.config import ConfigError, ExperimentConfig, load_config
from ray_pipeline.evaluation.anomaly import parse_temporal_annotations
from ray_pipeline.runstore import RunStore
from ray_pipeline.tasks import get_task
from ray_pipeline.training.mil import topk_mil_ce_loss
from ray_pipeline.training.mil_data import bag_batches, model_refs
from tests.helpers import pipeline, quiet_console, stage_context

REPO = Path(__file__).resolve().parents[1]
WORLD_CONFIG = REPO / "experiments" / "world" / "anomaly.yaml"
TINY_SIZES = {"train_anomalous_per_class": 1, "train_normal": 4, "test_anomalous_per_class": 1, "test_normal": 3,
              "min_frames": 24, "max_frames": 32, "min_window": 6, "max_window": 10, "size": 32}


@pytest.fixture(scope="module")
def tiny_xclip(tmp_path_factory) -> str:
    from ray_pipeline.tiny import save_tiny_xclip

    return str(save_tiny_xclip(tmp_path_factory.mktemp("tiny") / "xclip", num_frames=4))


def _tiny(clip: str, xclip: str, cache: Path, **anomaly) -> ExperimentConfig:
    """The shipped world config at tiny scale: tiny CLIP and X-CLIP, a few clips and videos."""
    data = yaml.safe_load(WORLD_CONFIG.read_text())
    data.update(cache_dir=str(cache), ray={"num_cpus": 2})
    data["generate"].update(clips_per_class=1, pool={"actors": 1, "batch_size": 8})
    data["generate"]["procedural"] = {"size": 32, "num_frames": 8}
    data["score"].update(model=clip, num_frames=2, pool={"actors": 1, "batch_size": 16})
    data["train"].update(backbone=xclip, num_frames=4, epochs=1, batch_size=7, lr=1e-3, warmup_epochs=0,
                         mixed_precision="no")
    data["world"]["anomaly_sizes"] = TINY_SIZES
    data["anomaly"].update(num_segments=4, ranking={"iterations": 30, "bags_per_side": 4},
                           pool={"actors": 1, "batch_size": 4}, **anomaly)
    return ExperimentConfig.model_validate(data)


def _hand_aucs(summary_rows: list[dict], detect_rows: list[dict], annotations: dict, clip_len: int) -> dict:
    """AUC and AUC_A recomputed from the detect rows by the stated rule, with sklearn."""
    from ray_pipeline.evaluation.anomaly import segment_to_frame_scores

    out = {}
    for label in {r["label"] for r in summary_rows}:
        mine = {r["video"]: r for r in detect_rows if r["model"] == label}
        scores, labels, ano_s, ano_l = [], [], [], []
        for video, intervals in annotations.items():
            r = mine[video]
            s = segment_to_frame_scores(r["scores"], r["num_frames"], clip_len)
            y = np.zeros(r["num_frames"], int)
            for a, b in intervals:
                y[a - 1:b] = 1
            scores.append(s)
            labels.append(y)
            if intervals:
                ano_s.append(s)
                ano_l.append(y)
        out[label] = (100 * roc_auc_score(np.concatenate(labels), np.concatenate(scores)),
                      100 * roc_auc_score(np.concatenate(ano_l), np.concatenate(ano_s)))
    return out


@pytest.mark.integration
def test_world_config_end_to_end_ranking_and_summary_against_rows(tmp_path, ray_cluster, tiny_clip, tiny_xclip):
    cfg = _tiny(tiny_clip, tiny_xclip, tmp_path / "cache")
    store = RunStore(tmp_path / "run")
    results = pipeline(cfg, store).run()
    summary = json.loads(store.read_text("summary.json"))
    assert summary["task"] == "anomaly" and [r["role"] for r in summary["rows"]] == ["baseline", "generated"]
    detect = results["detect"].rows.to_pylist()
    ann_file = next((tmp_path / "cache" / "world_anomaly").glob("*/world_ucf_crime/Temporal_Anomaly_Annotation.txt"))
    annotations = parse_temporal_annotations(ann_file)
    assert len(detect) == 2 * len(annotations) and all(r["error"] is None for r in detect)
    assert all(len(r["scores"]) == 4 and all(0 < s < 1 for s in r["scores"]) for r in detect)
    hand = _hand_aucs(summary["rows"], detect, annotations, clip_len=1)
    for row in summary["rows"]:
        entry = row["datasets"]["world_ucf_crime"]
        assert entry["auc"]["mean"] == pytest.approx(hand[row["label"]][0])
        assert entry["auc_a"]["mean"] == pytest.approx(hand[row["label"]][1])
        assert entry["auc"]["n"] == 1 and entry["auc"]["std"] == 0 and row["seeds"] == [0]
        assert entry["videos"] == len(annotations) and entry["anomalous_videos"] == 13
    [auc, auc_a] = summary["comparisons"]
    rows = {r["role"]: r["datasets"]["world_ucf_crime"] for r in summary["rows"]}
    assert auc["diff_mean"] == pytest.approx(rows["generated"]["auc"]["mean"] - rows["baseline"]["auc"]["mean"])
    assert auc_a["metric"] == "auc_a"
    # the baseline's frozen features live in the shared store, the pre-trained model's in the run's
    features = results["features"].rows.to_pylist()
    assert {r["role"] for r in features} == {"baseline", "generated"} and len(features) == 2 * 17
    # resumable: a second run does no new work and writes the same summary
    again = pipeline(cfg, store).run()
    assert all(again[n].stats.get("rows_new", 0) == 0 for n in ("prompts", "generate", "score", "features", "detect"))
    assert json.loads(store.read_text("summary.json"))["rows"] == summary["rows"]
    # ray-pipeline report lays it out like Table 5
    from ray_pipeline.report import write_report

    write_report(store)
    report = store.read_text("report.md")
    assert "Table 5 layout" in report and "| MIL+Ours |" in report and "84.03" in report


@pytest.mark.integration
def test_topk_head_fine_tunes_and_scores_against_the_class_texts(tmp_path, ray_cluster, tiny_clip, tiny_xclip):
    cfg = _tiny(tiny_clip, tiny_xclip, tmp_path / "cache", head="topk_ce",
                topk_ce={"epochs": 1, "bags_per_side": 2, "lr": 1e-4, "warmup_epochs": 0, "mixed_precision": "no"})
    store = RunStore(tmp_path / "run")
    p = pipeline(cfg, store)
    assert "features" not in p.task.stage_names  # the top-k head fine-tunes end to end
    results = p.run()
    mil = results["mil"].rows.to_pylist()
    assert [m["head"] for m in mil] == ["topk_ce", "topk_ce"] and all(m["scorer_uri"] is None for m in mil)
    assert all("/mil/ray/topk-" in m["model_dir"] for m in mil)
    summary = json.loads(store.read_text("summary.json"))
    assert {r["head"] for r in summary["rows"]} == {"topk_ce"}
    assert summary["protocol"]["class_texts"][0] == "walk" and summary["protocol"]["normal_class"] == "walk"
    # the fine-tunes are found by id: nothing is trained again
    assert pipeline(cfg, store).run(["mil"], until="mil")["mil"].rows.to_pylist() == mil
    with pytest.raises(ConfigError, match="has no stage 'features'"):
        pipeline(cfg, store).run(["features"], until="features")


def test_row_stages_process_without_ray(tmp_path, tiny_clip, tiny_xclip, one_torch_thread):
    cfg = _tiny(tiny_clip, tiny_xclip, tmp_path / "cache")
    store = RunStore(tmp_path / "run")
    p = pipeline(cfg, store)
    features = p.build("features")
    [backbone] = model_refs(None, features.backbone)
    stage = features.per_model(backbone)
    planned = stage.plan(stage_context(cfg, store, "features"), {})
    assert planned.num_rows == 17 and sum(planned.column("anomalous").to_pylist()) == 13
    stage.setup("cpu")
    out = stage.process(planned.slice(0, 2)).to_pylist()
    assert all(r["dim"] == 32 and len(r["features"]) == 4 * 32 and r["num_frames"] >= 24 for r in out)
    emb = np.asarray(out[0]["features"]).reshape(4, 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # L2-normalised segment embeddings
    # the top-k detector's scores are the softmax of normal-vs-rest logits
    detect = p.build("detect")
    mil_row = {"mil_key": "k", "model": "m", "role": "baseline", "head": "topk_ce", "model_dir": None,
               "scorer_uri": None}
    det = detect.per_model(mil_row)
    rows = det.plan(stage_context(cfg, store, "detect"), {})
    det.setup("cpu")
    got = det.process(rows.slice(0, 1)).to_pylist()[0]
    assert len(got["scores"]) == 4 and all(0 < s < 1 for s in got["scores"]) and "path" not in got


def test_bag_batches_cover_every_anomalous_video_once_and_pair_normals():
    labels = [1, 0, 1, 1, 0, 1, 1]
    batches = bag_batches(labels, 2, epoch=0, seed=3)
    firsts = [i for b in batches for i in b[:2]]
    assert len(batches) == 2 and len(set(firsts)) == 4 and all(labels[i] == 1 for i in firsts)
    assert all(labels[i] == 0 for b in batches for i in b[2:])
    assert batches == bag_batches(labels, 2, epoch=0, seed=3) != bag_batches(labels, 2, epoch=1, seed=3)
    with pytest.raises(ValueError, match="anomalous and normal"):
        bag_batches([1, 1], 1, 0, 0)


def test_topk_loss_is_a_mean_over_videos_so_per_video_backward_accumulates_it():
    """The fine-tune back-propagates one video at a time, each scaled by 1/videos: that is the
    batch's gradient only if the loss is a mean of per-video losses."""
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 2, requires_grad=True)
    labels = torch.tensor([1, 0, 1, 0])
    whole = topk_mil_ce_loss(logits, labels, k=2)
    (g_whole,) = torch.autograd.grad(whole, logits)
    g_acc = torch.zeros_like(logits)
    for i in range(4):
        (g,) = torch.autograd.grad(topk_mil_ce_loss(logits[i:i + 1], labels[i:i + 1], k=2) / 4, logits)
        g_acc += g
    assert torch.allclose(g_whole, g_acc, atol=1e-6)


def test_config_errors_name_the_field(tmp_path, tiny_clip, tiny_xclip):
    with pytest.raises(ConfigError, match="task anomaly needs a anomaly: section"):
        load_config(None, ["task=anomaly", "train.model=xclip"])
    with pytest.raises(ConfigError, match="anomaly.dataset"):
        load_config(None, ["task=anomaly", "train.model=xclip", "anomaly.head=ranking"])
    world = load_config(WORLD_CONFIG)
    with pytest.raises(ConfigError, match="train.recipe: anomaly names its own phase"):
        get_task(world.model_copy(update={"train": world.train.model_copy(update={"recipe": "source"})}))
    with pytest.raises(ConfigError, match="trains X-CLIP"):
        load_config(WORLD_CONFIG, ["train.model=tcclip"])
    with pytest.raises(ConfigError, match="world:world_ucf_crime"):
        load_config(WORLD_CONFIG, ["anomaly.dataset.train_list=world:world_hmdb/x.txt"])
    with pytest.raises(ConfigError, match="annotations .* does not exist"):
        load_config(WORLD_CONFIG, [f"anomaly.dataset.annotations={tmp_path}/none.txt"])
    with pytest.raises(ConfigError, match="normal_class"):
        load_config(WORLD_CONFIG, ["anomaly.class_texts=[a, b]", "anomaly.normal_class=c"])
    with pytest.raises(ConfigError, match="whole number"):
        load_config(WORLD_CONFIG, ["world.anomaly_sizes.train_normal=2.5"])
    cfg = _tiny(tiny_clip, tiny_xclip, tmp_path / "cache")
    bad = cfg.model_copy(update={"train": cfg.train.model_copy(update={"num_frames": 8})})
    with pytest.raises(ConfigError, match="train.num_frames: .* takes 4 frames"):
        pipeline(bad, RunStore(tmp_path / "run")).build("mil")


def test_the_world_set_is_built_only_when_a_stage_needs_it(tmp_path, tiny_clip, tiny_xclip):
    cfg = _tiny(tiny_clip, tiny_xclip, tmp_path / "cache")
    p = pipeline(cfg, RunStore(tmp_path / "run"), quiet_console())
    for name in ("prompts", "generate", "score", "train"):
        p.build(name)
    assert not (tmp_path / "cache" / "world_anomaly").exists()
    p.build("detect")
    assert len(list((tmp_path / "cache" / "world_anomaly").glob("*/world_ucf_crime"))) == 1


# --------------------------------------------------------------------------------------------
# The paper-scale config (Table 5), on stand-in UCF-Crime files
# --------------------------------------------------------------------------------------------


def _stand_in_ucf_crime(root: Path) -> Path:
    """/mnt/shared/datasets/ucf_crime: the published files' formats and counts (1,610 training videos,
    810 anomalous; 290 test videos, 140 anomalous), empty videos nested as the downloads nest them."""
    from ray_pipeline.evaluation.anomaly import ANOMALY_CLASSES

    d = root / "ucf_crime"
    train, test, notes = [], [], []
    for i in range(810):
        cls = ANOMALY_CLASSES[i % 13]
        train.append(f"Anomaly-Videos-Part-{1 + i % 4}/{cls}/{cls}{i:03d}_x264.mp4")
    train += [f"Training_Normal_Videos_Anomaly/Normal_Videos{i:03d}_x264.mp4" for i in range(800)]
    for i in range(140):
        cls = ANOMALY_CLASSES[i % 13]
        test.append(f"Anomaly-Videos-Part-{1 + i % 4}/{cls}/{cls}{900 + i}_x264.mp4")
        second = "  300  420" if i % 5 == 0 else "  -1  -1"  # some videos have two intervals
        notes.append(f"{cls}{900 + i}_x264.mp4  {cls}  {30 + i}  {120 + i}{second}")
    for i in range(150):
        test.append(f"Testing_Normal_Videos_Anomaly/Normal_Videos_{i:03d}_x264.mp4")
        notes.append(f"Normal_Videos_{i:03d}_x264.mp4  Normal  -1  -1  -1  -1")
    for rel in train + test:
        (d / "videos" / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / "videos" / rel).touch()
    # Anomaly_Train.txt names a video by its class (or normal) folder, without the download's parts.
    (d / "Anomaly_Train.txt").write_text("".join("/".join(r.split("/")[-2:]) + "\n" for r in train))
    (d / "Temporal_Anomaly_Annotation.txt").write_text("\n".join(notes) + "\n")
    return root


def test_paper_table5_config(tmp_path):
    from ray_pipeline.sweep.space import load_sweep
    from ray_pipeline.tasks.base import class_entries

    root = _stand_in_ucf_crime(tmp_path / "datasets")
    name = "table5_anomaly_ucfcrime.yaml"
    text = (REPO / "experiments" / "paper" / name).read_text().replace("/mnt/shared/datasets", str(root))
    (tmp_path / name).write_text(text)
    sweep = load_sweep(tmp_path / name)
    assert [t.config.train.seed for t in sweep.trials] == [0, 1, 2]  # a claim needs >= 3 seeds
    cfg = sweep.trials[0].config
    task = get_task(cfg)
    data = task.dataset
    assert len(data["train"]) == 1610 and sum(v.anomalous for v in data["train"]) == 810
    assert len(data["test"]) == 290 and sum(bool(iv) for iv in data["annotations"].values()) == 140
    assert data["annotations"]["Abuse900_x264.mp4"] == [(30, 120), (300, 420)]
    a = cfg.anomaly
    assert (a.head, a.num_segments, a.clip_len, a.topk_ce.k) == ("topk_ce", 32, 16, 1)  # Lv et al.'s row
    assert (cfg.train.model, cfg.train.backbone, cfg.train.num_frames) == ("xclip", "microsoft/xclip-base-patch32", 8)
    texts, normal = task.class_texts()
    assert len(texts) == 14 and texts[normal] == "Normal" and cfg.prompts.strategy == "ie"
    # The cost in the header: Normal + 13 classes x 128 clips, as cluster/estimate.py counts them.
    assert len(class_entries(cfg)) * cfg.generate.clips_per_class == 1792 and "1,792 clips" in text
    [phase] = task.phases()
    assert phase.data == "generated" and phase.loss == "ul" and phase.role == "generated" and phase.shared


def test_an_xclip_backbone_is_evaluated_as_xclip(tmp_path, tiny_xclip, one_torch_thread):
    """Zero-shot evaluation of an X-CLIP backbone and of a saved X-CLIP: the evaluate stage builds
    X-CLIP (not frame-averaged CLIP) and predicts what X-CLIP's own logits say."""
    from ray_pipeline.models import build_video_text_model
    from ray_pipeline.models.xclip import XCLIP
    from ray_pipeline.stages.evaluate import ModelRef
    from tests.helpers import write_tiny_dataset

    classes = ["wave", "run", "jump", "clap"]
    dataset = write_tiny_dataset(tmp_path / "data", classes, per_class=2)
    cfg = ExperimentConfig.model_validate({
        "prompts": {"classes": ["wave", "run"]}, "train": {"model": "xclip", "backbone": tiny_xclip, "num_frames": 4},
        "evaluate": {"datasets": [dataset], "num_clips": 1}})
    store = RunStore(tmp_path / "run")
    saved = tmp_path / "saved"
    build_video_text_model("xclip", tiny_xclip).save(saved)
    for ref in (ModelRef("backbone", "backbone", None), ModelRef("X-CLIP", "generated", str(saved))):
        stage = pipeline(cfg, store).build("evaluate").per_model(ref)
        planned = stage.plan(stage_context(cfg, store, "evaluate"), {})
        stage.setup("cpu")
        model, pre, _ = stage._loaded
        assert isinstance(model, XCLIP)
        rows = stage.process(planned).to_pylist()
        for row in rows:
            with torch.inference_mode():
                views = stage._views(row["video"], row["split_key"], pre)
                logits = model.class_logits(views, stage._names[row["split_key"]])
            assert row["error"] is None and row["predicted"] == int(logits.softmax(-1).sum(0).argmax())


def test_topk_fine_tune_workers_are_sized_with_errors_naming_its_fields():
    from ray_pipeline.cluster import plan_train_workers, single_node
    from ray_pipeline.config import TopkHeadConfig

    plan = plan_train_workers(TopkHeadConfig(num_workers=2), single_node({"CPU": 4}), 1.0, section="anomaly.topk_ce")
    assert plan.num_workers == 2 and plan.num_cpus == 1.5 and plan.num_gpus == 0
    with pytest.raises(ConfigError, match="anomaly.topk_ce.num_workers x anomaly.topk_ce.cpus_per_worker"):
        plan_train_workers(TopkHeadConfig(num_workers=8, cpus_per_worker=1.0), single_node({"CPU": 4}), 1.0,
                           section="anomaly.topk_ce")
    with pytest.raises(ConfigError, match="anomaly.topk_ce.use_gpu"):
        plan_train_workers(TopkHeadConfig(use_gpu=True), single_node({"CPU": 4}), 1.0, section="anomaly.topk_ce")


def test_the_world_xclip_fingerprint_follows_the_world_clip_recipe():
    """The pre-training phase's id records the world CLIP under the world X-CLIP (built on its
    towers), so a phase trained on an earlier shipped world CLIP is not reused after an upgrade."""
    from ray_pipeline.models.resolve import WORLD_CLIP, WORLD_XCLIP, model_fingerprint

    clip, xclip = model_fingerprint(WORLD_CLIP), model_fingerprint(WORLD_XCLIP)
    assert xclip.startswith("world:xclip@") and xclip.split("@")[1] == clip.split("@")[1]
