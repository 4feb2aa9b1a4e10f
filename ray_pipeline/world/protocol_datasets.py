"""The world's datasets for the real-data protocols: few-shot, base-to-novel and long-tail.

``world_hmdb_fs`` and ``world_ucf_fs`` have the classes of ``world_hmdb`` and ``world_ucf`` with
more videos per class than the zero-shot sets' 12, so that a 16-shot list and a long-tailed
training set can be drawn from split-1 train. They are separate, lazily built datasets: the
zero-shot datasets (``world/datasets.py``) and every number measured on them stay as they are.
Videos are made the way the zero-shot targets' are (``RealStyle`` footage, groups of clips
sharing one person and place, ``group_clip_scene``), with seeds of their own. One split, split
1: the first ``test_groups`` groups of each class are tested (as UCF-101's split 1 tests groups
1-7), the rest are training groups. Layout, in ViFi-CLIP's file formats::

    ROOT/<name>/videos/<class_folder>/<class_folder>_gGG_cCC.mp4
    ROOT/<name>/labels.csv                         id,name
    ROOT/<name>/splits/train1.txt, val1.txt        "<path under videos/> <label id>"
    ROOT/<name>/splits/train1_few_shot_{K}.txt     K per class from train1, one draw per K
    ROOT/<name>/splits/train1_long_tail.txt        long-tailed draw from train1 (profile in info.json)
    ROOT/<name>/splits/val1_balanced.txt           the long-tail test list (val1 is balanced already)
    ROOT/<name>/base2novel/{base,novel}_labels.csv the halves, each with ids 0..n-1
    ROOT/<name>/base2novel/{base,novel}_val.txt    val1 cut into halves, in half ids
    ROOT/<name>/base2novel/base_train.txt          train1's base-class rows, in base ids
    ROOT/<name>/base2novel/fs_base_s{s}_train.txt  16 per base class from train1, seeds 1, 2, 3
    ROOT/<name>/info.json                          sizes, halves, long-tail profile, counts, groups
    ROOT/world.json                                sizes, style, build time

``ensure_protocol_dataset`` builds one dataset into ``cache_dir/world_protocol_datasets/<key>``
(a hash of the name and every setting) through a temporary folder and a rename.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ray_pipeline.evaluation.base_to_novel import (
    BASE_SEEDS,
    BASE_SHOTS,
    halves_by_label_order,
    sample_base_training,
    split_by_halves,
)
from ray_pipeline.evaluation.few_shot import FEW_SHOT_KS, few_shot_list_name, sample_few_shot
from ray_pipeline.evaluation.long_tail import (
    LongTailProfile,
    assign_groups,
    balanced_test,
    long_tail_stats,
    sample_long_tail,
)
from ray_pipeline.ids import row_id
from ray_pipeline.world import WORLD_VERSION
from ray_pipeline.world.datasets import VideoJob, build_once, group_clip_scene, render_videos, video_seed
from ray_pipeline.world.render import RealStyle
from ray_pipeline.world.vocabulary import ACTION_BY_NAME, SOURCE_DATASET, WORLD_CLASS_LISTS

# Bump when what a given setting writes changes (layout, sampling of videos or lists).
PROTOCOL_DATASETS_VERSION = 1

# Protocol dataset -> the zero-shot target whose classes (and role) it has.
PROTOCOL_DATASETS = {"world_hmdb_fs": "world_hmdb", "world_ucf_fs": "world_ucf"}

Entry = tuple[str, int]


@dataclass(frozen=True)
class ProtocolDatasetSizes:
    """How big a protocol dataset is and how its lists are drawn; every field goes into the cache key.

    The defaults fit a fine-tune and its evaluation on 2 cores: 60 training videos per class
    (the long-tail head class draws all of them), 10 balanced test videos per class.
    """

    train_per_class: int = 60
    test_per_class: int = 10
    clips_per_group: int = 2  # videos sharing one person and place
    few_shot_ks: tuple[int, ...] = FEW_SHOT_KS
    base_shots: int = BASE_SHOTS
    base_seeds: tuple[int, ...] = BASE_SEEDS
    long_tail_n_max: int = 60
    long_tail_imbalance: float = 10.0
    num_frames: int = 16
    size: int = 64
    fps: int = 8
    seed: int = 0  # another seed, other videos and other lists

    def __post_init__(self) -> None:
        # YAML gives lists; keep tuples so the sizes stay hashable and compare equal.
        object.__setattr__(self, "few_shot_ks", tuple(int(k) for k in self.few_shot_ks))
        object.__setattr__(self, "base_seeds", tuple(int(s) for s in self.base_seeds))
        if self.test_per_class < 1 or self.clips_per_group < 1:
            raise ValueError("protocol dataset sizes: test_per_class and clips_per_group must be >= 1")
        needed = max([*self.few_shot_ks, self.base_shots, 1])
        if self.train_per_class < needed:
            raise ValueError(f"protocol dataset sizes: train_per_class = {self.train_per_class}, but the "
                             f"lists need {needed} training videos per class")

    def key_fields(self) -> dict:
        """The settings that decide the dataset's bytes."""
        return asdict(self)

    def long_tail_profile(self) -> LongTailProfile:
        """The long-tail profile these sizes state (class order seeded by ``seed``)."""
        return LongTailProfile(n_max=self.long_tail_n_max, imbalance=self.long_tail_imbalance, seed=self.seed)


