"""A tiny, randomly initialised CogVideoX pipeline saved as a standard diffusers directory."""

from __future__ import annotations

from pathlib import Path

from ray_pipeline.tiny.t5 import build_tiny_t5_tokenizer


def build_tiny_cogvideox(out_dir: str | Path, seed: int = 0, num_layers: int = 1, latent_size: int = 2) -> Path:
    """A CogVideoX pipeline small enough to run 2 steps on CPU in well under a second.

    Latents are ``latent_size`` square (8x that in pixels: 16x16 by default); use num_frames=9
    and max_sequence_length=16. Benchmarks raise ``num_layers``/``latent_size`` for more work."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer = build_tiny_t5_tokenizer()
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=num_layers, sample_width=latent_size, sample_height=latent_size,
        sample_frames=9,
        patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    )
    # The real 2B scheduler's settings (v-prediction, trailing spacing, zero-SNR rescale).
    scheduler = CogVideoXDDIMScheduler(
        timestep_spacing="trailing", prediction_type="v_prediction", rescale_betas_zero_snr=True,
        clip_sample=False, set_alpha_to_one=True, snr_shift_scale=3.0,
    )
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                             transformer=transformer, scheduler=scheduler)
    out_dir = Path(out_dir)
    pipe.save_pretrained(out_dir)
    return out_dir
