"""A T5 tokenizer built offline from a hand-written vocabulary (text encoders of the tiny pipelines)."""

from __future__ import annotations

import string

# Whole-word pieces for the tiny T5 tokenizer; other words fall back to letters.
TINY_WORDS = (
    "a video of person the and in with is his her on at photo action class "
    "brush hair wave clap run jump walk kick ball sit stand climb dance ride bike swim "
    "young old man woman child park beach room street forest gym kitchen red blue green"
).split()


def build_tiny_t5_tokenizer(words: list[str] | None = None):
    """A T5 (Unigram) tokenizer from a hand-written vocab: pad=0, eos=1, unk=2 like real T5."""
    from transformers import T5Tokenizer

    words = list(dict.fromkeys(words or TINY_WORDS))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + w, -3.0 - i * 0.01) for i, w in enumerate(words)]
    vocab += [(ch, -10.0) for ch in string.ascii_lowercase + string.digits + ".,"]
    return T5Tokenizer(vocab=vocab, extra_ids=0)
