"""ViFi-CLIP: CLIP applied frame by frame, frame embeddings averaged, fully fine-tuned.

The simple baseline of TC-CLIP and of the paper's Table 1 (Rasheed et al., 2023): no new
modules, the fixed prompt ``"a photo of a {}."`` and both encoders trained. It runs HF's own
``get_image_features`` / ``get_text_features``, so it doubles as the reference that TC-CLIP's
custom forward reduces to.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import CLIPModel, PreTrainedTokenizerBase

from ray_pipeline.models.base import (
    PromptTokenizer,
    VideoFeatures,
    VideoTextModel,
    normalize,
    pooled,
    register,
)


@register
class ViFiCLIP(VideoTextModel):
    """ViFi-CLIP on an HF ``CLIPModel``.

    Args:
        clip: the CLIP backbone (every parameter is trained).
        tokenizer: its tokenizer.
        prompt_template: text prompt with ``{}`` for the class name.
        context_length: maximum prompt length in tokens (ViFi-CLIP: 77), capped by the backbone.
    """

    name = "vificlip"

    def __init__(
        self,
        clip: CLIPModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        prompt_template: str = "a photo of a {}.",
        context_length: int = 77,
    ) -> None:
        super().__init__(clip, tokenizer)
        max_len = clip.config.text_config.max_position_embeddings
        self.prompts = PromptTokenizer(tokenizer, prompt_template, min(context_length, max_len))
        self.options: dict[str, Any] = {"prompt_template": prompt_template, "context_length": context_length}

    def encode_video(self, pixel_values: torch.Tensor) -> VideoFeatures:
        """Mean of the per-frame projected CLS embeddings, then L2-normalised."""
        b, t = pixel_values.shape[:2]
        frames = pooled(self.clip.get_image_features(pixel_values=pixel_values.flatten(0, 1)))
        return VideoFeatures(normalize(frames.view(b, t, -1).mean(dim=1)))

    def encode_text(self, class_names: list[str], video: VideoFeatures | None = None) -> torch.Tensor:
        """[K, P] normalised class embeddings; ``video`` is ignored (text is video-independent)."""
        ids, mask, eot = self.prompts(class_names).on(self.clip.logit_scale.device)
        out = self.clip.text_model(input_ids=ids, attention_mask=mask)
        # Pool at the tokenizer's end-of-text position (what get_text_features does when the
        # config's eos_token_id is right; old OpenAI configs say 2 and HF falls back to argmax).
        states = out.last_hidden_state[torch.arange(eot.shape[0], device=eot.device), eot]
        return normalize(self.clip.text_projection(states))
