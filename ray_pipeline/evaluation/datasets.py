"""Dataset adapters for the real datasets' layout (and the procedural world's, which copies it).

A split is a list file with ``<relative video path> <label id>`` per line and a label CSV
(``id,name``), exactly as ViFi-CLIP / TC-CLIP / X-CLIP ship them for HMDB-51, UCF-101 and the
Kinetics-600 zero-shot splits.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ray_pipeline.config import DatasetConfig, ExperimentConfig

# HMDB-51's split files and label CSV disagree on two pairs of ids (evaluation-protocols.md §1.2).
HMDB_SWAPS = {20: 21, 21: 20, 44: 45, 45: 44}


class DatasetError(ValueError):
    """A split or label file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Split:
    name: str
    class_names: list[str]
    videos: list[str]  # absolute paths or URIs
    labels: list[int]
    root: str = ""  # the folder (or URI prefix) the list's relative paths are under

    def __len__(self) -> int:
        return len(self.videos)

    def view_key(self, video: str) -> str:
        """The video's path below ``root`` (the list file's own path): what seeds its random test
        views, so that where the dataset lies changes no prediction."""
        prefix = self.root.rstrip("/") + "/"
        return video[len(prefix):] if self.root and video.startswith(prefix) else video


def read_labels(path: str | os.PathLike) -> list[str]:
    """``id,name`` CSV -> names indexed by id (ids must be 0..K-1)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["id", "name"]:
        raise DatasetError(f"{path}: expected a header 'id,name'")
    names: dict[int, str] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            names[int(row[0])] = ",".join(row[1:]).strip()
        except (ValueError, IndexError):
            raise DatasetError(f"{path}:{line_no}: expected '<int id>,<name>', got {row!r}") from None
    if sorted(names) != list(range(len(names))):
        raise DatasetError(f"{path}: ids must be 0..{len(names) - 1} without gaps")
    return [names[i] for i in range(len(names))]


def read_split_list(path: str | os.PathLike, num_classes: int) -> list[tuple[str, int]]:
    """``<relative path> <label>`` lines (paths may contain spaces; the label is the last field)."""
    entries = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            rel, _, label = line.rpartition(" ")
            try:
                idx = int(label)
            except ValueError:
                raise DatasetError(f"{path}:{line_no}: expected '<video path> <label id>', got {line!r}") from None
            if not rel or not 0 <= idx < num_classes:
                raise DatasetError(f"{path}:{line_no}: label {idx} outside 0..{num_classes - 1}")
            entries.append((rel, idx))
    return entries


def resolve_path(path: str, cfg: ExperimentConfig) -> Path:
    """A dataset path; ``world:<dataset>/<sub>`` is under the procedural world's datasets, built
    on first use (``world.sizes``) in ``cache_dir``."""
    if path.startswith("world:"):
        from ray_pipeline.world.datasets import ensure_world_datasets

        built = ensure_world_datasets(cfg.resolved_cache_dir(), **cfg.world.sizes)
        return Path(built) / path.split(":", 1)[1]
    return Path(os.path.expanduser(path))


def load_splits(ds: DatasetConfig, cfg: ExperimentConfig) -> list[Split]:
    root = resolve_path(ds.root, cfg)
    base = resolve_path(ds.splits_dir, cfg) if ds.splits_dir else root
    splits = []
    for split in ds.splits:
        names = read_labels(base / split.labels)
        entries = read_split_list(base / split.list, len(names))
        labels = [e[1] for e in entries]
        if ds.label_fix == "hmdb_swap":
            labels = [HMDB_SWAPS.get(i, i) for i in labels]
        splits.append(Split(name=Path(split.list).stem, class_names=names,
                            videos=[str(root / e[0]) for e in entries], labels=labels, root=str(root)))
    return splits
