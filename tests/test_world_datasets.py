"""The world's "real" datasets: layout, split files, decoding with decord, caching."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from ray_pipeline.video_io import count_frames, read_frames
from ray_pipeline.world.datasets import ensure_world_datasets, read_labels, read_split
from ray_pipeline.world.vocabulary import ACTION_BY_NAME, SOURCE_DATASET, TARGET_DATASETS, WORLD_CLASS_LISTS

SIZES = dict(source_train_per_class=2, source_val_per_class=1, target_per_class=6, num_frames=12, size=48)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return ensure_world_datasets(tmp_path_factory.mktemp("cache"), **SIZES)


def test_layout_and_labels(root):
    for name in (SOURCE_DATASET, *TARGET_DATASETS):
        d = root / name
        lines = (d / "labels.csv").read_text().splitlines()
        assert lines[0] == "id,name"
        assert read_labels(d) == WORLD_CLASS_LISTS[name]
        assert (d / "info.json").is_file()
        folders = {p.name for p in (d / "videos").iterdir()}
        assert folders == {ACTION_BY_NAME[c].folder for c in WORLD_CLASS_LISTS[name]}
    splits = {p.name for p in (root / SOURCE_DATASET / "splits").iterdir()}
    assert splits == {"train.txt", "val.txt"}
    assert len(read_split(root / SOURCE_DATASET, "train")) == 2 * len(WORLD_CLASS_LISTS[SOURCE_DATASET])


def test_split_files_follow_the_vifi_format(root):
    for name in TARGET_DATASETS:
        d = root / name
        assert {p.name for p in (d / "splits").iterdir()} == {f"{s}{k}.txt" for s in ("train", "val")
                                                               for k in (1, 2, 3)}
        n_classes = len(WORLD_CLASS_LISTS[name])
        all_videos = set()
        tested = []
        for k in (1, 2, 3):
            for line in (d / "splits" / f"val{k}.txt").read_text().splitlines():
                rel, label = line.split(" ")
                assert rel.endswith(".mp4") and "/" in rel and 0 <= int(label) < n_classes
                # The class folder of a video is its label's class.
                assert rel.split("/")[0] == ACTION_BY_NAME[WORLD_CLASS_LISTS[name][int(label)]].folder
            train = {p for p, _ in read_split(d, f"train{k}")}
            val = {p for p, _ in read_split(d, f"val{k}")}
            assert train and val and not train & val
            # No group (person and place) is on both sides of a split.
            group = lambda p: p.name.rsplit("_c", 1)[0]  # noqa: E731
            assert not {group(p) for p in train} & {group(p) for p in val}
            all_videos |= train | val
            tested += list(val)
        assert len(tested) == len(set(tested)) == len(all_videos) == 6 * n_classes  # each tested once
        assert all(p.is_file() for p in all_videos)


def test_videos_decode_with_decord(root):
    from ray_pipeline.world.datasets import WorldDatasetSizes, _target_jobs
    from ray_pipeline.world.render import RealStyle, render_clip

    path, label = read_split(root / "world_hmdb", "val2")[0]
    assert count_frames(str(path)) == 12
    frames = read_frames(str(path), num_segments=4)
    assert frames.dtype == np.uint8 and frames.shape == (4, 48, 48, 3)
    # What decord returns is the rendered clip, up to H.264 at crf 18.
    jobs, _ = _target_jobs("world_hmdb", WorldDatasetSizes(**SIZES), RealStyle())
    job = next(j for j in jobs if path.as_posix().endswith(j.rel))
    clip = render_clip(job.scene, job.seed, 12, 48)
    full = read_frames(str(path))
    assert np.abs(full.astype(np.float32) - clip.astype(np.float32)).mean() < 8


def test_cached_by_content(root, tmp_path):
    cache = root.parent.parent
    t0 = time.time()
    assert ensure_world_datasets(cache, **SIZES) == root
    assert time.time() - t0 < 1.0
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".tmp-")]
    other = ensure_world_datasets(tmp_path, **{**SIZES, "target_per_class": 3, "source_train_per_class": 1})
    assert other.name != root.name
