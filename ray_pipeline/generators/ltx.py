"""LTX-Video through diffusers' LTXPipeline (default: Lightricks/LTX-Video, 768x512, 161 frames).

The model card's call: bfloat16, 50 steps, ``decode_timestep=0.03`` and ``decode_noise_scale=0.025``
(the VAE of LTX-Video 0.9.1+ denoises while it decodes, and that noise is drawn from each clip's
generator), exported at 24 fps while the transformer is conditioned on ``frame_rate`` (25, the
pipeline's default). The unconditional and conditional passes run as one batch; the latents are
packed as tokens, which FasterCache does not support in diffusers 0.42.1.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ray_pipeline.config import LTXConfig
from ray_pipeline.generators.base import register_generator
from ray_pipeline.generators.diffusers_base import DiffusersVideoGenerator
from ray_pipeline.generators.step_cache import CacheTarget


@register_generator
class LTXGenerator(DiffusersVideoGenerator):
    name = "ltx"
    pipeline_class: ClassVar[str] = "LTXPipeline"
    cache_target: ClassVar[CacheTarget] = CacheTarget(
        blocks="transformer_blocks", taylorseer_modules=(r"transformer_blocks\.\d+\.(attn1|attn2|ff)",),
        tensor_format="BCFHW")
    identity_keys: ClassVar[tuple[str, ...]] = ("guidance_rescale", "frame_rate", "decode_timestep",
                                                "decode_noise_scale")

    config: LTXConfig

    def call_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        c = self.config
        return {**super().call_kwargs(prompts), "guidance_rescale": c.guidance_rescale, "frame_rate": c.frame_rate,
                "decode_timestep": c.decode_timestep, "decode_noise_scale": c.decode_noise_scale}
