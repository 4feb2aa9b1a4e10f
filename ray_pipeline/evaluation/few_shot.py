"""The few-shot protocol (paper Table 2): K training videos per class, tested on split 1.

For K in {2, 4, 8, 16} the training list holds exactly K videos of every class, drawn from
split-1 train, and the model is tested on split-1 test against all class names. ViFi-CLIP
publishes one fixed list per K for HMDB-51 and UCF-101 (``train1_few_shot_{K}.txt``, not nested,
no seeds; evaluation-protocols.md §2); the world's protocol datasets write lists of the same
name and format (``world/protocol_datasets.py``). Which epoch is reported is
``evaluation.selection.select_epoch``'s concern.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ray_pipeline.evaluation.datasets import DatasetError, read_labels, read_split_list

FEW_SHOT_KS = (2, 4, 8, 16)

# The ViFi-CLIP checkout's folders and label file per dataset (its ``datasets_splits/`` and ``labels/``).
PUBLISHED_LAYOUT = {
    "hmdb51": ("hmdb_splits", "hmdb_51_labels.csv"),
    "ucf101": ("ucf_splits", "ucf_101_labels.csv"),
}

Entry = tuple[str, int]  # (relative video path, label id), as the split lists hold them


def few_shot_list_name(k: int) -> str:
    """The file name of the K-shot training list, as ViFi-CLIP names it."""
    return f"train1_few_shot_{k}.txt"


@dataclass(frozen=True)
class FewShotFiles:
    """Where one K-shot setting's lists live."""

    train: Path  # the K-shot training list
    test: Path  # split-1 test
    labels: Path  # id,name CSV of all classes
    split1_train: Path | None = None  # the full split-1 train list, where one is published


def published_few_shot_files(vifi_root: str | os.PathLike, dataset: str, k: int) -> FewShotFiles:
    """The published lists of one dataset and K in a ViFi-CLIP checkout.

    Args:
        vifi_root: the folder holding ViFi-CLIP's ``datasets_splits/`` and ``labels/``.
        dataset: ``hmdb51`` or ``ucf101``.
        k: shots per class, one of ``FEW_SHOT_KS``.

    Returns:
        The K-shot list, ``val1.txt`` and the label CSV (ViFi publishes no split-1 train list).
    """
    if dataset not in PUBLISHED_LAYOUT:
        raise ValueError(f"few-shot dataset {dataset!r}: published lists exist for {sorted(PUBLISHED_LAYOUT)}")
    _check_k(k)
    folder, labels = PUBLISHED_LAYOUT[dataset]
    root = Path(vifi_root)
    splits = root / "datasets_splits" / folder
    return FewShotFiles(train=splits / few_shot_list_name(k), test=splits / "val1.txt",
                        labels=root / "labels" / labels)


def world_few_shot_files(dataset_dir: str | os.PathLike, k: int) -> FewShotFiles:
    """The lists of one K in a world protocol dataset (``world/protocol_datasets.py``).

    Args:
        dataset_dir: the dataset's folder, e.g. ``ROOT/world_hmdb_fs``.
        k: shots per class.
    """
    _check_k(k)
    d = Path(dataset_dir)
    return FewShotFiles(train=d / "splits" / few_shot_list_name(k), test=d / "splits" / "val1.txt",
                        labels=d / "labels.csv", split1_train=d / "splits" / "train1.txt")


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"few-shot K must be a positive integer, got {k!r}")


def check_few_shot_list(entries: Sequence[Entry], k: int, num_classes: int, *, source: str,
                        test: Sequence[Entry] = (), split1_train: Sequence[Entry] | None = None) -> None:
    """Check that a K-shot list is one: K distinct videos of every class, none of them tested.

    Args:
        entries: the list's (video, label) rows.
        k: the shots per class it must hold.
        num_classes: every class id 0..num_classes-1 must have exactly K videos.
        source: the list's file name, for error messages.
        test: the test list; no training video may appear in it.
        split1_train: the split-1 train list, where known; every training video (with the same
            label) must come from it.

    Raises:
        DatasetError: naming the file and the class or video that breaks the protocol.
    """
    paths = Counter(p for p, _ in entries)
    dups = sorted(p for p, n in paths.items() if n > 1)
    if dups:
        raise DatasetError(f"{source}: {len(dups)} videos listed more than once, e.g. {dups[0]}")
    per_class = np.bincount([y for _, y in entries], minlength=num_classes)
    wrong = [(c, int(n)) for c, n in enumerate(per_class) if n != k]
    if wrong:
        c, n = wrong[0]
        raise DatasetError(f"{source}: expected {k} videos per class, class {c} has {n} "
                           f"({len(wrong)} classes differ)")
    tested = {p for p, _ in test} & set(paths)
    if tested:
        raise DatasetError(f"{source}: {len(tested)} training videos are in the test list, "
                           f"e.g. {min(tested)}")
    if split1_train is not None:
        train = set(split1_train)
        outside = [e for e in entries if tuple(e) not in train]
        if outside:
            raise DatasetError(f"{source}: {len(outside)} videos are not in split-1 train with that label, "
                               f"e.g. {outside[0][0]} (label {outside[0][1]})")


@dataclass(frozen=True)
class FewShotData:
    """One K-shot setting, read and checked: what a few-shot task trains and tests on."""

    k: int
    class_names: list[str]
    train: list[Entry]
    test: list[Entry]


def read_few_shot(files: FewShotFiles, k: int) -> FewShotData:
    """Read one K-shot setting and check it (``check_few_shot_list``).

    Args:
        files: the lists (``published_few_shot_files`` or ``world_few_shot_files``).
        k: shots per class the training list must hold.

    Returns:
        Class names, the training and the test rows, labels as in the files.
    """
    names = read_labels(files.labels)
    train = read_split_list(files.train, len(names))
    test = read_split_list(files.test, len(names))
    split1 = read_split_list(files.split1_train, len(names)) if files.split1_train else None
    check_few_shot_list(train, k, len(names), source=str(files.train), test=test, split1_train=split1)
    return FewShotData(k=k, class_names=names, train=train, test=test)


def sample_few_shot(split1_train: Sequence[Entry], k: int, num_classes: int, seed: int) -> list[Entry]:
    """Draw a K-shot list from split-1 train: K videos per class, uniformly without replacement.

    Args:
        split1_train: the split-1 training rows to draw from.
        k: shots per class.
        num_classes: classes 0..num_classes-1, each needs at least K training videos.
        seed: the draw's seed (the published lists have one fixed draw per K).

    Returns:
        The rows, sorted by label then path.
    """
    _check_k(k)
    rng = np.random.default_rng(seed)
    by_class: list[list[str]] = [[] for _ in range(num_classes)]
    for path, label in split1_train:
        by_class[label].append(path)
    out = []
    for label, paths in enumerate(by_class):
        if len(paths) < k:
            raise ValueError(f"class {label} has {len(paths)} split-1 training videos, fewer than K = {k}")
        picked = rng.choice(sorted(paths), size=k, replace=False)
        out += [(str(p), label) for p in sorted(picked)]
    return out
