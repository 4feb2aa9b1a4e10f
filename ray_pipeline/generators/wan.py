"""Wan 2.1 text-to-video through diffusers' WanPipeline (default: Wan2.1-T2V-1.3B, 480x832, 81 frames).

As the model card does: the VAE is loaded in float32 (``vae_dtype``) for decoding quality and the
rest in bfloat16, and the UniPC scheduler's ``flow_shift`` is set at load time (3.0 for 480p, 5.0 for
720p). WanPipeline runs the conditional and the unconditional pass as two transformer calls per
step, each inside its own cache context; the caches that keep per-context state (First Block
Cache, TaylorSeer, MagCache) run here, PAB and FasterCache do not (config.UNSUPPORTED_CACHES).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ray_pipeline.config import WanConfig
from ray_pipeline.generators.base import register_generator
from ray_pipeline.generators.diffusers_base import DiffusersVideoGenerator
from ray_pipeline.generators.step_cache import CacheTarget


@register_generator
class WanGenerator(DiffusersVideoGenerator):
    name = "wan"
    pipeline_class: ClassVar[str] = "WanPipeline"
    cache_target: ClassVar[CacheTarget] = CacheTarget(
        blocks="blocks", taylorseer_modules=(r"blocks\.\d+\.(attn1|attn2|ffn)",), tensor_format="BCFHW")
    identity_keys: ClassVar[tuple[str, ...]] = ("vae_dtype", "flow_shift")

    config: WanConfig

    def load_pipeline(self, config: WanConfig, dtype: Any, cache_dir: str | None) -> Any:
        from diffusers import AutoencoderKLWan, WanPipeline

        vae = AutoencoderKLWan.from_pretrained(config.model, subfolder="vae", cache_dir=cache_dir,
                                               dtype=self.torch_dtype(config.vae_dtype, self.device))
        return WanPipeline.from_pretrained(config.model, vae=vae, dtype=dtype, cache_dir=cache_dir)

    def configure_scheduler(self, pipe: Any) -> None:
        from diffusers import UniPCMultistepScheduler

        pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=self.config.flow_shift)
