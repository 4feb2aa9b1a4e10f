"""Typed experiment configuration.

One YAML file in ``experiments/`` describes an experiment; ``--set dotted.key=value`` overrides
any field. Everything is validated here, before any Ray work starts, and every error names the
file and the field it came from.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the field."""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


# --------------------------------------------------------------------------------------------
# Cluster, tracking
# --------------------------------------------------------------------------------------------


class NodeTypeConfig(StrictModel):
    """A node type an autoscaler may start (a launcher's ``available_node_types`` entry, a KubeRay
    ``workerGroupSpec``): its per-node resources and how many nodes of it may run at once."""

    name: str = Field(min_length=1)
    cpus: float = Field(gt=0, description="logical CPUs per node (Ray's CPU resource)")
    gpus: float = Field(0.0, ge=0, description="GPUs per node")
    max_workers: int = Field(ge=1, description="the most nodes of this type the autoscaler runs")


class RayConfig(StrictModel):
    """Where Ray runs.

    With ``address`` unset, a ``ray job submit`` driver or ``RAY_ADDRESS`` joins that cluster;
    otherwise a local cluster sized to this machine (or ``num_cpus``) is started.
    """

    address: str | None = None
    num_cpus: int | None = Field(None, ge=1, description="local cluster size; default: all cores")
    # CPUs kept free for Ray Data's read/iterate tasks and the driver: without headroom an actor
    # pool that takes every CPU starves the read task and the stage never finishes.
    reserve_cpus: float = Field(0.5, ge=0.0)
    # Training a small model on CPU amplifies last-bit differences of the math kernels into points
    # of accuracy: the same run gave 13.5, 14.7 and 15.2 % on three machines. "portable" pins the
    # CPU kernels of a local cluster's workers to AVX2 (PyTorch, oneDNN, MKL) and their torch
    # threads to `torch_threads`, so x86 machines compute the same bits; "native" uses the fastest
    # kernels and one thread per reserved CPU (about 10 % faster on this machine).
    numerics: Literal["portable", "native"] = "portable"
    torch_threads: int | None = Field(None, ge=1, description="per actor/worker; default: 1 (portable), "
                                      "else the CPUs it reserves")
    node_types: list[NodeTypeConfig] = Field(
        default_factory=list, description="the node types an autoscaler may add (empty: the cluster does not "
        "autoscale; requests are planned against the nodes it has)")

    @field_validator("node_types")
    @classmethod
    def _unique_names(cls, v: list[NodeTypeConfig]) -> list[NodeTypeConfig]:
        names = [n.name for n in v]
        if len(set(names)) != len(names):
            raise ValueError(f"node type names must be unique, got {names}")
        return v


class MlflowConfig(StrictModel):
    tracking_uri: str | None = Field(
        None, description="default: $MLFLOW_TRACKING_URI, else sqlite in the run directory"
    )
    experiment: str = "ray_pipeline"


class ActorPoolConfig(StrictModel):
    """Sizing of a Ray Data actor pool (one model copy per actor)."""

    actors: int = Field(1, ge=1)
    num_cpus: float | None = Field(None, gt=0, description="per actor; default: fit to the cluster")
    num_gpus: float = Field(0.0, ge=0)
    batch_size: int = Field(1, ge=1)


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


# Step caches (diffusers 0.42.1 hooks behind ``transformer.enable_cache``). Each backend offers the
# ones that run correctly with its pipeline; the others are config errors that say why.
CacheKind = Literal["none", "pab", "faster_cache", "first_block", "taylorseer", "mag"]
_ALL_CACHES: tuple[str, ...] = ("pab", "faster_cache", "first_block", "taylorseer", "mag")
UNSUPPORTED_CACHES: dict[str, dict[str, str]] = {
    "cogvideox": {},
    "wan": {
        "pab": "diffusers' PAB keeps one state per attention layer, not per cache context, and WanPipeline runs "
               "the conditional and unconditional passes as separate calls: the unconditional pass would reuse "
               "the conditional pass's attention",
        "faster_cache": "FasterCache expects the unconditional and conditional inputs concatenated in one batch; "
                        "WanPipeline runs them as separate calls, so it would split the prompts instead",
    },
    "ltx": {
        "faster_cache": "FasterCache supports BCFHW/BFCHW/BCHW latents; LTX's are packed as (batch, tokens, "
                        "channels) (a TODO in diffusers 0.42.1)",
    },
}


class PyramidAttentionBroadcastSettings(StrictModel):
    """diffusers' ``PyramidAttentionBroadcastConfig``: reuse attention outputs for N-1 of every N steps
    inside a timestep window. Defaults: diffusers' CogVideoX example."""

    spatial_attention_block_skip_range: int = Field(2, ge=2)
    spatial_attention_timestep_skip_range: tuple[int, int] = (100, 800)
    cross_attention_block_skip_range: int | None = Field(None, ge=2)
    cross_attention_timestep_skip_range: tuple[int, int] = (100, 800)


class FasterCacheSettings(StrictModel):
    """diffusers' ``FasterCacheConfig``: attention reuse plus the unconditional branch approximated from
    the conditional one (CFG-Cache). Defaults: diffusers' CogVideoX example (a constant attention
    weight of 0.3)."""

    spatial_attention_block_skip_range: int = Field(2, ge=2)
    spatial_attention_timestep_skip_range: tuple[int, int] = (-1, 681)
    attention_weight: float = Field(0.3, ge=0.0, le=1.0)
    unconditional_batch_skip_range: int = Field(5, ge=2)
    unconditional_batch_timestep_skip_range: tuple[int, int] = (-1, 781)
    low_frequency_weight_update_timestep_range: tuple[int, int] = (99, 901)
    high_frequency_weight_update_timestep_range: tuple[int, int] = (-1, 301)
    alpha_low_frequency: float = Field(1.1, gt=0)
    alpha_high_frequency: float = Field(1.1, gt=0)


