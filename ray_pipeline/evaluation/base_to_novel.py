"""The base-to-novel protocol (paper Table 3, ViFi-CLIP's benchmark).

The classes are split into a base and a novel half. A model is fine-tuned on 16 videos per base
class (one list per seed s in {1, 2, 3}), then the same checkpoint is tested on the base half of
split-1 test against the base names only and on the novel half against the novel names only.
Base and novel accuracy are averaged over the seeds, and HM = 2·B̄·N̄/(B̄+N̄) is taken of those
averages (evaluation-protocols.md §3; TC-CLIP's docs/TRAIN_EVAL.md).

Each half has its own label CSV and its own ids 0..n-1 (``hmdb_51_base_labels.csv`` ...), and the
half lists (``base_val.txt``, ``novel_val.txt``, ``fs_base_s{s}_train.txt``) use those ids.
``ClassHalves`` maps them to the full label list's ids through the class names, which is how the
published files relate (checked against ``val1.txt`` by ``check_half_list``). HMDB-51's label
swap (kick / kick ball, sword / sword exercise) is in the half files too; ``half_label_swaps``
carries a full-list swap over to the halves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ray_pipeline.evaluation.datasets import DatasetError, read_labels, read_split_list

BASE_SEEDS = (1, 2, 3)
BASE_SHOTS = 16

Half = Literal["base", "novel"]
HALVES: tuple[Half, ...] = ("base", "novel")
Entry = tuple[str, int]

# Folder and label-file prefix per dataset in a ViFi-CLIP checkout.
PUBLISHED_LAYOUT = {
    "hmdb51": ("hmdb_splits", "hmdb_51"),
    "ucf101": ("ucf_splits", "ucf_101"),
    "k400": ("k400_splits", "kinetics_400"),
}


@dataclass(frozen=True)
class ClassHalves:
    """A dataset's classes split into a base and a novel half, and the id maps between them."""

    names: tuple[str, ...]  # the full label list, by full id
    base: tuple[str, ...]  # base names, by base id
    novel: tuple[str, ...]
    base_to_full: tuple[int, ...]  # base id -> full id
    novel_to_full: tuple[int, ...]

    def half_names(self, half: Half) -> tuple[str, ...]:
        """The class names of one half, by that half's ids (what its text classifier uses)."""
        return self.base if half == "base" else self.novel

    def to_full(self, half: Half) -> tuple[int, ...]:
        """Half id -> full id."""
        return self.base_to_full if half == "base" else self.novel_to_full

    def from_full(self, half: Half) -> dict[int, int]:
        """Full id -> half id, for the full ids in that half."""
        return {f: h for h, f in enumerate(self.to_full(half))}


def class_halves(names: Sequence[str], base: Sequence[str], novel: Sequence[str], *,
                 source: str = "class halves") -> ClassHalves:
    """Check two halves against the full label list and map their ids through the names.

    Args:
        names: the full label list, by id.
        base: the base half's names, by base id.
        novel: the novel half's names, by novel id.
        source: what the lists came from, for error messages.

    Raises:
        DatasetError: a repeated name, a name not in the full list, halves that overlap or that
            do not cover every class.
    """
    for what, lst in (("full list", names), ("base half", base), ("novel half", novel)):
        seen = set()
        for n in lst:
            if n in seen:
                raise DatasetError(f"{source}: {what} names {n!r} twice")
            seen.add(n)
    index = {n: i for i, n in enumerate(names)}
    for what, lst in (("base", base), ("novel", novel)):
        unknown = [n for n in lst if n not in index]
        if unknown:
            raise DatasetError(f"{source}: {what} class {unknown[0]!r} is not in the full label list")
    both = sorted(set(base) & set(novel))
    if both:
        raise DatasetError(f"{source}: {len(both)} classes are both base and novel, e.g. {both[0]!r}")
    missing = [n for n in names if n not in set(base) | set(novel)]
    if missing:
        raise DatasetError(f"{source}: {len(missing)} classes are in neither half, e.g. {missing[0]!r}")
    return ClassHalves(names=tuple(names), base=tuple(base), novel=tuple(novel),
                       base_to_full=tuple(index[n] for n in base), novel_to_full=tuple(index[n] for n in novel))


def read_class_halves(full_labels: str | os.PathLike, base_labels: str | os.PathLike,
                      novel_labels: str | os.PathLike) -> ClassHalves:
    """``class_halves`` from three ``id,name`` CSVs (the full list and the two halves)."""
    return class_halves(read_labels(full_labels), read_labels(base_labels), read_labels(novel_labels),
                        source=f"{base_labels} / {novel_labels}")


