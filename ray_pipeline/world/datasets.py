"""The procedural world's "real" datasets, written as mp4 files in the real datasets' layout.

Three datasets play the paper's roles: ``world_k400`` (the source, Kinetics-400's role) and the
targets ``world_hmdb`` and ``world_ucf`` (HMDB-51's and UCF-101's). Their clips are filmed the way
real footage is: any environment (the action's typical places more often), any character look,
a hand-held camera, mirroring, lighting changes and sensor noise (``render.RealStyle``). Layout,
per dataset, as the real adapters read it (ViFi-CLIP's label CSVs and split lists)::

    ROOT/<name>/videos/<class_folder>/<video>.mp4
    ROOT/<name>/labels.csv                  id,name
    ROOT/<name>/splits/train.txt, val.txt   (source)  "<path under videos/> <label id>"
    ROOT/<name>/splits/train{1,2,3}.txt, val{1,2,3}.txt   (targets, three official-style splits)
    ROOT/<name>/info.json                   classes, counts, provenance

Target videos come in *groups* (one person in one place filmed several times, like UCF-101's
groups); split k tests on the groups of fold k and trains on the rest, so every video is in
exactly one test split and no person/place is in both halves of a split.

``ensure_world_datasets`` builds them once into a folder named by the hash of every setting, via
a temporary folder and an atomic rename, and returns the root.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ray_pipeline.ids import row_id
from ray_pipeline.world import WORLD_VERSION
from ray_pipeline.world.render import RealStyle, Scene, real_scene, render_clip
from ray_pipeline.world.vocabulary import ACTION_BY_NAME, SOURCE_DATASET, TARGET_DATASETS, WORLD_CLASS_LISTS

# Bump when what a given setting writes changes (renderer, layout, sampling).
DATASETS_VERSION = 1
NUM_SPLITS = 3


@dataclass(frozen=True)
class WorldDatasetSizes:
    """How big the world's datasets are; every field goes into the cache key."""

    source_train_per_class: int = 16
    source_val_per_class: int = 4
    target_per_class: int = 12  # videos per class; each split tests on a third of them
    clips_per_group: int = 2  # target videos sharing one person and place
    num_frames: int = 16
    size: int = 64
    fps: int = 8
    seed: int = 0


@dataclass(frozen=True)
class VideoJob:
    """One video to render: where it goes, what it shows and its seed."""

    rel: str  # path under the dataset's videos/
    dataset: str
    scene: Scene
    seed: int


def video_seed(*parts: object) -> int:
    """A 62-bit seed derived from its parts (dataset, settings seed, class, role, index)."""
    return int(row_id("world_video", parts=[str(p) for p in parts]), 16) & ((1 << 62) - 1)


def group_clip_scene(dataset: str, seed: int, cls: str, group: int, clip: int, style: RealStyle
                     ) -> tuple[Scene, int]:
    """A target video's scene and seed: one person in one place per group (``group``), camera,
    lighting and tempo of the clip's own (``clip``, the video's index within its class)."""
    group_scene = real_scene(cls, np.random.default_rng(video_seed(dataset, seed, cls, "group", group)), style)
    clip_seed = video_seed(dataset, seed, cls, "clip", clip)
    own = real_scene(cls, np.random.default_rng(clip_seed), style)
    return replace(own, environment=group_scene.environment, character=group_scene.character), clip_seed


def _source_jobs(sizes: WorldDatasetSizes, style: RealStyle) -> tuple[list[VideoJob], dict[str, list[tuple[str, int]]]]:
    jobs, splits = [], {"train": [], "val": []}
    for label, cls in enumerate(WORLD_CLASS_LISTS[SOURCE_DATASET]):
        folder = ACTION_BY_NAME[cls].folder
        for split, count in (("train", sizes.source_train_per_class), ("val", sizes.source_val_per_class)):
            for i in range(count):
                seed = video_seed(SOURCE_DATASET, sizes.seed, cls, split, i)
                scene = real_scene(cls, np.random.default_rng(seed), style)
                rel = f"{folder}/{folder}_{split}_{i:04d}.mp4"
                jobs.append(VideoJob(rel, SOURCE_DATASET, scene, seed))
                splits[split].append((rel, label))
    return jobs, splits


