"""Tiny, randomly initialised models saved as standard Hugging Face directories.

The real backends load with ``from_pretrained`` (hub id or local path); tests and benchmarks build
these offline (no hub here) and load them through exactly the same code path. Sizes follow
diffusers' and transformers' own test configs. One module per model family.
"""

from ray_pipeline.tiny.clip import build_tiny_clip, save_tiny_clip, tiny_clip_config, tiny_tokenizer
from ray_pipeline.tiny.cogvideox import build_tiny_cogvideox
from ray_pipeline.tiny.ltx import build_tiny_ltx
from ray_pipeline.tiny.t5 import TINY_WORDS, build_tiny_t5_tokenizer
from ray_pipeline.tiny.wan import build_tiny_wan
from ray_pipeline.tiny.xclip import save_tiny_xclip, tiny_xclip_config

__all__ = ["TINY_WORDS", "build_tiny_clip", "build_tiny_cogvideox", "build_tiny_ltx", "build_tiny_t5_tokenizer",
           "build_tiny_wan", "save_tiny_clip", "save_tiny_xclip", "tiny_clip_config", "tiny_tokenizer",
           "tiny_xclip_config"]
