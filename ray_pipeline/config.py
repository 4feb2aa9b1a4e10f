"""Typed experiment configuration.

One YAML file in ``experiments/`` describes an experiment; ``--set dotted.key=value`` overrides
any field. Everything is validated here, before any Ray work starts, and every error names the
file and the field it came from.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

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


class CogVideoXConfig(StrictModel):
    """diffusers CogVideoXPipeline settings; defaults are the paper's (CogVideoX-2B, 50 steps)."""

    model: str = "THUDM/CogVideoX-2b"
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    num_inference_steps: int = Field(50, ge=1)
    num_frames: int = Field(49, ge=1)
    height: int = Field(480, ge=8)
    width: int = Field(720, ge=8)
    guidance_scale: float = Field(6.0, ge=0)
    scheduler: Literal["ddim", "dpm"] = "ddim"
    use_dynamic_cfg: bool = False
    cpu_offload: Literal["none", "model", "sequential"] = "none"
    vae_slicing: bool = False
    vae_tiling: bool = False
    max_sequence_length: int = Field(226, ge=1, description="T5 tokens; CogVideoX-2B/5B use 226")
    fps: int = Field(8, ge=1)

    @field_validator("num_frames")
    @classmethod
    def _frames_8n_plus_1(cls, v: int) -> int:
        # CogVideoX's VAE compresses time by 4 and the 2B/5B transformers need 8N+1 frames.
        if (v - 1) % 4 != 0:
            raise ValueError(f"num_frames must be 4N+1 (CogVideoX: 8N+1 for 2B/5B), got {v}")
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
    backend: Literal["cogvideox", "procedural"] = "procedural"
    clips_per_class: int = Field(128, ge=1)
    pool: ActorPoolConfig = ActorPoolConfig()
    cogvideox: CogVideoXConfig = CogVideoXConfig()
    procedural: ProceduralConfig = ProceduralConfig()
    weights_cache: str | None = Field(
        None, description="HF cache dir shared by all actors (HF_HOME); default: the environment's"
    )

    def backend_config(self) -> CogVideoXConfig | ProceduralConfig:
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
    """Sizes of the procedural world's datasets (passed to ``ensure_world_datasets``)."""

    sizes: dict[str, int] = Field(default_factory=dict)


class TrainConfig(StrictModel):
    """Training a video-text model with Ray Train on generated (and optionally real) clips."""

    model: Literal["tcclip", "vificlip"] = "tcclip"
    backbone: str = Field("openai/clip-vit-base-patch16", description="hub id, path or world:clip")
    model_options: dict[str, Any] = Field(default_factory=dict)
    # synthetic: generated clips only (the paper's zero-shot); source_synthetic: plus the source
    # dataset's train split; synthetic_then_real: pre-train on generated, fine-tune on `real`.
    recipe: Literal["synthetic", "source_synthetic", "synthetic_then_real"] = "synthetic"
    source: DatasetConfig | None = None
    real: DatasetConfig | None = None
    loss: Literal["ce", "ls", "uw", "uf", "ul"] = "ul"
    w: float = Field(0.3, ge=0.0, le=1.0, description="UL/UW weight: eps_i = w * u_i")
    epsilon: float = Field(0.1, ge=0.0, lt=1.0, description="LS's fixed smoothing")
    uf_drop_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    uncertainty_norm: Literal["minmax", "logk"] = "minmax"
    epochs: int = Field(10, ge=1)
    finetune_epochs: int = Field(5, ge=1)
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
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    max_failures: int = Field(2, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _recipe_inputs(self) -> TrainConfig:
        if self.recipe == "source_synthetic" and self.source is None:
            raise ValueError("recipe source_synthetic needs train.source (a dataset with a train split)")
        if self.recipe == "synthetic_then_real" and self.real is None:
            raise ValueError("recipe synthetic_then_real needs train.real (a dataset with a train split)")
        if self.batch_size % self.num_workers:
            raise ValueError(f"batch_size {self.batch_size} must divide evenly over {self.num_workers} workers")
        return self


class EvaluateConfig(StrictModel):
    """Zero-shot evaluation: every split scored only against its own class names."""

    datasets: list[DatasetConfig] = Field(default_factory=list)
    num_clips: int = Field(2, ge=1, description="views per video; softmaxes are summed")
    num_frames: int | None = Field(None, ge=1, description="default: train.num_frames")
    baseline: bool = Field(True, description="also evaluate the backbone without generated data")
    pool: ActorPoolConfig = ActorPoolConfig(batch_size=8)
    seed: int = 0


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


class ExperimentConfig(StrictModel):
    name: str = "experiment"
    task: Literal["zero_shot"] = Field("zero_shot", description="the evaluation task's recipe (ray_pipeline/tasks/)")
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
