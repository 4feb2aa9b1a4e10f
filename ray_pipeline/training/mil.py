"""Multiple-instance learning for weakly supervised anomaly detection (evaluation-protocols.md §5).

A video is a bag of temporal segments and its only label says whether some segment is
anomalous. Two heads learn segment scores from that:

* ``ranking`` (Sultani et al., CVPR 2018): a scorer on frozen segment features, trained with a
  hinge between the highest-scoring segment of an anomalous and of a normal bag, plus temporal
  smoothness and sparsity on the anomalous bags (:func:`mil_ranking_loss`).
* ``topk_ce`` (Lv et al., CVPR 2023, the MIL baseline they fine-tune X-CLIP with): cross-entropy
  of the top-k most anomalous segments' normal/abnormal logits against the video label, each
  weighted by its own confidence, plus smoothness and sparsity over every video
  (:func:`topk_mil_ce_loss`).

The building blocks take plain arrays: segment features of a video from its clip features
(:func:`segment_features`), frame indices to sample a segment from (:func:`segment_frame_indices`),
the scorer (:class:`SegmentScorer`) and a seeded CPU training loop on precomputed features
(:func:`train_segment_scorer`). :func:`normal_vs_rest_logits` turns a video-text model's
scores against K class names into the (normal, abnormal) logits the top-k head takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ray_pipeline.evaluation.anomaly import NUM_SEGMENTS, segment_bounds

MilHead = Literal["ranking", "topk_ce"]
MIL_HEADS: tuple[str, ...] = ("ranking", "topk_ce")

# Sultani et al.'s weights (TrainingAnomalyDetector_public.py): smoothness and sparsity 8e-5,
# an L2 penalty of 1e-3 on every layer's weights, Adagrad with lr 0.01.
RANKING_SMOOTHNESS = 8e-5
RANKING_SPARSITY = 8e-5
RANKING_WEIGHT_DECAY = 1e-3
# Lv et al.'s MIL baseline (UMIL main.py defaults): smoothness 0.01, sparsity 0.001.
TOPK_SMOOTHNESS = 0.01
TOPK_SPARSITY = 0.001


# --------------------------------------------------------------------------------------------
# Segments of a video
# --------------------------------------------------------------------------------------------


def segment_features(unit_features: np.ndarray | torch.Tensor,
                     num_segments: int = NUM_SEGMENTS) -> np.ndarray:
    """A video's segment features from its clip features (Save_C3DFeatures_32Segments.m).

    The clips are split by :func:`~ray_pipeline.evaluation.anomaly.segment_bounds`; each
    segment's feature is the mean of its clips' features, then L2-normalised.

    Args:
        unit_features: [n_clips, d] features of consecutive clips (C3D's 16-frame clips, or
            one per frame or frame window).
        num_segments: segments per video (32).

    Returns:
        float32 [num_segments, d].
    """
    x = unit_features.detach().cpu().numpy() if isinstance(unit_features, torch.Tensor) else unit_features
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected clip features [n_clips, d] with n_clips >= 1, got shape {x.shape}")
    out = np.stack([x[s:e].mean(axis=0) for s, e in segment_bounds(x.shape[0], num_segments)])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a segment's mean feature is zero and cannot be L2-normalised")
    return (out / norms).astype(np.float32)


def segment_frame_indices(num_frames: int, num_segments: int = NUM_SEGMENTS, frames_per_segment: int = 8,
                          clip_len: int = 1) -> np.ndarray:
    """Frame indices [num_segments, frames_per_segment] to embed each segment from directly.

    Segments are those of :func:`segment_bounds` over ``max(1, num_frames // clip_len)`` clips,
    so they match :func:`~ray_pipeline.evaluation.anomaly.segment_to_frame_scores` with the same
    ``clip_len``. Within a segment the frames are spread evenly (segment centres of equal
    sub-windows, TSN's test-time rule); a segment shorter than ``frames_per_segment`` repeats
    frames. Only these frames need decoding, which is what keeps long videos cheap.

    Args:
        num_frames: frames in the video.
        num_segments: segments per video.
        frames_per_segment: frames sampled per segment (the video model's clip length).
        clip_len: frames per clip unit (1: segments over frames; 16: over C3D-style clips).
    """
    if num_frames < 1 or frames_per_segment < 1 or clip_len < 1:
        raise ValueError(f"num_frames, frames_per_segment and clip_len must be >= 1, got "
                         f"{num_frames}, {frames_per_segment}, {clip_len}")
    num_clips = max(1, num_frames // clip_len)
    out = np.empty((num_segments, frames_per_segment), dtype=np.int64)
    for i, (s, e) in enumerate(segment_bounds(num_clips, num_segments)):
        lo, hi = s * clip_len, min(e * clip_len, num_frames)
        if i == num_segments - 1:
            hi = num_frames  # the last segment also owns the frames after the last whole clip
        edges = np.linspace(lo, hi, frames_per_segment + 1)
        out[i] = np.clip(np.floor((edges[:-1] + edges[1:]) / 2), lo, max(hi - 1, lo)).astype(np.int64)
    return out


def read_segment_frames(uri: str, num_segments: int = NUM_SEGMENTS, frames_per_segment: int = 8,
                        clip_len: int = 1) -> np.ndarray:
    """Decode only the frames :func:`segment_frame_indices` picks: uint8 [S, F, H, W, 3].

    Videos of any length are read lazily: the frame count comes from the container and only the
    ``S * F`` sampled frames (fewer when they repeat) are decoded.
    """
    from ray_pipeline.video_io import count_frames, read_frames

    idx = segment_frame_indices(count_frames(uri), num_segments, frames_per_segment, clip_len)
    unique, inverse = np.unique(idx, return_inverse=True)
    frames = read_frames(uri, unique)
    return frames[inverse.reshape(idx.shape)]


# --------------------------------------------------------------------------------------------
# Scorer and losses
# --------------------------------------------------------------------------------------------


class SegmentScorer(nn.Module):
    """Sultani et al.'s scorer: FC d -> 512 (ReLU) -> 32 -> 1, dropout 0.6 after each hidden layer.

    As in the public Keras model, the 32-unit layer has no activation and weights start
    Glorot-normal with zero biases. :meth:`forward` returns the logit; the anomaly score is its
    sigmoid (:meth:`score`), and for the top-k cross-entropy the logit is the abnormal-vs-normal
    log-odds (:func:`binary_logits`).

    Args:
        in_dim: feature width d (4096 for C3D fc6).
        hidden: the two hidden widths.
        dropout: dropout probability after each hidden layer.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, int] = (512, 32), dropout: float = 0.6) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 1)
        self.dropout = nn.Dropout(dropout)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[..., d] -> [...] logits."""
        x = self.dropout(F.relu(self.fc1(features)))
        x = self.dropout(self.fc2(x))
        return self.fc3(x).squeeze(-1)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """[..., d] -> [...] anomaly scores in (0, 1)."""
        return torch.sigmoid(self(features))

    def weight_penalty(self) -> torch.Tensor:
        """Sum of squared weights of every layer (Keras ``l2`` regulariser; biases excluded)."""
        return sum(layer.weight.pow(2).sum() for layer in (self.fc1, self.fc2, self.fc3))


def binary_logits(logit: torch.Tensor) -> torch.Tensor:
    """[...] log-odds -> [..., 2] (normal, abnormal) logits whose softmax gives P(abnormal) = sigmoid."""
    return torch.stack([torch.zeros_like(logit), logit], dim=-1)


def normal_vs_rest_logits(class_logits: torch.Tensor, normal_index: int = 0) -> torch.Tensor:
    """[..., K] class logits -> [..., 2] (normal, abnormal) logits: the normal class's logit and
    the log-sum-exp of the others, so the 2-way softmax is (P(normal), 1 - P(normal)) of the
    K-way one.

    For a video-text model whose text side does not know the words "normal" and "abnormal" (the
    world CLIP reads both as the same sub-words), scoring segments against the anomaly classes'
    own names keeps the text meaningful.
    """
    k = class_logits.shape[-1]
    if not 0 <= normal_index < k or k < 2:
        raise ValueError(f"normal_index {normal_index} outside 0..{k - 1} (need >= 2 classes)")
    rest = torch.cat([class_logits[..., :normal_index], class_logits[..., normal_index + 1:]], dim=-1)
    return torch.stack([class_logits[..., normal_index], rest.logsumexp(dim=-1)], dim=-1)


def _smoothness(scores: torch.Tensor) -> torch.Tensor:
    """[B, n] -> [B]: sum over neighbours of (s_{i+1} - s_i)^2."""
    return (scores[:, 1:] - scores[:, :-1]).pow(2).sum(dim=1)


def mil_ranking_loss(anomalous_scores: torch.Tensor, normal_scores: torch.Tensor,
                     smoothness: float = RANKING_SMOOTHNESS,
                     sparsity: float = RANKING_SPARSITY) -> torch.Tensor:
    """Sultani et al.'s MIL ranking loss on segment scores in [0, 1].

    ``l = mean over normal bags n of sum over anomalous bags a of max(0, 1 - max f(a) + max f(n))
    + smoothness * sum_a sum_i (f(a_i) - f(a_{i+1}))^2 + sparsity * sum_a sum_i f(a_i)``.
    This is how the public code reduces it (``custom_objective``: the hinge summed over the
    anomalous bags and averaged over the normal ones; smoothness and sparsity summed over the
    anomalous bags only), so with its 30 + 30 bags the hinge weighs 30x its per-pair mean.

    Args:
        anomalous_scores: [A, n] scores of the anomalous bags' segments.
        normal_scores: [N, n] scores of the normal bags' segments.
        smoothness: lambda_1 (8e-5).
        sparsity: lambda_2 (8e-5).
    """
    if anomalous_scores.dim() != 2 or normal_scores.dim() != 2:
        raise ValueError("expected [bags, segments] score tensors")
    if anomalous_scores.shape[0] == 0 or normal_scores.shape[0] == 0:
        raise ValueError("the ranking loss needs at least one anomalous and one normal bag")
    max_a = anomalous_scores.max(dim=1).values  # [A]
    max_n = normal_scores.max(dim=1).values  # [N]
    hinge = F.relu(1.0 - max_a.unsqueeze(0) + max_n.unsqueeze(1))  # [N, A]
    return (hinge.sum(dim=1).mean() + smoothness * _smoothness(anomalous_scores).sum()
            + sparsity * anomalous_scores.sum())


def topk_mil_ce_loss(logits: torch.Tensor, labels: torch.Tensor, k: int = 1,
                     smoothness: float = TOPK_SMOOTHNESS, sparsity: float = TOPK_SPARSITY) -> torch.Tensor:
    """Lv et al.'s top-k MIL cross-entropy on per-segment (normal, abnormal) logits.

    Per video, the ``k`` segments with the highest P(abnormal) stand for the bag: the
    cross-entropy of each one's logits against the video label, weighted by that segment's
    largest class probability (not detached, as in UMIL's ``main.py``), is averaged over the k
    and over the videos. With ``k = 1`` this is exactly UMIL's MIL baseline term. Smoothness
    ``sum_t (p_{t+1} - p_t)^2`` and sparsity ``sum_t p_t`` of P(abnormal) are averaged over all
    videos, normal ones included, as there.

    Args:
        logits: [V, S, 2] (normal, abnormal) logits per segment; :func:`binary_logits` turns a
            scorer's log-odds into these, a video-text model's scores against ("normal",
            "abnormal") are these.
        labels: [V] 1 for anomalous videos, 0 for normal ones.
        k: segments per video in the loss, 1 <= k <= S.
        smoothness: weight of the smoothness term (0.01).
        sparsity: weight of the sparsity term (0.001).
    """
    if logits.dim() != 3 or logits.shape[-1] != 2:
        raise ValueError(f"expected logits [videos, segments, 2], got {tuple(logits.shape)}")
    v, s, _ = logits.shape
    if not 1 <= k <= s:
        raise ValueError(f"k must be in 1..{s} (segments per video), got {k}")
    labels = labels.to(device=logits.device).long().reshape(-1)
    if labels.shape[0] != v:
        raise ValueError(f"{labels.shape[0]} labels for {v} videos")
    probs = logits.softmax(dim=-1)
    top = probs[..., 1].topk(k, dim=1).indices  # [V, k]
    chosen = logits.gather(1, top.unsqueeze(-1).expand(-1, -1, 2))  # [V, k, 2]
    weight = probs.gather(1, top.unsqueeze(-1).expand(-1, -1, 2)).max(dim=-1).values  # [V, k]
    ce = F.cross_entropy(chosen.reshape(-1, 2), labels.repeat_interleave(k), reduction="none").view(v, k)
    p_ano = probs[..., 1]
    return ((ce * weight).mean() + smoothness * _smoothness(p_ano).mean()
            + sparsity * p_ano.sum(dim=1).mean())


# --------------------------------------------------------------------------------------------
# Training a scorer on precomputed features
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorerTrainConfig:
    """How :func:`train_segment_scorer` trains; defaults are Sultani et al.'s public settings.

    Attributes:
        head: ``ranking`` (Sultani) or ``topk_ce`` (Lv et al.).
        iterations: optimiser steps (20,000 in the public code).
        bags_per_side: anomalous and normal bags per batch (30 + 30), capped by what there is.
        lr: Adagrad learning rate (0.01; the paper says 0.001).
        weight_decay: L2 penalty on the scorer's weights, added to the loss (1e-3 per layer).
        dropout: the scorer's dropout (0.6).
        topk: k of the top-k cross-entropy.
        smoothness: smoothness weight; None takes the head's default (8e-5 ranking, 0.01 top-k).
        sparsity: sparsity weight; None takes the head's default (8e-5 ranking, 0.001 top-k).
        seed: seeds the initialisation, dropout and the bag sampling.
    """

    head: MilHead = "ranking"
    iterations: int = 20_000
    bags_per_side: int = 30
    lr: float = 0.01
    weight_decay: float = RANKING_WEIGHT_DECAY
    dropout: float = 0.6
    topk: int = 1
    smoothness: float | None = None
    sparsity: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.head not in MIL_HEADS:
            raise ValueError(f"unknown MIL head {self.head!r}; known: {list(MIL_HEADS)}")
        if self.iterations < 1 or self.bags_per_side < 1:
            raise ValueError("iterations and bags_per_side must be >= 1")


@dataclass
class ScorerTrainResult:
    """A trained scorer and its loss per iteration."""

    scorer: SegmentScorer
    losses: list[float] = field(default_factory=list)


def _as_bags(features: np.ndarray | torch.Tensor | Sequence[np.ndarray], what: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(features, dtype=np.float32)) if not isinstance(features, torch.Tensor) \
        else features.detach().float().cpu()
    if x.dim() != 3 or x.shape[0] == 0:
        raise ValueError(f"{what}: expected [bags, segments, d] with at least one bag, got {tuple(x.shape)}")
    return x


def train_segment_scorer(anomalous: np.ndarray | torch.Tensor, normal: np.ndarray | torch.Tensor,
                         config: ScorerTrainConfig = ScorerTrainConfig()) -> ScorerTrainResult:
    """Train a :class:`SegmentScorer` on frozen segment features with one MIL head (CPU, seeded).

    Every iteration samples ``bags_per_side`` anomalous and as many normal bags without
    replacement (all of them when there are fewer), as the public code does, and takes one
    Adagrad step on the head's loss plus the weight penalty. The same inputs and seed give the
    same scorer.

    Args:
        anomalous: [A, S, d] segment features of the anomalous training videos.
        normal: [N, S, d] segment features of the normal training videos.
        config: head, steps, batch, optimiser and loss weights.
    """
    a, n = _as_bags(anomalous, "anomalous bags"), _as_bags(normal, "normal bags")
    if a.shape[1:] != n.shape[1:]:
        raise ValueError(f"anomalous bags {tuple(a.shape[1:])} and normal bags {tuple(n.shape[1:])} "
                         "differ in shape")
    if config.head == "topk_ce" and not 1 <= config.topk <= a.shape[1]:
        raise ValueError(f"topk {config.topk} outside 1..{a.shape[1]} segments")
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        scorer = SegmentScorer(a.shape[-1], dropout=config.dropout)
        # Keras' Adagrad: accumulators start at zero, epsilon 1e-8.
        opt = torch.optim.Adagrad(scorer.parameters(), lr=config.lr, eps=1e-8)
        per_side_a, per_side_n = min(config.bags_per_side, a.shape[0]), min(config.bags_per_side, n.shape[0])
        losses = []
        scorer.train()
        for _ in range(config.iterations):
            ia = torch.randperm(a.shape[0], generator=gen)[:per_side_a]
            inn = torch.randperm(n.shape[0], generator=gen)[:per_side_n]
            if config.head == "ranking":
                sa, sn = scorer.score(a[ia]), scorer.score(n[inn])
                loss = mil_ranking_loss(
                    sa, sn,
                    RANKING_SMOOTHNESS if config.smoothness is None else config.smoothness,
                    RANKING_SPARSITY if config.sparsity is None else config.sparsity)
            else:
                logits = binary_logits(scorer(torch.cat([a[ia], n[inn]])))
                labels = torch.cat([torch.ones(per_side_a), torch.zeros(per_side_n)])
                loss = topk_mil_ce_loss(
                    logits, labels, config.topk,
                    TOPK_SMOOTHNESS if config.smoothness is None else config.smoothness,
                    TOPK_SPARSITY if config.sparsity is None else config.sparsity)
            loss = loss + config.weight_decay * scorer.weight_penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    scorer.eval()
    return ScorerTrainResult(scorer, losses)


@torch.no_grad()
def score_segments(scorer: SegmentScorer, features: np.ndarray | torch.Tensor) -> np.ndarray:
    """Anomaly scores in (0, 1) of segment features [..., d] with the scorer in eval mode."""
    was_training = scorer.training
    scorer.eval()
    x = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features, np.float32))
    out = scorer.score(x.float()).cpu().numpy()
    scorer.train(was_training)
    return out


def scorer_bytes(scorer: SegmentScorer, **meta: str | int | float) -> bytes:
    """A scorer as safetensors bytes, its sizes (and ``meta``) in the header: no pickle."""
    from safetensors.torch import save

    info = {"in_dim": scorer.fc1.in_features, "hidden": [scorer.fc1.out_features, scorer.fc2.out_features],
            "dropout": scorer.dropout.p, **meta}
    tensors = {k: v.detach().contiguous() for k, v in scorer.state_dict().items()}
    return save(tensors, metadata={"scorer": json.dumps(info)})


def scorer_from_bytes(data: bytes) -> tuple[SegmentScorer, dict]:
    """The scorer :func:`scorer_bytes` wrote (in eval mode) and its header."""
    from safetensors.torch import load

    # The safetensors header: an 8-byte little-endian length, then JSON holding ``__metadata__``.
    n = int.from_bytes(data[:8], "little")
    info = json.loads(json.loads(data[8:8 + n])["__metadata__"]["scorer"])
    scorer = SegmentScorer(int(info["in_dim"]), tuple(info["hidden"]), float(info["dropout"]))
    scorer.load_state_dict(load(data), strict=True)
    return scorer.eval(), info
