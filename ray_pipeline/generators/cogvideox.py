"""CogVideoX through diffusers' CogVideoXPipeline (the paper's generator: CogVideoX-2B, 50 steps).

Loaded by hub id or local path with ``from_pretrained``. A batch of prompts is rendered in one call
with one ``torch.Generator`` per clip: diffusers ignores ``num_videos_per_prompt`` for CogVideoX,
so a list of prompts plus a list of generators is the way to batch with distinct seeds.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ray_pipeline.config import CogVideoXConfig
from ray_pipeline.generators.base import VideoGenerator, register_generator


@register_generator
class CogVideoXGenerator(VideoGenerator):
    name = "cogvideox"

    def __init__(self, config: CogVideoXConfig, device: str = "cpu", cache_dir: str | None = None) -> None:
        import torch
        from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler, CogVideoXPipeline

        self.config = config
        dtype = getattr(torch, config.dtype)
        if device == "cpu" and dtype == torch.float16:
            # Half-precision 3D convolutions are not implemented on CPU.
            print("[cogvideox] float16 is GPU-only; using float32 on CPU", file=sys.stderr)
            dtype = torch.float32
        pipe = CogVideoXPipeline.from_pretrained(config.model, dtype=dtype, cache_dir=cache_dir)
        scheduler_cls = CogVideoXDDIMScheduler if config.scheduler == "ddim" else CogVideoXDPMScheduler
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
        if config.cpu_offload == "model":
            pipe.enable_model_cpu_offload()
        elif config.cpu_offload == "sequential":
            pipe.enable_sequential_cpu_offload()
        else:
            pipe.to(device)
        if config.vae_slicing:
            pipe.vae.enable_slicing()
        if config.vae_tiling:
            pipe.vae.enable_tiling()
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe

    @property
    def fps(self) -> int:
        return self.config.fps

    @classmethod
    def identity(cls, config: CogVideoXConfig) -> dict[str, Any]:
        keys = ("model", "dtype", "num_inference_steps", "num_frames", "height", "width",
                "guidance_scale", "scheduler", "use_dynamic_cfg", "max_sequence_length")
        return {k: getattr(config, k) for k in keys}

    def generate(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        import torch

        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        c = self.config
        # CPU generators: the same seed gives the same initial noise on any device.
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with torch.inference_mode():
            out = self.pipe(
                prompt=list(prompts), generator=generators, num_inference_steps=c.num_inference_steps,
                guidance_scale=c.guidance_scale, use_dynamic_cfg=c.use_dynamic_cfg, height=c.height,
                width=c.width, num_frames=c.num_frames, max_sequence_length=c.max_sequence_length,
                output_type="np",
            )
        frames = np.asarray(out.frames)  # (B, F, H, W, C) floats in [0, 1]
        return [np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8) for v in frames]