def halves_by_label_order(names: Sequence[str]) -> ClassHalves:
    """Novel = the first ⌊C/2⌋ classes by label id, base = the rest: HMDB-51's published division
    (novel ids 0-24, base 25-50). The rule behind UCF-101's and K400's divisions is not
    recoverable from their files; the world uses this one for both of its targets."""
    n_novel = len(names) // 2
    return class_halves(names, names[n_novel:], names[:n_novel], source="label-order halves")


def split_by_halves(entries: Sequence[Entry], halves: ClassHalves) -> dict[Half, list[Entry]]:
    """Full-id rows -> each half's rows in that half's own ids (how ``base_val.txt`` and
    ``novel_val.txt`` are cut from ``val1.txt``)."""
    out: dict[Half, list[Entry]] = {h: [] for h in HALVES}
    maps = {h: halves.from_full(h) for h in HALVES}
    for path, label in entries:
        half: Half = "base" if label in maps["base"] else "novel"
        out[half].append((path, maps[half][label]))
    return out


def check_half_list(half_entries: Sequence[Entry], full_entries: Sequence[Entry], halves: ClassHalves,
                    half: Half, *, source: str) -> None:
    """Check a half list against a full-id list: each of its videos is there under the full id
    that its half id maps to.

    Args:
        half_entries: rows of ``base_val.txt``, ``novel_val.txt`` or a base training list, in half ids.
        full_entries: rows of the list they were cut from (``val1.txt``, split-1 train), in full ids.
        halves: the class halves.
        half: which half the list belongs to.
        source: the half list's file name, for error messages.

    Raises:
        DatasetError: naming the first video that is missing or whose ids disagree.
    """
    full = dict(full_entries)
    to_full = halves.to_full(half)
    names = halves.half_names(half)
    for line_no, (path, label) in enumerate(half_entries, start=1):
        if path not in full:
            raise DatasetError(f"{source}:{line_no}: {path} is not in the full list")
        if to_full[label] != full[path]:
            raise DatasetError(f"{source}:{line_no}: {path} has {half} id {label} ({names[label]!r}, full id "
                               f"{to_full[label]}), but full id {full[path]} ({halves.names[full[path]]!r}) "
                               "in the full list")


def half_label_swaps(halves: ClassHalves, full_swaps: Mapping[int, int]) -> dict[Half, dict[int, int]]:
    """Carry a label fix given in full ids (``datasets.HMDB_SWAPS``) over to each half's ids.

    Raises:
        DatasetError: a swapped pair split across the halves (then no half-id fix exists).
    """
    out: dict[Half, dict[int, int]] = {}
    for half in HALVES:
        from_full = halves.from_full(half)
        swaps = {}
        for a, b in full_swaps.items():
            if (a in from_full) != (b in from_full):
                raise DatasetError(f"label swap {a}<->{b} crosses the base/novel halves")
            if a in from_full:
                swaps[from_full[a]] = from_full[b]
        out[half] = swaps
    return out


@dataclass(frozen=True)
class BaseToNovelFiles:
    """Where a dataset's base-to-novel files live."""

    labels: Path  # the full id,name CSV
    base_labels: Path
    novel_labels: Path
    base_val: Path
    novel_val: Path
    splits_dir: Path  # holds fs_base_s{s}_train.txt

    def base_train(self, seed: int) -> Path:
        """The 16-shot base training list of one seed."""
        return self.splits_dir / f"fs_base_s{seed}_train.txt"


def published_base_to_novel_files(vifi_root: str | os.PathLike, dataset: str) -> BaseToNovelFiles:
    """The published files of one dataset in a ViFi-CLIP checkout.

    Args:
        vifi_root: the folder holding ViFi-CLIP's ``datasets_splits/`` and ``labels/``.
        dataset: ``hmdb51``, ``ucf101`` or ``k400``.
    """
    if dataset not in PUBLISHED_LAYOUT:
        raise ValueError(f"base-to-novel dataset {dataset!r}: published files exist for {sorted(PUBLISHED_LAYOUT)}")
    folder, prefix = PUBLISHED_LAYOUT[dataset]
    root = Path(vifi_root)
    splits = root / "datasets_splits" / "base2novel_splits" / folder
    labels = root / "labels"
    return BaseToNovelFiles(labels=labels / f"{prefix}_labels.csv", base_labels=labels / f"{prefix}_base_labels.csv",
                            novel_labels=labels / f"{prefix}_novel_labels.csv", base_val=splits / "base_val.txt",
                            novel_val=splits / "novel_val.txt", splits_dir=splits)


