"""One interface for the video-text models (TC-CLIP, ViFi-CLIP on HF ``CLIPModel``; X-CLIP on ``XCLIPModel``).

A model turns a clip batch ``[B, T, 3, H, W]`` into L2-normalised video embeddings, class names
into L2-normalised text embeddings (which for TC-CLIP depend on the video), and the two into
logits ``logit_scale.exp() * cos``. Models are registered by name and built from a CLIP hub id or
local directory with :func:`build_video_text_model`; checkpoints are safetensors plus JSON, so
loading one never unpickles anything.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, CLIPModel, PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_BACKBONE = "openai/clip-vit-base-patch16"
WEIGHTS_FILE = "video_text_model.safetensors"
META_FILE = "video_text_model.json"


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


@dataclass
class VideoFeatures:
    """What ``encode_video`` returns.

    Attributes:
        embedding: [B, P] L2-normalised video embeddings (P = CLIP projection dim).
        context: [B, m, P] TC-CLIP's last-layer context tokens (after ``post_layernorm`` and
            ``visual_projection``) that condition the text side; ``None`` for models whose text
            does not depend on the video.
    """

    embedding: torch.Tensor
    context: torch.Tensor | None = None


@dataclass
class ClassText:
    """The class-name side of a model computed once per class list (:meth:`VideoTextModel.encode_classes`).

    Attributes:
        names: the class names, in label order.
        embedding: [K, P] normalised text embeddings, where the text does not depend on the video.
        states: otherwise the model's video-independent part (TC-CLIP: the prompts' states after
            text blocks 1..L-1), which :meth:`VideoTextModel.text_for` finishes per video.
    """

    names: tuple[str, ...]
    embedding: torch.Tensor | None = None
    states: Any = None


def pooled(output: Any) -> torch.Tensor:
    """The projected embedding from ``get_{image,text}_features`` (v5 returns a model output)."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


def clean_class_name(name: str) -> str:
    """``"brush_hair"`` -> ``"brush hair"``, ``"ApplyEyeMakeup"`` -> ``"Apply Eye Makeup"``.

    Underscores become spaces and CamelCase words are split (TC-CLIP's ``parse_ucf101``), but
    only at a lower-case letter or digit followed by a capital, so acronyms stay whole.
    """
    name = name.replace("_", " ")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(name.split())


@dataclass(frozen=True)
class PromptBatch:
    """Tokenised class prompts (on CPU; models move them to their device).

    Attributes:
        input_ids: [K, L] token ids, padded to the longest prompt (L <= the context length).
        attention_mask: [K, L] 1 for real tokens.
        eot_index: [K] position of the end-of-text token whose state is the text embedding.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    eot_index: torch.Tensor
    _copies: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, compare=False, repr=False)

    def on(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask, eot_index) on ``device``, copied once per device: a training
        step reuses the copy instead of copying the prompts (a host sync) every step."""
        key = str(device)
        if key not in self._copies:
            # Normal tensors even when first asked for under inference mode: training may reuse them.
            with torch.inference_mode(False):
                self._copies[key] = tuple(t.to(device) for t in (self.input_ids, self.attention_mask, self.eot_index))
        return self._copies[key]


