"""What the diffusers text-to-video backends (CogVideoX, Wan, LTX-Video) share.

Loading by hub id or local path with ``from_pretrained(..., dtype=)``, device placement or CPU
offload, VAE slicing/tiling, a step cache on the transformer (``transformer.enable_cache``),
``torch.compile`` of the transformer, and rendering a batch of prompts several per pipeline call,
each with its own ``torch.Generator``. A backend adds its pipeline class, scheduler, call arguments
and the settings of its own that change pixels.

What goes into the clip id (``identity``) and what does not, and why:

- in: the model, dtype, steps, frames, resolution, guidance, negative prompt, text length, the
  backend's scheduler and decode settings, ``vae_tiling`` (tiles are decoded separately and
  blended at their overlaps, so the pixels change) and the step cache (it approximates steps).
- out: ``cpu_offload`` (moves weights between CPU and GPU; the arithmetic is the same),
  ``vae_slicing`` (decodes the clips of one call one at a time: each clip's arithmetic is the
  same), ``compile`` (the same graph, fused: float reassociation only) and ``prompts_per_call``
  (clips of one call do not interact: each has its own noise, text embedding and guidance). On the
  tiny pipelines batching, slicing and compile (inductor) change no uint8 pixel
  (tests/test_generators_diffusers.py measures it; float differences stay below 2e-6). The one
  exception, the first-block cache, which decides per call over all its prompts, is refused with
  ``prompts_per_call > 1`` by the config.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import numpy as np

from ray_pipeline.config import DiffusersVideoConfig
from ray_pipeline.generators.base import VideoGenerator
from ray_pipeline.generators.step_cache import (
    CacheTarget,
    build_cache_config,
    cache_identity,
    calibrate_mag_ratios,
)

# Settings of every diffusers backend that change the pixels of a (prompt, seed).
SHARED_IDENTITY_KEYS = ("model", "dtype", "num_inference_steps", "num_frames", "height", "width",
                        "guidance_scale", "negative_prompt", "max_sequence_length", "vae_tiling")


class DiffusersVideoGenerator(VideoGenerator):
    """A diffusers text-to-video pipeline behind the generator interface.

    Subclasses set ``pipeline_class`` (the diffusers class name), ``cache_target``,
    ``identity_keys`` (their own pixel-changing settings) and :meth:`call_kwargs`."""

    pipeline_class: ClassVar[str]
    cache_target: ClassVar[CacheTarget]
    identity_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: DiffusersVideoConfig, device: str = "cpu", cache_dir: str | None = None) -> None:
        self.config = config
        self.device = device
        pipe = self.load_pipeline(config, self.torch_dtype(config.dtype, device), cache_dir)
        self.configure_scheduler(pipe)
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
        cache = build_cache_config(config.cache, self.cache_target, lambda: pipe.current_timestep,
                                   config.num_inference_steps, config.guidance_scale)
        if cache is not None:
            blocks = len(getattr(pipe.transformer, self.cache_target.blocks))
            if config.cache.kind == "first_block" and blocks < 2:
                # diffusers hooks the first block as head and the rest as tail; it fails with none.
                raise ValueError(f"{config.model}: cache 'first_block' needs at least 2 transformer blocks, "
                                 f"this transformer has {blocks}")
            pipe.transformer.enable_cache(cache)
        if config.compile.enabled:
            # In place (nn.Module.compile): the pipeline keeps calling the same module object.
            pipe.transformer.compile(backend=config.compile.backend, mode=config.compile.mode,
                                     fullgraph=config.compile.fullgraph)

    @staticmethod
    def torch_dtype(name: str, device: str) -> Any:
        import torch

        dtype = getattr(torch, name)
        if str(device).startswith("cpu") and dtype == torch.float16:
            # Half-precision 3D convolutions are not implemented on CPU.
            print("[diffusers] float16 is GPU-only; using float32 on CPU", file=sys.stderr)
            return torch.float32
        return dtype

    def load_pipeline(self, config: DiffusersVideoConfig, dtype: Any, cache_dir: str | None) -> Any:
        """``from_pretrained`` of the pipeline class (hub id or local directory)."""
        import diffusers

        cls = getattr(diffusers, self.pipeline_class)
        return cls.from_pretrained(config.model, dtype=dtype, cache_dir=cache_dir)

    def configure_scheduler(self, pipe: Any) -> None:
        """Replace or reconfigure the scheduler the checkpoint ships (default: keep it)."""

    def call_kwargs(self, prompts: list[str]) -> dict[str, Any]:
        """The pipeline's keyword arguments for one call on ``prompts`` (no generator, no output type)."""
        c = self.config
        return {"prompt": list(prompts), "negative_prompt": [c.negative_prompt] * len(prompts),
                "num_inference_steps": c.num_inference_steps, "guidance_scale": c.guidance_scale,
                "height": c.height, "width": c.width, "num_frames": c.num_frames,
                "max_sequence_length": c.max_sequence_length}

    @property
    def fps(self) -> int:
        return self.config.fps

    @classmethod
    def identity(cls, config: DiffusersVideoConfig) -> dict[str, Any]:
        out = {k: getattr(config, k) for k in SHARED_IDENTITY_KEYS + cls.identity_keys}
        out["cache"] = cache_identity(config.cache, cls.cache_target)
        return out

    def render(self, prompts: list[str], seeds: list[int]) -> np.ndarray:
        """One pipeline call: float frames in [0, 1], shape (B, F, H, W, 3)."""
        import torch

        # CPU generators: the same seed gives the same initial noise on any device.
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with torch.inference_mode():
            out = self.pipe(**self.call_kwargs(prompts), generator=generators, output_type="np")
        return np.asarray(out.frames)

    def generate(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        n = self.config.prompts_per_call
        clips: list[np.ndarray] = []
        for i in range(0, len(prompts), n):
            frames = self.render(prompts[i:i + n], seeds[i:i + n])
            clips += [np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8) for v in frames]
        return clips

    def mag_ratios(self, prompts: list[str], seeds: list[int]) -> list[float]:
        """MagCache's ratios for this checkpoint and scheduler, from one uncached call on ``prompts``
        (put them in ``cache.mag.mag_ratios``)."""
        if self.config.cache.kind != "none":
            raise ValueError(f"calibrate with cache.kind: none (this generator runs {self.config.cache.kind!r})")
        return calibrate_mag_ratios(self.pipe, self.cache_target, lambda: self.render(prompts, seeds),
                                    self.config.num_inference_steps)
