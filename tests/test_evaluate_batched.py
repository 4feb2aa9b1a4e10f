"""Evaluation with the class text computed once per split and several videos per forward pass: the
CPU path gives exactly the one-video-at-a-time numbers it gave before, and batching gives the same
predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ray_pipeline.models import build_video_text_model
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.evaluate import ModelRef, autocast_dtype
from tests.helpers import pipeline, stage_context, write_tiny_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLASSES = ["wave", "run", "jump", "clap", "kick ball", "brush hair"]


@pytest.mark.parametrize("name", ["tcclip", "vificlip"])
def test_class_text_once_per_split_gives_the_same_logits_bit_for_bit(tiny_clip, name):
    torch.manual_seed(0)
    model = build_video_text_model(name, tiny_clip).eval()
    pixels = torch.randn(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        classes = model.encode_classes(CLASSES)
        assert (classes.embedding is None) == (name == "tcclip")  # TC-CLIP's last text block needs the video
        cached = [model.class_logits(pixels[i:i + 1], CLASSES, classes) for i in range(3)]
        fresh = [model.class_logits(pixels[i:i + 1], CLASSES) for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(cached, fresh))
    # And in training (autograd on): the same values and gradients reach the text side.
    model.train()
    model.class_logits(pixels, CLASSES).sum().backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.class_logits(pixels, CLASSES, model.encode_classes(CLASSES)).sum().backward()
    assert all(torch.equal(grads[k], p.grad) for k, p in model.named_parameters() if p.grad is not None)


def _evaluation(tmp_path, tiny_clip, model_dir, **evaluate):
    dataset = write_tiny_dataset(tmp_path / "data", CLASSES[:4], per_class=3, broken=True)
    from ray_pipeline.config import ExperimentConfig

    cfg = ExperimentConfig.model_validate({
        "prompts": {"classes": ["wave", "run"]},
        "train": {"backbone": tiny_clip, "num_frames": 3},
        "evaluate": {"datasets": [dataset], "num_clips": 2, **evaluate}})
    store = RunStore(tmp_path / "run")
    stage = pipeline(cfg, store).build("evaluate")
    per_model = stage.per_model(ModelRef("TC-CLIP", "generated", model_dir))
    planned = per_model.plan(stage_context(cfg, store, "evaluate"), {})
    return per_model, planned


def _reference_predictions(per_model, planned) -> dict[str, int]:
    """The stage's former per-video code: each video's views in one pass, the text recomputed."""
    model, pre, _ = per_model._loaded
    out = {}
    for row in planned.to_pylist():
        try:
            views = per_model._views(row["video"], row["split_key"], pre)
        except Exception:  # noqa: BLE001
            continue
        names = per_model._names[row["split_key"]]
        with torch.inference_mode():
            probs = model.class_logits(views, names).float().softmax(-1).sum(0)
        out[row["eval_id"]] = int(probs.argsort(descending=True)[0])
    return out


def test_batched_and_one_by_one_evaluation_agree_on_cpu(tmp_path, tiny_clip):
    torch.manual_seed(0)
    model_dir = tmp_path / "tcclip"
    build_video_text_model("tcclip", tiny_clip).save(model_dir)
    one, planned = _evaluation(tmp_path / "a", tiny_clip, str(model_dir))
    one.setup("cpu")
    assert not one._batched and one._autocast is None  # the CPU default: one video per pass, fp32
    single = one.process(planned).to_pylist()
    assert {r["eval_id"]: r["predicted"] for r in single if not r["error"]} == _reference_predictions(one, planned)

    many, planned_b = _evaluation(tmp_path / "b", tiny_clip, str(model_dir), batched="on", videos_per_forward=4)
    many.setup("cpu")
    assert many._batched
    batched = many.process(planned_b).to_pylist()
    key = lambda r: (r["split"], r["video"].rsplit("/data/", 1)[1])  # noqa: E731  (the two copies' paths differ)
    single, batched = sorted(single, key=key), sorted(batched, key=key)
    assert [key(r) for r in single] == [key(r) for r in batched]
    for a, b in zip(single, batched):
        assert (a["predicted"], a["top1"], a["top5"], bool(a["error"])) == \
               (b["predicted"], b["top1"], b["top5"], bool(b["error"]))
    assert sum(bool(r["error"]) for r in batched) == 2  # the unreadable video of each split, counted
    assert len(many._classes) == 2  # one class text per split


def test_batching_stays_out_of_the_row_ids_and_precision_goes_in(tmp_path, tiny_clip):
    a, planned_a = _evaluation(tmp_path / "a", tiny_clip, None)
    b, _ = _evaluation(tmp_path / "b", tiny_clip, None, batched="on", videos_per_forward=3)
    c, _ = _evaluation(tmp_path / "c", tiny_clip, None, precision="bf16")
    assert a.identity() == b.identity() != c.identity()
    assert "precision" not in a.identity()  # "auto" keeps the ids rows had before the setting existed
    assert planned_a.num_rows == 14


def test_autocast_dtype_per_device(monkeypatch):
    assert autocast_dtype("auto", "cpu") is None and autocast_dtype("fp32", "cuda") is None
    assert autocast_dtype("bf16", "cpu") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", "cuda") == torch.float16 == autocast_dtype("bf16", "cuda:0")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", "cuda") == torch.bfloat16
    assert autocast_dtype("fp16", "cuda") == torch.float16


def test_bf16_batched_pass_runs_on_cpu(tmp_path, tiny_clip):
    per_model, planned = _evaluation(tmp_path, tiny_clip, None, batched="on", precision="bf16")
    per_model.setup("cpu")
    rows = per_model.process(planned).to_pylist()
    ok = [r for r in rows if not r["error"]]
    assert ok and all(0 <= r["predicted"] < 4 for r in ok)
    assert np.mean([r["top1"] == (r["predicted"] == r["label"]) for r in ok]) == 1.0


def test_views_are_seeded_below_the_dataset_root_so_its_location_changes_no_view(tmp_path, tiny_clip):
    a, planned_a = _evaluation(tmp_path / "a", tiny_clip, None)
    b, planned_b = _evaluation(tmp_path / "elsewhere" / "b", tiny_clip, None)  # the same bytes, elsewhere
    a.setup("cpu")
    b.setup("cpu")
    pre = a._loaded[1]
    rows_a = [r for r in planned_a.to_pylist() if "broken" not in r["video"]]
    rows_b = [r for r in planned_b.to_pylist() if "broken" not in r["video"]]
    assert len(rows_a) == len(rows_b) == 12
    keys = [a._splits[r["split_key"]].view_key(r["video"]) for r in rows_a]
    assert keys == [b._splits[r["split_key"]].view_key(r["video"]) for r in rows_b]
    assert keys[0] == "videos/wave/v0.mp4"  # the split list's own relative path
    for ra, rb in zip(rows_a, rows_b):
        assert torch.equal(a._views(ra["video"], ra["split_key"], pre), b._views(rb["video"], rb["split_key"], pre))
    # Seeding by the absolute path (the former rule) draws other offsets for the two copies.
    from ray_pipeline.stages.evaluate import view_rng

    offsets = lambda key: view_rng(0, key).integers(1 << 30, size=4).tolist()  # noqa: E731
    assert offsets(rows_a[0]["video"]) != offsets(rows_b[0]["video"])
    assert a.identity()["views"] == "relative-path"  # the rule is in every evaluation row's id
