"""The base-to-novel protocol: the published halves and lists, id maps, HM and its aggregation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ray_pipeline.evaluation.base_to_novel import (
    BASE_SEEDS,
    aggregate_seeds,
    check_half_list,
    class_halves,
    half_label_swaps,
    halves_by_label_order,
    harmonic_mean,
    published_base_to_novel_files,
    read_base_to_novel,
    sample_base_training,
    split_by_halves,
)
from ray_pipeline.evaluation.datasets import HMDB_SWAPS, DatasetError, read_split_list
from tests.helpers import shared_path

SPLITS = shared_path("data", "vifi-clip-splits")
needs_splits = pytest.mark.skipif(not SPLITS.is_dir(), reason="../shared/data/vifi-clip-splits not present")

# evaluation-protocols.md §3: base / novel classes and base_val / novel_val sizes.
PUBLISHED = {"hmdb51": ("hmdb_splits", 51, 26, 25, 780, 750), "ucf101": ("ucf_splits", 101, 51, 50, 2088, 1695)}


@needs_splits
@pytest.mark.parametrize("dataset", sorted(PUBLISHED))
def test_published_halves_cover_split1_test_and_seeds_hold_16_shots(dataset):
    folder, n_full, n_base, n_novel, n_base_val, n_novel_val = PUBLISHED[dataset]
    files = published_base_to_novel_files(SPLITS, dataset)
    val1 = read_split_list(SPLITS / "datasets_splits" / folder / "val1.txt", n_full)
    base_train = None
    seeds = {}
    for seed in BASE_SEEDS:
        data = read_base_to_novel(files, seed)  # checks 16 per base class, no tested video, halves disjoint
        halves = data.halves
        assert (len(halves.names), len(halves.base), len(halves.novel)) == (n_full, n_base, n_novel)
        assert len(data.train) == 16 * n_base
        assert np.bincount([y for _, y in data.train], minlength=n_base).tolist() == [16] * n_base
        assert (len(data.base_val), len(data.novel_val)) == (n_base_val, n_novel_val)
        # base and novel are disjoint and together are split-1 test, each video under the mapped id.
        assert not {p for p, _ in data.base_val} & {p for p, _ in data.novel_val}
        assert {p for p, _ in data.base_val} | {p for p, _ in data.novel_val} == {p for p, _ in val1}
        check_half_list(data.base_val, val1, halves, "base", source="base_val.txt")
        check_half_list(data.novel_val, val1, halves, "novel", source="novel_val.txt")
        # Cutting val1 by the halves gives exactly the published lists.
        cut = split_by_halves(val1, halves)
        assert sorted(cut["base"]) == sorted(data.base_val) and sorted(cut["novel"]) == sorted(data.novel_val)
        # The 16-shot lists are drawn from split-1 train's base rows (base_train.txt, base ids).
        base_train = base_train or set(read_split_list(files.splits_dir / "base_train.txt", n_base))
        assert set(data.train) <= base_train
        seeds[seed] = {p for p, _ in data.train}
    assert len(seeds[1] & seeds[2]) < 16 * n_base  # three different draws
    if dataset == "hmdb51":
        assert len(seeds[1] & seeds[2]) == 52  # evaluation-protocols.md §3


@needs_splits
def test_hmdb_halves_carry_the_label_swap():
    files = published_base_to_novel_files(SPLITS, "hmdb51")
    data = read_base_to_novel(files, 1)
    halves = data.halves
    assert halves.novel_to_full == tuple(range(25)) and halves.base_to_full == tuple(range(25, 51))
    swaps = half_label_swaps(halves, HMDB_SWAPS)
    assert swaps == {"novel": {20: 21, 21: 20}, "base": {19: 20, 20: 19}}
    # The files put kick videos under novel id 20, which the novel CSV calls "kick ball".
    kick = {y for p, y in data.novel_val if "_kick_" in p and "kick_ball" not in p}
    assert kick == {20} and halves.novel[20] == "kick ball" and halves.novel[swaps["novel"][20]] == "kick"


def test_class_halves_map_ids_through_names_and_reject_bad_halves():
    names = ["a", "b", "c", "d", "e"]
    halves = class_halves(names, ["d", "b"], ["e", "a", "c"])
    assert halves.base_to_full == (3, 1) and halves.novel_to_full == (4, 0, 2)
    assert halves.from_full("novel") == {4: 0, 0: 1, 2: 2}
    rows = [("x", 1), ("y", 4), ("z", 3), ("w", 2)]
    assert split_by_halves(rows, halves) == {"base": [("x", 1), ("z", 0)], "novel": [("y", 0), ("w", 2)]}
    with pytest.raises(DatasetError, match="both base and novel, e.g. 'b'"):
        class_halves(names, ["d", "b"], ["e", "a", "c", "b"])
    with pytest.raises(DatasetError, match="in neither half, e.g. 'c'"):
        class_halves(names, ["d", "b"], ["e", "a"])
    with pytest.raises(DatasetError, match="base class 'f' is not in the full label list"):
        class_halves(names, ["d", "f"], ["e", "a", "c", "b"])
    with pytest.raises(DatasetError, match="crosses the base/novel halves"):
        half_label_swaps(halves, {0: 1, 1: 0})
    with pytest.raises(DatasetError, match=r"novel.txt:2: y has novel id 1 \('a', full id 0\), but full id 4"):
        check_half_list([("w", 2), ("y", 1)], rows, halves, "novel", source="novel.txt")


def test_label_order_halves_are_hmdbs_rule():
    halves = halves_by_label_order(list("abcdefg"))
    assert halves.novel == ("a", "b", "c") and halves.base == ("d", "e", "f", "g")


def test_sample_base_training():
    halves = halves_by_label_order(["a", "b", "c", "d"])  # base c, d
    train = [(f"{c}/{i}", full) for full, c in enumerate("abcd") for i in range(6)]
    rows = sample_base_training(train, halves, seed=1, shots=4)
    assert len(rows) == 8 and np.bincount([y for _, y in rows]).tolist() == [4, 4]
    check_half_list(rows, train, halves, "base", source="drawn")
    assert rows == sample_base_training(train, halves, seed=1, shots=4) != sample_base_training(train, halves, 2, 4)
    with pytest.raises(ValueError, match="base class 'c' has 6 split-1 training videos, fewer than 7"):
        sample_base_training(train, halves, seed=1, shots=7)


def test_harmonic_mean_by_hand_and_published_rows():
    assert harmonic_mean(60.0, 40.0) == pytest.approx(48.0)  # 2·60·40 / 100
    assert harmonic_mean(0.0, 0.0) == 0.0 and harmonic_mean(50.0, 0.0) == 0.0
    # ViFi-CLIP's and TC-CLIP's README rows (evaluation-protocols.md §3): HM of the seed means.
    assert round(harmonic_mean(73.8, 53.3), 1) == 61.9
    assert round(harmonic_mean(76.4, 61.1), 1) == 67.9
    assert round(harmonic_mean(78.9, 63.6), 1) == 70.4
    with pytest.raises(ValueError, match="non-negative"):
        harmonic_mean(-1.0, 3.0)


def test_aggregate_seeds_takes_hm_of_the_seed_means():
    base, novel = {1: 70.0, 2: 80.0, 3: 90.0}, {1: 50.0, 2: 40.0, 3: 60.0}
    s = aggregate_seeds(base, novel, n_boot=20_000, boot_seed=3)
    assert (s.base_mean, s.novel_mean) == (80.0, 50.0)
    assert s.base_std == pytest.approx(np.sqrt(200 / 3)) and s.novel_std == pytest.approx(np.sqrt(200 / 3))
    assert s.hm == pytest.approx(2 * 80 * 50 / 130)  # 61.538..., not the mean of per-seed HMs (61.22)
    assert s.hm != pytest.approx(np.mean([harmonic_mean(base[k], novel[k]) for k in base]))
    # The bootstrap over 3 seeds has 27 equally likely resamples; each is 1/27 = 3.7 % > 2.5 %, so the
    # 95 % percentile interval is [smallest, largest] HM over them.
    hms = [harmonic_mean(np.mean([base[k] for k in r]), np.mean([novel[k] for k in r]))
           for r in itertools.product((1, 2, 3), repeat=3)]
    assert s.hm_ci95 == pytest.approx((min(hms), max(hms)))
    assert aggregate_seeds(base, novel, n_boot=500, boot_seed=5) == aggregate_seeds(base, novel, n_boot=500,
                                                                                   boot_seed=5)
    one = aggregate_seeds({1: 70.0}, {1: 50.0})
    assert one.hm_ci95 is None and one.hm == pytest.approx(2 * 70 * 50 / 120)
    with pytest.raises(ValueError, match="same seeds"):
        aggregate_seeds(base, {1: 50.0, 2: 40.0})