class FirstBlockCacheSettings(StrictModel):
    """diffusers' ``FirstBlockCacheConfig``: skip all blocks after the first while the first block's
    residual changes by less than ``threshold`` (relative). Default: diffusers' cache guide."""

    threshold: float = Field(0.2, gt=0)


class TaylorSeerSettings(StrictModel):
    """diffusers' ``TaylorSeerCacheConfig``: predict attention/MLP outputs by a Taylor expansion between
    full steps. Defaults: diffusers'; the factors in float32 (diffusers' own example)."""

    cache_interval: int = Field(5, ge=1)
    disable_cache_before_step: int = Field(3, ge=0)
    disable_cache_after_step: int | None = Field(None, ge=0)
    max_order: int = Field(1, ge=0)
    taylor_factors_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lite: bool = Field(False, description="predict only proj_out, skip whole blocks (diffusers' lite mode)")


class MagCacheSettings(StrictModel):
    """diffusers' ``MagCacheConfig``: skip blocks while the accumulated residual-magnitude error stays
    under ``threshold``. ``mag_ratios`` are checkpoint-specific: measure them once per model and
    scheduler with ``ray_pipeline.generators.step_cache.calibrate_mag_ratios``."""

    threshold: float = Field(0.06, gt=0)
    max_skip_steps: int = Field(3, ge=1)
    retention_ratio: float = Field(0.2, ge=0.0, le=1.0)
    mag_ratios: list[float] | None = Field(None, min_length=2)


class StepCacheConfig(StrictModel):
    """Which diffusers step cache runs (``none``: every step computed in full) and its settings.

    A cache changes pixels, so the chosen kind and its settings enter the clip ids."""

    backend: ClassVar[str] = ""
    kind: CacheKind = "none"
    pab: PyramidAttentionBroadcastSettings = PyramidAttentionBroadcastSettings()
    faster_cache: FasterCacheSettings = FasterCacheSettings()
    first_block: FirstBlockCacheSettings = FirstBlockCacheSettings()
    taylorseer: TaylorSeerSettings = TaylorSeerSettings()
    mag: MagCacheSettings = MagCacheSettings()

    @field_validator("kind")
    @classmethod
    def _supported_by_backend(cls, v: str) -> str:
        reason = UNSUPPORTED_CACHES.get(cls.backend, {}).get(v)
        if reason:
            raise ValueError(f"cache {v!r} is not offered for {cls.backend}: {reason}; "
                             f"use one of {list(supported_caches(cls.backend))} or 'none'")
        return v

    @field_validator("mag")
    @classmethod
    def _mag_needs_ratios(cls, v: MagCacheSettings, info: Any) -> MagCacheSettings:
        if info.data.get("kind") == "mag" and v.mag_ratios is None:
            raise ValueError("cache kind 'mag' needs mag.mag_ratios (checkpoint-specific; measure them with "
                             "ray_pipeline.generators.step_cache.calibrate_mag_ratios)")
        return v

    def settings(self) -> dict[str, Any] | None:
        """The chosen cache's settings as plain values (None: no cache)."""
        return None if self.kind == "none" else getattr(self, self.kind).model_dump(mode="json")


def supported_caches(backend: str) -> tuple[str, ...]:
    """The step caches a diffusers backend offers (see ``UNSUPPORTED_CACHES`` for why not the others)."""
    return tuple(k for k in _ALL_CACHES if k not in UNSUPPORTED_CACHES.get(backend, {}))


class CogVideoXCacheConfig(StepCacheConfig):
    backend: ClassVar[str] = "cogvideox"


class WanCacheConfig(StepCacheConfig):
    backend: ClassVar[str] = "wan"


class LTXCacheConfig(StepCacheConfig):
    backend: ClassVar[str] = "ltx"


class CompileConfig(StrictModel):
    """``torch.compile`` of the denoiser (the transformer), once per actor; the first call per shape
    compiles (minutes at full size), later ones reuse it. Same arithmetic up to float reassociation,
    so not part of the clip id."""

    enabled: bool = False
    backend: str = Field("inductor", description="torch.compile backend; aot_eager traces without codegen")
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    fullgraph: bool = Field(False, description="one graph, no breaks; not with a step cache (its hooks break)")


