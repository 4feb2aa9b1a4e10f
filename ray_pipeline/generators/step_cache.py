"""Step caches for the diffusers backends: our config -> a diffusers cache config on the transformer.

diffusers 0.42.1 ships the caches as hooks behind ``transformer.enable_cache(config)``. What differs
per backend is declared by the backend (:class:`CacheTarget`): how its latents are laid out
(FasterCache splits frames), which modules TaylorSeer predicts (diffusers' default patterns match
``...attn`` exactly, which none of these transformers' ``attn1``/``attn2`` names do, so it would hook
nothing).

MagCache needs per-checkpoint magnitude ratios; :func:`calibrate_mag_ratios` measures them the way
diffusers' calibration mode does (mean over tokens of |residual_t| / |residual_t-1|, the residual
being the last block's output minus the first block's input), with plain forward hooks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray_pipeline.config import StepCacheConfig


@dataclass(frozen=True)
class CacheTarget:
    """What a backend's transformer looks like to the caches.

    Args:
        blocks: name of the transformer's ModuleList of blocks.
        taylorseer_modules: regexes (full match) of the modules TaylorSeer predicts.
        tensor_format: the latent layout FasterCache splits frames by (BFCHW, BCFHW).
    """

    blocks: str
    taylorseer_modules: tuple[str, ...]
    tensor_format: str


def cache_identity(cache: StepCacheConfig, target: CacheTarget) -> dict[str, Any] | None:
    """The cache settings that change pixels, as plain values for the clip id (None: no cache).

    TaylorSeer's module patterns are part of the backend's code rather than of the config, but they
    decide what is predicted, so they are recorded too."""
    settings = cache.settings()
    if settings is None:
        return None
    out = {"kind": cache.kind, **settings}
    if cache.kind == "taylorseer" and not cache.taylorseer.lite:
        out["modules"] = list(target.taylorseer_modules)
    return out


def build_cache_config(cache: StepCacheConfig, target: CacheTarget, current_timestep: Callable[[], Any],
                       num_inference_steps: int, guidance_scale: float) -> Any:
    """The diffusers config object for ``transformer.enable_cache`` (None when the kind is ``none``).

    Args:
        cache: the backend's ``cache`` section.
        target: the backend's transformer layout.
        current_timestep: returns the pipeline's current timestep (PAB and FasterCache gate on it).
        num_inference_steps: MagCache spreads its ratios over the steps of one call.
        guidance_scale: FasterCache's CFG-Cache applies only when there is an unconditional branch.
    """
    import torch
    from diffusers import (
        FasterCacheConfig,
        FirstBlockCacheConfig,
        MagCacheConfig,
        PyramidAttentionBroadcastConfig,
        TaylorSeerCacheConfig,
    )

    kind = cache.kind
    if kind == "none":
        return None
    if kind == "pab":
        s = cache.pab
        return PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=s.spatial_attention_block_skip_range,
            spatial_attention_timestep_skip_range=tuple(s.spatial_attention_timestep_skip_range),
            cross_attention_block_skip_range=s.cross_attention_block_skip_range,
            cross_attention_timestep_skip_range=tuple(s.cross_attention_timestep_skip_range),
            current_timestep_callback=current_timestep,
        )
    if kind == "faster_cache":
        s = cache.faster_cache
        weight = s.attention_weight
        return FasterCacheConfig(
            spatial_attention_block_skip_range=s.spatial_attention_block_skip_range,
            spatial_attention_timestep_skip_range=tuple(s.spatial_attention_timestep_skip_range),
            attention_weight_callback=lambda _module: weight,
            unconditional_batch_skip_range=s.unconditional_batch_skip_range,
            unconditional_batch_timestep_skip_range=tuple(s.unconditional_batch_timestep_skip_range),
            low_frequency_weight_update_timestep_range=tuple(s.low_frequency_weight_update_timestep_range),
            high_frequency_weight_update_timestep_range=tuple(s.high_frequency_weight_update_timestep_range),
            alpha_low_frequency=s.alpha_low_frequency,
            alpha_high_frequency=s.alpha_high_frequency,
            tensor_format=target.tensor_format,
            is_guidance_distilled=guidance_scale <= 1.0,
            current_timestep_callback=current_timestep,
        )
    if kind == "first_block":
        return FirstBlockCacheConfig(threshold=cache.first_block.threshold)
    if kind == "taylorseer":
        s = cache.taylorseer
        return TaylorSeerCacheConfig(
            cache_interval=s.cache_interval, disable_cache_before_step=s.disable_cache_before_step,
            disable_cache_after_step=s.disable_cache_after_step, max_order=s.max_order,
            taylor_factors_dtype=getattr(torch, s.taylor_factors_dtype),
            cache_identifiers=None if s.lite else list(target.taylorseer_modules), use_lite_mode=s.lite,
        )
    if kind == "mag":
        s = cache.mag
        return MagCacheConfig(threshold=s.threshold, max_skip_steps=s.max_skip_steps,
                              retention_ratio=s.retention_ratio, num_inference_steps=num_inference_steps,
                              mag_ratios=list(s.mag_ratios))
    raise ValueError(f"unknown cache kind {kind!r}")


def calibrate_mag_ratios(pipe: Any, target: CacheTarget, call: Callable[[], Any],
                         num_inference_steps: int) -> list[float]:
    """MagCache's magnitude ratios of a pipeline, one per denoising step, from one uncached run.

    Args:
        pipe: a loaded diffusers pipeline with no step cache enabled.
        target: its transformer layout.
        call: runs the pipeline once (the prompts, seeds and settings the ratios are measured on).
        num_inference_steps: the steps ``call`` runs; with classifier-free guidance as a separate
            call (Wan) there are two transformer calls per step and the first (conditional) counts.

    Returns:
        ``[1.0, r_1, ..., r_{n-1}]`` with ``r_t`` the mean over tokens of the ratio of the residual's
        norm at step t to that at step t-1 (of the conditional pass when it is a separate call), as
        diffusers' ``MagCacheConfig(calibrate=True)`` prints them.
    """
    import torch

    blocks = getattr(pipe.transformer, target.blocks)
    head, tail = blocks[0], blocks[-1]
    inputs: list[torch.Tensor] = []
    residuals: list[torch.Tensor] = []

    def before(_module: Any, args: tuple, kwargs: dict) -> None:
        inputs.append((kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]).detach())

    def after(_module: Any, _args: tuple, _kwargs: dict, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        residuals.append((hidden - inputs[-1]).detach().float())

    handles = [head.register_forward_pre_hook(before, with_kwargs=True),
               tail.register_forward_hook(after, with_kwargs=True)]
    try:
        call()
    finally:
        for h in handles:
            h.remove()
    calls_per_step, rest = divmod(len(residuals), num_inference_steps)
    if rest or not calls_per_step:
        raise ValueError(f"{len(residuals)} transformer calls for {num_inference_steps} steps")
    passes = residuals[::calls_per_step]
    ratios = [1.0]
    for prev, cur in itertools.pairwise(passes):
        norm_cur = torch.linalg.norm(cur, dim=-1)
        norm_prev = torch.linalg.norm(prev, dim=-1)
        ratios.append(float((norm_cur / (norm_prev + 1e-8)).mean()))
    return ratios
