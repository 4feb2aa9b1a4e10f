"""The few-shot protocol's lists (published and drawn) and the epoch-selection rule."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ray_pipeline.evaluation.datasets import DatasetError, read_split_list
from ray_pipeline.evaluation.few_shot import (
    FEW_SHOT_KS,
    check_few_shot_list,
    few_shot_list_name,
    published_few_shot_files,
    read_few_shot,
    sample_few_shot,
)
from ray_pipeline.evaluation.selection import select_epoch
from tests.helpers import shared_path

SPLITS = shared_path("data", "vifi-clip-splits")
needs_splits = pytest.mark.skipif(not SPLITS.is_dir(), reason="../shared/data/vifi-clip-splits not present")

# evaluation-protocols.md §2: K × C lines per published list.
PUBLISHED_SIZES = {"hmdb51": (51, [102, 204, 408, 816]), "ucf101": (101, [202, 404, 808, 1616])}


@needs_splits
@pytest.mark.parametrize("dataset", sorted(PUBLISHED_SIZES))
def test_published_lists_have_k_per_class_and_no_test_video(dataset):
    num_classes, sizes = PUBLISHED_SIZES[dataset]
    lists = {}
    for k, size in zip(FEW_SHOT_KS, sizes, strict=True):
        data = read_few_shot(published_few_shot_files(SPLITS, dataset, k), k)  # checks K per class, no test video
        assert len(data.class_names) == num_classes and len(data.train) == size == k * num_classes
        assert np.bincount([y for _, y in data.train], minlength=num_classes).tolist() == [k] * num_classes
        assert not {p for p, _ in data.train} & {p for p, _ in data.test}
        lists[k] = {p for p, _ in data.train}
    # One fixed draw per K, not nested (the 2-shot set is not inside the 4-shot set).
    assert not lists[2] <= lists[4]


@needs_splits
def test_published_ucf_lists_come_from_split1_train_groups():
    # UCF-101's split 1 tests groups 1-7 and trains on 8-25: every few-shot video is a training group's.
    for k in FEW_SHOT_KS:
        rows = read_split_list(published_few_shot_files(SPLITS, "ucf101", k).train, 101)
        groups = {int(re.search(r"_g(\d+)_c\d+", p).group(1)) for p, _ in rows}
        assert min(groups) >= 8 and max(groups) <= 25


@needs_splits
def test_published_hmdb_lists_come_from_split1_train():
    # ViFi's base2novel base_train.txt is split-1 train of HMDB's base classes (full ids 25-50, base ids
    # 0-25): every few-shot video of those classes must be one of its videos.
    base_train = read_split_list(SPLITS / "datasets_splits" / "base2novel_splits" / "hmdb_splits" / "base_train.txt",
                                 26)
    split1_base = {(p, y + 25) for p, y in base_train}
    for k in FEW_SHOT_KS:
        rows = read_split_list(published_few_shot_files(SPLITS, "hmdb51", k).train, 51)
        base_rows = {(p, y) for p, y in rows if y >= 25}
        assert len(base_rows) == 26 * k and base_rows <= split1_base


def test_check_names_the_file_and_the_fault():
    rows = [("a1", 0), ("a2", 0), ("b1", 1), ("b2", 1)]
    check_few_shot_list(rows, 2, 2, source="fs.txt", test=[("t", 0)], split1_train=rows + [("a3", 0)])
    with pytest.raises(DatasetError, match=r"fs.txt: expected 2 videos per class, class 1 has 1"):
        check_few_shot_list(rows[:3], 2, 2, source="fs.txt")
    with pytest.raises(DatasetError, match=r"fs.txt: .*more than once, e.g. a1"):
        check_few_shot_list([("a1", 0), ("a1", 0), ("b1", 1), ("b2", 1)], 2, 2, source="fs.txt")
    with pytest.raises(DatasetError, match=r"fs.txt: 1 training videos are in the test list, e.g. b2"):
        check_few_shot_list(rows, 2, 2, source="fs.txt", test=[("b2", 1)])
    with pytest.raises(DatasetError, match=r"not in split-1 train with that label, e.g. b1 \(label 1\)"):
        check_few_shot_list(rows, 2, 2, source="fs.txt", split1_train=[("a1", 0), ("a2", 0), ("b1", 0), ("b2", 1)])


def test_read_few_shot_checks_the_files(tmp_path):
    (tmp_path / "labels.csv").write_text("id,name\n0,run\n1,walk\n")
    (tmp_path / "val1.txt").write_text("t1.avi 0\nt2.avi 1\n")
    (tmp_path / few_shot_list_name(1)).write_text("a.avi 0\nt2.avi 1\n")
    from ray_pipeline.evaluation.few_shot import FewShotFiles

    files = FewShotFiles(train=tmp_path / few_shot_list_name(1), test=tmp_path / "val1.txt",
                         labels=tmp_path / "labels.csv")
    with pytest.raises(DatasetError, match=r"train1_few_shot_1.txt: 1 training videos are in the test list"):
        read_few_shot(files, 1)
    with pytest.raises(ValueError, match="published lists exist for"):
        published_few_shot_files(tmp_path, "k400", 2)


def test_sample_few_shot_draws_k_per_class_from_train():
    train = [(f"c{c}/v{i}.mp4", c) for c in range(3) for i in range(10)]
    rows = sample_few_shot(train, 4, 3, seed=7)
    check_few_shot_list(rows, 4, 3, source="drawn", split1_train=train)
    assert rows == sorted(rows, key=lambda r: (r[1], r[0]))
    assert rows == sample_few_shot(train, 4, 3, seed=7)
    assert rows != sample_few_shot(train, 4, 3, seed=8)
    with pytest.raises(ValueError, match="class 2 has 1 split-1 training videos, fewer than K = 2"):
        sample_few_shot(train[:21], 2, 3, seed=0)


def test_select_epoch_last_by_default_best_on_request():
    # TC-CLIP validates at epochs 0, 10, ..., 49 and reports the best; we default to the last.
    acc = {0: 40.0, 10: 55.0, 20: 61.0, 30: 61.0, 40: 58.0, 49: 57.5}
    last = select_epoch(acc)
    assert (last.epoch, last.value, last.rule) == (49, 57.5, "last")
    best = select_epoch(acc, "best")
    assert (best.epoch, best.value) == (20, 61.0)  # tie with epoch 30 goes to the earlier epoch
    with pytest.raises(ValueError, match="epoch rule 'max'"):
        select_epoch(acc, "max")
    with pytest.raises(ValueError, match="no validated epochs"):
        select_epoch({})