class DiffusersVideoConfig(StrictModel):
    """What every diffusers text-to-video backend shares: loading, resolution, guidance, memory savers,
    step cache, compile and batching. Subclasses set the model card's defaults."""

    model: str
    dtype: Literal["float16", "bfloat16", "float32"]
    num_inference_steps: int = Field(50, ge=1)
    num_frames: int = Field(ge=1)
    height: int = Field(ge=8)
    width: int = Field(ge=8)
    guidance_scale: float = Field(ge=0)
    negative_prompt: str = ""
    max_sequence_length: int = Field(ge=1, description="text-encoder tokens per prompt")
    fps: int = Field(ge=1, description="frame rate of the encoded mp4")
    cpu_offload: Literal["none", "model", "sequential"] = "none"
    vae_slicing: bool = Field(False, description="decode one clip of a call at a time (less memory)")
    vae_tiling: bool = Field(False, description="decode in overlapping tiles (less memory; changes pixels)")
    prompts_per_call: int = Field(1, ge=1, description="prompts rendered by one pipeline call")
    compile: CompileConfig = CompileConfig()

    # Subclasses override these two validators by name (pydantic runs a validator with the class
    # that defines it, so a class attribute could not carry the rule).
    @field_validator("num_frames")
    @classmethod
    def _frames_rule(cls, v: int) -> int:
        # The VAEs compress time by 4: 4N+1 frames (Wan).
        if (v - 1) % 4 != 0:
            raise ValueError(f"num_frames must be 4N+1, got {v}")
        return v

    @field_validator("height", "width")
    @classmethod
    def _spatial_multiple(cls, v: int, info: Any) -> int:
        # VAE spatial compression 8 x transformer patch 2 (CogVideoX, Wan).
        return _multiple_of(16, v, info)

    @model_validator(mode="after")
    def _cache_with_compile_and_batching(self) -> DiffusersVideoConfig:
        cache = getattr(self, "cache", None)
        if cache is None or cache.kind == "none":
            return self
        if self.compile.enabled and self.compile.fullgraph:
            raise ValueError("compile.fullgraph cannot be combined with a step cache: the cache hooks are "
                             "excluded from compilation (graph breaks); set compile.fullgraph: false")
        if cache.kind == "first_block" and self.prompts_per_call > 1:
            # FBC compares the first block's residual averaged over the whole batch: a clip would
            # depend on which prompts shared its call, which no clip id can record.
            raise ValueError("cache 'first_block' decides per call over all its prompts, so a clip would "
                             "depend on its batch-mates; set prompts_per_call: 1")
        return self


def _multiple_of(k: int, v: int, info: Any) -> int:
    if v % k:
        raise ValueError(f"{info.field_name} must be a multiple of {k}, got {v}")
    return v


class CogVideoXConfig(DiffusersVideoConfig):
    """diffusers CogVideoXPipeline settings; defaults are the paper's (CogVideoX-2B, 50 steps)."""

    model: str = "THUDM/CogVideoX-2b"
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    num_frames: int = Field(49, ge=1)
    height: int = Field(480, ge=8)
    width: int = Field(720, ge=8)
    guidance_scale: float = Field(6.0, ge=0)
    scheduler: Literal["ddim", "dpm"] = "ddim"
    use_dynamic_cfg: bool = False
    max_sequence_length: int = Field(226, ge=1, description="T5 tokens; CogVideoX-2B/5B use 226")
    fps: int = Field(8, ge=1)
    cache: CogVideoXCacheConfig = CogVideoXCacheConfig()

    @field_validator("num_frames")
    @classmethod
    def _frames_rule(cls, v: int) -> int:
        # CogVideoX's VAE compresses time by 4 and the 2B/5B transformers need 8N+1 frames.
        if (v - 1) % 4 != 0:
            raise ValueError(f"num_frames must be 4N+1 (CogVideoX: 8N+1 for 2B/5B), got {v}")
        return v


class WanConfig(DiffusersVideoConfig):
    """diffusers WanPipeline settings; defaults are the Wan 2.1 T2V-1.3B model card's (480p)."""

    model: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    dtype: Literal["float16", "bfloat16", "float32"] = "bfloat16"
    vae_dtype: Literal["float16", "bfloat16", "float32"] = Field(
        "float32", description="the model card loads the VAE in float32 for decoding quality")
    num_frames: int = Field(81, ge=1)
    height: int = Field(480, ge=8)
    width: int = Field(832, ge=8)
    guidance_scale: float = Field(5.0, ge=0)
    flow_shift: float = Field(3.0, gt=0, description="UniPC flow shift: 3.0 for 480p, 5.0 for 720p")
    negative_prompt: str = (
        "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, "
        "static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, "
        "extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, "
        "fused fingers, still picture, messy background, three legs, many people in the background, "
        "walking backwards")
    max_sequence_length: int = Field(512, ge=1, description="UMT5 tokens; Wan uses 512")
    fps: int = Field(16, ge=1)
    cache: WanCacheConfig = WanCacheConfig()


class LTXConfig(DiffusersVideoConfig):
    """diffusers LTXPipeline settings; defaults are the LTX-Video model card's (768x512, 161 frames)."""

    model: str = "Lightricks/LTX-Video"
    dtype: Literal["float16", "bfloat16", "float32"] = "bfloat16"
    num_frames: int = Field(161, ge=1)
    height: int = Field(512, ge=8)
    width: int = Field(768, ge=8)
    guidance_scale: float = Field(3.0, ge=0, description="1.0 for the guidance-distilled checkpoints")
    guidance_rescale: float = Field(0.0, ge=0.0, le=1.0)
    frame_rate: int = Field(25, ge=1, description="the frame rate the transformer is conditioned on "
                            "(it scales the temporal RoPE); the pipeline's default, as the model card runs it")
    decode_timestep: float = Field(0.03, ge=0.0, le=1.0, description="timestep-aware VAE (0.9.1+)")
    decode_noise_scale: float = Field(0.025, ge=0.0, le=1.0)
    negative_prompt: str = "worst quality, inconsistent motion, blurry, jittery, distorted"
    max_sequence_length: int = Field(128, ge=1, description="T5 tokens; the pipeline's default")
    fps: int = Field(24, ge=1)
    cache: LTXCacheConfig = LTXCacheConfig()

    @field_validator("num_frames")
    @classmethod
    def _frames_rule(cls, v: int) -> int:
        if (v - 1) % 8 != 0:
            raise ValueError(f"num_frames must be 8N+1 (LTX-Video's VAE compresses time by 8), got {v}")
        return v

    @field_validator("height", "width")
    @classmethod
    def _spatial_multiple(cls, v: int, info: Any) -> int:
        return _multiple_of(32, v, info)  # the VAE compresses space by 32 (patch size 1)

    @field_validator("vae_slicing")
    @classmethod
    def _no_slicing(cls, v: bool) -> bool:
        if v:
            # AutoencoderKLLTXVideo.decode with slicing zips (z.split(1), temb.split(1)) as one pair:
            # it fails for one clip and mixes latents for two (diffusers 0.42.1).
            raise ValueError("vae_slicing is broken for LTX-Video's timestep-conditioned VAE in diffusers "
                             "0.42.1 (AutoencoderKLLTXVideo.decode pairs the slices wrongly); leave it off")
        return v