def world_base_to_novel_files(dataset_dir: str | os.PathLike) -> BaseToNovelFiles:
    """The base-to-novel files of a world protocol dataset (``world/protocol_datasets.py``)."""
    d = Path(dataset_dir)
    b2n = d / "base2novel"
    return BaseToNovelFiles(labels=d / "labels.csv", base_labels=b2n / "base_labels.csv",
                            novel_labels=b2n / "novel_labels.csv", base_val=b2n / "base_val.txt",
                            novel_val=b2n / "novel_val.txt", splits_dir=b2n)


@dataclass(frozen=True)
class BaseToNovelData:
    """One seed's base-to-novel setting, read and checked: train on ``train`` (base ids) against
    ``halves.base`` names, test ``base_val`` against base names and ``novel_val`` against novel names."""

    seed: int
    halves: ClassHalves
    train: list[Entry]  # base ids
    base_val: list[Entry]  # base ids
    novel_val: list[Entry]  # novel ids


def read_base_to_novel(files: BaseToNovelFiles, seed: int, shots: int = BASE_SHOTS) -> BaseToNovelData:
    """Read one seed's lists and check them: ``shots`` videos per base class, none of them tested,
    base and novel test videos disjoint.

    Args:
        files: ``published_base_to_novel_files`` or ``world_base_to_novel_files``.
        seed: the base training list's seed (1, 2 or 3 in the published files).
        shots: training videos each base class must have.
    """
    halves = read_class_halves(files.labels, files.base_labels, files.novel_labels)
    train_path = files.base_train(seed)
    train = read_split_list(train_path, len(halves.base))
    base_val = read_split_list(files.base_val, len(halves.base))
    novel_val = read_split_list(files.novel_val, len(halves.novel))
    per_class = np.bincount([y for _, y in train], minlength=len(halves.base))
    wrong = [c for c, n in enumerate(per_class) if n != shots]
    if wrong:
        raise DatasetError(f"{train_path}: expected {shots} videos per base class, base class {wrong[0]} "
                           f"({halves.base[wrong[0]]!r}) has {per_class[wrong[0]]}")
    train_paths = {p for p, _ in train}
    if len(train_paths) != len(train):
        raise DatasetError(f"{train_path}: a video is listed more than once")
    tested = train_paths & ({p for p, _ in base_val} | {p for p, _ in novel_val})
    if tested:
        raise DatasetError(f"{train_path}: {len(tested)} training videos are test videos, e.g. {min(tested)}")
    both = {p for p, _ in base_val} & {p for p, _ in novel_val}
    if both:
        raise DatasetError(f"{files.base_val} / {files.novel_val}: {len(both)} videos in both, e.g. {min(both)}")
    return BaseToNovelData(seed=seed, halves=halves, train=train, base_val=base_val, novel_val=novel_val)


def sample_base_training(split1_train: Sequence[Entry], halves: ClassHalves, seed: int,
                         shots: int = BASE_SHOTS) -> list[Entry]:
    """Draw one seed's base training list: ``shots`` split-1 training videos per base class,
    uniformly without replacement, in base ids (like ``fs_base_s{seed}_train.txt``).

    Args:
        split1_train: split-1 training rows in full ids (novel-class rows are ignored).
        halves: the class halves.
        seed: the draw's seed.
        shots: videos per base class.

    Returns:
        Rows sorted by base id then path.
    """
    rng = np.random.default_rng(seed)
    base_rows = split_by_halves(split1_train, halves)["base"]
    by_class: list[list[str]] = [[] for _ in halves.base]
    for path, label in base_rows:
        by_class[label].append(path)
    out = []
    for label, paths in enumerate(by_class):
        if len(paths) < shots:
            raise ValueError(f"base class {halves.base[label]!r} has {len(paths)} split-1 training videos, "
                             f"fewer than {shots}")
        out += [(str(p), label) for p in sorted(rng.choice(sorted(paths), size=shots, replace=False))]
    return out


def harmonic_mean(base: float, novel: float) -> float:
    """HM = 2·B·N/(B+N); 0 when both are 0.

    Args:
        base: base accuracy (any scale, e.g. percent).
        novel: novel accuracy, same scale.
    """
    if base < 0 or novel < 0:
        raise ValueError(f"accuracies must be non-negative, got base {base}, novel {novel}")
    return 0.0 if base + novel == 0 else 2.0 * base * novel / (base + novel)


@dataclass(frozen=True)
class BaseToNovelSummary:
    """Base, novel and HM over seeds. Std is population (ddof = 0) over seeds; ``hm`` is the HM of
    the seed means; ``hm_ci95`` a percentile bootstrap over seeds (None for one seed)."""

    seeds: tuple[int, ...]
    base_per_seed: tuple[float, ...]
    novel_per_seed: tuple[float, ...]
    base_mean: float
    base_std: float
    novel_mean: float
    novel_std: float
    hm: float
    hm_ci95: tuple[float, float] | None
    n_boot: int


