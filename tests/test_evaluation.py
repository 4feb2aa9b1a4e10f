"""Dataset adapters on the real split files, and the evaluate stage end to end at tiny scale."""

import json

import numpy as np
import pytest

from ray_pipeline.config import DatasetConfig, ExperimentConfig, SplitConfig
from ray_pipeline.evaluation.datasets import HMDB_SWAPS, DatasetError, load_splits, read_labels, read_split_list
from ray_pipeline.runstore import RunStore
from tests.helpers import shared_path, write_tiny_dataset

SPLITS = shared_path("data", "vifi-clip-splits")
needs_splits = pytest.mark.skipif(not SPLITS.is_dir(), reason="../shared/data/vifi-clip-splits not present")


@needs_splits
def test_reads_the_real_hmdb_and_k600_files():
    names = read_labels(SPLITS / "labels" / "hmdb_51_labels.csv")
    assert len(names) == 51 and names[0] == "brush hair"
    for i in (1, 2, 3):
        entries = read_split_list(SPLITS / "datasets_splits" / "hmdb_splits" / f"val{i}.txt", 51)
        assert len(entries) == 1530
        assert np.bincount([y for _, y in entries], minlength=51).tolist() == [30] * 51
    # The label-id swap: files put kick videos under 20, the CSV calls 20 "kick ball".
    entries = read_split_list(SPLITS / "datasets_splits" / "hmdb_splits" / "val1.txt", 51)
    kick_labels = {y for p, y in entries if "_kick_" in p and "kick_ball" not in p}
    assert kick_labels == {20} and names[20] == "kick ball" and HMDB_SWAPS[20] == 21
    for i in (1, 2, 3):
        k600 = read_labels(SPLITS / "labels" / f"ZS_split{i}_K600.csv")
        assert len(k600) == 160
        path = SPLITS / "datasets_splits" / "k600_splits" / f"ZS_split{i}_K600_eval.txt"
        assert len(read_split_list(path, 160)) > 13000


def test_bad_files_name_file_and_line(tmp_path):
    (tmp_path / "labels.csv").write_text("id,name\n0,a\n2,b\n")
    with pytest.raises(DatasetError, match="without gaps"):
        read_labels(tmp_path / "labels.csv")
    (tmp_path / "list.txt").write_text("a.avi 0\nb.avi seven\n")
    with pytest.raises(DatasetError, match=r"list.txt:2"):
        read_split_list(tmp_path / "list.txt", 3)
    (tmp_path / "list.txt").write_text("a b c.avi 5\n")
    with pytest.raises(DatasetError, match="outside 0..2"):
        read_split_list(tmp_path / "list.txt", 3)
    assert read_split_list(tmp_path / "list.txt", 6) == [("a b c.avi", 5)]


def test_missing_dataset_path_fails_at_validation(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        DatasetConfig(name="hmdb51", root=str(tmp_path), splits=[SplitConfig(list="val1.txt", labels="l.csv")])


@pytest.mark.integration
def test_evaluate_stage_summary_matches_its_rows(tmp_path, ray_cluster, tiny_clip):
    from scipy import stats as scipy_stats

    from tests.helpers import run_stage

    classes = ["brush hair", "wave", "run", "jump", "walk", "clap"]
    ds = DatasetConfig(**write_tiny_dataset(tmp_path / "data", classes, per_class=3, broken=True), top5=True)
    cfg = ExperimentConfig.model_validate({
        "ray": {"num_cpus": 2}, "train": {"backbone": tiny_clip, "num_frames": 4},
        "evaluate": {"datasets": [ds.model_dump()], "num_clips": 2, "pool": {"batch_size": 4}}})
    store = RunStore(tmp_path / "run")
    stats = run_stage(cfg, store, "evaluate")
    rows = store.manifest("evaluate", "eval_id").read().to_pylist()
    assert len(rows) == stats["rows_new"] == len(load_splits(ds, cfg)[0]) + len(load_splits(ds, cfg)[1])
    summary = json.loads(store.read_text("summary.json"))
    assert summary["task"] == "zero_shot" and [r["role"] for r in summary["rows"]] == ["backbone"]
    entry = summary["rows"][0]["datasets"]["tiny"]
    assert entry["corrupt_videos"] == 2 and entry["top1"]["n"] == 2
    per_split = []
    for split in ("val1", "val2"):
        ok = [r for r in rows if r["split"] == split and r["error"] is None]
        per_split.append(100.0 * sum(r["top1"] for r in ok) / len(ok))
        assert all(r["top5"] or not r["top1"] for r in ok)
    top1 = entry["top1"]
    assert top1["mean"] == pytest.approx(np.mean(per_split))
    assert top1["std"] == pytest.approx(np.std(per_split))  # population std, as TC-CLIP
    assert top1["per_split"] == pytest.approx(dict(zip(("val1", "val2"), per_split)))
    if np.std(per_split) > 0:
        low, high = scipy_stats.t.interval(0.95, df=1, loc=np.mean(per_split), scale=scipy_stats.sem(per_split))
        assert top1["ci95"] == pytest.approx([low, high])
    assert "top5" in entry
    assert "± " in store.read_text("summary.md")
    again = run_stage(cfg, store, "evaluate")
    assert again["rows_new"] == 0
