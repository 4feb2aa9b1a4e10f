"""Test helpers shared across test modules."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.console import Console
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore

TINY_CLASSES = ["brush hair", "wave", "run", "jump"]
S3_BUCKET = "ray-pipeline-test"  # created by the s3_endpoint fixture


def tiny_cogvideox_config(model_dir: str, clip_model: str, **generate_overrides) -> ExperimentConfig:
    data = {
        "name": "tiny",
        "ray": {"num_cpus": 2},
        "prompts": {"classes": TINY_CLASSES},
        "generate": {
            "backend": "cogvideox", "clips_per_class": 3,
            "pool": {"actors": 1, "batch_size": 2},
            "cogvideox": {"model": model_dir, "dtype": "float32", "num_inference_steps": 2,
                          "num_frames": 9, "height": 16, "width": 16, "max_sequence_length": 16},
            **generate_overrides,
        },
        "score": {"model": clip_model, "num_frames": 4, "pool": {"actors": 1, "batch_size": 4}},
    }
    return ExperimentConfig.model_validate(data)


def quiet_console() -> Console:
    """A console whose lines go to a buffer (``console.stream.getvalue()``)."""
    return Console(io.StringIO())


class _LinesTo(io.StringIO):
    """A stream handing every complete line to ``log``."""

    def __init__(self, log) -> None:
        super().__init__()
        self.log = log

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line:
                self.log(line)
        return len(text)


def console_to(log) -> Console:
    """A console whose lines go to ``log(line)``."""
    return Console(_LinesTo(log))


def run_prompts(cfg: ExperimentConfig, store: RunStore, log=None) -> dict:
    """``ray-pipeline prompts``: the stage's stats; its lines go to ``log``."""
    return run_stage(cfg, store, "prompts", console_to(log) if log else None)


def pipeline(cfg: ExperimentConfig, store: RunStore, console: Console | None = None, **kwargs):
    from ray_pipeline.pipeline import Pipeline

    return Pipeline(cfg, store, console or quiet_console(), **kwargs)


def run_stage(cfg: ExperimentConfig, store: RunStore, name: str, console: Console | None = None) -> dict:
    """Run one stage as ``ray-pipeline <name>`` does (earlier stages resolved); returns its stats."""
    return pipeline(cfg, store, console).run([name], until=name)[name].stats


def stage_rows(cfg: ExperimentConfig, store: RunStore, name: str) -> pa.Table:
    """This config's rows of stage ``name`` as stored (nothing is run)."""
    return pipeline(cfg, store).run([], until=name)[name].rows


def prompt_rows(cfg: ExperimentConfig, store: RunStore) -> pa.Table:
    return stage_rows(cfg, store, "prompts")


def stage_context(cfg: ExperimentConfig, store: RunStore, name: str):
    """The context a stage named ``name`` runs with in ``Pipeline(cfg, store)``."""
    p = pipeline(cfg, store)
    return p.context(p.build(name))


def clip_rows(cfg: ExperimentConfig, store: RunStore, prompts: pa.Table) -> pa.Table:
    """The generate stage's planned rows for these prompt rows (clip ids and video locations)."""
    from ray_pipeline.stages.base import StageResult

    p = pipeline(cfg, store)
    stage = p.build("generate")
    return stage.plan(p.context(stage), {"prompts": StageResult(prompts)})


# Sizes each tiny diffusers pipeline (ray_pipeline/tiny/) runs at: (height = width, frames).
TINY_VIDEO_SIZES = {"cogvideox": (16, 9), "wan": (16, 9), "ltx": (32, 9)}


def tiny_video_config(backend: str, model_dir: str, **overrides):
    """A diffusers backend's config for its tiny pipeline: float32, 2 steps, 16 text tokens."""
    from ray_pipeline.config import CogVideoXConfig, LTXConfig, WanConfig

    size, frames = TINY_VIDEO_SIZES[backend]
    cls = {"cogvideox": CogVideoXConfig, "wan": WanConfig, "ltx": LTXConfig}[backend]
    data = {"model": model_dir, "dtype": "float32", "num_inference_steps": 2, "num_frames": frames,
            "height": size, "width": size, "max_sequence_length": 16, "negative_prompt": "", **overrides}
    return cls.model_validate(data)


