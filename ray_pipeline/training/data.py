"""Clip datasets for training and evaluation: decord decoding, TSN sampling, CLIP preprocessing, and
the training loader that keeps a GPU fed.

Randomness (frame offsets, crops, flips) comes from a generator seeded by (seed, epoch, index),
so a sample is the same whichever process loads it: 2 Ray Train workers see the same global batch
as 1, and DataLoader processes decode exactly what the training process would. The epoch travels
with each index (:class:`EpochIndices`), so persistent decoding processes, which keep their own
copy of the dataset, still draw each epoch's augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ray_pipeline.models.preprocess import Preprocess, clip_tensor
from ray_pipeline.video_io import read_frames


class ClipDataset(torch.utils.data.Dataset):
    """(video URI, label, uncertainty, is real) records -> (pixels [T,3,S,S], label, uncertainty, real).

    ``real`` (default: all generated) lets the loss treat real clips in a mixed set alike under every
    variant. An item is an index (drawn with the epoch of :meth:`set_epoch`) or an ``(epoch, index)``
    pair (:class:`EpochIndices`)."""

    def __init__(self, videos: list[str], labels: list[int], uncertainty: list[float],
                 pre: Preprocess, num_frames: int, *, train: bool, seed: int = 0,
                 real: list[bool] | None = None) -> None:
        real = [False] * len(videos) if real is None else list(real)
        if not (len(videos) == len(labels) == len(uncertainty) == len(real)):
            raise ValueError("videos, labels, uncertainty and real must have the same length")
        self.videos, self.labels, self.uncertainty, self.real = videos, labels, uncertainty, real
        self.pre, self.num_frames, self.train, self.seed = pre, num_frames, train, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, float, bool]:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng([self.seed, epoch, i])
        try:
            frames = read_frames(self.videos[i], num_segments=self.num_frames, random=self.train, rng=rng)
        except Exception as exc:  # decord raises its own error types
            raise RuntimeError(f"cannot decode training clip {self.videos[i]}: {exc}") from exc
        pixels = clip_tensor(frames, self.pre, train=self.train, rng=rng)
        return pixels, int(self.labels[i]), float(self.uncertainty[i]), bool(self.real[i])


class EpochIndices(torch.utils.data.Sampler):
    """``(epoch, index)`` pairs in the order of ``sampler`` (a ``DistributedSampler``), the epoch read
    from it when an epoch's iteration starts: indices are drawn in the training process, so the epoch
    reaches decoding processes that were started in an earlier one."""

    def __init__(self, sampler: torch.utils.data.DistributedSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.sampler.epoch)
        return ((epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


@dataclass(frozen=True)
class LoaderPlan:
    """How a training worker's DataLoader runs (``train.loader`` resolved for its device and CPUs)."""

    num_workers: int
    pin_memory: bool
    prefetch_factor: int | None
    persistent_workers: bool

    def kwargs(self) -> dict:
        extra = {"prefetch_factor": self.prefetch_factor, "persistent_workers": self.persistent_workers} \
            if self.num_workers else {}
        return {"num_workers": self.num_workers, "pin_memory": self.pin_memory, **extra}

    def describe(self) -> str:
        if not self.num_workers:
            return f"decoding in the training process{', pinned' if self.pin_memory else ''}"
        return (f"{self.num_workers} decoding process(es), {self.prefetch_factor} batches ahead each"
                f"{', pinned' if self.pin_memory else ''}{', persistent' if self.persistent_workers else ''}")


def plan_loader(settings: dict, device_type: str, worker_cpus: float, torch_threads: int | None = None) -> LoaderPlan:
    """``train.loader`` (as a dict) for a worker on ``device_type`` holding ``worker_cpus`` CPUs.

    Defaults: on GPU ``worker_cpus - 1`` processes decode while the step runs, into pinned memory.
    On CPU one process decodes while the step runs when the worker holds CPUs its ``torch_threads``
    leave idle (decoding takes about a third of a world step's time, bench_loader.py), else the
    training process decodes. Pinning needs an accelerator, so it is off on CPU whatever is asked.
    """
    workers = settings.get("num_workers")
    if workers is None and device_type == "cuda":
        workers = max(0, int(worker_cpus) - 1)
    elif workers is None:
        workers = int(torch_threads is not None and worker_cpus > torch_threads)
    pin = settings.get("pin_memory")
    pin = (device_type == "cuda") if pin is None else bool(pin) and device_type == "cuda"
    return LoaderPlan(int(workers), pin, int(settings.get("prefetch_factor", 2)) if workers else None,
                      bool(settings.get("persistent_workers", True)) and workers > 0)


def collate_clips(items: list[tuple[torch.Tensor, int, float, bool]]) -> tuple[torch.Tensor, ...]:
    """A batch of :class:`ClipDataset` items, the same tensors in any process, memory layout included.

    ``default_collate`` stacks into a contiguous shared-memory buffer inside a decoding process but
    keeps the clips' channels-last frames in the training process; the patch-embedding convolution
    rounds differently on the two layouts (AVX2 kernels), so the weights would depend on who decodes.
    """
    pixels, labels, uncertainty, real = zip(*items)
    return (torch.stack(pixels), torch.tensor(labels, dtype=torch.int64),
            torch.tensor(uncertainty, dtype=torch.float64), torch.tensor(real, dtype=torch.bool))


def training_loader(dataset: ClipDataset, sampler: torch.utils.data.DistributedSampler, batch_size: int,
                    plan: LoaderPlan) -> torch.utils.data.DataLoader:
    """Batches of ``batch_size`` in the sampler's order (last partial batch dropped), decoded as ``plan`` says."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=EpochIndices(sampler), drop_last=True,
                                       collate_fn=collate_clips, **plan.kwargs())
