"""Clip datasets for training and evaluation: decord decoding, TSN sampling, CLIP preprocessing.

Randomness (frame offsets, crops, flips) comes from a generator seeded by (seed, epoch, index),
so a sample is the same whichever worker loads it: 2 workers see the same global batch as 1.
"""

from __future__ import annotations

import numpy as np
import torch

from ray_pipeline.models.preprocess import Preprocess, clip_tensor
from ray_pipeline.video_io import read_frames


class ClipDataset(torch.utils.data.Dataset):
    """(video URI, label, uncertainty, is real) records -> (pixels [T,3,S,S], label, uncertainty, real).

    ``real`` (default: all generated) lets the loss treat real clips in a mixed set alike under every
    variant."""

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

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        try:
            frames = read_frames(self.videos[i], num_segments=self.num_frames, random=self.train, rng=rng)
        except Exception as exc:  # decord raises its own error types
            raise RuntimeError(f"cannot decode training clip {self.videos[i]}: {exc}") from exc
        pixels = clip_tensor(frames, self.pre, train=self.train, rng=rng)
        return pixels, int(self.labels[i]), float(self.uncertainty[i]), bool(self.real[i])
