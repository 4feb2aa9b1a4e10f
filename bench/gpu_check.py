"""A prepared GPU check: one script, randomly initialised models, no hub, no network, no Ray.

What it runs (each section times itself and passes or fails on its own; one JSON holds it all):

1. ``cogvideox_2b``: a CogVideoX-2B-sized transformer (the real 2B config: 30 layers, 30 heads x
   64, 16 latent channels, sincos positions, 226 text tokens) in the real CogVideoXPipeline at the
   paper's 480x720x49, in bf16 and in fp16, with the step cache off and on (every cache in bf16,
   PAB in fp16): seconds per denoising step, the cached/uncached ratio, and the latents' relative
   difference. The text encoder and VAE are bypassed (prompt embeddings in, latents out).
2. ``wan_small`` / ``ltx_small``: the project's Wan and LTX-Video generators end to end (from
   ``from_pretrained`` of a saved directory to uint8 clips) with the real models' transformer
   widths at 4 layers, small clips; cache off and on; Wan once more under ``torch.compile``
   (inductor) when the time budget allows.
3. ``tcclip_train_ddp``: TC-CLIP on a ViT-B/16-sized random CLIP, wrapped in DDP over NCCL (one
   process), a few AdamW steps under bf16 autocast with the UL loss, then a checkpoint round-trip
   (``save`` -> ``load_video_text_model``) that must reproduce the logits.
4. ``batched_eval``: the trained model scoring videos in batches against one by one (fp32, TF32
   off): the same logits and predictions; the batched throughput under bf16 autocast with the class
   text of blocks 1..L-1 computed once (evaluate's path) against recomputing it per pass.
5. ``input_pipeline``: the training loader (decord, DataLoader processes, pinned memory) feeding
   TC-CLIP on the ViT-B/16-sized CLIP at the paper's 16 frames, on clips the size CogVideoX-2B makes
   (720x480, 49 frames): the loader's clips/s, the step's, both together, and one epoch of the
   training loop under ``torch.cuda.set_sync_debug_mode("warn")`` that must not wait on the GPU
   once (bf16; the fp16 GradScaler path, which does, is timed apart).

    python bench/gpu_check.py --out gpu_check.json      # on one GPU, <= 4 minutes on an H200
    python bench/gpu_check.py --smoke --out smoke.json  # on CPU at tiny sizes, < 1 minute

The input pipeline's clips are written where the check runs, with PyAV (H.264, as the pipeline
writes them) or, where PyAV is missing (the device image), OpenCV's MPEG-4; ``--clips DIR`` reads
ready ones instead.

The device machine has torch and transformers but neither Ray nor diffusers/pydantic/decord;
bench/gpu_check.sh installs the carried wheels and runs this (docs/cluster.md says how).
Exit status 0 only if every section passed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

# The real CogVideoX-2B transformer (THUDM/CogVideoX-2b transformer/config.json values).
COGVIDEOX_2B = {"num_attention_heads": 30, "attention_head_dim": 64, "in_channels": 16, "out_channels": 16,
                "time_embed_dim": 512, "text_embed_dim": 4096, "num_layers": 30, "sample_width": 90,
                "sample_height": 60, "sample_frames": 49, "patch_size": 2, "temporal_compression_ratio": 4,
                "max_text_seq_length": 226, "use_rotary_positional_embeddings": False,
                "flip_sin_to_cos": True, "freq_shift": 0}
COGVIDEOX_SMOKE = {**COGVIDEOX_2B, "num_attention_heads": 2, "attention_head_dim": 16, "time_embed_dim": 8,
                   "text_embed_dim": 32, "num_layers": 2, "sample_width": 4, "sample_height": 4,
                   "sample_frames": 9, "max_text_seq_length": 16}


# OpenAI CLIP's normalisation (every CLIP ViT's preprocessor_config.json).
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass
class Context:
    """Where the check runs and how big it is."""

    device: torch.device
    smoke: bool
    tmp: Path
    deadline: float  # time.perf_counter() after which optional work is skipped
    shared: dict[str, Any] = field(default_factory=dict)  # what one section hands to the next
    clips: Path | None = None  # ready clips for the input pipeline (--clips)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def timed(ctx: Context, fn: Callable[[], Any]) -> tuple[Any, float]:
    ctx.sync()
    start = time.perf_counter()
    out = fn()
    ctx.sync()
    return out, time.perf_counter() - start


def textured_clip(frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, H, W, 3): a smooth random texture drifting across the frame, plus grain, so a
    video codec has real motion and detail to code (flat or pure-noise frames would make decoding
    unrealistically cheap or dear)."""
    cell = 8
    low = rng.integers(0, 255, (height // cell + frames + 1, width // cell + frames + 1, 3)).astype(np.float32)
    texture = np.kron(low, np.ones((cell, cell, 1), np.float32))
    grain = rng.normal(0, 6, (4, height, width, 1)).astype(np.float32)  # cycled: cheap to make, still noisy
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        y, x = cell * t // 2, cell * t
        out[t] = np.clip(texture[y:y + height, x:x + width] + grain[t % 4], 0, 255)
    return out


def write_clips(folder: Path, n: int, frames: int, height: int, width: int, fps: int = 8,
                seed: int = 0) -> tuple[list[str], str]:
    """``n`` textured clips as mp4 files in ``folder``; returns their paths and the codec used:
    H.264 through PyAV (the pipeline's own encoder), else MPEG-4 through OpenCV."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import av  # noqa: F401

        from ray_pipeline.video_io import encode_mp4

        def write(clip: np.ndarray, path: str) -> None:
            encode_mp4(clip, path, fps=fps)

        codec = "h264 (PyAV)"
    except ImportError:
        try:
            import cv2
        except ImportError:
            raise RuntimeError("no video encoder here (PyAV or OpenCV); pass --clips DIR of mp4 files") from None

        def write(clip: np.ndarray, path: str) -> None:
            out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (clip.shape[2], clip.shape[1]))
            if not out.isOpened():
                raise RuntimeError(f"OpenCV cannot write {path}")
            for frame in clip:
                out.write(frame[:, :, ::-1].copy())  # OpenCV takes BGR
            out.release()

        codec = "mpeg4 (OpenCV)"
    paths = []
    for i in range(n):
        path = str(folder / f"clip{i:03d}.mp4")
        write(textured_clip(frames, height, width, rng), path)
        paths.append(path)
    return paths, codec


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


# --------------------------------------------------------------------------------------------
# 1. CogVideoX-2B-sized transformer, bf16 and fp16, caches off and on
# --------------------------------------------------------------------------------------------


def cogvideox_2b(ctx: Context) -> dict[str, Any]:
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    from ray_pipeline.config import CogVideoXCacheConfig
    from ray_pipeline.generators.cogvideox import CogVideoXGenerator
    from ray_pipeline.generators.step_cache import build_cache_config, calibrate_mag_ratios
    from ray_pipeline.tiny import build_tiny_t5_tokenizer

    sizes = COGVIDEOX_SMOKE if ctx.smoke else COGVIDEOX_2B
    height, width, frames = (32, 32, 9) if ctx.smoke else (480, 720, 49)
    steps = 6 if ctx.smoke else 10
    torch.manual_seed(0)
    with torch.device(ctx.device):
        transformer = CogVideoXTransformer3DModel(**sizes)
    params = sum(p.numel() for p in transformer.parameters())
    tokenizer = build_tiny_t5_tokenizer()
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=37, d_kv=8, num_layers=1,
                                           num_heads=4, relative_attention_num_buckets=8, decoder_start_token_id=0))
    # Only its config is read (scale factors); output_type="latent" never decodes.
    vae = AutoencoderKLCogVideoX(down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                                 latent_channels=16, layers_per_block=1, norm_num_groups=2)
    scheduler = CogVideoXDDIMScheduler(timestep_spacing="trailing", prediction_type="v_prediction",
                                       rescale_betas_zero_snr=True, clip_sample=False, set_alpha_to_one=True,
                                       snr_shift_scale=3.0)
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=scheduler).to(ctx.device)
    pipe.set_progress_bar_config(disable=True)
    target = CogVideoXGenerator.cache_target
    gen = torch.Generator("cpu").manual_seed(0)
    embeds = torch.randn(1, sizes["max_text_seq_length"], sizes["text_embed_dim"], generator=gen)
    negative = torch.randn(1, sizes["max_text_seq_length"], sizes["text_embed_dim"], generator=gen)

    def call() -> torch.Tensor:
        dtype = pipe.transformer.dtype
        return pipe(prompt_embeds=embeds.to(ctx.device, dtype), negative_prompt_embeds=negative.to(ctx.device, dtype),
                    height=height, width=width, num_frames=frames, num_inference_steps=steps, guidance_scale=6.0,
                    generator=torch.Generator("cpu").manual_seed(0), output_type="latent").frames

    out: dict[str, Any] = {"parameters": params, "shape": [height, width, frames], "steps": steps, "runs": {}}
    ok = True
    plans = {"bfloat16": ["pab", "faster_cache", "first_block", "taylorseer", "mag"], "float16": ["pab"]}
    for dtype_name, kinds in plans.items():
        pipe.transformer.to(getattr(torch, dtype_name))
        ratios, warm_s = timed(ctx, lambda: calibrate_mag_ratios(pipe, target, call, steps))  # also the warm-up
        ref, ref_s = timed(ctx, call)
        finite = bool(torch.isfinite(ref).all())
        ok &= finite
        runs = {"none": {"step_s": ref_s / steps, "warmup_s": warm_s, "finite": finite}}
        for kind in kinds:
            if time.perf_counter() > ctx.deadline:
                runs[kind] = {"skipped": "time budget"}
                continue
            cache = CogVideoXCacheConfig(kind=kind, mag={"mag_ratios": ratios})
            pipe.transformer.enable_cache(build_cache_config(cache, target, lambda: pipe.current_timestep, steps, 6.0))
            try:
                latents, seconds = timed(ctx, call)
            finally:
                pipe.transformer.disable_cache()
            cached_finite = bool(torch.isfinite(latents).all())
            ok &= cached_finite
            runs[kind] = {"step_s": seconds / steps, "speedup": ref_s / seconds, "rel_diff": rel_diff(latents, ref),
                          "finite": cached_finite}
        out["runs"][dtype_name] = runs
    out["pass"] = ok
    if ctx.device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


# --------------------------------------------------------------------------------------------
# 2. Wan and LTX-Video through the project's generators
# --------------------------------------------------------------------------------------------


def _generator_runs(ctx: Context, backend: str, base: dict[str, Any], kinds: list[str],
                    compile_run: bool) -> dict[str, Any]:
    """The backend's generator on ``base`` settings: uncached, then each cache (and compile)."""
    from ray_pipeline.config import LTXConfig, WanConfig
    from ray_pipeline.generators.base import get_generator_class

    cls = get_generator_class(backend)
    config_cls = {"wan": WanConfig, "ltx": LTXConfig}[backend]
    prompts, seeds = ["a person waving in a park", "a man running on a beach"], [0, 1]
    runs: dict[str, Any] = {}

    def two_calls(settings: dict[str, Any]) -> tuple[Any, list[np.ndarray], float, float]:
        """(generator, clips, first call's seconds, second call's seconds)."""
        gen = cls(config_cls(**settings))
        _, first = timed(ctx, lambda: gen.generate(prompts, seeds))
        clips, second = timed(ctx, lambda: gen.generate(prompts, seeds))
        return gen, clips, first, second

    gen, ref, warm_s, ref_s = two_calls(base)
    expected = (base["num_frames"], base["height"], base["width"], 3)
    ok = all(c.shape == expected and c.dtype == np.uint8 and c.std() > 0 for c in ref)
    runs["none"] = {"clip_s": ref_s / len(prompts), "warmup_s": warm_s}
    ratios = gen.mag_ratios(prompts, seeds) if "mag" in kinds else None
    gen = None  # one model on the GPU at a time
    variants = {kind: {"cache": {"kind": kind, **({"mag": {"mag_ratios": ratios}} if kind == "mag" else {})}}
                for kind in kinds}
    if compile_run:
        variants["compile"] = {"compile": {"enabled": True, "backend": "inductor"}}
    for name, overrides in variants.items():
        if time.perf_counter() > ctx.deadline:
            runs[name] = {"skipped": "time budget"}
            continue
        _, clips, first_s, seconds = two_calls({**base, **overrides})
        diff = max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(clips, ref))
        ok &= all(c.shape == expected for c in clips)
        runs[name] = {"clip_s": seconds / len(prompts), "speedup": ref_s / seconds, "first_call_s": first_s,
                      "mean_abs_uint8_diff": diff}
    return {"runs": runs, "pass": bool(ok), "shape": list(expected)}


def wan_small(ctx: Context) -> dict[str, Any]:
    from ray_pipeline.tiny import build_tiny_wan

    sizes = {} if ctx.smoke else {"num_attention_heads": 12, "attention_head_dim": 128, "ffn_dim": 8960}
    model = build_tiny_wan(ctx.tmp / "wan", num_layers=2 if ctx.smoke else 4, **sizes)
    size, frames, steps = (16, 9, 4) if ctx.smoke else (256, 33, 8)
    base = {"model": str(model), "dtype": "float32" if ctx.smoke else "bfloat16", "vae_dtype": "float32",
            "height": size, "width": size, "num_frames": frames, "num_inference_steps": steps,
            "max_sequence_length": 16, "negative_prompt": ""}
    # Inductor on CPU compiles for tens of seconds: the smoke run leaves compile to the tests.
    return _generator_runs(ctx, "wan", base, ["first_block", "taylorseer", "mag"],
                           compile_run=not ctx.smoke)


def ltx_small(ctx: Context) -> dict[str, Any]:
    from ray_pipeline.tiny import build_tiny_ltx

    sizes = {} if ctx.smoke else {"num_attention_heads": 32, "attention_head_dim": 64, "cross_attention_dim": 2048}
    model = build_tiny_ltx(ctx.tmp / "ltx", num_layers=2 if ctx.smoke else 4, **sizes)
    size, frames, steps = (32, 9, 4) if ctx.smoke else (128, 33, 8)  # the VAE compresses only 4x here
    base = {"model": str(model), "dtype": "float32" if ctx.smoke else "bfloat16", "height": size, "width": size,
            "num_frames": frames, "num_inference_steps": steps, "max_sequence_length": 16, "negative_prompt": ""}
    return _generator_runs(ctx, "ltx", base, ["pab", "first_block", "taylorseer", "mag"],
                           compile_run=False)


# --------------------------------------------------------------------------------------------
# 3. TC-CLIP: DDP on NCCL, bf16 autocast, checkpoint round-trip
# --------------------------------------------------------------------------------------------


def _clip_backbone(ctx: Context):
    from transformers import CLIPModel

    from ray_pipeline.tiny import tiny_clip_config, tiny_tokenizer

    tok = tiny_tokenizer()
    sizes = {} if ctx.smoke else {"image_size": 224, "patch_size": 16, "vision_hidden": 768, "vision_layers": 12,
                                  "vision_heads": 12, "text_hidden": 512, "text_layers": 12, "text_heads": 8,
                                  "projection_dim": 512}
    torch.manual_seed(0)
    return CLIPModel(tiny_clip_config(len(tok), tok.bos_token_id, tok.eos_token_id, **sizes)), tok


def tcclip_train_ddp(ctx: Context) -> dict[str, Any]:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from ray_pipeline.models import TCCLIP, load_video_text_model
    from ray_pipeline.training.losses import build_loss

    clip, tok = _clip_backbone(ctx)
    model = TCCLIP(clip, tok).to(ctx.device)
    size = clip.config.vision_config.image_size
    batch, frames = (4, 4) if ctx.smoke else (16, 8)
    classes = ["brush hair", "wave", "run", "jump", "clap", "kick ball", "ride bike", "swim"]
    backend = "nccl" if ctx.device.type == "cuda" else "gloo"
    with tempfile.NamedTemporaryFile(dir=ctx.tmp, delete=False) as f:
        init = f"file://{f.name}"
    dist.init_process_group(backend, init_method=init, rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        optimizer = torch.optim.AdamW(model.param_groups(8e-6), betas=(0.9, 0.98), eps=1e-8, weight_decay=0.001)
        loss_fn = build_loss("ul", weight=0.3)
        amp = torch.bfloat16
        gen = torch.Generator().manual_seed(0)
        pixels = torch.randn(batch, frames, 3, size, size, generator=gen).to(ctx.device)
        labels = torch.randint(0, len(classes), (batch,), generator=gen).to(ctx.device)
        uncertainty = torch.rand(batch, generator=gen)
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        losses, step_s = [], []
        for _ in range(3 if ctx.smoke else 5):
            def step() -> float:
                with torch.autocast(ctx.device.type, dtype=amp):
                    logits = ddp(pixels, classes)
                loss = loss_fn(logits.float(), labels, uncertainty)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                return float(loss.detach())

            loss, seconds = timed(ctx, step)
            losses.append(loss)
            step_s.append(seconds)
        changed = sum(not torch.equal(before[k], v) for k, v in model.named_parameters())
    finally:
        dist.destroy_process_group()
    model.eval()
    with torch.no_grad():
        expected = model(pixels[:2].float(), classes)
        ckpt = ctx.tmp / "tcclip"
        _, save_s = timed(ctx, lambda: model.save(ckpt))
        loaded = load_video_text_model(ckpt).to(ctx.device).eval()
        got = loaded(pixels[:2].float(), classes)
    ctx.shared["tcclip"] = (loaded, classes, size)
    round_trip = float((got - expected).abs().max())
    saved, restored = model.state_dict(), loaded.state_dict()
    same_weights = saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    # Same weights bit for bit; the logits of two module instances may differ by kernel choice.
    ok = all(np.isfinite(losses)) and changed > 0 and same_weights and round_trip <= 1e-4
    return {"pass": bool(ok), "backend": backend, "batch": [batch, frames, size], "losses": losses,
            "step_s": float(np.median(step_s[1:])), "first_step_s": step_s[0],
            "clips_per_s": batch / float(np.median(step_s[1:])), "parameters_changed": changed,
            "parameters": sum(p.numel() for p in model.parameters()), "checkpoint_save_s": save_s,
            "round_trip_same_weights": same_weights, "round_trip_max_abs": round_trip}


# --------------------------------------------------------------------------------------------
# 4. Batched evaluation
# --------------------------------------------------------------------------------------------


def batched_eval(ctx: Context) -> dict[str, Any]:
    if "tcclip" not in ctx.shared:
        raise RuntimeError("needs the model trained by tcclip_train_ddp")
    model, classes, size = ctx.shared["tcclip"]
    videos, frames, batch = (6, 4, 3) if ctx.smoke else (32, 8, 16)
    pixels = torch.randn(videos, frames, 3, size, size, generator=torch.Generator().manual_seed(1)).to(ctx.device)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            one = torch.cat([model(pixels[i:i + 1], classes) for i in range(videos)])
            batched = torch.cat([model(pixels[i:i + batch], classes) for i in range(0, videos, batch)])
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32

    def bf16_pass() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(ctx.device.type, dtype=torch.bfloat16):
            return torch.cat([model(pixels[i:i + batch], classes) for i in range(0, videos, batch)])

    def cached_pass() -> torch.Tensor:
        # The evaluate stage's path: the class text of blocks 1..L-1 once per split, the last
        # (video-conditional) block per video, videos batched under autocast.
        with torch.inference_mode(), torch.autocast(ctx.device.type, dtype=torch.bfloat16):
            text = model.encode_classes(classes)
            return torch.cat([model.class_logits(pixels[i:i + batch], classes, text)
                              for i in range(0, videos, batch)])

    bf16_pass()  # warm-up
    bf16, seconds = timed(ctx, bf16_pass)
    cached_pass()
    cached, cached_s = timed(ctx, cached_pass)
    max_abs = float((one - batched).abs().max())
    same_top1 = bool(torch.equal(one.argmax(1), batched.argmax(1)))
    agree_bf16 = float((bf16.float().argmax(1) == batched.argmax(1)).float().mean())
    cached_diff = float((cached.float() - bf16.float()).abs().max())
    agree_cached = float((cached.float().argmax(1) == batched.argmax(1)).float().mean())
    return {"pass": max_abs <= 1e-3 and same_top1 and cached_diff <= 0.05 * float(bf16.float().abs().max()),
            "videos": videos, "batch": batch, "batched_vs_single_max_abs": max_abs, "same_top1": same_top1,
            "bf16_top1_agreement": agree_bf16, "bf16_videos_per_s": videos / seconds,
            "cached_text_videos_per_s": videos / cached_s, "cached_text_speedup": seconds / cached_s,
            "cached_vs_uncached_bf16_max_abs": cached_diff, "cached_top1_agreement": agree_cached}


# --------------------------------------------------------------------------------------------
# 5. The training input pipeline
# --------------------------------------------------------------------------------------------


def input_pipeline(ctx: Context) -> dict[str, Any]:
    import warnings

    from torch.utils.data import DistributedSampler

    from ray_pipeline.models import TCCLIP
    from ray_pipeline.models.preprocess import Preprocess
    from ray_pipeline.training.data import ClipDataset, LoaderPlan, plan_loader, training_loader
    from ray_pipeline.training.loop import choose_precision, train_epoch
    from ray_pipeline.training.losses import build_loss

    frames = 4 if ctx.smoke else 16  # the paper's 16 per training clip
    n, batch = (8, 2) if ctx.smoke else (32, 8)
    if ctx.clips is not None:
        videos, codec = sorted(str(p) for p in ctx.clips.glob("*.mp4")), "given (--clips)"
        if len(videos) < 2 * batch:
            raise RuntimeError(f"--clips {ctx.clips}: {len(videos)} mp4 files, fewer than {2 * batch}")
    else:
        shape = (12, 48, 64) if ctx.smoke else (49, 480, 720)  # CogVideoX-2B's clips
        (videos, codec), write_s = timed(ctx, lambda: write_clips(ctx.tmp / "clips", n, *shape))
    clip, tok = _clip_backbone(ctx)
    size = clip.config.vision_config.image_size
    pre = Preprocess(size, CLIP_MEAN, CLIP_STD)
    classes = ["brush hair", "wave", "run", "jump", "clap", "kick ball", "ride bike", "swim"]
    labels = [i % len(classes) for i in range(len(videos))]
    dataset = ClipDataset(videos, labels, [(i % 10) / 10 for i in range(len(videos))], pre, frames, train=True)
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # What a Ray Train worker holding this machine's CPUs plans (on CPU: one decoding process, so
    # the smoke run still forks one).
    plan = plan_loader({}, ctx.device.type, cpus) if ctx.device.type == "cuda" else LoaderPlan(1, False, 2, True)
    loader = training_loader(dataset, sampler, batch, plan)

    def epoch_of_loading(epoch: int) -> int:
        sampler.set_epoch(epoch)
        count = 0
        for pixels, *_ in loader:
            pixels.to(ctx.device, non_blocking=True)
            count += len(pixels)
        return count

    epoch_of_loading(0)  # start the processes, first decodes
    clips, load_s = timed(ctx, lambda: epoch_of_loading(1))

    torch.manual_seed(0)
    model = TCCLIP(clip, tok).to(ctx.device)
    amp, note = choose_precision("bf16", ctx.device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    optimizer = torch.optim.AdamW(model.param_groups(8e-6), betas=(0.9, 0.98), eps=1e-8, weight_decay=0.001)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn = build_loss("ul", weight=0.3)
    # The step alone: two batches already decoded (pinned, as the loader pins them on a GPU).
    batches = iter(loader)
    held = [next(batches), next(batches)]
    del batches

    def steps_alone() -> Any:
        return train_epoch(model, held, loss_fn, optimizer, scheduler, None, classes, ctx.device, amp_dtype)

    steps_alone()  # warm-up (kernels, allocator)
    _, step_s = timed(ctx, steps_alone)
    step_rate = len(held) * batch / step_s

    def fed_epoch(epoch: int) -> Any:
        sampler.set_epoch(epoch)
        return train_epoch(model, loader, loss_fn, optimizer, scheduler, None, classes, ctx.device, amp_dtype)

    syncs: list[str] = []
    if ctx.device.type == "cuda":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                loss_sum, fed_s = timed(ctx, lambda: fed_epoch(2))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message)[:300] for w in caught if "synchroniz" in str(w.message)]
    else:
        loss_sum, fed_s = timed(ctx, lambda: fed_epoch(2))
    fed_clips = float(loss_sum[1])
    finite = bool(torch.isfinite(loss_sum).all())
    out = {"clips": len(videos), "codec": codec, "frames": frames, "batch": batch, "image_size": size,
           "precision": amp, "precision_note": note, "loader": plan.describe(), "cpus": cpus,
           "loader_clips_per_s": clips / load_s, "step_clips_per_s": step_rate,
           "fed_clips_per_s": fed_clips / fed_s, "loader_over_step": clips / load_s / step_rate,
           "fed_over_step": fed_clips / fed_s / step_rate, "host_syncs_per_epoch": len(syncs),
           "first_syncs": syncs[:3], "finite": finite}
    if ctx.clips is None:
        out["write_clips_s"] = write_s
    if ctx.device.type == "cuda" and time.perf_counter() < ctx.deadline:
        # fp16 with a GradScaler: what a GPU without bf16 runs (the scaler reads its inf check each step).
        scaler = torch.amp.GradScaler("cuda")
        fp16, fp16_s = timed(ctx, lambda: train_epoch(model, held, loss_fn, optimizer, scheduler, scaler, classes,
                                                       ctx.device, torch.float16))
        out.update(fp16_step_clips_per_s=len(held) * batch / fp16_s, fp16_finite=bool(torch.isfinite(fp16).all()))
    out["pass"] = finite and not syncs and fed_clips == (len(videos) // batch) * batch
    return out


SECTIONS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "cogvideox_2b": cogvideox_2b, "wan_small": wan_small, "ltx_small": ltx_small,
    "tcclip_train_ddp": tcclip_train_ddp, "batched_eval": batched_eval, "input_pipeline": input_pipeline,
}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=float)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny sizes (< 1 minute): what the tests run")
    p.add_argument("--out", default="gpu_check.json", help="the JSON of timings and pass/fail")
    p.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    p.add_argument("--budget-s", type=float, default=130.0,
                   help="after this many seconds optional runs (more caches, compile) are skipped")
    p.add_argument("--clips", type=Path, default=None, help="mp4 clips for the input pipeline (default: written here)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)
    elif torch.cuda.is_available():
        device = torch.device("cuda", 0)
        torch.cuda.set_device(device)
    else:
        print("gpu_check: no CUDA device (use --smoke on CPU)", file=sys.stderr)
        return 2
    import diffusers
    import transformers

    report: dict[str, Any] = {
        "smoke": args.smoke, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "transformers": transformers.__version__,
                     "diffusers": diffusers.__version__},
        "sections": {},
    }
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        ctx = Context(device=device, smoke=args.smoke, tmp=Path(tmp), deadline=start + args.budget_s,
                      clips=args.clips)
        for name in args.sections:
            t0 = time.perf_counter()
            try:
                result = SECTIONS[name](ctx)
            except Exception as exc:  # noqa: BLE001  (a section's failure is a result, not the end)
                result = {"pass": False, "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()[-3000:]}
            result["seconds"] = time.perf_counter() - t0
            if device.type == "cuda":  # the section's models are gone with its frame: give the memory back
                torch.cuda.empty_cache()
            report["sections"][name] = result
            print(f"[gpu_check] {name}: {'pass' if result['pass'] else 'FAIL'} ({result['seconds']:.1f} s)"
                  + (f" {result['error']}" if "error" in result else ""), flush=True)
            write_json(out, {**report, "pass": False, "seconds": time.perf_counter() - start, "partial": True})
    report["pass"] = all(r["pass"] for r in report["sections"].values())
    report["seconds"] = time.perf_counter() - start
    write_json(out, report)
    print(f"[gpu_check] {'PASS' if report['pass'] else 'FAIL'} in {report['seconds']:.1f} s -> {out}")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
