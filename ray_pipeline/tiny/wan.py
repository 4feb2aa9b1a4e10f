"""A tiny, randomly initialised Wan 2.1 text-to-video pipeline saved as a standard diffusers directory."""

from __future__ import annotations

from pathlib import Path

from ray_pipeline.tiny.t5 import build_tiny_t5_tokenizer


def build_tiny_wan(out_dir: str | Path, seed: int = 0, num_layers: int = 2, **transformer: int) -> Path:
    """A WanPipeline small enough to run 2 steps on CPU in about a second.

    Sizes follow diffusers' own Wan pipeline test (2 layers, 2 heads x 12, VAE base_dim 3); the
    text encoder is a UMT5 encoder as in Wan 2.1 (the test uses T5), and the scheduler is the
    model card's UniPC with flow sigmas. The VAE compresses 8x in space (patch 2 on top: pixel
    sizes are multiples of 16) and 4x in time (4k+1 frames); use 16x16, 9 frames and
    max_sequence_length=16. ``transformer`` overrides the transformer's sizes (benchmarks: e.g.
    the 1.3B model's 12 heads x 128 and ffn_dim 8960)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    tokenizer = build_tiny_t5_tokenizer()
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    sizes = {"num_attention_heads": 2, "attention_head_dim": 12, "ffn_dim": 32, **transformer}
    transformer_model = WanTransformer3DModel(
        patch_size=(1, 2, 2), in_channels=16, out_channels=16, text_dim=32, freq_dim=256, num_layers=num_layers,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32, **sizes,
    )
    # Wan 2.1's scheduler (model card): UniPC over flow-matching sigmas; the shift is set at load time.
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer_model,
                       scheduler=scheduler)
    out_dir = Path(out_dir)
    pipe.save_pretrained(out_dir)
    return out_dir
