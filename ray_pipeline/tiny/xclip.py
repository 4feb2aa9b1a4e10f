"""A tiny random X-CLIP built offline, for tests: an ``XCLIPModel`` and a byte-level tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import CLIPImageProcessor, XCLIPConfig, XCLIPModel

from ray_pipeline.tiny.clip import tiny_tokenizer


def tiny_xclip_config(vocab_size: int, bos_token_id: int, eos_token_id: int, *, num_frames: int = 4,
                      image_size: int = 32, patch_size: int = 8, hidden: int = 32, layers: int = 2,
                      heads: int = 4, projection_dim: int = 32) -> XCLIPConfig:
    """A small ``XCLIPConfig``: both towers ``hidden`` wide, MIT and prompts on the projection."""
    text = {"vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": 4 * hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads, "max_position_embeddings": 77,
            "bos_token_id": bos_token_id, "eos_token_id": eos_token_id, "pad_token_id": eos_token_id}
    vision = {"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": layers,
              "num_attention_heads": heads, "image_size": image_size, "patch_size": patch_size,
              "num_frames": num_frames, "mit_hidden_size": projection_dim,
              "mit_intermediate_size": 4 * projection_dim, "mit_num_attention_heads": heads}
    return XCLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim,
                       prompt_num_attention_heads=heads)


def save_tiny_xclip(path: str | os.PathLike, seed: int = 0, **config: int) -> Path:
    """Write a random tiny X-CLIP, its tokenizer and a CLIP image processor to ``path``.

    ``config`` overrides :func:`tiny_xclip_config`'s sizes (``num_frames``, ``image_size``...).
    The tokenizer's end-of-text token has the highest id, as in OpenAI's vocabulary, which HF's
    X-CLIP text pooling (argmax over ids) relies on.
    """
    tok = tiny_tokenizer()
    cfg = tiny_xclip_config(len(tok), tok.bos_token_id, tok.eos_token_id, **config)
    torch.manual_seed(seed)
    model = XCLIPModel(cfg)
    out = Path(path)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    size = cfg.vision_config.image_size
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor.save_pretrained(out)
    return out
