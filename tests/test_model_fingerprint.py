"""Row ids record which world CLIP made them: rows of an earlier shipped model are not reused."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from ray_pipeline.models.resolve import WORLD_CLIP, model_fingerprint, resolve_model_path
from ray_pipeline.world import WORLD_VERSION
from ray_pipeline.world.clip import WorldClipConfig


def _world_dir(path, cfg: WorldClipConfig):
    path.mkdir()
    (path / "world_clip.json").write_text(json.dumps({"world_version": WORLD_VERSION, "config": asdict(cfg)}))
    return str(path)


def test_the_shipped_world_clip_by_name_and_by_directory_has_one_recipe(tmp_path):
    by_name = model_fingerprint(WORLD_CLIP)
    by_dir = model_fingerprint(resolve_model_path(WORLD_CLIP, str(tmp_path)))
    assert by_name.startswith("world:clip@") and by_name.split("@")[1] == by_dir.split("@")[1]
    # The shipped directory's provenance is the recipe's defaults (the asset is that command's output).
    assert model_fingerprint(_world_dir(tmp_path / "same", WorldClipConfig())).split("@")[1] == by_name.split("@")[1]


def test_another_pretraining_recipe_gives_other_ids(tmp_path):
    a = model_fingerprint(_world_dir(tmp_path / "a", WorldClipConfig()))
    b = model_fingerprint(_world_dir(tmp_path / "b", replace(WorldClipConfig(), steps=600)))
    assert a.split("@")[1] != b.split("@")[1]


def test_hub_ids_and_plain_directories_are_recorded_as_given(tmp_path):
    assert model_fingerprint("openai/clip-vit-base-patch16") == "openai/clip-vit-base-patch16"
    assert model_fingerprint(str(tmp_path)) == str(tmp_path)


def test_score_ids_follow_the_world_clip(monkeypatch):
    from ray_pipeline.config import ScoreConfig
    from ray_pipeline.stages import score

    stage = score.ScoreStage(ScoreConfig(model=WORLD_CLIP), ["wave", "run"], model_path="unused")
    before = stage.scorer_id()
    monkeypatch.setattr(score, "model_fingerprint", lambda m: f"{m}@another-recipe")
    assert stage.scorer_id() != before
