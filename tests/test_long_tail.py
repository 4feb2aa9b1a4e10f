"""The long-tail protocol: profile, groups, I / head % / few %, mean per-class accuracy, balanced tests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score

from ray_pipeline.evaluation.long_tail import (
    LongTailProfile,
    assign_groups,
    balanced_test,
    long_tail_accuracy,
    long_tail_counts,
    long_tail_stats,
    per_class_accuracy,
    sample_long_tail,
)

# Hand-built: sorted by count, 60 (c1) + 40 (c3) = 100 of 200 reaches 50 % exactly, so c3 crosses the
# line and is Head; c6 has exactly 20 (Few); c4, c2 are Tail.
COUNTS = [5, 60, 25, 40, 30, 12, 20, 8]
GROUPS = ("few", "head", "tail", "head", "tail", "few", "few", "few")


def test_groups_by_hand():
    assert assign_groups(COUNTS).of_class == GROUPS
    # 45 (c1) is 45 %; 19 (c0) crosses the line, so it is Head by share but Few by count: Few wins.
    # Every other class is smaller still, so Tail is empty.
    groups = assign_groups([19, 45, 16, 10, 10])
    assert groups.of_class == ("few", "head", "few", "few", "few") and groups.members("tail") == []
    # Equal counts: class id order decides who is in Head (30 + 30 = 60 % at c2).
    assert assign_groups([10, 30, 30, 30]).of_class == ("few", "head", "head", "tail")
    with pytest.raises(ValueError, match="not all 0"):
        assign_groups([0, 0])


def test_stats_by_hand():
    stats = long_tail_stats(COUNTS, assign_groups(COUNTS))
    assert (stats.num_classes, stats.num_train, stats.n_max, stats.n_min) == (8, 200, 60, 5)
    assert stats.imbalance == 12.0
    assert (stats.head_pct, stats.tail_pct, stats.few_pct) == (25.0, 25.0, 50.0)
    assert (stats.head_classes, stats.tail_classes, stats.few_classes) == (2, 2, 4)
    with pytest.raises(ValueError, match="class 1 has no training samples"):
        long_tail_stats([3, 0], assign_groups([3, 0]))


def test_mean_per_class_accuracy_and_group_means_by_hand():
    groups = assign_groups(COUNTS)
    correct = [4, 3, 2, 1, 0, 4, 2, 1]  # of 4 test videos per class
    y_true, y_pred = [], []
    for c, k in enumerate(correct):
        y_true += [c] * 4
        y_pred += [c] * k + [(c + 1) % 8] * (4 - k)
    acc = long_tail_accuracy(y_true, y_pred, groups)
    assert acc.per_class == (100.0, 75.0, 50.0, 25.0, 0.0, 100.0, 50.0, 25.0)
    assert acc.acc == 53.125  # 425 / 8
    assert acc.head == 50.0  # c1, c3: (75 + 25) / 2
    assert acc.tail == 25.0  # c2, c4: (50 + 0) / 2
    assert acc.few == 68.75  # c0, c5, c6, c7: (100 + 100 + 50 + 25) / 4
    # An empty group is None, not LMR's -1.
    two = long_tail_accuracy([0, 1], [0, 0], assign_groups([19, 45]))
    assert (two.acc, two.head, two.tail, two.few) == (50.0, 0.0, None, 100.0)


def test_per_class_accuracy_matches_sklearn_on_an_unbalanced_test():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 6, size=200))
    per_class = per_class_accuracy(y_true, y_pred, 6)
    np.testing.assert_allclose(per_class, 100 * recall_score(y_true, y_pred, average=None))
    acc = long_tail_accuracy(y_true, y_pred, assign_groups([50, 40, 30, 20, 10, 5]))
    assert acc.acc == pytest.approx(100 * balanced_accuracy_score(y_true, y_pred))
    assert acc.acc != pytest.approx(100 * np.mean(y_true == y_pred))  # not the sample accuracy
    with pytest.raises(ValueError, match="1 classes have no test videos, e.g. class 2"):
        long_tail_accuracy([0, 1], [0, 1], assign_groups([30, 20, 10]))


def test_exponential_profile_by_hand():
    # n_r = 80 · 16^(−r/4): 80, 40, 20, 10, 5 whatever the (seeded) class order.
    profile = LongTailProfile(n_max=80, imbalance=16, seed=3)
    counts = long_tail_counts([100] * 5, profile)
    assert sorted(counts.tolist(), reverse=True) == [80, 40, 20, 10, 5]
    assert counts.tolist() == long_tail_counts([100] * 5, profile).tolist()
    orders = {tuple(long_tail_counts([100] * 5, LongTailProfile(80, 16, seed=s)).tolist()) for s in range(6)}
    assert len(orders) > 1  # the seed decides which class gets which count
    # Capped by what a class has, never below 1.
    capped = long_tail_counts([3, 3, 3, 3, 3], profile)
    assert capped.tolist() == np.minimum(counts, 3).tolist()
    # HMDB-scale default, 70 · 10^(−r/50): 70, then 66.85 -> 67 (nearest, not floor), ..., 7.
    hmdb = sorted(long_tail_counts([70] * 51, LongTailProfile(70, 10)).tolist(), reverse=True)
    assert hmdb[:2] == [70, 67] and hmdb[-1] == 7 and len(hmdb) == 51
    with pytest.raises(ValueError, match="class 1 has no split-1 training videos"):
        long_tail_counts([5, 0], profile)
    with pytest.raises(ValueError, match="imbalance I must be >= 1"):
        LongTailProfile(10, 0.5)
    assert "16^(-r/(C-1))" in profile.describe() and profile.as_dict()["kind"] == "exponential"


def test_sample_long_tail_draws_the_counts_from_train():
    train = [(f"c{c}/v{i:02d}", c) for c in range(5) for i in range(90)]
    profile = LongTailProfile(n_max=80, imbalance=16, seed=1)
    rows, counts = sample_long_tail(train, 5, profile)
    assert np.bincount([y for _, y in rows], minlength=5).tolist() == counts.tolist()
    assert set(rows) <= set(train) and len(set(rows)) == len(rows)
    assert rows == sorted(rows, key=lambda r: (r[1], r[0]))
    assert sample_long_tail(train, 5, profile)[0] == rows


def test_balanced_test():
    test = [(f"c{c}/v{i}", c) for c, n in enumerate([5, 3, 7]) for i in range(n)]
    rows = balanced_test(test, 3, seed=0)
    assert np.bincount([y for _, y in rows]).tolist() == [3, 3, 3]
    assert set(rows) <= set(test) and [r for r in test if r in set(rows)] == rows  # input order kept
    assert [r for r in rows if r[1] == 1] == [r for r in test if r[1] == 1]
    assert np.bincount([y for _, y in balanced_test(test, 3, per_class=2)]).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="the smallest class has 3"):
        balanced_test(test, 3, per_class=4)
    with pytest.raises(ValueError, match="class 3 has no test videos"):
        balanced_test(test, 4)
