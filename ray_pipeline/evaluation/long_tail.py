"""The long-tail protocol (paper Table 4, after Perrett et al., CVPR 2023, "Use Your Head").

A long-tailed training set is drawn from a dataset's split-1 train list with a stated, seeded
profile, and tested on a class-balanced test set. Classes fall into three groups by their
training counts (evaluation-protocols.md §4):

- **Head**: the most populous classes whose cumulative share of the training samples first
  reaches 50 %; the class that crosses the line is Head. Equal counts are ordered by class id.
- **Few**: classes with at most 20 training samples. Few wins over Head.
- **Tail**: every other class.

The benchmark is described by I = n_max / n_min, head % and few % (shares of classes). Overall
accuracy is the mean per-class top-1 accuracy (not the sample accuracy), and each group reports
the mean over its own classes; a group with no classes reports None (LMR's code writes -1).

The profile is exponential, as CIFAR-LT's: the classes are put in a seeded random order and the
class at rank r gets n_r = round(n_max · I^(−r/(C−1))) videos, at least 1 and at most what the
class has in split-1 train. Perrett et al. did not publish how they sampled their subsets, so the
profile is ours; report it with the realised I, head % and few % (``long_tail_stats``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

FEW_MAX = 20  # Perrett et al.: few-shot classes have <= 20 training samples
HEAD_SHARE = 0.5  # Head classes together hold 50 % of the training samples

Group = Literal["head", "tail", "few"]
GROUPS: tuple[Group, ...] = ("head", "tail", "few")
Entry = tuple[str, int]


@dataclass(frozen=True)
class LongTailProfile:
    """An exponential long-tail profile: n_r = round(n_max · I^(−r/(C−1))) for the class at rank
    r of a random order drawn with ``seed``, capped by what each class has (never below 1)."""

    n_max: int = 70  # HMDB-51's split-1 train has 70 videos per class
    imbalance: float = 10.0  # I = n_max / n_min before capping
    seed: int = 0  # draws the class order and the videos

    def __post_init__(self) -> None:
        if self.n_max < 1:
            raise ValueError(f"long-tail n_max must be >= 1, got {self.n_max}")
        if self.imbalance < 1:
            raise ValueError(f"long-tail imbalance I must be >= 1, got {self.imbalance}")

    def describe(self) -> str:
        """The profile in words, for reports."""
        return (f"exponential n_r = round({self.n_max} * {self.imbalance:g}^(-r/(C-1))), class order "
                f"seeded ({self.seed}), capped by each class's split-1 training videos")

    def as_dict(self) -> dict:
        """The profile's fields and description (for info.json and summary.json)."""
        return {"kind": "exponential", **asdict(self), "description": self.describe()}


def long_tail_counts(available: Sequence[int], profile: LongTailProfile) -> np.ndarray:
    """Training videos per class under a profile.

    Args:
        available: split-1 training videos each class has, by class id.
        profile: the long-tail profile.

    Returns:
        int array of per-class counts, by class id.

    Raises:
        ValueError: a class with no training videos.
    """
    available = np.asarray(available, dtype=np.int64)
    empty = np.flatnonzero(available < 1)
    if empty.size:
        raise ValueError(f"class {int(empty[0])} has no split-1 training videos to draw from")
    c = len(available)
    order = np.random.default_rng(profile.seed).permutation(c)  # order[r] = class at rank r
    ranks = np.empty(c, dtype=np.int64)
    ranks[order] = np.arange(c)
    exponent = ranks / (c - 1) if c > 1 else np.zeros(c)
    # Nearest integer (CIFAR-LT floors), so a count is within 0.5 of the stated formula.
    target = np.floor(profile.n_max * profile.imbalance ** (-exponent) + 0.5).astype(np.int64)
    return np.clip(np.minimum(target, available), 1, None)


def sample_long_tail(split1_train: Sequence[Entry], num_classes: int, profile: LongTailProfile
                     ) -> tuple[list[Entry], np.ndarray]:
    """Draw a long-tailed training list from split-1 train.

    Args:
        split1_train: the split-1 training rows (video, label id).
        num_classes: classes 0..num_classes-1.
        profile: the long-tail profile.

    Returns:
        The drawn rows (sorted by label then path) and the per-class counts.
    """
    by_class: list[list[str]] = [[] for _ in range(num_classes)]
    for path, label in split1_train:
        by_class[label].append(path)
    counts = long_tail_counts([len(p) for p in by_class], profile)
    # A generator of its own for the videos, so the class order does not shift with the draw.
    rng = np.random.default_rng([profile.seed, 1])
    out = []
    for label, paths in enumerate(by_class):
        out += [(str(p), label) for p in sorted(rng.choice(sorted(paths), size=int(counts[label]), replace=False))]
    return out, counts


@dataclass(frozen=True)
class LongTailGroups:
    """Each class's group, by class id."""

    of_class: tuple[Group, ...]

    def members(self, group: Group) -> list[int]:
        """The class ids of one group."""
        return [c for c, g in enumerate(self.of_class) if g == group]


