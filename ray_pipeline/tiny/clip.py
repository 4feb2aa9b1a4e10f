"""Tiny random CLIP backbones built offline, for tests and CPU benchmarks.

``save_tiny_clip(path)`` writes a randomly initialised ``CLIPModel`` and a byte-level
``CLIPTokenizer`` (every byte is a token, plus whole-word tokens for a few prompt words) with
``save_pretrained``, so the directory loads with ``from_pretrained`` like a hub checkpoint and
nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

# Whole-word tokens, so "a photo of a" is 4 tokens as in OpenAI's vocabulary.
DEFAULT_WORDS = ("a", "photo", "of", "video", "person", "the")


def tiny_tokenizer(words: tuple[str, ...] = DEFAULT_WORDS) -> CLIPTokenizer:
    """A CLIP BPE tokenizer over bytes, with merges that spell out ``words`` as single tokens."""
    vocab: dict[str, int] = {}
    for ch in bytes_to_unicode().values():
        vocab[ch] = len(vocab)
    for ch in bytes_to_unicode().values():
        vocab[ch + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in words:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        # left-to-right merges: "p h" -> "ph", "ph o" -> "pho", ...
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in merges:
                merges.append(pair)
            merged = parts[0] + parts[1]
            vocab.setdefault(merged, len(vocab))
            parts = [merged, *parts[2:]]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges)


def tiny_clip_config(
    vocab_size: int,
    bos_token_id: int,
    eos_token_id: int,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    vision_heads: int = 4,
    text_hidden: int = 32,
    text_layers: int = 2,
    text_heads: int = 4,
    projection_dim: int = 32,
    max_position_embeddings: int = 77,
) -> CLIPConfig:
    """A small ``CLIPConfig`` (quick_gelu, MLP 4x wide, as OpenAI's CLIP)."""
    text = {
        "vocab_size": vocab_size,
        "hidden_size": text_hidden,
        "intermediate_size": 4 * text_hidden,
        "num_hidden_layers": text_layers,
        "num_attention_heads": text_heads,
        "max_position_embeddings": max_position_embeddings,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": eos_token_id,
        "hidden_act": "quick_gelu",
    }
    vision = {
        "image_size": image_size,
        "patch_size": patch_size,
        "hidden_size": vision_hidden,
        "intermediate_size": 4 * vision_hidden,
        "num_hidden_layers": vision_layers,
        "num_attention_heads": vision_heads,
        "hidden_act": "quick_gelu",
    }
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def save_tiny_clip(path: str | os.PathLike, seed: int = 0, **config: int) -> Path:
    """Write a random tiny CLIP and its tokenizer to ``path``; ``config`` overrides sizes."""
    tok = tiny_tokenizer()
    cfg = tiny_clip_config(len(tok), tok.bos_token_id, tok.eos_token_id, **config)
    torch.manual_seed(seed)
    model = CLIPModel(cfg)
    out = Path(path)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_clip(out_dir: str | Path, image_size: int = 32, patch_size: int = 8, seed: int = 0) -> Path:
    """A CLIPModel + byte-level CLIPTokenizer (:func:`tiny_tokenizer`) + CLIPImageProcessor, saved."""
    from transformers import CLIPImageProcessor

    out_dir = save_tiny_clip(out_dir, seed=seed, image_size=image_size, patch_size=patch_size)
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(out_dir)
    return out_dir
