"""The world's protocol datasets (few-shot, base-to-novel, long-tail lists) and the zero-shot sets' stability."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from ray_pipeline.evaluation.base_to_novel import (
    check_half_list,
    halves_by_label_order,
    read_base_to_novel,
    split_by_halves,
    world_base_to_novel_files,
)
from ray_pipeline.evaluation.datasets import read_labels, read_split_list
from ray_pipeline.evaluation.few_shot import read_few_shot, world_few_shot_files
from ray_pipeline.evaluation.long_tail import assign_groups, long_tail_stats
from ray_pipeline.video_io import count_frames, read_frames
from ray_pipeline.world.protocol_datasets import (
    ProtocolDatasetSizes,
    _jobs,
    _write_tables,
    ensure_protocol_dataset,
)
from ray_pipeline.world.render import RealStyle
from ray_pipeline.world.vocabulary import WORLD_CLASS_LISTS

NAME = "world_ucf_fs"
TINY = ProtocolDatasetSizes(train_per_class=8, test_per_class=4, few_shot_ks=(2, 4), base_shots=4,
                            long_tail_n_max=8, long_tail_imbalance=4.0, num_frames=8, size=32)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return ensure_protocol_dataset(tmp_path_factory.mktemp("cache"), NAME, TINY)


def _group(rel: str) -> str:
    return rel.rsplit("_c", 1)[0]


def test_layout_split1_and_videos(root):
    d = root / NAME
    classes = WORLD_CLASS_LISTS["world_ucf"]
    assert read_labels(d / "labels.csv") == classes
    train = read_split_list(d / "splits" / "train1.txt", len(classes))
    test = read_split_list(d / "splits" / "val1.txt", len(classes))
    assert np.bincount([y for _, y in train]).tolist() == [8] * len(classes)
    assert np.bincount([y for _, y in test]).tolist() == [4] * len(classes)  # balanced
    # No group (one person in one place) on both sides of split 1.
    assert not {_group(p) for p, _ in train} & {_group(p) for p, _ in test}
    videos = sorted((d / "videos").rglob("*.mp4"))
    assert [str(v.relative_to(d / "videos")) for v in videos] == sorted(p for p, _ in train + test)
    assert count_frames(str(videos[0])) == 8 and read_frames(str(videos[0]), num_segments=4).shape == (4, 32, 32, 3)
    meta = json.loads((root / "world.json").read_text())
    assert meta["videos"] == 12 * len(classes) and meta["sizes"]["train_per_class"] == 8


def test_few_shot_lists(root):
    d = root / NAME
    for k in (2, 4):
        data = read_few_shot(world_few_shot_files(d, k), k)  # K per class, no test video, all from train1
        assert len(data.train) == k * len(data.class_names)


def test_base_to_novel_lists(root):
    d = root / NAME
    classes = WORLD_CLASS_LISTS["world_ucf"]
    train = read_split_list(d / "splits" / "train1.txt", len(classes))
    test = read_split_list(d / "splits" / "val1.txt", len(classes))
    files = world_base_to_novel_files(d)
    drawn = {}
    for seed in (1, 2, 3):
        data = read_base_to_novel(files, seed, shots=4)  # 4 per base class, none tested, halves disjoint
        assert data.halves == halves_by_label_order(classes)
        assert len(data.halves.base) == 12 and len(data.halves.novel) == 12
        check_half_list(data.train, train, data.halves, "base", source=f"fs_base_s{seed}_train.txt")
        check_half_list(data.base_val, test, data.halves, "base", source="base_val.txt")
        check_half_list(data.novel_val, test, data.halves, "novel", source="novel_val.txt")
        assert not {p for p, _ in data.base_val} & {p for p, _ in data.novel_val}
        assert {p for p, _ in data.base_val} | {p for p, _ in data.novel_val} == {p for p, _ in test}
        drawn[seed] = data.train
    assert drawn[1] != drawn[2] != drawn[3]
    base_train = read_split_list(d / "base2novel" / "base_train.txt", 12)
    assert base_train == split_by_halves(train, halves_by_label_order(classes))["base"]


def test_long_tail_list_follows_the_stated_profile(root):
    d = root / NAME
    c = len(WORLD_CLASS_LISTS["world_ucf"])
    info = json.loads((d / "info.json").read_text())["long_tail"]
    rows = read_split_list(d / "splits" / "train1_long_tail.txt", c)
    train = read_split_list(d / "splits" / "train1.txt", c)
    counts = np.bincount([y for _, y in rows], minlength=c)
    assert set(rows) <= set(train) and counts.tolist() == info["counts"]
    # n_r = round(8 · 4^(−r/23)) over the ranks r = 0..23, in some seeded class order (no cap: 8 available).
    stated = [int(np.floor(8 * 4 ** (-r / (c - 1)) + 0.5)) for r in range(c)]
    assert sorted(counts.tolist(), reverse=True) == stated
    profile = info["profile"]
    assert (profile["kind"], profile["n_max"], profile["imbalance"], profile["seed"]) == ("exponential", 8, 4.0, 0)
    groups = assign_groups(counts)
    assert info["groups"] == list(groups.of_class)
    stats = long_tail_stats(counts, groups)
    assert info["stats"]["imbalance"] == stats.imbalance == 4.0  # 8 / 2
    assert stats.few_pct == 100.0  # every class has <= 20 at this tiny size
    balanced = read_split_list(d / "splits" / "val1_balanced.txt", c)
    assert balanced == read_split_list(d / "splits" / "val1.txt", c)  # val1 is balanced by construction


def test_cached_by_content(root, tmp_path):
    cache = root.parent.parent
    t0 = time.time()
    assert ensure_protocol_dataset(cache, NAME, TINY) == root
    assert time.time() - t0 < 1.0
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".tmp-")]
    other = ensure_protocol_dataset(tmp_path, NAME, ProtocolDatasetSizes(
        train_per_class=4, test_per_class=1, few_shot_ks=(2,), base_shots=2, long_tail_n_max=4, num_frames=4,
        size=16))
    assert other.name != root.name and (other / NAME / "info.json").is_file()


@pytest.mark.parametrize(("name", "num_classes", "groups"), [("world_hmdb_fs", 29, (8, 6, 15)),
                                                               ("world_ucf_fs", 24, (7, 4, 13))])
def test_default_sizes_lists(tmp_path, name, num_classes, groups):
    # The lists at the default sizes, written without rendering a video.
    sizes = ProtocolDatasetSizes()
    _, train, test = _jobs(name, sizes, RealStyle())
    info = _write_tables(tmp_path, name, sizes, train, test)
    d = tmp_path / name
    for k in (2, 4, 8, 16):
        assert len(read_few_shot(world_few_shot_files(d, k), k).train) == k * num_classes
    for seed in (1, 2, 3):
        base_classes = num_classes - num_classes // 2
        assert len(read_base_to_novel(world_base_to_novel_files(d), seed).train) == 16 * base_classes
    stats = info["long_tail"]["stats"]
    assert (stats["n_max"], stats["n_min"], stats["imbalance"]) == (60, 6, 10.0)
    assert (stats["head_classes"], stats["tail_classes"], stats["few_classes"]) == groups
    assert len(train) == 60 * num_classes and len(test) == 10 * num_classes


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="lists need 16 training videos per class"):
        ProtocolDatasetSizes(train_per_class=12)
    with pytest.raises(ValueError, match="unknown protocol dataset 'world_k400_fs'"):
        ensure_protocol_dataset("/nonexistent", "world_k400_fs")
    assert ProtocolDatasetSizes(few_shot_ks=[2, 4]) == ProtocolDatasetSizes(few_shot_ks=(2, 4))  # YAML lists


def test_zero_shot_datasets_are_unchanged():
    # The zero-shot datasets' videos (path, scene, seed) and split tables at the default sizes, hashed
    # with main's world/datasets.py before the protocol datasets were added: they must not move.
    from ray_pipeline.world.datasets import WorldDatasetSizes, _source_jobs, _target_jobs
    from ray_pipeline.world.vocabulary import TARGET_DATASETS

    h = hashlib.sha256()
    sizes, style = WorldDatasetSizes(), RealStyle()
    for jobs, splits in [_source_jobs(sizes, style)] + [_target_jobs(n, sizes, style) for n in TARGET_DATASETS]:
        for j in jobs:
            h.update(repr((j.rel, j.dataset, j.scene, j.seed)).encode())
        h.update(repr(sorted(splits.items())).encode())
    assert h.hexdigest() == "bf98fdfd70a3e6be43429a716b3a5d756cf81ef4aa10db2ceed923c0ff60929b"