class PromptTokenizer:
    """Class names -> tokenised ``template.format(name)`` prompts, cached per class list.

    Prompts are padded to the longest one rather than to ``context_length``: under CLIP's causal
    mask tokens after the end-of-text token never influence it, so this is exact and cheaper.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        template: str,
        context_length: int,
        cache_size: int = 16,
    ) -> None:
        if "{}" not in template:
            raise ValueError(f"prompt template must contain '{{}}': {template!r}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no end-of-text token")
        self.tokenizer = tokenizer
        self.template = template
        self.context_length = context_length
        self._cache: OrderedDict[tuple[str, ...], PromptBatch] = OrderedDict()
        self._cache_size = cache_size

    def __call__(self, class_names: list[str] | tuple[str, ...]) -> PromptBatch:
        key = tuple(class_names)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        if not key:
            raise ValueError("no class names given")
        prompts = [self.template.format(clean_class_name(c)) for c in key]
        # Normal tensors even when first asked for under inference mode (evaluation): the cache may
        # serve a training step later, and autograd refuses inference tensors.
        with torch.inference_mode(False):
            enc = self.tokenizer(
                prompts,
                padding="longest",
                truncation=True,
                max_length=self.context_length,
                return_tensors="pt",
            )
            ids = enc["input_ids"]
            is_eot = ids == self.tokenizer.eos_token_id
            if not bool(is_eot.any(dim=1).all()):
                bad = [prompts[i] for i in torch.nonzero(~is_eot.any(dim=1)).flatten().tolist()]
                raise ValueError(f"prompts without an end-of-text token after tokenisation: {bad[:3]}")
            # First occurrence: OpenAI's tokenizer pads with the end-of-text token itself.
            eot = is_eot.int().argmax(dim=1)
        batch = PromptBatch(ids, enc["attention_mask"], eot)
        self._cache[key] = batch
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return batch


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------


class VideoTextModel(nn.Module):
    """A video encoder and a class-name encoder sharing CLIP's embedding space.

    Subclasses set ``name``, implement :meth:`encode_video` and :meth:`encode_text`, store the
    JSON-serialisable constructor options in ``self.options`` (saved with checkpoints) and may
    override :meth:`param_groups`. ``backbone_class`` is the ``transformers`` model the backbone
    loads as (``CLIPModel``; X-CLIP's is ``XCLIPModel``) and ``default_backbone`` its hub id.
    """

    name: ClassVar[str] = ""
    backbone_class: ClassVar[type[PreTrainedModel]] = CLIPModel
    default_backbone: ClassVar[str] = DEFAULT_BACKBONE

    def __init__(self, clip: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.options: dict[str, Any] = {}

    # -- encoders -------------------------------------------------------------------------------

    def encode_video(self, pixel_values: torch.Tensor) -> VideoFeatures:
        """``[B, T, 3, H, W]`` normalised frames -> :class:`VideoFeatures`."""
        raise NotImplementedError

    def encode_text(self, class_names: list[str], video: VideoFeatures | None = None) -> torch.Tensor:
        """Class names -> L2-normalised text embeddings, ``[K, P]`` or per video ``[B, K, P]``."""
        raise NotImplementedError

    def logits(self, video: VideoFeatures, text: torch.Tensor) -> torch.Tensor:
        """``logit_scale.exp() * cos(video, text)`` -> [B, K]."""
        scale = self.clip.logit_scale.exp()
        if text.dim() == 2:
            return scale * video.embedding @ text.t()
        return scale * torch.einsum("bd,bkd->bk", video.embedding, text)

    def encode_classes(self, class_names: list[str]) -> ClassText:
        """What of the class-name side does not depend on the video, computed once per class list
        (evaluation reuses it for every video of a split). Default: the whole text embedding."""
        return ClassText(tuple(class_names), embedding=self.encode_text(class_names))

    def text_for(self, video: VideoFeatures, classes: ClassText) -> torch.Tensor:
        """The text embeddings for ``video`` from :meth:`encode_classes`' output: the same values as
        ``encode_text(classes.names, video)``."""
        if classes.embedding is None:
            raise ValueError(f"{type(self).__name__} keeps no video-independent text embedding")
        return classes.embedding

    def class_logits(self, pixel_values: torch.Tensor, class_names: list[str],
                     classes: ClassText | None = None) -> torch.Tensor:
        """Clips ``[B, T, 3, H, W]`` scored against every class name -> logits [B, K]; ``classes``
        (:meth:`encode_classes` of the same names) skips the video-independent text work."""
        video = self.encode_video(pixel_values)
        text = self.encode_text(class_names, video) if classes is None else self.text_for(video, classes)
        return self.logits(video, text)

    def forward(self, pixel_values: torch.Tensor, class_names: list[str]) -> torch.Tensor:
        """Same as :meth:`class_logits`; the entry point under DDP (hooks run on ``__call__``)."""
        return self.class_logits(pixel_values, class_names)

    # -- training -------------------------------------------------------------------------------

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; each has ``params``, ``lr`` and a ``name``."""
        return [{"name": "base", "params": [p for p in self.parameters() if p.requires_grad], "lr": base_lr}]

    # -- checkpoints ----------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> None:
        """Write weights (safetensors), options, CLIP config and tokenizer into ``directory``.

        The directory is self-contained: :func:`load_video_text_model` rebuilds the model from it
        without the original backbone.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        # Temporary name then rename, so a reader never sees a half-written weights file.
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"model": self.name})
            os.replace(tmp, out / WEIGHTS_FILE)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        meta = {"name": self.name, "options": self.options}
        (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        self.clip.config.save_pretrained(out)
        self.tokenizer.save_pretrained(out)

    def load(self, directory: str | os.PathLike) -> None:
        """Load weights saved by :meth:`save` into this model (strict: every key must match)."""
        src = Path(directory)
        meta = json.loads((src / META_FILE).read_text())
        if meta.get("name") != self.name:
            raise ValueError(f"{src} holds a {meta.get('name')!r} model, not {self.name!r}")
        device = next(self.parameters()).device
        state = load_file(src / WEIGHTS_FILE, device=str(device))
        self.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[VideoTextModel]] = {}


def register(cls: type[VideoTextModel]) -> type[VideoTextModel]:
    """Class decorator: make ``cls`` buildable by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def model_class(name: str) -> type[VideoTextModel]:
    """The registered class for ``name`` (``tcclip``, ``vificlip``, ``xclip``)."""
    # Importing the package imports every model module, which registers them.
    import ray_pipeline.models  # noqa: F401

    if name not in _REGISTRY:
        raise ValueError(f"unknown video-text model {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def build_video_text_model(
    name: str, backbone: str | None = None, **options: Any
) -> VideoTextModel:
    """Build model ``name`` on the backbone at ``backbone`` (hub id or local directory).

    Loads the model's ``backbone_class`` (``CLIPModel``, or ``XCLIPModel`` for X-CLIP; float32)
    and the tokenizer from the same place with ``from_pretrained``; ``None`` takes the model's
    ``default_backbone``. ``options`` go to the model's constructor (see each model's docstring).
    """
    cls = model_class(name)
    backbone = backbone or cls.default_backbone
    clip = cls.backbone_class.from_pretrained(backbone, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    return cls(clip, tokenizer, **options)


def load_video_text_model(directory: str | os.PathLike, **overrides: Any) -> VideoTextModel:
    """Rebuild a model saved with :meth:`VideoTextModel.save` (options may be overridden)."""
    src = Path(directory)
    meta = json.loads((src / META_FILE).read_text())
    cls = model_class(meta["name"])
    clip = cls.backbone_class(cls.backbone_class.config_class.from_pretrained(src))
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = cls(clip, tokenizer, **{**meta["options"], **overrides})
    model.load(src)
    return model


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dimension."""
    return F.normalize(x, dim=-1)
