"""A tiny, randomly initialised LTX-Video pipeline saved as a standard diffusers directory."""

from __future__ import annotations

from pathlib import Path

from ray_pipeline.tiny.t5 import build_tiny_t5_tokenizer


def build_tiny_ltx(out_dir: str | Path, seed: int = 0, num_layers: int = 1,
                   timestep_conditioning: bool = True, **transformer: int) -> Path:
    """An LTXPipeline small enough to run 2 steps on CPU in about a second.

    Sizes follow diffusers' own LTX pipeline test (1 layer, 4 heads x 8, an 8-channel VAE with
    patch size 1). ``timestep_conditioning`` gives the VAE decoder the timestep input of
    LTX-Video 0.9.1 and later, so ``decode_timestep``/``decode_noise_scale`` act as on the real
    model. The VAE compresses 4x in space and time here (the real one 32x and 8x): use 32x32,
    9 frames and max_sequence_length=16. ``transformer`` overrides the transformer's sizes
    (benchmarks: e.g. LTX-Video's 32 heads x 64 with cross_attention_dim 2048)."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer = build_tiny_t5_tokenizer()
    sizes = {"num_attention_heads": 4, "attention_head_dim": 8, "cross_attention_dim": 32, **transformer}
    transformer_model = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_layers=num_layers, caption_channels=32,
        **sizes,
    )
    vae = AutoencoderKLLTXVideo(
        latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
        decoder_inject_noise=(False, False, False, False, False),
        timestep_conditioning=timestep_conditioning, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )
    # LTX-Video's scheduler: flow matching with a resolution-dependent shift, as the hub config has.
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096,
                                                shift_terminal=0.1)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    pipe = LTXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer_model,
                       scheduler=scheduler)
    out_dir = Path(out_dir)
    pipe.save_pretrained(out_dir)
    return out_dir