class ProceduralConfig(StrictModel):
    """The procedural action world's text-to-video generator (see docs/world.md)."""

    num_frames: int = Field(16, ge=2)
    size: int = Field(64, ge=16)
    fps: int = Field(8, ge=1)
    failure_rate: float = Field(0.1, ge=0.0, le=1.0, description="fraction of clips that fail, by seed")
    failure_modes: list[Literal["frozen", "wrong", "garbled"]] = Field(
        default_factory=lambda: ["frozen", "wrong", "garbled"], min_length=1,
        description="how failed clips fail: held pose, incoherent motion, corrupted frames")
    stereotype_p: float = Field(
        1.0, ge=0.0, le=1.0,
        description="P(an environment/character the prompt leaves open is the class stereotype; else random)")


class GenerateConfig(StrictModel):
    backend: Literal["cogvideox", "wan", "ltx", "procedural"] = "procedural"
    clips_per_class: int = Field(128, ge=1)
    pool: ActorPoolConfig = ActorPoolConfig()
    cogvideox: CogVideoXConfig = CogVideoXConfig()
    wan: WanConfig = WanConfig()
    ltx: LTXConfig = LTXConfig()
    procedural: ProceduralConfig = ProceduralConfig()
    weights_cache: str | None = Field(
        None, description="HF cache dir shared by all actors (HF_HOME); default: the environment's"
    )

    def backend_config(self) -> CogVideoXConfig | WanConfig | LTXConfig | ProceduralConfig:
        return getattr(self, self.backend)


class ScoreConfig(StrictModel):
    """CLIP scoring of generated clips against every class name."""

    model: str = "openai/clip-vit-base-patch16"
    num_frames: int = Field(8, ge=1)
    prompt_template: str = "a video of a person {}."
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    pool: ActorPoolConfig = ActorPoolConfig(batch_size=8)

    @field_validator("prompt_template")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        if "{}" not in v:
            raise ValueError("prompt_template must contain '{}' where the class name goes")
        return v


class OpenAIWriterConfig(StrictModel):
    """The ``openai`` prompt writer: GPT-4o or any OpenAI-compatible server (docs/prompts.md)."""

    model: str = "gpt-4o"
    base_url: str | None = Field(None, description="any OpenAI-compatible server, e.g. vLLM")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the variable holding the key")
    temperature: float = Field(1.0, ge=0, le=2)
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, description="retries per request after the first attempt")
    retry_backoff_s: float = Field(2.0, ge=0, description="first retry delay; doubles per retry")
    retry_backoff_max_s: float = Field(60.0, ge=0)
    structured_outputs: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema", description="response_format sent: strict JSON schema, JSON mode, or none"
    )
    max_completion_tokens: int | None = Field(None, ge=16, description="per answer; default: server's")
    batch_api: bool = False
    batch_poll_s: float = Field(30.0, gt=0)
    batch_max_wait_s: float = Field(
        86400.0, gt=0, description="stop waiting (a rerun resumes the same batch)"
    )
    # USD per 1M tokens, for the stage's cost estimate (gpt-4o list prices).
    price_input_per_m: float = Field(2.5, ge=0)
    price_output_per_m: float = Field(10.0, ge=0)
    batch_discount: float = Field(0.5, ge=0, le=1, description="Batch API price factor")


class PromptsConfig(StrictModel):
    classes: str | list[str] = Field(
        "hmdb51", description="a shipped class list (hmdb51, ucf101, k400, k600, ...) or explicit names"
    )
    hmdb_fix_swap: bool = Field(
        False, description="HMDB-51: name ids 20/21, 44/45 as the split files' videos (default: as published)"
    )
    strategy: Literal["basic", "env", "cha", "ie"] = "ie"
    writer: Literal["template", "openai"] = "template"
    composer: Literal["template", "llm"] = "template"
    n_environments: int = Field(4, ge=1)
    n_characters: int = Field(16, ge=1)
    max_prompt_tokens: int = Field(226, ge=8, description="CogVideoX's T5 limit")
    response_cache: Literal["shared", "run"] = Field(
        "shared", description="LLM answers kept under cache_dir (shared by runs) or in the run directory"
    )
    openai: OpenAIWriterConfig = OpenAIWriterConfig()

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: str | list[str]) -> str | list[str]:
        # An unknown list name would otherwise surface as a traceback in the prompts stage.
        from ray_pipeline.prompts.classlists import ClassListError, get_class_entries

        try:
            get_class_entries(v)
        except ClassListError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("composer")
    @classmethod
    def _llm_composer_needs_llm(cls, v: str, info: Any) -> str:
        if v == "llm" and info.data.get("writer") != "openai":
            raise ValueError("composer 'llm' needs writer 'openai' (the template writer has no LLM)")
        return v


class SplitConfig(StrictModel):
    """One evaluation split: a list file (``<relative video path> <label id>`` per line) and the
    label CSV (``id,name``) naming its classes; both relative to the dataset's ``splits_dir``."""

    list: str
    labels: str


