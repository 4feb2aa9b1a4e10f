"""Weakly supervised anomaly detection on UCF-Crime: its published files, frame scores and AUCs.

The files are read as Sultani et al. (CVPR 2018) publish them (evaluation-protocols.md §5):

* ``Anomaly_Train.txt``: one ``<folder>/<video>.mp4`` per line; the folder is the anomaly class
  (``Abuse/Abuse001_x264.mp4``) or, for the 800 normal videos, ``Training_Normal_Videos_Anomaly``.
  Any folder whose name contains "normal" (case-insensitive) is taken as normal, so re-packed
  releases (``Training-Normal-Videos-Part-1``) read too; any other folder must be one of the 13
  anomaly classes.
* ``Temporal_Anomaly_Annotation.txt``: ``<video>.mp4  <Class>  s1  e1  s2  e2`` per test video,
  frames 1-based and inclusive, ``-1  -1`` for "no interval" (normal videos have none). Fields are
  separated by any run of whitespace, so the published double spaces and trailing blanks, tabs
  and CRLF line ends all read; more than two intervals are accepted.

Metrics (§5.3): frame-level ROC-AUC over the frames of all test videos pooled into one curve
(``auc``, "AUC_O"), and the same over the anomalous test videos only (``auc_a``, Lv et al. 2021).
Both are computed with ``sklearn.metrics.roc_auc_score``, which equals MATLAB's trapezoidal AUC
that the reference evaluation uses.

Segment scores become frame scores by the reference evaluation's rule
(``Evaluate_Anomaly_Detector.m``), see :func:`segment_to_frame_scores`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANOMALY_CLASSES: tuple[str, ...] = (
    "Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "RoadAccidents",
    "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism",
)
NORMAL_CLASS = "Normal"
NUM_SEGMENTS = 32  # Sultani et al.: every video is a bag of 32 temporal segments
C3D_CLIP_LEN = 16  # frames per C3D clip, the unit the reference evaluation spreads scores over

Interval = tuple[int, int]


class AnnotationError(ValueError):
    """A UCF-Crime list or annotation file that cannot be read; the message names file and line."""


# --------------------------------------------------------------------------------------------
# Published files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnomalyVideo:
    """One line of ``Anomaly_Train.txt``.

    Attributes:
        path: the path as the file writes it (``Abuse/Abuse001_x264.mp4``).
        video: the file name (``Abuse001_x264.mp4``), unique across UCF-Crime.
        cls: the anomaly class, or ``"Normal"``.
    """

    path: str
    video: str
    cls: str

    @property
    def anomalous(self) -> bool:
        return self.cls != NORMAL_CLASS


@dataclass(frozen=True)
class AnnotatedVideo:
    """One line of ``Temporal_Anomaly_Annotation.txt``.

    Attributes:
        video: the file name as the file writes it (``Abuse028_x264.mp4``).
        cls: the class column (``Abuse`` ... ``Normal``).
        intervals: anomalous frame intervals, 1-based and inclusive; empty for normal videos.
    """

    video: str
    cls: str
    intervals: tuple[Interval, ...]

    @property
    def anomalous(self) -> bool:
        return bool(self.intervals)


def _is_normal_folder(folder: str) -> bool:
    return "normal" in folder.lower()


def parse_anomaly_train_list(path: str | os.PathLike) -> list[AnomalyVideo]:
    """Read ``Anomaly_Train.txt``: ``<Class or normal folder>/<video>.mp4`` per line.

    Args:
        path: the list file.

    Returns:
        The videos in file order, normal ones with class ``"Normal"``.

    Raises:
        AnnotationError: a line without a folder, a folder that is neither normal nor one of the
            13 anomaly classes, or a video listed twice (naming the file and line).
    """
    rows: list[AnomalyVideo] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            rel = line.replace("\\", "/")
            folder, _, video = rel.rpartition("/")
            folder = folder.rsplit("/", 1)[-1]
            if not folder or not video:
                raise AnnotationError(f"{path}:{line_no}: expected '<Class>/<video>.mp4', got {line!r}")
            if _is_normal_folder(folder):
                cls = NORMAL_CLASS
            elif folder in ANOMALY_CLASSES:
                cls = folder
            else:
                raise AnnotationError(f"{path}:{line_no}: folder {folder!r} is neither a normal-video folder "
                                      f"nor one of the anomaly classes {list(ANOMALY_CLASSES)}")
            if video in seen:
                raise AnnotationError(f"{path}:{line_no}: {video} is already listed on line {seen[video]}")
            seen[video] = line_no
            rows.append(AnomalyVideo(rel, video, cls))
    return rows


def parse_temporal_annotation_rows(path: str | os.PathLike) -> list[AnnotatedVideo]:
    """Read ``Temporal_Anomaly_Annotation.txt`` into rows (video, class, intervals), in file order.

    Args:
        path: the annotation file.

    Raises:
        AnnotationError: a line with too few fields, a non-integer field, an odd number of
            frame fields, an interval with only one ``-1``, a start after its end, a frame
            below 1, or a video listed twice (naming the file and line).
    """
    rows: list[AnnotatedVideo] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, raw in enumerate(f, start=1):
            fields = raw.split()
            if not fields:
                continue
            where = f"{path}:{line_no}"
            if len(fields) < 4:
                raise AnnotationError(
                    f"{where}: expected '<video> <Class> s1 e1 [s2 e2 ...]', got {raw.strip()!r}")
            video, cls, numbers = fields[0], fields[1], fields[2:]
            try:
                frames = [int(x) for x in numbers]
            except ValueError:
                raise AnnotationError(f"{where}: frame fields must be integers, got {numbers}") from None
            if len(frames) % 2:
                raise AnnotationError(f"{where}: frame fields come in (start, end) pairs, got {len(frames)}")
            intervals = []
            for s, e in zip(frames[0::2], frames[1::2], strict=True):
                if s == -1 and e == -1:
                    continue
                if s == -1 or e == -1:
                    raise AnnotationError(f"{where}: interval ({s}, {e}) has only one '-1'")
                if s < 1 or e < 1:
                    raise AnnotationError(f"{where}: frames are 1-based, got interval ({s}, {e})")
                if s > e:
                    raise AnnotationError(f"{where}: interval ({s}, {e}) starts after it ends")
                intervals.append((s, e))
            if video in seen:
                raise AnnotationError(f"{where}: {video} is already annotated on line {seen[video]}")
            seen[video] = line_no
            rows.append(AnnotatedVideo(video, cls, tuple(intervals)))
    return rows


def parse_temporal_annotations(path: str | os.PathLike) -> dict[str, list[Interval]]:
    """Read ``Temporal_Anomaly_Annotation.txt`` as {video file name: [(start, end), ...]}.

    Args:
        path: the annotation file.

    Returns:
        Each video's name as the file writes it (``Abuse028_x264.mp4``) -> its anomalous
        intervals, 1-based inclusive frames; an empty list for normal videos. Insertion order is
        the file's.
    """
    return {row.video: list(row.intervals) for row in parse_temporal_annotation_rows(path)}


def index_videos(root: str | os.PathLike, suffixes: Sequence[str] = (".mp4",)) -> dict[str, Path]:
    """Every video file under ``root`` by file name (UCF-Crime's names are unique).

    The published lists name a video by class folder and file name, but the downloads nest
    those folders differently (``Anomaly-Videos-Part-1/Abuse/...``, ``Testing_Normal_Videos/``),
    so videos are found by name wherever they are.

    Raises:
        AnnotationError: ``root`` is not a folder, or two files share a name.
    """
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(f"UCF-Crime video root {root} is not a folder")
    found: dict[str, Path] = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(tuple(suffixes)):
                path = Path(dirpath) / name
                if name in found:
                    raise AnnotationError(f"{name} is under {root} twice: {found[name]} and {path}")
                found[name] = path
    return found


def resolve_videos(names: Sequence[str], index: Mapping[str, Path], source: str) -> list[Path]:
    """The files of ``names`` (from the list file ``source``), or an error naming the missing ones."""
    missing = [n for n in names if n not in index]
    if missing:
        raise AnnotationError(f"{len(missing)} of the {len(names)} videos in {source} are not under the "
                              f"video root, e.g. {missing[:5]}")
    return [index[n] for n in names]


# --------------------------------------------------------------------------------------------
# Segments -> frames
# --------------------------------------------------------------------------------------------


def segment_bounds(num_units: int, num_segments: int = NUM_SEGMENTS) -> list[tuple[int, int]]:
    """Sultani et al.'s split of ``num_units`` clips into segments: 0-based half-open ranges.

    Boundaries are ``round(linspace(1, n, num_segments + 1))`` (1-based, MATLAB rounding: halves
    away from zero, unlike numpy's), and segment ``i`` takes clips ``b_i .. b_{i+1} - 1``. When
    two boundaries coincide (fewer clips than segments) the segment is the single clip ``b_i``.
    The last segment runs to clip ``n``: that is what the reference code's
    ``if ishots==length(thirty2_shots)`` branch is meant to do, but inside its loop the test is
    never true, so there the last clip belongs to no segment (and its frames keep score 0 in the
    evaluation). We do not copy that slip.

    Args:
        num_units: clips (or frames) in the video, >= 1.
        num_segments: segments per video (32).
    """
    if num_units < 1:
        raise ValueError(f"a video needs at least one clip to be split into segments, got {num_units}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    b = np.floor(np.linspace(1, num_units, num_segments + 1) + 0.5).astype(np.int64)
    bounds = []
    for i in range(num_segments):
        ss = int(b[i])
        ee = int(b[i + 1]) if i == num_segments - 1 else int(b[i + 1]) - 1
        ee = max(ee, ss)
        bounds.append((ss - 1, ee))
    return bounds


def segment_to_frame_scores(segment_scores: Sequence[float] | np.ndarray, num_frames: int,
                            clip_len: int = C3D_CLIP_LEN) -> np.ndarray:
    """Spread a video's segment scores over its frames, as the reference evaluation does.

    The video is cut into ``max(1, num_frames // clip_len)`` clips (C3D's 16-frame clips; pass
    ``clip_len=1`` when segments were built over frames), the clips into segments by
    :func:`segment_bounds`, and every frame of a segment's clips gets the segment's score;
    where segments share a clip (short videos) the later segment's score wins, as in the MATLAB
    loop. Frames after the last whole clip take the last score (the reference pads to the
    video's length with it); a video shorter than one clip is one clip.

    Args:
        segment_scores: one score per segment (usually 32).
        num_frames: frames in the video.
        clip_len: frames per clip.

    Returns:
        float64 array of ``num_frames`` scores.
    """
    scores = np.asarray(segment_scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ValueError("no segment scores given")
    if num_frames < 1 or clip_len < 1:
        raise ValueError(f"num_frames and clip_len must be >= 1, got {num_frames}, {clip_len}")
    num_clips = max(1, num_frames // clip_len)
    out = np.empty(max(num_clips * clip_len, num_frames), dtype=np.float64)
    for score, (start, end) in zip(scores, segment_bounds(num_clips, scores.size), strict=True):
        out[start * clip_len:end * clip_len] = score
    out[num_clips * clip_len:] = out[num_clips * clip_len - 1]
    return out[:num_frames]


# --------------------------------------------------------------------------------------------
# Frame-level AUCs
# --------------------------------------------------------------------------------------------


def frame_labels(num_frames: int, intervals: Sequence[Interval]) -> np.ndarray:
    """0/1 frame labels: 1 inside the 1-based inclusive ``intervals``, clipped to the video."""
    labels = np.zeros(num_frames, dtype=np.int8)
    for s, e in intervals:
        labels[max(int(s), 1) - 1:min(int(e), num_frames)] = 1
    return labels


def _roc_auc(labels: np.ndarray, scores: np.ndarray, what: str) -> float:
    from sklearn.metrics import roc_auc_score

    if labels.min() == labels.max():
        kind = "anomalous" if labels.max() else "normal"
        raise ValueError(f"{what}: every frame is {kind}, so the ROC-AUC is undefined")
    return float(roc_auc_score(labels, scores))


def frame_auc(frame_scores: Mapping[str, Sequence[float] | np.ndarray],
              annotations: Mapping[str, Sequence[Interval]]) -> dict[str, float]:
    """Frame-level ROC-AUC over all annotated videos pooled, and over the anomalous ones only.

    Args:
        frame_scores: video name -> 1-D per-frame anomaly scores (any real scale). Videos that
            are not in ``annotations`` are ignored.
        annotations: video name -> 1-based inclusive intervals (empty for normal videos), as
            :func:`parse_temporal_annotations` returns; intervals are clipped to the length of
            the video's score array.

    Returns:
        ``{"auc": ..., "auc_a": ...}`` as fractions in [0, 1]; ``auc_a`` pools only the videos
        with at least one interval.

    Raises:
        ValueError: an annotated video has no scores (naming it), scores that are not a
            non-empty finite 1-D array, or a pool whose frames are all of one kind.
    """
    missing = [name for name in annotations if name not in frame_scores]
    if missing:
        raise ValueError(f"{len(missing)} annotated videos have no frame scores, e.g. {missing[:5]}")
    all_scores, all_labels, ano_scores, ano_labels = [], [], [], []
    for name, intervals in annotations.items():
        scores = np.asarray(frame_scores[name], dtype=np.float64)
        if scores.ndim != 1 or scores.size == 0:
            raise ValueError(f"frame scores of {name}: expected a non-empty 1-D array, got {scores.shape}")
        if not np.isfinite(scores).all():
            raise ValueError(f"frame scores of {name} are not all finite")
        labels = frame_labels(scores.size, intervals)
        all_scores.append(scores)
        all_labels.append(labels)
        if intervals:
            ano_scores.append(scores)
            ano_labels.append(labels)
    if not all_scores:
        raise ValueError("no annotated videos to evaluate")
    auc = _roc_auc(np.concatenate(all_labels), np.concatenate(all_scores), "AUC over all test videos")
    if not ano_scores:
        raise ValueError("AUC_A needs at least one annotated anomalous video")
    auc_a = _roc_auc(np.concatenate(ano_labels), np.concatenate(ano_scores),
                     "AUC_A over the anomalous videos")
    return {"auc": auc, "auc_a": auc_a}