def write_prompt_rows(store: RunStore, cfg: ExperimentConfig) -> pa.Table:
    """Run the real prompts stage (offline template writer) and return this config's rows."""
    run_stage(cfg, store, "prompts")
    return prompt_rows(cfg, store)


def write_synthetic_clips(store: RunStore, cfg: ExperimentConfig, *, frames: int = 8, size: int = 32,
                          seed: int = 0) -> pa.Table:
    """Prompts (template writer), then generate + score manifests with simple class-dependent
    clips standing in for a generator: class k is a bright bar moving at speed k+1, so the classes
    are learnable. Entropies are random in [0.05, 1.3]."""
    import numpy as np

    from ray_pipeline.video_io import write_mp4

    rng = np.random.default_rng(seed)
    rows = clip_rows(cfg, store, write_prompt_rows(store, cfg)).to_pylist()
    scorer = pipeline(cfg, store).build("score").scorer_id()  # the id this config's score rows carry
    score_rows = []
    for row in rows:
        k, i = row["class_index"], row["clip_index"]
        clip = rng.integers(0, 40, (frames, size, size, 3), dtype=np.uint8)
        for t in range(frames):
            x = (3 * t * (k + 1) + i) % size
            clip[t, :, x:x + 4, k % 3] = 255
        write_mp4(clip, row["video_uri"])
        row["num_frames"] = frames
        score_rows.append({"score_id": row_id("score", clip_id=row["clip_id"], scorer=scorer),
                           "clip_id": row["clip_id"], "class_index": k, "class_name": row["class_name"],
                           "entropy": float(rng.uniform(0.05, 1.3)), "scorer": scorer})
    table = pa.Table.from_pylist(rows)
    store.manifest("generate", "clip_id").write_part(table)
    store.manifest("score", "score_id").write_part(pa.Table.from_pylist(score_rows))
    return table


def write_tiny_dataset(root, classes: list[str], per_class: int, *, broken: bool = False,
                       seed: int = 1) -> dict:
    """A dataset in the real layout (class folders of mp4s, two split lists, a label CSV), as a
    ``DatasetConfig`` dict; ``broken`` adds an unreadable video to each split."""
    from pathlib import Path

    import numpy as np

    from ray_pipeline.video_io import write_mp4

    root = Path(root)
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "labels.csv").write_text("id,name\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes)))
    lines = []
    for k, c in enumerate(classes):
        for j in range(per_class):
            rel = f"videos/{c.replace(' ', '_')}/v{j}.mp4"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            write_mp4(rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), str(root / rel))
            lines.append(f"{rel} {k}")
    extra = []
    if broken:
        (root / "videos" / "broken.mp4").write_bytes(b"not a video")
        extra = ["videos/broken.mp4 0"]
    for i in (1, 2):
        (root / f"val{i}.txt").write_text("\n".join(lines[i - 1::2] + extra) + "\n")
    return {"name": "tiny", "root": str(root), "splits": [{"list": f"val{i}.txt", "labels": "labels.csv"}
                                                           for i in (1, 2)]}


def shared_path(*parts: str) -> Path:
    """``../shared/<parts>`` of the nearest ancestor that has one: the main checkout's sibling, and
    also found from a git worktree nested deeper (``/work/wt/<name>`` finds ``/work/shared``).
    Returns the first candidate when none exists, so callers can skip on ``.exists()``."""
    here = Path(__file__).resolve().parent
    candidates = [p / "shared" / Path(*parts) for p in here.parents]
    return next((c for c in candidates if c.exists()), candidates[1])


def fake_sweep(root: Path, summaries: list[dict]) -> None:
    """A finished sweep's folder as the report reads it: one trial per summary (seed = its index)."""
    records = []
    for i, summary in enumerate(summaries):
        key = f"k{i:03d}"
        records.append({"key": key, "index": i, "variant": {"train.seed": i}, "config": {}})
        d = root / "trials" / key
        d.mkdir(parents=True)
        (d / "attempts.jsonl").write_text('{"started": 0}\n')
        (d / "summary.json").write_text(json.dumps(summary))
        (d / "trial_result.json").write_text(json.dumps({"trial_seconds": 1.0}))
    (root / "trials.json").write_text(json.dumps(records))
    (root / "sweep.json").write_text(json.dumps({"name": root.name, "source": "x.yaml",
                                                 "axes": [{"path": "train.seed", "kind": "grid", "spec": [0, 1, 2]}]}))