class DatasetConfig(StrictModel):
    """A video dataset in the real datasets' layout (HMDB-51/UCF-101/K600 as ViFi-CLIP ships them).

    ``root`` is where the split files' relative video paths start; ``world:<dataset>/videos``
    is inside one of the procedural world's datasets, built on first use under ``cache_dir``.
    """

    name: str
    root: str
    splits_dir: str | None = Field(
        None, description="where list/label files live (default: root); may be world:<dataset> too")
    splits: list[SplitConfig] = Field(min_length=1)
    top5: bool = False
    # HMDB's split files label kick=20/kick_ball=21, sword=44/sword_exercise=45; the CSV says the
    # opposite. Published numbers used the files as they are ("none"); "hmdb_swap" corrects it.
    label_fix: Literal["none", "hmdb_swap"] = "none"

    @property
    def is_world(self) -> bool:
        return self.root.startswith("world:")

    @model_validator(mode="after")
    def _paths_exist(self) -> DatasetConfig:
        if self.is_world or "://" in self.root:
            return self
        root = Path(os.path.expanduser(self.root))
        if not root.is_dir():
            raise ValueError(f"dataset {self.name!r}: root {root} is not a directory")
        base = Path(os.path.expanduser(self.splits_dir)) if self.splits_dir else root
        for split in self.splits:
            for path in (split.list, split.labels):
                if not (base / path).is_file():
                    raise ValueError(f"dataset {self.name!r}: {base / path} does not exist")
        return self


class WorldConfig(StrictModel):
    """Sizes of the procedural world's datasets (passed to ``ensure_world_datasets``) and of its
    protocol datasets (``ProtocolDatasetSizes`` fields, for ``world:world_hmdb_fs`` and
    ``world:world_ucf_fs``; checked by the task that reads them) and of its UCF-Crime
    (``ensure_world_anomaly``; built only when a config reads ``world:world_ucf_crime``)."""

    sizes: dict[str, int] = Field(default_factory=dict)
    protocol_sizes: dict[str, Any] = Field(default_factory=dict)
    anomaly_sizes: dict[str, float] = Field(default_factory=dict)

    @field_validator("anomaly_sizes")
    @classmethod
    def _known_anomaly_sizes(cls, v: dict[str, float]) -> dict[str, float]:
        from ray_pipeline.world.anomaly import WorldAnomalySizes

        try:
            WorldAnomalySizes.from_settings(**v)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return v


class PhaseSettings(StrictModel):
    """One training phase's schedule; unset fields take ``train.<field>``."""

    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    warmup_epochs: float | None = Field(None, ge=0.0)
    lr_min_ratio: float | None = Field(None, ge=0.0, le=1.0)
    batch_size: int | None = Field(None, ge=1, description="global batch over all workers")


RECIPES = ("synthetic", "source", "source_then_generated", "source_synthetic", "synthetic_then_real")


class LoaderConfig(StrictModel):
    """The training input pipeline of each Ray Train worker: DataLoader processes decode clips with
    decord while the step runs. Defaults put one decoding process on a CPU worker's idle CPU (its
    torch threads run the step) and keep a GPU fed (decoding in the worker's other CPUs). None of
    these change the weights: a sample depends on (seed, epoch, index) only, and a batch has the
    same memory layout, whichever process decodes it."""

    num_workers: int | None = Field(None, ge=0, description="decoding processes per training worker; default: "
                                    "on CPU 1 where the worker has CPUs its torch threads leave idle, else 0; "
                                    "on GPU the worker's CPUs minus one")
    pin_memory: bool | None = Field(None, description="page-locked batches, copied to the GPU without a host "
                                    "sync; default: on GPU (ignored on CPU)")
    prefetch_factor: int = Field(2, ge=1, description="batches each decoding process keeps ready")
    persistent_workers: bool = Field(True, description="keep the decoding processes across epochs")


