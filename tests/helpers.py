"""Test helpers shared across test modules."""

from __future__ import annotations

import pyarrow as pa

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore

TINY_CLASSES = ["brush hair", "wave", "run", "jump"]


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


def write_prompt_rows(store: RunStore, classes: list[str], per_class: int) -> pa.Table:
    """A prompts manifest written directly, so generate/score tests don't depend on a writer."""
    rows = []
    for i in range(per_class):
        for k, name in enumerate(classes):
            prompt = f"a person {name} in a park"
            seed = 1000 * k + i
            rows.append({"prompt_id": row_id("prompt", c=name, i=i, p=prompt, s=seed), "class_name": name,
                         "class_index": k, "prompt": prompt, "seed": seed, "clip_index": i})
    table = pa.Table.from_pylist(rows)
    store.manifest("prompts", "prompt_id").write_part(table)
    return table