def aggregate_seeds(base_by_seed: Mapping[int, float], novel_by_seed: Mapping[int, float], *,
                    n_boot: int = 10_000, boot_seed: int = 0, level: float = 0.95) -> BaseToNovelSummary:
    """Seed means of base and novel accuracy, HM of the means, and a bootstrap CI for that HM.

    Args:
        base_by_seed: base accuracy per base-list seed.
        novel_by_seed: novel accuracy of the same checkpoints, same seeds.
        n_boot: bootstrap resamples.
        boot_seed: the bootstrap's random seed.
        level: the interval's coverage.

    Returns:
        A ``BaseToNovelSummary``.
    """
    if set(base_by_seed) != set(novel_by_seed):
        raise ValueError(f"base and novel accuracies must come from the same seeds, got "
                         f"{sorted(base_by_seed)} and {sorted(novel_by_seed)}")
    if not base_by_seed:
        raise ValueError("no seeds to aggregate")
    seeds = tuple(sorted(base_by_seed))
    base = np.array([base_by_seed[s] for s in seeds], dtype=np.float64)
    novel = np.array([novel_by_seed[s] for s in seeds], dtype=np.float64)
    ci = _bootstrap_hm_ci(base, novel, n_boot, boot_seed, level) if len(seeds) > 1 else None
    return BaseToNovelSummary(
        seeds=seeds, base_per_seed=tuple(base.tolist()), novel_per_seed=tuple(novel.tolist()),
        base_mean=float(base.mean()), base_std=float(base.std()), novel_mean=float(novel.mean()),
        novel_std=float(novel.std()), hm=harmonic_mean(float(base.mean()), float(novel.mean())),
        hm_ci95=ci, n_boot=n_boot if ci else 0)


def _bootstrap_hm_ci(base: np.ndarray, novel: np.ndarray, n_boot: int, seed: int, level: float
                     ) -> tuple[float, float]:
    """Percentile interval of HM(mean base, mean novel) over seeds resampled with replacement.
    A seed's base and novel values come from one checkpoint, so they are resampled together."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=(n_boot, len(base)))
    b, n = base[idx].mean(axis=1), novel[idx].mean(axis=1)
    total = b + n
    hm = np.divide(2.0 * b * n, total, out=np.zeros_like(total), where=total > 0)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(hm, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_hm_difference(a: tuple[Mapping[int, float], Mapping[int, float]],
                         b: tuple[Mapping[int, float], Mapping[int, float]], *, n_boot: int = 10_000,
                         boot_seed: int = 0, level: float = 0.95) -> dict:
    """HM of model A minus HM of model B, each from its seed means, with a paired percentile
    bootstrap over the seeds (a resample draws the same seeds for both models).

    Args:
        a: model A's (base accuracy by seed, novel accuracy by seed).
        b: model B's, over the same seeds.
        n_boot: bootstrap resamples.
        boot_seed: the bootstrap's random seed.
        level: the interval's coverage.

    Returns:
        ``{diff_mean, ci95, n_pairs, ci_over, significant}`` as ``statistics.paired_difference``
        gives them (``ci95`` None and ``significant`` None for one seed).
    """
    seeds = sorted(set(a[0]) & set(a[1]) & set(b[0]) & set(b[1]))
    if not seeds:
        raise ValueError("the two models share no seed")
    arr = {name: np.array([m[s] for s in seeds], dtype=np.float64)
           for name, m in (("ab", a[0]), ("an", a[1]), ("bb", b[0]), ("bn", b[1]))}
    diff = (harmonic_mean(float(arr["ab"].mean()), float(arr["an"].mean()))
            - harmonic_mean(float(arr["bb"].mean()), float(arr["bn"].mean())))
    ci = None
    if len(seeds) > 1:
        idx = np.random.default_rng(boot_seed).integers(0, len(seeds), size=(n_boot, len(seeds)))

        def hm(base: np.ndarray, novel: np.ndarray) -> np.ndarray:
            bm, nm = base[idx].mean(axis=1), novel[idx].mean(axis=1)
            return np.divide(2.0 * bm * nm, bm + nm, out=np.zeros_like(bm), where=bm + nm > 0)

        d = hm(arr["ab"], arr["an"]) - hm(arr["bb"], arr["bn"])
        alpha = (1.0 - level) / 2.0
        ci = [float(x) for x in np.quantile(d, [alpha, 1.0 - alpha])]
    return {"diff_mean": float(diff), "ci95": ci, "n_pairs": len(seeds), "ci_over": "bootstrap over seeds",
            "significant": None if ci is None else bool(ci[0] > 0 or ci[1] < 0)}
