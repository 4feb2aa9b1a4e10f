"""TC-CLIP (Kim et al., ECCV 2024) rebuilt on an HF ``CLIPModel``.

Two additions to a fully fine-tuned frame-wise CLIP (see docs/models.md and
``shared/reference/tc-clip.md``):

* **Temporal contextualization (TC)**, vision side. In every layer each frame's CLS attention
  picks its most-attended patches ("seed tokens"); the seeds of all frames are merged per video
  with ToMe bipartite soft matching into ``k`` context tokens, which pass through the layer's FFN
  and are extra keys/values for every frame in the next layer. Layers 2..L add a learnable
  per-head bias to the attention logits on local (own-frame) keys and on context keys.
* **Video-conditional prompting (VP)**, text side. The prompt ``"a photo of a {}."`` has its
  words ``"a photo of a"`` replaced by learnable context vectors; before the last text block a
  cross-attention layer (initialised from that block) rewrites them from the video's last-layer
  context tokens (detached), so the class embeddings are per video.

The HF layers' own submodules (layer norms, q/k/v/out projections, MLP) are called directly,
with ``scaled_dot_product_attention`` for the attention, so nothing depends on
``CLIPEncoderLayer.forward``'s signature. Text blocks 1..L-1 run once per batch of class names
and VP once per video; only the end-of-text row of the last block is computed per
(video, class) pair, which gives the same features as running the text encoder per video.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, PreTrainedTokenizerBase

from ray_pipeline.models.base import (
    ClassText,
    PromptTokenizer,
    VideoFeatures,
    VideoTextModel,
    normalize,
    register,
)
from ray_pipeline.models.tome import merge_tokens

# TC-CLIP's ViT-B/16 values (196 patches per frame): k = 96 context tokens, r = 100 per step.
# For other backbones k and r default to the same fractions of the patch count.
_K_PER_PATCH = 96 / 196
_R_PER_PATCH = 100 / 196


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[..., S, D] -> [..., heads, S, head_dim]."""
    *lead, s, d = x.shape
    return x.view(*lead, s, num_heads, d // num_heads).transpose(-3, -2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[..., heads, S, head_dim] -> [..., S, D]."""
    x = x.transpose(-3, -2)
    return x.reshape(*x.shape[:-2], -1)


def encoder_block(layer: nn.Module, h: torch.Tensor, causal: bool) -> torch.Tensor:
    """A plain pre-LN CLIP encoder block from the layer's submodules: [N, S, D] -> [N, S, D]."""
    attn = layer.self_attn
    n = layer.layer_norm1(h)
    q = _heads(attn.q_proj(n), attn.num_heads)
    k = _heads(attn.k_proj(n), attn.num_heads)
    v = _heads(attn.v_proj(n), attn.num_heads)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=attn.scale)
    h = h + attn.out_proj(_merge_heads(o))
    return h + layer.mlp(layer.layer_norm2(h))


class PromptLearner(nn.Module):
    """The learnable context vectors shared by all class prompts."""

    def __init__(self, init: torch.Tensor) -> None:
        super().__init__()
        self.ctx = nn.Parameter(init.detach().clone())