class TrainConfig(StrictModel):
    """Training a video-text model with Ray Train on generated (and optionally real) clips."""

    model: Literal["tcclip", "vificlip", "xclip"] = "tcclip"
    backbone: str = Field("openai/clip-vit-base-patch16", description="hub id, path, world:clip or world:xclip")
    model_options: dict[str, Any] = Field(default_factory=dict)
    # synthetic: generated clips only, from the backbone; source: the source dataset only (the
    # paper's TC-CLIP row); source_then_generated: the source-trained model trained further on the
    # generated clips (the paper's "+Ours"); source_synthetic: one run on source + generated clips
    # (an ablation); synthetic_then_real: pre-train on generated, fine-tune on `real`.
    recipe: Literal[RECIPES] = "synthetic"
    source: DatasetConfig | None = None
    source_phase: PhaseSettings = Field(default_factory=PhaseSettings, description="the source-only phase")
    real: DatasetConfig | None = None
    finetune: PhaseSettings = Field(default_factory=lambda: PhaseSettings(epochs=5),
                                    description="fine-tuning on train.real (synthetic_then_real)")
    real_epsilon: float = Field(0.1, ge=0.0, lt=1.0,
                                description="LS of real clips mixed with generated ones, under every loss variant")
    loss: Literal["ce", "ls", "uw", "uf", "ul"] = "ul"
    w: float = Field(0.3, ge=0.0, le=1.0, description="UL/UW weight: eps_i = w * u_i")
    epsilon: float = Field(0.1, ge=0.0, lt=1.0, description="LS's fixed smoothing")
    uf_drop_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    uncertainty_norm: Literal["minmax", "logk"] = "minmax"
    epochs: int = Field(10, ge=1)
    warmup_epochs: float = Field(1.0, ge=0.0)
    lr: float = Field(8e-6, gt=0)
    lr_min_ratio: float = Field(0.01, ge=0.0, le=1.0)
    weight_decay: float = Field(0.001, ge=0.0)
    batch_size: int = Field(32, ge=1, description="global batch over all workers")
    num_frames: int = Field(16, ge=1)
    augment: bool = True
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP)")
    use_gpu: bool = False
    cpus_per_worker: float | None = Field(None, gt=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "bf16", description="autocast on GPU (CPU trains in fp32); bf16 falls back to fp16 with a GradScaler on a "
        "GPU without bf16")
    loader: LoaderConfig = LoaderConfig()
    max_failures: int = Field(2, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _recipe_inputs(self) -> TrainConfig:
        if self.recipe in ("source", "source_then_generated", "source_synthetic") and self.source is None:
            raise ValueError(f"recipe {self.recipe} needs train.source (a dataset with a train split)")
        if self.recipe == "synthetic_then_real" and self.real is None:
            raise ValueError("recipe synthetic_then_real needs train.real (a dataset with a train split)")
        if self.batch_size % self.num_workers:
            raise ValueError(f"batch_size {self.batch_size} must divide evenly over {self.num_workers} workers")
        return self


# --------------------------------------------------------------------------------------------
# The fine-tuning protocols (few-shot, base-to-novel, long-tail)
# --------------------------------------------------------------------------------------------


class FinetuneConfig(StrictModel):
    """Fine-tuning on a protocol's real training list, from the backbone (the ``baseline`` row) and
    from the generated pre-training (the ``generated`` row); the ``train`` section is the
    pre-training. Each task's defaults are TC-CLIP's paper-scale recipe for it (tc-clip.md §2.2)."""

    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    warmup_epochs: float = Field(ge=0.0)
    lr_min_ratio: float = Field(0.01, ge=0.0, le=1.0, description="cosine floor (TC-CLIP: lr / 100)")
    batch_size: int = Field(ge=1, description="global batch over all workers")
    loss: Literal["ls", "ce"] = Field("ls", description="ls: label smoothing epsilon (TC-CLIP: 0.1)")
    epsilon: float = Field(0.1, ge=0.0, lt=1.0)
    epoch_rule: Literal["last", "best"] = Field(
        "last", description="the reported epoch: the last, or the best on the test list (the released "
        "code's rule: model selection on the test data)")
    validate_every: int = Field(10, ge=1, description="with epoch_rule best, the epochs scored on the test "
                                "list: 0, k, 2k, ... and the last (TC-CLIP few-shot: 0, 10, ..., 40, 49)")

    def schedule(self) -> PhaseSettings:
        """The phase schedule of a fine-tune."""
        return PhaseSettings(epochs=self.epochs, lr=self.lr, warmup_epochs=self.warmup_epochs,
                             lr_min_ratio=self.lr_min_ratio, batch_size=self.batch_size)

    def scored_epochs(self) -> tuple[int, ...]:
        """The (0-based) epochs whose models are scored on the test list: only the last under the
        ``last`` rule."""
        last = self.epochs - 1
        if self.epoch_rule == "last":
            return (last,)
        return tuple(sorted({*range(0, last, self.validate_every), last}))


def _finetune(epochs: int, lr: float, warmup_epochs: float) -> Any:
    return Field(default_factory=lambda: FinetuneConfig(epochs=epochs, lr=lr, warmup_epochs=warmup_epochs,
                                                        batch_size=64))


class ProtocolDataConfig(StrictModel):
    """A fine-tuning protocol's lists and videos: a world protocol dataset (``lists:
    world:world_hmdb_fs``), or the published lists of ``dataset`` with its videos under ``videos``:
    for few-shot and base-to-novel a ViFi-CLIP checkout (the folder holding ``datasets_splits/`` and
    ``labels/``), for long-tail the dataset's official split files (HMDB-51's
    ``testTrainMulti_7030_splits/``, UCF-101's ``ucfTrainTestlist/``), whose split-1 train the
    long-tailed set is drawn from (ViFi-CLIP ships no split-1 train list)."""

    name: str = Field(description="the dataset's name in summary.json")
    lists: str = Field(description="world:<protocol dataset>, a ViFi-CLIP checkout, or official split files")
    dataset: Literal["hmdb51", "ucf101"] | None = Field(None, description="whose published lists (not for world:)")
    videos: str | None = Field(None, description="where the lists' video paths start (world: the dataset's)")
    # HMDB's split files label kick=20/kick_ball=21, sword=44/sword_exercise=45, the CSVs the other
    # way round; published numbers used the files as they are ("none").
    label_fix: Literal["none", "hmdb_swap"] = "none"

    @property
    def is_world(self) -> bool:
        return self.lists.startswith("world:")

    @property
    def world_name(self) -> str:
        """The world protocol dataset's name (``world:world_hmdb_fs`` -> ``world_hmdb_fs``)."""
        return self.lists.split(":", 1)[1].strip("/")

    @model_validator(mode="after")
    def _where(self) -> ProtocolDataConfig:
        if self.is_world:
            if self.dataset is not None or self.videos is not None:
                raise ValueError(f"{self.name}: a world dataset has its own lists and videos; leave dataset and "
                                 "videos unset")
            return self
        if self.dataset is None or self.videos is None:
            raise ValueError(f"{self.name}: published lists need dataset (hmdb51 or ucf101) and videos")
        for what, path in (("lists", self.lists), ("videos", self.videos)):
            if "://" not in path and not Path(os.path.expanduser(path)).is_dir():
                raise ValueError(f"{self.name}: {what} {path} is not a directory")
        return self


class FewShotConfig(StrictModel):
    """The few-shot protocol (paper Table 2): fine-tune on each K-shot list of split-1 train, test
    on split-1 test against every class."""

    data: ProtocolDataConfig
    ks: list[int] = Field(default_factory=lambda: [2, 4, 8, 16], min_length=1)
    finetune: FinetuneConfig = _finetune(50, 2e-6, 5)  # TC-CLIP configs/few_shot.yaml

    @field_validator("ks")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v) or len(set(v)) != len(v):
            raise ValueError(f"ks must be distinct positive shot counts, got {v}")
        return v


