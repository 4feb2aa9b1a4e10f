"""CogVideoX through diffusers' CogVideoXPipeline (the paper's generator: CogVideoX-2B, 50 steps).

diffusers ignores ``num_videos_per_prompt`` for CogVideoX, so several clips per call are a list of
prompts plus a list of generators (``prompts_per_call``). The unconditional and conditional passes
run as one batch, which is what PAB's and FasterCache's per-layer state assumes: every cache in
diffusers 0.42.1 runs here (diffusers' own tests cover PAB, FasterCache and First Block Cache).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ray_pipeline.config import CogVideoXConfig
from ray_pipeline.generators.base import register_generator
from ray_pipeline.generators.diffusers_base import DiffusersVideoGenerator
from ray_pipeline.generators.step_cache import CacheTarget


@register_generator
class CogVideoXGenerator(DiffusersVideoGenerator):
    name = "cogvideox"
    pipeline_class: ClassVar[str] = "CogVideoXPipeline"
    cache_target: ClassVar[CacheTarget] = CacheTarget(
        blocks="transformer_blocks", taylorseer_modules=(r"transformer_blocks\.\d+\.(attn1|ff)",),
        tensor_format="BFCHW")
    identity_keys: ClassVar[tuple[str, ...]] = ("scheduler", "use_dynamic_cfg")

    config: CogVideoXConfig

    def configure_scheduler(self, pipe: Any) -> None:
        # CogVideo's advice: DDIM for 2B, DPM (with dynamic CFG) for 5B; the checkpoint's settings kept.
        from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

        scheduler_cls = CogVideoXDDIMScheduler if self.config.scheduler == "ddim" else CogVideoXDPMScheduler
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)

    def call_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        return {**super().call_kwargs(prompts), "use_dynamic_cfg": self.config.use_dynamic_cfg}