def assign_groups(counts: Sequence[int], few_max: int = FEW_MAX, head_share: float = HEAD_SHARE) -> LongTailGroups:
    """Head / Tail / Few of each class from its training count (the module docstring's rules).

    Args:
        counts: training samples per class, by class id.
        few_max: classes with at most this many samples are Few.
        head_share: Head is the most populous classes up to and including the one at which their
            cumulative share of all samples first reaches this.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or counts.sum() == 0:
        raise ValueError("counts must be a non-empty list of non-negative per-class sample counts, not all 0")
    order = np.argsort(-counts, kind="stable")  # most populous first; equal counts by class id
    share = np.cumsum(counts[order]) / counts.sum()
    n_head = int(np.argmax(share >= head_share - 1e-12)) + 1
    groups: list[Group] = ["tail"] * len(counts)
    for c in order[:n_head]:
        groups[int(c)] = "head"
    for c in np.flatnonzero(counts <= few_max):
        groups[int(c)] = "few"
    return LongTailGroups(tuple(groups))


@dataclass(frozen=True)
class LongTailStats:
    """What a long-tailed training set looks like: I = n_max / n_min and the groups' shares of
    classes (percent), as Perrett et al. describe their benchmarks."""

    num_classes: int
    num_train: int
    n_max: int
    n_min: int
    imbalance: float
    head_pct: float
    tail_pct: float
    few_pct: float
    head_classes: int
    tail_classes: int
    few_classes: int


def long_tail_stats(counts: Sequence[int], groups: LongTailGroups) -> LongTailStats:
    """I, head %, tail % and few % of a training set.

    Args:
        counts: training samples per class.
        groups: the classes' groups (``assign_groups(counts)``).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) != len(groups.of_class):
        raise ValueError(f"{len(counts)} class counts but {len(groups.of_class)} class groups")
    if counts.min() < 1:
        raise ValueError(f"class {int(np.argmin(counts))} has no training samples: I = n_max / n_min is undefined")
    sizes = {g: len(groups.members(g)) for g in GROUPS}
    c = len(counts)
    return LongTailStats(
        num_classes=c, num_train=int(counts.sum()), n_max=int(counts.max()), n_min=int(counts.min()),
        imbalance=float(counts.max() / counts.min()), head_pct=100.0 * sizes["head"] / c,
        tail_pct=100.0 * sizes["tail"] / c, few_pct=100.0 * sizes["few"] / c, head_classes=sizes["head"],
        tail_classes=sizes["tail"], few_classes=sizes["few"])


def per_class_accuracy(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Top-1 accuracy of each class in percent, correct_c / count_c; NaN for a class not tested.

    Args:
        y_true: true label per test video.
        y_pred: predicted (top-1) label per test video.
        num_classes: classes 0..num_classes-1.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got {y_true.shape} and {y_pred.shape}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(f"a true label lies outside 0..{num_classes - 1}")
    count = np.bincount(y_true, minlength=num_classes).astype(np.float64)
    correct = np.bincount(y_true[y_true == y_pred], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, 100.0 * correct / count, np.nan)


@dataclass(frozen=True)
class LongTailAccuracy:
    """Mean per-class accuracy overall and per group, percent; None for a group with no classes."""

    acc: float
    head: float | None
    tail: float | None
    few: float | None
    per_class: tuple[float, ...]


def long_tail_accuracy(y_true: Sequence[int], y_pred: Sequence[int], groups: LongTailGroups) -> LongTailAccuracy:
    """Overall mean per-class accuracy and each group's mean, as Perrett et al. report them.

    Args:
        y_true: true label per test video.
        y_pred: predicted (top-1) label per test video.
        groups: each class's group (from the training counts).

    Raises:
        ValueError: a class with no test videos (its accuracy, and so every mean, is undefined).
    """
    acc = per_class_accuracy(y_true, y_pred, len(groups.of_class))
    untested = np.flatnonzero(np.isnan(acc))
    if untested.size:
        raise ValueError(f"{untested.size} classes have no test videos, e.g. class {int(untested[0])}; "
                         "the long-tail protocol tests every class on a balanced test set")
    means: dict[str, float | None] = {}
    for g in GROUPS:
        members = groups.members(g)
        means[g] = float(acc[members].mean()) if members else None
    return LongTailAccuracy(acc=float(acc.mean()), head=means["head"], tail=means["tail"], few=means["few"],
                            per_class=tuple(acc.tolist()))


def balanced_test(test: Sequence[Entry], num_classes: int, per_class: int | None = None, seed: int = 0
                  ) -> list[Entry]:
    """A class-balanced test set: ``per_class`` videos of every class (default: as many as the
    smallest class has), drawn uniformly with ``seed``; rows keep their input order.

    Args:
        test: the test rows (e.g. split-1 test).
        num_classes: classes 0..num_classes-1, each must be tested.
        per_class: videos per class; at most what the smallest class has.
        seed: the draw's seed.
    """
    by_class: list[list[int]] = [[] for _ in range(num_classes)]
    for i, (_, label) in enumerate(test):
        by_class[label].append(i)
    smallest = min(len(rows) for rows in by_class)
    if smallest == 0:
        raise ValueError(f"class {[len(r) for r in by_class].index(0)} has no test videos")
    per_class = smallest if per_class is None else per_class
    if not 1 <= per_class <= smallest:
        raise ValueError(f"per_class = {per_class}: the smallest class has {smallest} test videos")
    rng = np.random.default_rng(seed)
    keep = set()
    for rows in by_class:
        keep.update(int(i) for i in (rows if len(rows) == per_class else rng.choice(rows, per_class, replace=False)))
    return [test[i] for i in sorted(keep)]
