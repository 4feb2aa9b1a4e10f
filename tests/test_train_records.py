"""Training records do not depend on the order in which generation batches finished."""

import pyarrow as pa

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.runstore import RunStore
from tests.helpers import TINY_CLASSES, pipeline, write_synthetic_clips


def synthetic_records(cfg, store):
    """The train stage's generated-clip records for this config, from the resolved upstream rows."""
    p = pipeline(cfg, store)
    results = p.run([], until="score")
    stage = p.build("train")
    return stage.phases(p.context(stage), results)[0].data.as_dict()


def test_records_are_the_same_whatever_order_the_manifest_parts_were_written_in(tmp_path):
    cfg = ExperimentConfig.model_validate({
        "prompts": {"classes": TINY_CLASSES}, "generate": {"backend": "cogvideox", "clips_per_class": 4},
        "train": {"loss": "ul"}})
    store = RunStore(tmp_path / "run")
    clips = write_synthetic_clips(store, cfg, frames=2, size=8)
    before = synthetic_records(cfg, store)
    # The same rows as three batches that finished in another order (two actors, other timing).
    manifest = store.manifest("generate", "clip_id")
    for part in manifest.parts():
        store.fs.delete_file(store.fs_path(part))
    n = clips.num_rows
    for lo, hi in ((2 * n // 3, n), (0, n // 3), (n // 3, 2 * n // 3)):
        manifest.write_part(clips.slice(lo, hi - lo))
    assert manifest.read().column("clip_id").to_pylist() != clips.column("clip_id").to_pylist()
    after = synthetic_records(cfg, store)
    assert after == before
    assert before["clip_ids"] == sorted(before["clip_ids"]) and len(before["videos"]) == n
    assert pa.array(before["uncertainty"]).null_count == 0