class PromptGenerationLayer(nn.Module):
    """VP: residual cross-attention (queries: prompt context, keys/values: video context) + MLP.

    Initialised as a copy of a CLIP text block: its attention projections, ``layer_norm1`` for
    both the query norm and the key/value norm, ``layer_norm2`` and MLP. When the key/value width
    (the CLIP projection dim) differs from the text width, the key/value norm and projections
    cannot be copied and are freshly initialised.
    """

    def __init__(self, text_layer: nn.Module, kv_dim: int) -> None:
        super().__init__()
        attn = text_layer.self_attn
        dim = attn.embed_dim
        self.num_heads = attn.num_heads
        self.scale = attn.scale
        self.ln_1 = copy.deepcopy(text_layer.layer_norm1)
        self.q_proj = copy.deepcopy(attn.q_proj)
        self.out_proj = copy.deepcopy(attn.out_proj)
        if kv_dim == dim:
            self.ln_1_kv = copy.deepcopy(text_layer.layer_norm1)
            self.k_proj = copy.deepcopy(attn.k_proj)
            self.v_proj = copy.deepcopy(attn.v_proj)
        else:
            self.ln_1_kv = nn.LayerNorm(kv_dim, eps=text_layer.layer_norm1.eps)
            self.k_proj = nn.Linear(kv_dim, dim)
            self.v_proj = nn.Linear(kv_dim, dim)
            for lin in (self.k_proj, self.v_proj):
                nn.init.normal_(lin.weight, std=kv_dim**-0.5)
                nn.init.zeros_(lin.bias)
        self.ln_2 = copy.deepcopy(text_layer.layer_norm2)
        self.mlp = copy.deepcopy(text_layer.mlp)

    def forward(self, query: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """``query`` [B, n, D], ``kv`` [B, m, kv_dim] -> [B, n, D]."""
        qn, kvn = self.ln_1(query), self.ln_1_kv(kv)
        q = _heads(self.q_proj(qn), self.num_heads)
        k = _heads(self.k_proj(kvn), self.num_heads)
        v = _heads(self.v_proj(kvn), self.num_heads)
        x = query + self.out_proj(_merge_heads(F.scaled_dot_product_attention(q, k, v, scale=self.scale)))
        return x + self.mlp(self.ln_2(x))


@register
class TCCLIP(VideoTextModel):
    """TC-CLIP on an HF ``CLIPModel``; token counts derive from the vision config.

    Args:
        clip: the CLIP backbone (fully trained, as in TC-CLIP).
        tokenizer: its tokenizer.
        context_tokens: ``k``, context tokens per video; default ``round(patches * 96/196)``
            (96 for ViT-B/16).
        seed_ratio: ``a``; ``int(patches * a)`` seed tokens per frame (58 for ViT-B/16).
        merge_r: ``r``, tokens removed per ToMe step; default ``round(patches * 100/196)``.
        temporal_context: frames attend to the context tokens (TC). Off: frame-wise CLIP vision.
        local_global_bias: learnable per-head bias on local / context attention logits
            (layers 2..L; only used with TC).
        video_prompting: VP on the text side. Off: the learnable prompt alone (CoOp-style).
        stop_grad: detach the vision context before VP (TC-CLIP's ``im_stop_grad``).
        prompt_template: prompt with ``{}``; the words before ``{}`` initialise the learnable
            context vectors.
        context_length: maximum prompt length in tokens (TC-CLIP: 30), capped by the backbone.
        prompt_lr_multiplier: LR factor for the prompt learner and VP parameters.
        bias_mode: how the local/global bias enters the attention; both are exact.
            ``mask``: an additive float mask. ``augment``: one extra query/key dimension carrying
            the bias difference (faster on CPU, where SDPA's mask gradient is slow).
            ``auto``: ``augment`` on CPU, ``mask`` elsewhere.
    """

    name = "tcclip"

    def __init__(
        self,
        clip: CLIPModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        context_tokens: int | None = None,
        seed_ratio: float = 0.3,
        merge_r: int | None = None,
        temporal_context: bool = True,
        local_global_bias: bool = True,
        video_prompting: bool = True,
        stop_grad: bool = True,
        prompt_template: str = "a photo of a {}.",
        context_length: int = 30,
        prompt_lr_multiplier: float = 10.0,
        bias_mode: Literal["auto", "mask", "augment"] = "auto",
    ) -> None:
        super().__init__(clip, tokenizer)
        vcfg, tcfg = clip.config.vision_config, clip.config.text_config
        self.num_patches = (vcfg.image_size // vcfg.patch_size) ** 2
        self.seeds_per_frame = int(self.num_patches * seed_ratio)
        default_k = max(1, round(self.num_patches * _K_PER_PATCH))
        default_r = max(1, round(self.num_patches * _R_PER_PATCH))
        self.context_tokens = default_k if context_tokens is None else context_tokens
        self.merge_r = default_r if merge_r is None else merge_r
        if self.context_tokens < 1 or self.merge_r < 1:
            raise ValueError(f"context_tokens and merge_r must be >= 1, got {context_tokens}, {merge_r}")
        if not 1 <= self.seeds_per_frame <= self.num_patches:
            raise ValueError(
                f"seed_ratio {seed_ratio} gives {self.seeds_per_frame} seeds of {self.num_patches} patches"
            )
        if bias_mode not in ("auto", "mask", "augment"):
            raise ValueError(f"bias_mode must be auto, mask or augment, got {bias_mode!r}")
        self.temporal_context = temporal_context
        self.video_prompting = video_prompting
        self.stop_grad = stop_grad
        self.prompt_lr_multiplier = prompt_lr_multiplier
        self.bias_mode = bias_mode

        num_layers = vcfg.num_hidden_layers
        if temporal_context and local_global_bias and num_layers > 1:
            # [layer 2..L, heads, (local, global)], trunc-normal std 0.02 as in TC-CLIP
            bias = torch.empty(num_layers - 1, vcfg.num_attention_heads, 2)
            nn.init.trunc_normal_(bias, std=0.02)
            self.local_global_bias: nn.Parameter | None = nn.Parameter(bias)
        else:
            self.local_global_bias = None

        # Prompt: the tokens of the template's prefix become learnable vectors.
        prefix = prompt_template.split("{}")[0].strip()
        ctx_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
        self.n_ctx = len(ctx_ids)
        max_len = min(context_length, tcfg.max_position_embeddings)
        self.prompts = PromptTokenizer(tokenizer, prompt_template, max_len)
        embedding = clip.text_model.embeddings.token_embedding
        if self.n_ctx:
            with torch.no_grad():
                init = embedding.weight[torch.tensor(ctx_ids)].clone()
            self.prompt_learner: PromptLearner | None = PromptLearner(init)
        else:
            self.prompt_learner = None
        self._ctx_ids = ctx_ids
        if video_prompting:
            if not self.n_ctx:
                raise ValueError("video prompting needs context words before '{}' in the template")
            self.prompt_generation: PromptGenerationLayer | None = PromptGenerationLayer(
                clip.text_model.encoder.layers[-1], clip.config.projection_dim
            )
        else:
            self.prompt_generation = None

        self.options: dict[str, Any] = {
            "context_tokens": self.context_tokens,
            "seed_ratio": seed_ratio,
            "merge_r": self.merge_r,
            "temporal_context": temporal_context,
            "local_global_bias": local_global_bias,
            "video_prompting": video_prompting,
            "stop_grad": stop_grad,
            "prompt_template": prompt_template,
            "context_length": context_length,
            "prompt_lr_multiplier": prompt_lr_multiplier,
            "bias_mode": bias_mode,
        }

    # ------------------------------------------------------------------------------------------
    # Vision
    # ------------------------------------------------------------------------------------------

    def encode_video(self, pixel_values: torch.Tensor) -> VideoFeatures:
        """[B, T, 3, H, W] -> mean of frame CLS embeddings (normalised) and VP's context tokens."""
        b, t = pixel_values.shape[:2]
        vm = self.clip.vision_model
        x = vm.pre_layrnorm(vm.embeddings(pixel_values.flatten(0, 1)))  # [B*T, N, D]
        layers = vm.encoder.layers
        ctx: torch.Tensor | None = None
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            make_context = (self.temporal_context and not last) or (self.video_prompting and last)
            x, ctx = self._vision_block(
                layer, i, x, ctx if self.temporal_context else None, b, t, make_context, last
            )
        frames = self.clip.visual_projection(vm.post_layernorm(x[:, 0])).view(b, t, -1)
        context = None
        if ctx is not None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.stop_grad):
                context = self.clip.visual_projection(vm.post_layernorm(ctx))
        return VideoFeatures(normalize(frames.mean(dim=1)), context)

    def _use_augment(self, device: torch.device) -> bool:
        return self.bias_mode == "augment" or (self.bias_mode == "auto" and device.type == "cpu")

    def _vision_block(
        self,
        layer: nn.Module,
        index: int,
        x: torch.Tensor,
        ctx: torch.Tensor | None,
        b: int,
        t: int,
        make_context: bool,
        last: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One TC block: frames [B*T, N, D] attend to [own tokens ; video context [B, m, D]]."""
        attn = layer.self_attn
        heads, head_dim, scale = attn.num_heads, attn.head_dim, attn.scale
        bt, n, dim = x.shape
        h = layer.layer_norm1(x)
        q = _heads(attn.q_proj(h), heads)  # [BT, H, N, hd]
        k = _heads(attn.k_proj(h), heads)
        v = _heads(attn.v_proj(h), heads)
        mask = None  # additive logits bias, [H, 1, N + m], for the CLS row and the "mask" mode
        if ctx is not None:
            m = ctx.shape[1]
            hc = layer.layer_norm1(ctx)

            def expand(z: torch.Tensor) -> torch.Tensor:
                # the video's context, repeated for each of its frames: [B, H, m, hd] -> [BT, ...]
                z = _heads(z, heads).unsqueeze(1).expand(b, t, heads, m, head_dim)
                return z.reshape(bt, heads, m, head_dim)

            k = torch.cat([k, expand(attn.k_proj(hc))], dim=2)
            v = torch.cat([v, expand(attn.v_proj(hc))], dim=2)
            bias = None if self.local_global_bias is None else self.local_global_bias[index - 1]
            if bias is not None:
                mask = torch.cat([bias[:, :1].expand(heads, n), bias[:, 1:].expand(heads, m)], dim=1)
                mask = mask.unsqueeze(1).to(q.dtype)
                if self._use_augment(x.device):
                    # Softmax ignores a per-row constant, so only (global - local) matters: put it
                    # on the context keys through an extra dimension (query 1, key diff/scale).
                    diff = (bias[:, 1] - bias[:, 0]).to(q.dtype) / scale  # [H]
                    extra_k = torch.cat(
                        [
                            torch.zeros(bt, heads, n, 1, dtype=q.dtype, device=q.device),
                            diff.view(1, heads, 1, 1).expand(bt, heads, m, 1),
                        ],
                        dim=2,
                    )
                    qa = torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)
                    ka = torch.cat([k, extra_k], dim=-1)
                    va = torch.cat([v, torch.zeros_like(v[..., :1])], dim=-1)
                    o = F.scaled_dot_product_attention(qa, ka, va, scale=scale)[..., :head_dim]
                else:
                    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
            else:
                o = F.scaled_dot_product_attention(q, k, v, scale=scale)
        else:
            o = F.scaled_dot_product_attention(q, k, v, scale=scale)
        x = x + attn.out_proj(_merge_heads(o))

        new_ctx = None
        if make_context:
            # The last layer's context only feeds VP; with stop-grad it needs no graph at all.
            track = torch.is_grad_enabled() and not (last and self.stop_grad)
            with torch.no_grad():
                # CLS row of this layer's post-softmax attention (incl. context keys and bias);
                # SDPA does not return probabilities, and one row is cheap to recompute.
                logits = (q[:, :, :1] @ k.transpose(-1, -2)) * scale
                if mask is not None:
                    logits = logits + mask
                cls_attn = logits.softmax(dim=-1)[:, :, 0, 1:n].mean(dim=1)  # [BT, P]
                idx = cls_attn.view(b, t, n - 1).topk(self.seeds_per_frame, dim=-1).indices
            with torch.set_grad_enabled(track):
                patches = x[:, 1:].reshape(b, t, n - 1, dim)
                seeds = patches.gather(2, idx.unsqueeze(-1).expand(-1, -1, -1, dim))
                new_ctx, _ = merge_tokens(seeds.reshape(b, -1, dim), self.context_tokens, self.merge_r)
                new_ctx = new_ctx + layer.mlp(layer.layer_norm2(new_ctx))
        x = x + layer.mlp(layer.layer_norm2(x))
        return x, new_ctx

    # ------------------------------------------------------------------------------------------
    # Text
    # ------------------------------------------------------------------------------------------

    def _prompt_states(self, class_names: list[str], num_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states after the first ``num_layers`` text blocks [K, L, D] and EOT index [K]."""
        batch = self.prompts(class_names)
        tm = self.clip.text_model
        device = tm.embeddings.token_embedding.weight.device
        if self.prompt_learner is not None:
            # checked on the CPU copy, so it costs no device synchronisation
            if not bool((batch.input_ids[:, 1 : 1 + self.n_ctx] == torch.tensor(self._ctx_ids)).all()):
                raise ValueError("prompts do not start with the template's context words")
        ids, _, eot = batch.on(device)
        emb = tm.embeddings.token_embedding(ids)
        if self.prompt_learner is not None:
            ctx = self.prompt_learner.ctx.to(emb.dtype).unsqueeze(0).expand(ids.shape[0], -1, -1)
            emb = torch.cat([emb[:, :1], ctx, emb[:, 1 + self.n_ctx :]], dim=1)
        h = tm.embeddings(inputs_embeds=emb)
        for layer in tm.encoder.layers[:num_layers]:
            h = encoder_block(layer, h, causal=True)
        return h, eot

    def encode_text(self, class_names: list[str], video: VideoFeatures | None = None) -> torch.Tensor:
        """Normalised class embeddings: [B, K, P] with VP (needs ``video``), else [K, P]."""
        tm = self.clip.text_model
        if self.prompt_generation is None:
            h, eot = self._prompt_states(class_names, len(tm.encoder.layers))
            pooled = tm.final_layer_norm(h[torch.arange(h.shape[0], device=h.device), eot])
            return normalize(self.clip.text_projection(pooled))
        if video is None or video.context is None:
            raise ValueError("TC-CLIP with video prompting needs the video's context tokens")
        return self.text_for(video, self.encode_classes(class_names))

    def encode_classes(self, class_names: list[str]) -> ClassText:
        """With VP: the prompts after text blocks 1..L-1, which do not depend on the video (the last
        block is video-conditional); without: the finished embeddings."""
        if self.prompt_generation is None:
            return ClassText(tuple(class_names), embedding=self.encode_text(class_names))
        blocks = len(self.clip.text_model.encoder.layers) - 1
        return ClassText(tuple(class_names), states=self._prompt_states(class_names, blocks))

    def text_for(self, video: VideoFeatures, classes: ClassText) -> torch.Tensor:
        """VP and the last text block per video on :meth:`encode_classes`' states: [B, K, P]."""
        if classes.embedding is not None:
            return classes.embedding
        if video.context is None:
            raise ValueError("TC-CLIP with video prompting needs the video's context tokens")
        h, eot = classes.states
        arange = torch.arange(h.shape[0], device=h.device)
        # Under the causal mask the context positions see only SOS and the context vectors, so
        # their states are the same for every class: VP runs once per video.
        vision = video.context.detach() if self.stop_grad else video.context
        ctx_states = h[0, 1 : 1 + self.n_ctx]
        ctx_new = self.prompt_generation(ctx_states.unsqueeze(0).expand(vision.shape[0], -1, -1), vision)
        return normalize(self._last_block_eot(self.clip.text_model.encoder.layers[-1], h, eot, arange, ctx_new))

    def _last_block_eot(
        self,
        layer: nn.Module,
        h: torch.Tensor,
        eot: torch.Tensor,
        arange: torch.Tensor,
        ctx_new: torch.Tensor,
    ) -> torch.Tensor:
        """The last text block, only its end-of-text rows, per (video, class): [B, K, P].

        Keys/values are the shared prompt states [K, L] except the context positions, which come
        from each video's VP output [B, n_ctx].
        """
        attn = layer.self_attn
        heads, head_dim, scale = attn.num_heads, attn.head_dim, attn.scale
        num_classes, seq, dim = h.shape
        nb = ctx_new.shape[0]
        hn = layer.layer_norm1(h)
        q = attn.q_proj(hn[arange, eot]).view(num_classes, heads, head_dim)
        k_shared = attn.k_proj(hn).view(num_classes, seq, heads, head_dim)
        v_shared = attn.v_proj(hn).view(num_classes, seq, heads, head_dim)
        cn = layer.layer_norm1(ctx_new)
        k_ctx = attn.k_proj(cn).view(nb, self.n_ctx, heads, head_dim)
        v_ctx = attn.v_proj(cn).view(nb, self.n_ctx, heads, head_dim)

        pos = torch.arange(seq, device=h.device)
        # causal (keys up to EOT) and without the context positions, which are per video
        visible = (pos.unsqueeze(0) <= eot.unsqueeze(1)) & ~((pos >= 1) & (pos <= self.n_ctx)).unsqueeze(0)
        s_shared = torch.einsum("khd,klhd->khl", q, k_shared) * scale
        s_shared = s_shared.masked_fill(~visible.unsqueeze(1), -math.inf)
        s_ctx = torch.einsum("khd,bnhd->bkhn", q, k_ctx) * scale
        p = torch.cat([s_shared.unsqueeze(0).expand(nb, -1, -1, -1), s_ctx], dim=-1).softmax(dim=-1)
        o = torch.einsum("bkhl,klhd->bkhd", p[..., :seq], v_shared)
        o = o + torch.einsum("bkhn,bnhd->bkhd", p[..., seq:], v_ctx)
        x = h[arange, eot].unsqueeze(0) + attn.out_proj(o.reshape(nb, num_classes, dim))
        x = x + layer.mlp(layer.layer_norm2(x))
        return self.clip.text_projection(self.clip.text_model.final_layer_norm(x))

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Base LR for CLIP and the local/global biases; ``prompt_lr_multiplier`` x for the
        prompt learner and VP (TC-CLIP's ``lr_10x``)."""
        base, fast = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (fast if name.startswith(("prompt_learner.", "prompt_generation.")) else base).append(p)
        groups = [{"name": "base", "params": base, "lr": base_lr}]
        if fast:
            groups.append({"name": "prompt", "params": fast, "lr": base_lr * self.prompt_lr_multiplier})
        return groups
