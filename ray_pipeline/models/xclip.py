"""X-CLIP (Ni et al., ECCV 2022) behind the video-text interface, on ``transformers.XCLIPModel``.

The paper uses X-CLIP-B/32 for abnormal action detection, as Lv et al. (2023) do
(``microsoft/xclip-base-patch32``: 8 frames). X-CLIP adds to CLIP (tc-clip.md §4):

* **cross-frame communication** in every vision block: each frame's CLS becomes a message token,
  the video's message tokens attend to each other, and each frame attends to its own message;
* a **multi-frame integration transformer** (MIT) over the projected frame embeddings, whose
  temporal mean is the video embedding;
* **video-specific prompting**: two cross-attention layers from the class text embeddings to the
  video's patch tokens, scaled by a learnable alpha and added to the text embedding.

The wrapper runs HF's own submodules in HF's order, so its logits are ``XCLIPModel``'s
``logits_per_video`` (tests compare them). Text is the bare class name (X-CLIP's ``"{}"``) and
the text encoder is frozen by default (X-CLIP's ``FIX_TEXT``); ``message_*``, ``mit`` and
``prompts_*`` parameters get 10x the base learning rate.

:func:`xclip_from_clip` builds an X-CLIP of the same sizes on any ``CLIPModel`` (the world's
CLIP, or OpenAI's ViT-B/32): the CLIP towers are copied and X-CLIP's new modules initialised
as described there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    CLIPImageProcessor,
    CLIPModel,
    PreTrainedTokenizerBase,
    XCLIPConfig,
    XCLIPModel,
)

from ray_pipeline.models.base import ClassText, PromptTokenizer, VideoFeatures, VideoTextModel, normalize, register

DEFAULT_XCLIP_BACKBONE = "microsoft/xclip-base-patch32"
# Parameter-name prefixes of X-CLIP's modules that CLIP does not have (X-CLIP's 10x LR group).
NEW_MODULE_MARKERS = ("message_", "mit.", "prompts_")


@register
class XCLIP(VideoTextModel):
    """X-CLIP on an HF ``XCLIPModel``.

    Args:
        clip: the X-CLIP backbone (``XCLIPModel``; kept as ``self.clip`` like the CLIP models).
        tokenizer: its tokenizer.
        prompt_template: text prompt with ``{}`` for the class name (X-CLIP: ``"{}"``).
        context_length: maximum prompt length in tokens, capped by the backbone (77).
        freeze_text: keep the text encoder and text projection fixed (X-CLIP's default).
        new_module_lr_multiplier: LR factor for the message, MIT and prompt parameters (10).
    """

    name = "xclip"
    backbone_class = XCLIPModel
    default_backbone = DEFAULT_XCLIP_BACKBONE

    def __init__(
        self,
        clip: XCLIPModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        prompt_template: str = "{}",
        context_length: int = 77,
        freeze_text: bool = True,
        new_module_lr_multiplier: float = 10.0,
    ) -> None:
        super().__init__(clip, tokenizer)
        if not isinstance(clip, XCLIPModel):
            raise TypeError(f"X-CLIP needs an XCLIPModel backbone, got {type(clip).__name__}")
        max_len = clip.config.text_config.max_position_embeddings
        self.prompts = PromptTokenizer(tokenizer, prompt_template, min(context_length, max_len))
        self.num_frames = clip.config.vision_config.num_frames
        self.freeze_text = freeze_text
        self.new_module_lr_multiplier = new_module_lr_multiplier
        if freeze_text:
            for p in (*clip.text_model.parameters(), *clip.text_projection.parameters()):
                p.requires_grad_(False)
        self.options: dict[str, Any] = {
            "prompt_template": prompt_template,
            "context_length": context_length,
            "freeze_text": freeze_text,
            "new_module_lr_multiplier": new_module_lr_multiplier,
        }

    def encode_video(self, pixel_values: torch.Tensor) -> VideoFeatures:
        """[B, T, 3, H, W] -> MIT's video embedding (normalised) and the prompts' patch context.

        ``context`` is [B, patches, P]: the last layer's patch tokens, layer-normed, projected
        and averaged over frames, which the text side's prompt generator attends to.
        """
        b, t = pixel_values.shape[:2]
        if t != self.num_frames:
            # The cross-frame attention and MIT's temporal position embedding fix T.
            raise ValueError(f"this X-CLIP takes {self.num_frames} frames per clip, got {t}")
        x = self.clip
        vision = x.vision_model(pixel_values=pixel_values.flatten(0, 1))
        frames = x.visual_projection(vision.pooler_output).view(b, t, -1)
        video = x.mit(frames).pooler_output
        patches = x.prompts_visual_layernorm(vision.last_hidden_state[:, 1:]) @ x.prompts_visual_projection
        context = patches.view(b, t, -1, patches.shape[-1]).mean(dim=1)
        return VideoFeatures(normalize(video), context)

    def _class_embeddings(self, class_names: list[str]) -> torch.Tensor:
        """[K, P] projected text embeddings before video-specific prompting."""
        ids, mask, eot = self.prompts(class_names).on(self.clip.logit_scale.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_text):
            out = self.clip.text_model(input_ids=ids, attention_mask=mask)
            # last_hidden_state already went through final_layer_norm; pool at the first
            # end-of-text token (HF's legacy argmax pooling agrees when EOT is the top id).
            states = out.last_hidden_state[torch.arange(eot.shape[0], device=eot.device), eot]
            return self.clip.text_projection(states)

    def encode_text(self, class_names: list[str], video: VideoFeatures | None = None) -> torch.Tensor:
        """[B, K, P] normalised class embeddings, prompted by each video's patch context."""
        if video is None or video.context is None:
            raise ValueError("X-CLIP's text embeddings depend on the video: pass encode_video's output")
        return self.text_for(video, self.encode_classes(class_names))

    def encode_classes(self, class_names: list[str]) -> ClassText:
        """The class texts before video-specific prompting (the text tower runs once per class list)."""
        return ClassText(tuple(class_names), states=self._class_embeddings(class_names))

    def text_for(self, video: VideoFeatures, classes: ClassText) -> torch.Tensor:
        """Video-specific prompting of :meth:`encode_classes`' texts: [B, K, P]."""
        if video.context is None:
            raise ValueError("X-CLIP's text embeddings depend on the video: pass encode_video's output")
        text = classes.states.unsqueeze(0).expand(video.context.shape[0], -1, -1)
        text = text + self.clip.prompts_generator(text, video.context)
        return normalize(text)

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Base LR for the CLIP towers and logit scale; ``new_module_lr_multiplier`` x for the
        message, MIT and prompt parameters (X-CLIP's 10x group)."""
        base, new = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (new if any(m in name for m in NEW_MODULE_MARKERS) else base).append(p)
        groups = [{"name": "base", "params": base, "lr": base_lr}]
        if new:
            lr = base_lr * self.new_module_lr_multiplier
            groups.append({"name": "new_modules", "params": new, "lr": lr})
        return groups


# --------------------------------------------------------------------------------------------
# X-CLIP on a CLIP's weights
# --------------------------------------------------------------------------------------------


def _heads(width: int) -> int:
    """X-CLIP's head count for its new modules (width // 64, 8 at 512), at least 1, dividing width."""
    heads = max(1, width // 64)
    return heads if width % heads == 0 else 1


def xclip_config_from_clip(clip_config: Any, num_frames: int = 8, *, prompt_layers: int = 2,
                           prompt_alpha: float = 0.1, mit_layers: int = 1) -> XCLIPConfig:
    """An ``XCLIPConfig`` with a ``CLIPConfig``'s tower sizes.

    MIT works on the projected frame embeddings (width = projection dim, MLP 4x), with X-CLIP's
    defaults: 1 MIT layer, 2 prompt layers, alpha 0.1, width // 64 heads for both.

    Args:
        clip_config: the CLIP's ``CLIPConfig``.
        num_frames: frames per clip (X-CLIP-B/32: 8).
        prompt_layers: video-specific prompt layers.
        prompt_alpha: initial prompt scale.
        mit_layers: MIT layers.
    """
    t, v, p = clip_config.text_config, clip_config.vision_config, clip_config.projection_dim
    shared = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
              "layer_norm_eps")
    text = {k: getattr(t, k) for k in (*shared, "vocab_size", "max_position_embeddings", "bos_token_id",
                                       "eos_token_id", "pad_token_id")}
    vision = {k: getattr(v, k) for k in (*shared, "image_size", "patch_size", "num_channels")}
    vision.update(num_frames=num_frames, mit_hidden_size=p, mit_intermediate_size=4 * p,
                  mit_num_hidden_layers=mit_layers, mit_num_attention_heads=_heads(p))
    return XCLIPConfig(text_config=text, vision_config=vision, projection_dim=p, prompt_layers=prompt_layers,
                       prompt_alpha=prompt_alpha, prompt_num_attention_heads=_heads(p),
                       logit_scale_init_value=float(clip_config.logit_scale_init_value))


def _init_new_module(module: nn.Module) -> None:
    """X-CLIP's initialisation of its added modules: trunc-normal(0.02) linears, zero biases,
    unit layer norms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def xclip_from_clip(clip: CLIPModel, num_frames: int = 8, seed: int = 0, **config: Any) -> XCLIPModel:
    """An X-CLIP whose vision and text towers are ``clip``'s, its new modules freshly initialised.

    Copied from CLIP: every tensor of both towers (embeddings, pre-LN, blocks, post-LN, final text
    LN), both projections and the logit scale. New (seeded): the per-block message projection,
    message LayerNorm and message attention, MIT (one block) and the prompt generator, as X-CLIP
    initialises them (trunc-normal std 0.02 linears, zero biases, unit LayerNorms; MIT's temporal
    position embedding trunc-normal std 0.02; prompt alpha 0.1). The prompts' patch LayerNorm and
    projection start as CLIP's ``post_layernorm`` and ``visual_projection``, so the patch tokens
    the prompts read are in the embedding space the class texts are in (X-CLIP starts the
    projection from a random normal). Small new weights keep the video embedding close to CLIP's
    frame-mean embedding at the start.

    Args:
        clip: the CLIP to build on.
        num_frames: frames per clip.
        seed: seeds the new modules.
        config: passed to :func:`xclip_config_from_clip`.
    """
    cfg = xclip_config_from_clip(clip.config, num_frames, **config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = XCLIPModel(cfg)
        for layer in model.vision_model.encoder.layers:
            for part in (layer.message_fc, layer.message_ln, layer.message_attn):
                _init_new_module(part)
        _init_new_module(model.mit)
        nn.init.trunc_normal_(model.mit.position_embedding, std=0.02)
        _init_new_module(model.prompts_generator)
        with torch.no_grad():
            model.prompts_generator.alpha.fill_(cfg.prompt_alpha)
    state = {("vision_model.pre_layernorm." + k.split("vision_model.pre_layrnorm.", 1)[1])
             if k.startswith("vision_model.pre_layrnorm.") else k: v for k, v in clip.state_dict().items()}
    state["prompts_visual_layernorm.weight"] = state["vision_model.post_layernorm.weight"]
    state["prompts_visual_layernorm.bias"] = state["vision_model.post_layernorm.bias"]
    state["prompts_visual_projection"] = state["visual_projection.weight"].t()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"CLIP tensors with no X-CLIP counterpart: {unexpected[:5]}")
    new = [k for k in missing if not any(m in k for m in NEW_MODULE_MARKERS)]
    if new:
        raise ValueError(f"X-CLIP tensors that CLIP should have provided: {new[:5]}")
    return model.eval()


def save_xclip_from_clip(clip_dir: str | os.PathLike, out_dir: str | os.PathLike, num_frames: int = 8,
                         seed: int = 0, **config: Any) -> Path:
    """Write :func:`xclip_from_clip` of the CLIP at ``clip_dir`` as an HF directory at ``out_dir``.

    The directory holds the X-CLIP weights and config, the CLIP's tokenizer and image processor,
    so ``build_video_text_model("xclip", out_dir)`` and ``XCLIPModel.from_pretrained`` load it.
    """
    clip = CLIPModel.from_pretrained(str(clip_dir), dtype=torch.float32)
    model = xclip_from_clip(clip, num_frames, seed, **config)
    out = Path(out_dir)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(clip_dir)).save_pretrained(out)
    CLIPImageProcessor.from_pretrained(str(clip_dir)).save_pretrained(out)
    return out
