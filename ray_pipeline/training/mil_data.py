"""A video as a MIL bag for a video-text model: its segments as clips, and what a model makes of them.

Shared by the stages that embed training videos (frozen features for the ranking head), fine-tune a
model on bags (the top-k head) and score test videos. A video of any length is cut into
``num_segments`` segments over ``max(1, frames // clip_len)`` clip units
(:func:`~ray_pipeline.training.mil.segment_frame_indices`); each segment becomes one clip of the
model's frame count, sampled evenly inside it, and only those frames are decoded.

Segment scores of a model without a scorer are the top-k head's: the model's logits against the
class texts folded into (normal, abnormal) by :func:`~ray_pipeline.training.mil.normal_vs_rest_logits`,
whose softmax gives P(abnormal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ray_pipeline.ids import row_id
from ray_pipeline.models.preprocess import Preprocess, clip_tensor
from ray_pipeline.training.mil import normal_vs_rest_logits, read_segment_frames

BASELINE_LABEL = "MIL (no generated pre-training)"


@dataclass(frozen=True)
class BagVideo:
    """A training video: its file name, where it is and its video-level label."""

    video: str
    path: str
    anomalous: bool


@dataclass(frozen=True)
class MilModel:
    """A model the MIL head works on; ``model_dir`` None is the untrained backbone, ``key`` its
    content identity, ``shared`` whether what is computed from it alone (its frozen segment
    features) belongs in the shared store: the backbone's and a shared train phase's do, as they
    depend on no setting of this run."""

    label: str
    role: str
    model_dir: str | None
    key: str
    shared: bool = False


def model_refs(trained: list[dict] | None, backbone: str, baseline_label: str = BASELINE_LABEL) -> list[MilModel]:
    """The backbone (the baseline row: no generated pre-training) and every trained model (the
    train stage's rows, which carry a role, a label, a content key and whether they are shared)."""
    models = [MilModel(baseline_label, "baseline", None, row_id("backbone", path=backbone), shared=True)]
    models += [MilModel(r["label"], r["role"], r["model_dir"], r["model_key"], bool(r.get("shared")))
               for r in trained or []]
    return models


@dataclass(frozen=True)
class BagSampling:
    """How a video becomes a bag of clips.

    Attributes:
        num_segments: segments per video (32).
        frames_per_segment: frames per segment clip (the model's frame count; X-CLIP-B/32: 8).
        clip_len: frames per clip unit that segments are made of (16: C3D's clips; 1: frames).
    """

    num_segments: int
    frames_per_segment: int
    clip_len: int


def segment_pixels(uri: str, pre: Preprocess, sampling: BagSampling, *, train: bool = False,
                   rng: np.random.Generator | None = None) -> tuple[torch.Tensor, int]:
    """A video's segments as normalised clips [S, F, 3, s, s], and its frame count.

    In train mode every segment gets the same random crop and flip (one view of the video).
    """
    from ray_pipeline.video_io import count_frames

    frames = read_segment_frames(uri, sampling.num_segments, sampling.frames_per_segment, sampling.clip_len)
    s, f = frames.shape[:2]
    x = clip_tensor(frames.reshape(s * f, *frames.shape[2:]), pre, train=train, rng=rng)
    return x.view(s, f, *x.shape[1:]), count_frames(uri)


def load_model(model_dir: str | None, backbone: str, backbone_model: str, device: str = "cpu") -> tuple:
    """(model in eval mode on ``device``, its preprocessing): a trained model from ``model_dir``
    (a local path or URI), else the backbone built as ``backbone_model``."""
    from ray_pipeline.models.base import build_video_text_model, load_video_text_model
    from ray_pipeline.runstore import local_copy

    if model_dir:
        with local_copy(model_dir) as local_dir:
            model = load_video_text_model(local_dir)
            # A trained model was fed the backbone's preprocessing unless it carries its own.
            own = os.path.isfile(os.path.join(local_dir, "preprocessor_config.json"))
            pre = Preprocess.from_pretrained(local_dir if own else backbone)
    else:
        model = build_video_text_model(backbone_model, backbone)
        pre = Preprocess.from_pretrained(backbone)
    return model.to(device).eval(), pre


def normal_index(class_texts: list[str], normal_class: str | None) -> int:
    """Index of the normal class among ``class_texts`` (default: the first)."""
    if normal_class is None:
        return 0
    if normal_class not in class_texts:
        raise ValueError(f"normal class {normal_class!r} is not one of the class texts {class_texts}")
    return class_texts.index(normal_class)


def abnormal_logits(model: torch.nn.Module, pixels: torch.Tensor, class_texts: list[str],
                    normal: int) -> torch.Tensor:
    """Segments [..., S, F, 3, s, s] -> (normal, abnormal) logits [..., S, 2] (the top-k head's)."""
    lead = pixels.shape[:-4]
    logits = model(pixels.reshape(-1, *pixels.shape[-4:]), class_texts)
    return normal_vs_rest_logits(logits.float(), normal).view(*lead, 2)


@torch.no_grad()
def segment_outputs(model: torch.nn.Module, pixels: torch.Tensor, class_texts: list[str] | None = None,
                    normal: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """One video's segment embeddings [S, P] (the model's L2-normalised video embedding of each
    segment clip) and, given class texts, P(abnormal) per segment [S]."""
    video = model.encode_video(pixels)
    embedding = video.embedding.float().cpu().numpy()
    if class_texts is None:
        return embedding, None
    logits = model.logits(video, model.encode_text(class_texts, video)).float()
    p = normal_vs_rest_logits(logits, normal).softmax(-1)[..., 1]
    return embedding, p.cpu().numpy()


class BagDataset(torch.utils.data.Dataset):
    """(video URI, video label) -> (segment clips [S, F, 3, s, s], label 1 anomalous / 0 normal).

    Randomness (crop, flip) comes from a generator seeded by (seed, epoch, index), so a bag is the
    same whichever worker loads it.
    """

    def __init__(self, videos: list[str], labels: list[int], pre: Preprocess, sampling: BagSampling, *,
                 train: bool, seed: int = 0) -> None:
        if len(videos) != len(labels):
            raise ValueError("videos and labels must have the same length")
        self.videos, self.labels, self.pre, self.sampling = videos, labels, pre, sampling
        self.train, self.seed, self.epoch = train, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        try:
            pixels, _ = segment_pixels(self.videos[i], self.pre, self.sampling, train=self.train, rng=rng)
        except Exception as exc:  # decord raises its own error types
            raise RuntimeError(f"cannot decode training video {self.videos[i]}: {exc}") from exc
        return pixels, int(self.labels[i])


def bag_batches(labels: list[int], bags_per_side: int, epoch: int, seed: int) -> list[list[int]]:
    """One epoch's global batches of dataset indices: every anomalous video once, in a seeded
    order, ``bags_per_side`` per batch, each batch with as many normal videos (drawn in a seeded
    order, cycling when there are fewer). The same for any worker count."""
    anomalous = [i for i, y in enumerate(labels) if y == 1]
    normal = [i for i, y in enumerate(labels) if y == 0]
    if not anomalous or not normal:
        raise ValueError(f"MIL needs anomalous and normal training videos, got {len(anomalous)} and {len(normal)}")
    rng = np.random.default_rng([seed, epoch, 0x313])
    a = [anomalous[i] for i in rng.permutation(len(anomalous))]
    n = [normal[i] for i in rng.permutation(len(normal))]
    per = min(bags_per_side, len(a))
    batches = []
    for b in range(len(a) // per):
        chosen_n = [n[(b * per + j) % len(n)] for j in range(per)]
        batches.append(a[b * per:(b + 1) * per] + chosen_n)
    return batches