class BaseToNovelConfig(StrictModel):
    """The base-to-novel protocol (paper Table 3): fine-tune on each seed's 16-shot base list, test
    base against base names and novel against novel names with the same checkpoint."""

    data: ProtocolDataConfig
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1,
                             description="the published base lists' seeds")
    shots: int = Field(16, ge=1, description="training videos per base class in each list")
    generated_classes: Literal["all", "base"] = Field(
        "all", description="pre-train on the generated clips of every class (the paper generates each "
        "dataset's categories) or of the base classes only")
    n_boot: int = Field(10_000, ge=100, description="bootstrap resamples of the seeds for HM's CI")
    finetune: FinetuneConfig = _finetune(12, 3.33e-6, 2)  # TC-CLIP configs/base2novel.yaml

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v


class LongTailConfig(StrictModel):
    """The long-tail protocol (paper Table 4, after Perrett et al.): a long-tailed training set drawn
    from split-1 train with an exponential, seeded profile, a class-balanced test set from split-1
    test, mean per-class accuracy overall and per Head / Tail / Few group."""

    data: ProtocolDataConfig  # published: lists = the official split files
    n_max: int = Field(70, ge=1, description="videos of the most populous class (HMDB-51 split-1: 70 per class)")
    imbalance: float = Field(10.0, ge=1.0, description="I = n_max / n_min before capping")
    profile_seed: int = Field(0, description="draws the class order and the videos")
    test_per_class: int | None = Field(None, ge=1, description="balanced test videos per class (default: as "
                                       "many as the smallest class has)")
    # TC-CLIP publishes no long-tail recipe; its few-shot one fine-tunes on a set of this size
    # (HMDB-51 16-shot: 816 videos, a long-tailed HMDB-51 about 1,400).
    finetune: FinetuneConfig = _finetune(50, 2e-6, 5)


class EvaluateConfig(StrictModel):
    """Zero-shot evaluation: every split scored only against its own class names."""

    datasets: list[DatasetConfig] = Field(default_factory=list)
    num_clips: int = Field(2, ge=1, description="views per video; softmaxes are summed")
    num_frames: int | None = Field(None, ge=1, description="default: train.num_frames")
    baseline: bool = Field(True, description="also evaluate the backbone without generated data")
    pool: ActorPoolConfig = ActorPoolConfig(batch_size=8)
    seed: int = 0
    batched: Literal["auto", "on", "off"] = Field(
        "auto", description="score several videos per forward pass (auto: on an actor with a GPU); the CPU "
        "default scores one video per pass")
    videos_per_forward: int = Field(16, ge=1, description="videos per forward pass when batched")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast of the forward pass; auto: bf16 on a GPU that has it, else fp16; fp32 on CPU")


class AnalysisConfig(StrictModel):
    """``ray-pipeline analyze``: what the generated data looks like (Table 8, Figure 1) and the
    data-quality report. Features come from the score stage's CLIP (``score.model``, frames, dtype)."""

    tsne_seed: int = 0
    frames_per_strip: int = Field(6, ge=1, description="frames per clip in the report's frame strips")
    clips_per_strip: int = Field(3, ge=1, description="clips in each class's most / least uncertain strip")
    pool: ActorPoolConfig | None = Field(None, description="feature extraction actors; default: score.pool")


class AnomalyDatasetConfig(StrictModel):
    """UCF-Crime's published files (evaluation-protocols.md §5.1), or the world's copy of them.

    ``world:world_ucf_crime/<file>`` paths are inside the world's UCF-Crime, built on first use
    (``world.anomaly_sizes``) in ``cache_dir``.
    """

    name: str = "ucf_crime"
    video_root: str = Field(description="folder holding every video, at any depth (found by file name)")
    train_list: str = Field(description="Anomaly_Train.txt: <Class or normal folder>/<video>.mp4 per line")
    annotations: str = Field(description="Temporal_Anomaly_Annotation.txt: the test videos and their intervals")

    @property
    def is_world(self) -> bool:
        return self.video_root.startswith("world:")

    @model_validator(mode="after")
    def _paths_exist(self) -> AnomalyDatasetConfig:
        for field_name in ("video_root", "train_list", "annotations"):
            path = getattr(self, field_name)
            if path.startswith("world:"):
                if not path.startswith("world:world_ucf_crime/"):
                    raise ValueError(f"{field_name}: the world's anomaly set is world:world_ucf_crime/..., "
                                     f"got {path!r}")
                continue
            if "://" in path:
                continue
            p = Path(os.path.expanduser(path))
            ok = p.is_dir() if field_name == "video_root" else p.is_file()
            if not ok:
                raise ValueError(f"dataset {self.name!r}: {field_name} {p} does not exist")
        return self


class RankingHeadConfig(StrictModel):
    """Sultani et al.'s ranking MIL on frozen segment features (defaults: their public code)."""

    iterations: int = Field(20_000, ge=1, description="Adagrad steps")
    bags_per_side: int = Field(30, ge=1, description="anomalous and normal bags per step")
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(1e-3, ge=0.0, description="L2 on every layer's weights")
    dropout: float = Field(0.6, ge=0.0, lt=1.0)
    smoothness: float = Field(8e-5, ge=0.0)
    sparsity: float = Field(8e-5, ge=0.0)


