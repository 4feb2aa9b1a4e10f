"""The world's X-CLIP: X-CLIP's video modules on the world CLIP's towers (CLIP's role -> X-CLIP's).

The paper's anomaly experiments use X-CLIP-B/32, which is CLIP ViT-B/32 plus cross-frame
message tokens, a multi-frame integration transformer and video-specific prompts, pre-trained
on Kinetics-400. The world has no Kinetics-pretrained X-CLIP, so its X-CLIP is the world CLIP's
vision and text towers, copied, with those modules newly initialised
(:func:`ray_pipeline.models.xclip.xclip_from_clip` says how). At the start its video embedding is
close to the world CLIP's frame-mean embedding (cosine 0.95-1.00 on rendered clips); what
X-CLIP's modules add is learnt in the task's training.

``ensure_world_xclip(cache_dir)`` writes it once as an HF directory under
``cache_dir/world_xclip/<key>`` (temporary folder, then an atomic rename); the key hashes the
world CLIP's weights, the frame count and the seed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

from ray_pipeline.ids import row_id
from ray_pipeline.world import WORLD_VERSION

# Bump when what a given (CLIP, frames, seed) writes changes.
WORLD_XCLIP_VERSION = 1


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_world_xclip(cache_dir: str | os.PathLike, num_frames: int = 8, seed: int = 0) -> Path:
    """The world X-CLIP's directory for ``num_frames`` frames per clip, built on first use.

    Args:
        cache_dir: where built models are kept (``cache_dir/world_xclip/<key>``).
        num_frames: frames per clip (X-CLIP-B/32: 8); fixed by the model once built.
        seed: seeds X-CLIP's new modules.

    Returns:
        A directory that ``build_video_text_model("xclip", path)`` loads.
    """
    from ray_pipeline.models.xclip import save_xclip_from_clip
    from ray_pipeline.world.clip import ensure_world_clip

    clip_dir = Path(ensure_world_clip(cache_dir))
    key = row_id("world_xclip", version=WORLD_XCLIP_VERSION, world=WORLD_VERSION,
                 clip=_file_digest(clip_dir / "model.safetensors"), num_frames=num_frames, seed=seed)
    base = Path(os.path.expanduser(str(cache_dir))) / "world_xclip"
    final = base / key
    if (final / "config.json").is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
    try:
        save_xclip_from_clip(clip_dir, tmp, num_frames=num_frames, seed=seed)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():  # not a concurrent builder's finished copy
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