def protocol_dataset_key(name: str, sizes: ProtocolDatasetSizes, style: RealStyle) -> str:
    """The cache key: the dataset's name and every setting that changes a byte of it."""
    return row_id("world_protocol_dataset", version=PROTOCOL_DATASETS_VERSION, world=WORLD_VERSION, name=name,
                  sizes=sizes.key_fields(), style=asdict(style), classes=WORLD_CLASS_LISTS[PROTOCOL_DATASETS[name]])


def _groups(count: int, clips_per_group: int) -> int:
    return max(1, -(-count // clips_per_group))


def _jobs(name: str, sizes: ProtocolDatasetSizes, style: RealStyle) -> tuple[list[VideoJob], list[Entry], list[Entry]]:
    """The videos of a protocol dataset, and its split-1 train and test rows."""
    jobs, train, test = [], [], []
    n_test_groups = _groups(sizes.test_per_class, sizes.clips_per_group)
    n_train_groups = _groups(sizes.train_per_class, sizes.clips_per_group)
    for label, cls in enumerate(WORLD_CLASS_LISTS[PROTOCOL_DATASETS[name]]):
        folder = ACTION_BY_NAME[cls].folder
        i = 0  # the video's index within its class
        for rows, count, first_group, n_groups in ((test, sizes.test_per_class, 0, n_test_groups),
                                                   (train, sizes.train_per_class, n_test_groups, n_train_groups)):
            for j in range(count):
                g = first_group + j % n_groups
                scene, seed = group_clip_scene(name, sizes.seed, cls, g, i, style)
                rel = f"{folder}/{folder}_g{g + 1:02d}_c{j // n_groups + 1:02d}.mp4"
                jobs.append(VideoJob(rel, name, scene, seed))
                rows.append((rel, label))
                i += 1
    return jobs, sorted(train), sorted(test)


def _write_list(path: Path, rows: list[Entry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{rel} {label}\n" for rel, label in rows))


def _write_labels(path: Path, names: list[str] | tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))


def _write_tables(out: Path, name: str, sizes: ProtocolDatasetSizes, train: list[Entry], test: list[Entry]) -> dict:
    """Every list and label file of the dataset, and its info.json; returns the info."""
    d = out / name
    classes = WORLD_CLASS_LISTS[PROTOCOL_DATASETS[name]]
    c = len(classes)
    _write_labels(d / "labels.csv", classes)
    _write_list(d / "splits" / "train1.txt", train)
    _write_list(d / "splits" / "val1.txt", test)
    for k in sizes.few_shot_ks:
        _write_list(d / "splits" / few_shot_list_name(k), sample_few_shot(train, k, c, video_seed(name, sizes.seed,
                                                                                                  "few_shot", k)))
    profile = sizes.long_tail_profile()
    long_tail, counts = sample_long_tail(train, c, profile)
    groups = assign_groups(counts)
    _write_list(d / "splits" / "train1_long_tail.txt", long_tail)
    _write_list(d / "splits" / "val1_balanced.txt", balanced_test(test, c, seed=sizes.seed))
    halves = halves_by_label_order(classes)
    _write_labels(d / "base2novel" / "base_labels.csv", halves.base)
    _write_labels(d / "base2novel" / "novel_labels.csv", halves.novel)
    cut = split_by_halves(test, halves)
    _write_list(d / "base2novel" / "base_val.txt", cut["base"])
    _write_list(d / "base2novel" / "novel_val.txt", cut["novel"])
    _write_list(d / "base2novel" / "base_train.txt", split_by_halves(train, halves)["base"])
    for s in sizes.base_seeds:
        rows = sample_base_training(train, halves, video_seed(name, sizes.seed, "base", s), sizes.base_shots)
        _write_list(d / "base2novel" / f"fs_base_s{s}_train.txt", rows)
    source = set(WORLD_CLASS_LISTS[SOURCE_DATASET])
    info = {
        "name": name, "classes_of": PROTOCOL_DATASETS[name], "classes": classes, "video_root": "videos",
        "split_format": "<path relative to video_root> <label id>",
        "splits": {"train1": len(train), "val1": len(test)},
        "test_balanced_per_class": sizes.test_per_class,
        "few_shot": {"ks": list(sizes.few_shot_ks), "lists": {k: few_shot_list_name(k) for k in sizes.few_shot_ks},
                     "draw": "uniform without replacement from train1, one draw per K (not nested)"},
        "base_to_novel": {"rule": "novel = the first floor(C/2) classes by label id, base = the rest "
                                  "(HMDB-51's published division)",
                          "base": list(halves.base), "novel": list(halves.novel),
                          "base_to_full": list(halves.base_to_full), "novel_to_full": list(halves.novel_to_full),
                          "shots": sizes.base_shots, "seeds": list(sizes.base_seeds)},
        "long_tail": {"profile": profile.as_dict(), "counts": counts.tolist(), "groups": list(groups.of_class),
                      "stats": asdict(long_tail_stats(counts, groups)), "test_list": "splits/val1_balanced.txt"},
        "classes_absent_from_source": [x for x in classes if x not in source],
    }
    (d / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def build_protocol_dataset(out: str | os.PathLike, name: str, sizes: ProtocolDatasetSizes | None = None,
                           style: RealStyle | None = None, workers: int | None = None) -> Path:
    """Write one protocol dataset under ``out`` (which should not exist yet); returns ``out``.

    Args:
        out: the folder to write ``<name>/`` and ``world.json`` into.
        name: ``world_hmdb_fs`` or ``world_ucf_fs``.
        sizes: how big it is (defaults: ``ProtocolDatasetSizes()``).
        style: how the footage varies (defaults: ``RealStyle()``, the zero-shot targets' style).
        workers: rendering processes (default: up to 2).
    """
    if name not in PROTOCOL_DATASETS:
        raise ValueError(f"unknown protocol dataset {name!r}; expected one of {sorted(PROTOCOL_DATASETS)}")
    sizes, style, out = sizes or ProtocolDatasetSizes(), style or RealStyle(), Path(out)
    jobs, train, test = _jobs(name, sizes, style)
    _write_tables(out, name, sizes, train, test)
    workers = workers or min(2, os.cpu_count() or 1)
    seconds = render_videos(jobs, out, sizes.num_frames, sizes.size, sizes.fps, workers)
    meta = {"name": name, "sizes": sizes.key_fields(), "style": asdict(style),
            "protocol_datasets_version": PROTOCOL_DATASETS_VERSION, "videos": len(jobs),
            "build_seconds": round(seconds, 2), "workers": workers}
    (out / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def ensure_protocol_dataset(cache_dir: str | os.PathLike, name: str, sizes: ProtocolDatasetSizes | None = None,
                            style: RealStyle | None = None, workers: int | None = None) -> Path:
    """A protocol dataset for these settings, built on first use; returns the folder holding ``<name>/``.

    Args:
        cache_dir: the cache root; the dataset goes to ``cache_dir/world_protocol_datasets/<key>``.
        name: ``world_hmdb_fs`` or ``world_ucf_fs``.
        sizes: how big it is (defaults: ``ProtocolDatasetSizes()``).
        style: how the footage varies (defaults: ``RealStyle()``).
        workers: rendering processes (default: up to 2).
    """
    if name not in PROTOCOL_DATASETS:
        raise ValueError(f"unknown protocol dataset {name!r}; expected one of {sorted(PROTOCOL_DATASETS)}")
    sizes, style = sizes or ProtocolDatasetSizes(), style or RealStyle()
    final = (Path(os.path.expanduser(str(cache_dir))) / "world_protocol_datasets"
             / protocol_dataset_key(name, sizes, style))
    return build_once(final, lambda tmp: build_protocol_dataset(tmp, name, sizes, style, workers))