class TopkHeadConfig(StrictModel):
    """Lv et al.'s top-k MIL cross-entropy, fine-tuning the video-text model (Ray Train)."""

    k: int = Field(1, ge=1, description="segments per video in the loss")
    smoothness: float = Field(0.01, ge=0.0)
    sparsity: float = Field(0.001, ge=0.0)
    epochs: int = Field(5, ge=1, description="passes over the anomalous training videos")
    bags_per_side: int = Field(4, ge=1, description="anomalous and normal videos per global batch")
    lr: float = Field(8e-6, gt=0, description="X-CLIP's base LR (its new modules get 10x)")
    warmup_epochs: float = Field(1.0, ge=0.0)
    lr_min_ratio: float = Field(0.01, ge=0.0, le=1.0)
    weight_decay: float = Field(0.001, ge=0.0)
    augment: bool = Field(False, description="random crops and flips per video (the segments share them)")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP)")
    use_gpu: bool = False
    cpus_per_worker: float | None = Field(None, gt=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    max_failures: int = Field(2, ge=0)


class AnomalyConfig(StrictModel):
    """Weakly supervised anomaly detection (``task: anomaly``; the paper's Table 5).

    Every video is a bag of ``num_segments`` segments over ``max(1, frames // clip_len)`` clip
    units; each segment is seen as one clip of the video-text model's frame count. ``head``
    chooses the MIL head: ``ranking`` (Sultani et al.: a scorer on frozen segment features) or
    ``topk_ce`` (Lv et al.'s MIL baseline, which fine-tunes the model; the paper's MIL row).
    """

    dataset: AnomalyDatasetConfig
    head: Literal["ranking", "topk_ce"] = "topk_ce"
    num_segments: int = Field(32, ge=1)
    clip_len: int = Field(16, ge=1, description="frames per clip unit (16: the reference's C3D clips)")
    class_texts: list[str] | None = Field(
        None, description="texts of the normal and anomaly classes the top-k head scores segments against "
        "(normal first unless normal_class says otherwise); default: the prompts' class names")
    normal_class: str | None = Field(None, description="which class text is normal (default: the first)")
    ranking: RankingHeadConfig = RankingHeadConfig()
    topk_ce: TopkHeadConfig = TopkHeadConfig()
    pool: ActorPoolConfig = ActorPoolConfig(batch_size=4)

    @model_validator(mode="after")
    def _normal_is_a_class(self) -> AnomalyConfig:
        if self.class_texts is not None:
            if len(self.class_texts) < 2 or len(set(self.class_texts)) != len(self.class_texts):
                raise ValueError("class_texts: at least two distinct texts (normal and an anomaly)")
            if self.normal_class is not None and self.normal_class not in self.class_texts:
                raise ValueError(f"normal_class {self.normal_class!r} is not one of class_texts")
        return self


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


class ExperimentConfig(StrictModel):
    name: str = "experiment"
    task: Literal["zero_shot", "few_shot", "base_to_novel", "long_tail", "anomaly"] = Field(
        "zero_shot", description="the evaluation task's recipe (ray_pipeline/tasks/)")
    seed: int = 0
    cache_dir: str = Field(
        "~/.cache/ray_pipeline", description="built artefacts shared across runs (world data, models)"
    )
    data_dir: str | None = Field(
        None, description="where prompts/generate/score rows and clips live (default: the run "
        "directory); sweeps point every trial at one shared data_dir so work is reused by row id"
    )
    ray: RayConfig = RayConfig()
    mlflow: MlflowConfig = MlflowConfig()
    prompts: PromptsConfig = PromptsConfig()
    generate: GenerateConfig = GenerateConfig()
    score: ScoreConfig = ScoreConfig()
    world: WorldConfig = WorldConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    few_shot: FewShotConfig | None = None
    base_to_novel: BaseToNovelConfig | None = None
    long_tail: LongTailConfig | None = None
    anomaly: AnomalyConfig | None = None

    @model_validator(mode="after")
    def _task_section(self) -> ExperimentConfig:
        for task in ("few_shot", "base_to_novel", "long_tail", "anomaly"):
            if self.task == task and getattr(self, task) is None:
                raise ValueError(f"task {task} needs a {task}: section (its data and fine-tuning)")
        if self.task == "anomaly" and self.train.model != "xclip":
            raise ValueError(f"task anomaly trains X-CLIP (train.model: xclip), got {self.train.model!r}")
        return self

    def resolved_cache_dir(self) -> Path:
        return Path(os.path.expanduser(self.cache_dir))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a","b","c"], value parsed as YAML, so 8 is an int and [1,2] a list)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {exc}") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def format_validation_error(exc: ValidationError, source: str, overrides: list[str]) -> str:
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        origin = ""
        for o in overrides:
            if o.split("=", 1)[0].strip() == field:
                origin = f" (from --set {o})"
        lines.append(f"  {source}: {field}: {msg}; got {err.get('input')!r}{origin}")
    return "\n".join(lines)


def read_yaml_mapping(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file: ``{}``); ``what`` names it in errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    loaded = loaded or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(loaded).__name__}")
    return loaded


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load and validate an experiment YAML (``None``: defaults) with dotted overrides."""
    overrides = list(overrides or [])
    source = str(path) if path is not None else "<defaults>"
    data = read_yaml_mapping(path, "config") if path is not None else {}
    data = apply_overrides(data, overrides)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, overrides)) from None