def _target_jobs(name: str, sizes: WorldDatasetSizes, style: RealStyle
                 ) -> tuple[list[VideoJob], dict[str, list[tuple[str, int]]]]:
    jobs = []
    per_fold: list[list[tuple[str, int]]] = [[] for _ in range(NUM_SPLITS)]
    for label, cls in enumerate(WORLD_CLASS_LISTS[name]):
        folder = ACTION_BY_NAME[cls].folder
        n_groups = max(NUM_SPLITS, -(-sizes.target_per_class // sizes.clips_per_group))
        for i in range(sizes.target_per_class):
            g = i % n_groups
            scene, seed = group_clip_scene(name, sizes.seed, cls, g, i, style)
            rel = f"{folder}/{folder}_g{g + 1:02d}_c{i // n_groups + 1:02d}.mp4"
            jobs.append(VideoJob(rel, name, scene, seed))
            per_fold[g % NUM_SPLITS].append((rel, label))
    splits = {}
    for k in range(NUM_SPLITS):
        splits[f"train{k + 1}"] = sorted(x for j, fold in enumerate(per_fold) if j != k for x in fold)
        splits[f"val{k + 1}"] = sorted(per_fold[k])
    return jobs, splits


def _render_and_write(args: tuple[VideoJob, str, int, int, int]) -> str:
    job, root, num_frames, size, fps = args
    from ray_pipeline.video_io import write_mp4

    clip = render_clip(job.scene, job.seed, num_frames, size)
    write_mp4(clip, str(Path(root) / job.dataset / "videos" / job.rel), fps=fps)
    return job.rel


def render_videos(jobs: list[VideoJob], out: str | os.PathLike, num_frames: int, size: int, fps: int,
                  workers: int) -> float:
    """Render and write every job's mp4 under ``out/<dataset>/videos/``; returns the seconds taken.

    Args:
        jobs: the videos to render.
        out: the folder holding the datasets' folders.
        num_frames: frames per clip.
        size: frame height and width.
        fps: the mp4's frame rate.
        workers: processes rendering in parallel (1: in this process).
    """
    args = [(j, str(out), num_frames, size, fps) for j in jobs]
    t0 = time.time()
    if workers > 1:
        # fork is safe here (no threads yet in this helper's callers) and skips re-importing torch.
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_and_write, args, chunksize=8):
                pass
    else:
        for a in args:
            _render_and_write(a)
    return time.time() - t0


def _write_tables(root: Path, name: str, splits: dict[str, list[tuple[str, int]]], role: str) -> None:
    d = root / name
    (d / "splits").mkdir(parents=True, exist_ok=True)
    classes = WORLD_CLASS_LISTS[name]
    (d / "labels.csv").write_text("id,name\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes)))
    for split, rows in splits.items():
        (d / "splits" / f"{split}.txt").write_text("".join(f"{rel} {label}\n" for rel, label in rows))
    source = set(WORLD_CLASS_LISTS[SOURCE_DATASET])
    info = {
        "name": name, "role": role, "classes": classes, "video_root": "videos",
        "split_format": "<path relative to video_root> <label id>",
        "splits": {k: len(v) for k, v in splits.items()},
        "classes_absent_from_source": [c for c in classes if c not in source] if name != SOURCE_DATASET else [],
    }
    (d / "info.json").write_text(json.dumps(info, indent=2) + "\n")


def dataset_key(sizes: WorldDatasetSizes, style: RealStyle) -> str:
    """The cache key: every setting that changes a byte of the datasets."""
    return row_id("world_datasets", version=DATASETS_VERSION, world=WORLD_VERSION, sizes=asdict(sizes),
                  style=asdict(style), classes=WORLD_CLASS_LISTS)


def build_world_datasets(out: str | os.PathLike, sizes: WorldDatasetSizes = WorldDatasetSizes(),
                         style: RealStyle | None = None, workers: int | None = None) -> Path:
    """Write the three datasets under ``out`` (which should not exist yet); returns ``out``."""
    out = Path(out)
    style = style or RealStyle()
    jobs, tables = [], {}
    src_jobs, src_splits = _source_jobs(sizes, style)
    jobs += src_jobs
    tables[SOURCE_DATASET] = (src_splits, "source (Kinetics-400's role)")
    for name in TARGET_DATASETS:
        t_jobs, t_splits = _target_jobs(name, sizes, style)
        jobs += t_jobs
        tables[name] = (t_splits, f"target ({'HMDB-51' if 'hmdb' in name else 'UCF-101'}'s role)")
    for name, (splits, role) in tables.items():
        _write_tables(out, name, splits, role)
    workers = workers or min(2, os.cpu_count() or 1)
    seconds = render_videos(jobs, out, sizes.num_frames, sizes.size, sizes.fps, workers)
    meta = {"sizes": asdict(sizes), "style": asdict(style), "datasets_version": DATASETS_VERSION,
            "videos": len(jobs), "build_seconds": round(seconds, 2), "workers": workers}
    (out / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def ensure_world_datasets(cache_dir: str | os.PathLike, *, source_train_per_class: int = 16,
                          source_val_per_class: int = 4, target_per_class: int = 12, clips_per_group: int = 2,
                          num_frames: int = 16, size: int = 64, fps: int = 8, seed: int = 0,
                          style: RealStyle | None = None, workers: int | None = None) -> Path:
    """The world's datasets for these settings, built on first use; returns the folder holding
    ``world_k400/``, ``world_hmdb/`` and ``world_ucf/``.

    Built into ``cache_dir/world_datasets/<key>`` through a temporary folder and a rename, so a
    crash never leaves a half-written dataset under the final name and concurrent callers agree.
    """
    sizes = WorldDatasetSizes(source_train_per_class, source_val_per_class, target_per_class, clips_per_group,
                              num_frames, size, fps, seed)
    style = style or RealStyle()
    final = Path(os.path.expanduser(str(cache_dir))) / "world_datasets" / dataset_key(sizes, style)
    return build_once(final, lambda tmp: build_world_datasets(tmp, sizes, style, workers))


def build_once(final: Path, build: Callable[[Path], object], marker: str = "world.json") -> Path:
    """Build a folder once: ``build(tmp)`` writes it into a temporary sibling, which is renamed to
    ``final``; a folder whose ``marker`` file exists is finished and returned as it is.

    Args:
        final: the folder's final path (its parent is created).
        build: writes the whole folder into the path it is given, ``marker`` last.
        marker: the file whose presence says the folder is complete.
    """
    if (final / marker).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / marker).is_file():  # not a concurrent builder's finished copy
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_split(dataset_dir: str | os.PathLike, split: str) -> list[tuple[Path, int]]:
    """(video path, label id) pairs of one split file of a world dataset."""
    d = Path(dataset_dir)
    rows = []
    for line in (d / "splits" / f"{split}.txt").read_text().splitlines():
        if line.strip():
            rel, label = line.rsplit(" ", 1)
            rows.append((d / "videos" / rel, int(label)))
    return rows


def read_labels(dataset_dir: str | os.PathLike) -> list[str]:
    """Class names in label-id order, from labels.csv."""
    lines = (Path(dataset_dir) / "labels.csv").read_text().splitlines()[1:]
    return [line.split(",", 1)[1] for line in lines if line.strip()]
