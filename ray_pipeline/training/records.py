"""Labelled training sets: generated clips with their normalised CLIP uncertainty, real dataset
splits, and their union. Plain data, built on the driver and shipped to the Ray Train workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ray_pipeline.training.losses import UncertaintyNormalizer, uf_keep_mask, uf_threshold

# Losses that read each clip's uncertainty.
UNCERTAINTY_LOSSES = ("uw", "uf", "ul")


@dataclass
class TrainingRecords:
    """Videos with labels (indices into ``class_names``) and uncertainties in [0, 1].

    ``clip_ids`` (sorted) identify the set in phase ids; ``source`` says per video whether it is
    ``"generated"`` or ``"real"``.
    """

    class_names: list[str]
    videos: list[str]
    labels: list[int]
    uncertainty: list[float]
    clip_ids: list[str]
    source: list[str] = field(default_factory=list)
    normalizer: dict[str, Any] | None = None
    uf_threshold: float | None = None
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.videos)

    def as_dict(self) -> dict[str, Any]:
        return {"class_names": self.class_names, "videos": self.videos, "labels": self.labels,
                "uncertainty": self.uncertainty, "clip_ids": self.clip_ids, "source": self.source}


def generated_records(clips: pa.Table, scores: pa.Table | None, class_names: list[str], *, loss: str,
                      uncertainty_norm: str = "minmax", uf_drop_fraction: float = 0.1,
                      classes: list[str] | None = None) -> TrainingRecords:
    """Generated clips (rows of the generate stage, in id order) with the entropy of *their* score
    rows (this config's scorer), normalised over the set; UF's filtering applied.

    ``classes`` keeps only those classes' clips, labelled by their position in ``classes``; the set
    (its normalisation, UF's threshold) is then those clips.

    Raises:
        FileNotFoundError: an uncertainty-based loss and clips without a score row.
        ValueError: a name in ``classes`` that is not one of ``class_names``.
    """
    if classes is not None:
        unknown = [n for n in classes if n not in class_names]
        if unknown:
            raise ValueError(f"{len(unknown)} classes have no generated clips, e.g. {unknown[0]!r}")
        index = {class_names.index(n): i for i, n in enumerate(classes)}
        keep = pa.array([k in index for k in clips.column("class_index").to_pylist()])
        clips = clips.filter(keep)
        clips = clips.set_column(clips.schema.get_field_index("class_index"), "class_index",
                                 pa.array([index[k] for k in clips.column("class_index").to_pylist()], pa.int64()))
        class_names = list(classes)
    clip_ids = clips.column("clip_id").to_pylist()
    entropy_by_clip: dict[str, float] = {}
    if scores is not None and scores.num_rows:
        entropy_by_clip = dict(zip(scores.column("clip_id").to_pylist(), scores.column("entropy").to_pylist()))
    needs_u = loss in UNCERTAINTY_LOSSES
    missing = [c for c in clip_ids if c not in entropy_by_clip]
    if needs_u and missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(clip_ids)} clips have no CLIP score for this config's scorer; the {loss!r} "
            "loss needs uncertainties: run `ray-pipeline score` first")
    entropy = np.array([entropy_by_clip.get(c, 0.0) for c in clip_ids], dtype=np.float64)
    normalizer = UncertaintyNormalizer.fit(entropy, uncertainty_norm, len(class_names))
    u = np.asarray(normalizer(entropy), dtype=np.float64) if needs_u else np.zeros(len(clip_ids))
    keep = np.ones(len(clip_ids), bool)
    threshold = None
    if loss == "uf":
        threshold = uf_threshold(u, uf_drop_fraction)
        keep = uf_keep_mask(u, uf_drop_fraction)
    videos = [v for v, k in zip(clips.column("video_uri").to_pylist(), keep) if k]
    return TrainingRecords(
        class_names=list(class_names), videos=videos,
        labels=[int(x) for x, k in zip(clips.column("class_index").to_pylist(), keep) if k],
        uncertainty=[float(x) for x, k in zip(u, keep) if k],
        clip_ids=sorted(c for c, k in zip(clip_ids, keep) if k), source=["generated"] * len(videos),
        normalizer=normalizer.to_dict(), uf_threshold=threshold, dropped=int((~keep).sum()))


def split_records(class_names: list[str], videos: list[str], labels: list[int]) -> TrainingRecords:
    """A real dataset split as training data (real clips are trusted: uncertainty 0)."""
    return TrainingRecords(class_names=list(class_names), videos=list(videos), labels=[int(x) for x in labels],
                           uncertainty=[0.0] * len(videos), clip_ids=sorted(videos), source=["real"] * len(videos))


def merge_records(a: TrainingRecords, b: TrainingRecords) -> TrainingRecords:
    """Union of two labelled sets over the union of their class names (matched by name)."""
    names = list(a.class_names) + [n for n in b.class_names if n not in a.class_names]
    index = {n: i for i, n in enumerate(names)}

    def relabel(rec: TrainingRecords) -> list[int]:
        return [index[rec.class_names[i]] for i in rec.labels]

    return TrainingRecords(class_names=names, videos=a.videos + b.videos, labels=relabel(a) + relabel(b),
                           uncertainty=a.uncertainty + b.uncertainty, clip_ids=sorted(a.clip_ids + b.clip_ids),
                           source=a.source + b.source, normalizer=a.normalizer or b.normalizer,
                           uf_threshold=a.uf_threshold, dropped=a.dropped + b.dropped)

