"""Where a configured model name points: ``world:clip`` is the procedural world's CLIP (shipped in
the package), ``world:xclip`` the world's X-CLIP built on it (8 frames, written once into the
cache); anything else is a hub id or a local path, passed to ``from_pretrained`` as is."""

from __future__ import annotations

WORLD_CLIP = "world:clip"
WORLD_XCLIP = "world:xclip"


def resolve_model_path(model: str, cache_dir: str) -> str:
    """A path or hub id that ``from_pretrained`` loads."""
    if model == WORLD_CLIP:
        from ray_pipeline.world.clip import ensure_world_clip

        return str(ensure_world_clip(cache_dir))
    if model == WORLD_XCLIP:
        from ray_pipeline.world.xclip import ensure_world_xclip

        return str(ensure_world_xclip(cache_dir))
    return model
