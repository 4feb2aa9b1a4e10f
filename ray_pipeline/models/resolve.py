"""Where a configured model name points: ``world:clip`` is the procedural world's CLIP (shipped in
the package), ``world:xclip`` the world's X-CLIP built on it (8 frames, written once into the
cache); anything else is a hub id or a local path, passed to ``from_pretrained`` as is."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

WORLD_CLIP = "world:clip"
WORLD_XCLIP = "world:xclip"
WORLD_CLIP_META = "world_clip.json"  # a world CLIP directory's provenance (its pre-training recipe)


def resolve_model_path(model: str, cache_dir: str) -> str:
    """A path or hub id that ``from_pretrained`` loads."""
    if model == WORLD_CLIP:
        from ray_pipeline.world.clip import ensure_world_clip

        return str(ensure_world_clip(cache_dir))
    if model == WORLD_XCLIP:
        from ray_pipeline.world.xclip import ensure_world_xclip

        return str(ensure_world_xclip(cache_dir))
    return model


def model_fingerprint(model: str) -> str:
    """What row ids record for a model: its name or path, and for the world's CLIP (by name or by
    its directory) the recipe it was pre-trained with, so that rows scored, trained or evaluated
    with an earlier shipped world CLIP are not reused after the package ships another one. The
    world's X-CLIP is built on the world CLIP's towers, so ``world:xclip`` records that recipe too."""
    from ray_pipeline.ids import row_id

    if model in (WORLD_CLIP, WORLD_XCLIP):
        from ray_pipeline.world import WORLD_VERSION
        from ray_pipeline.world.clip import WorldClipConfig

        recipe = {"world_version": WORLD_VERSION, "config": asdict(WorldClipConfig())}
    elif (Path(model) / WORLD_CLIP_META).is_file():
        meta = json.loads((Path(model) / WORLD_CLIP_META).read_text())
        recipe = {"world_version": meta.get("world_version"), "config": meta.get("config")}
    else:
        return model
    return f"{model}@{row_id('world-clip-recipe', **recipe)[:12]}"
