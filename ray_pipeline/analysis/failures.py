"""How well CLIP's uncertainty finds the clips the generator failed on, from the stages' rows.

The generate stage records ``failed`` where the backend knows it (the procedural world decides
its failures, so it does; a real text-to-video model does not, and its rows hold nulls). Joined
with the score stage's entropies on ``clip_id``, that gives the failure-detection AUROC the task
puts in ``summary.json`` (``data.failure_auroc``, a fraction) and the score stage logs.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ray_pipeline.analysis.metrics import failure_auroc


def clip_failures(clips: pa.Table) -> dict[str, bool | None]:
    """``clip_id`` -> whether the generator failed on it (None: the backend cannot tell).

    Args:
        clips: generate rows; rows written before the ``failed`` column existed count as unknown.
    """
    ids = clips.column("clip_id").to_pylist() if "clip_id" in clips.column_names else []
    failed = clips.column("failed").to_pylist() if "failed" in clips.column_names else [None] * len(ids)
    return dict(zip(ids, failed))


def failure_figures(clips: pa.Table, scores: pa.Table) -> dict[str, Any]:
    """Failure counts and AUROC over the scored clips whose outcome the backend knows.

    Args:
        clips: this config's generate rows (``clip_id``, ``failed``).
        scores: this config's score rows (``clip_id``, ``entropy``).

    Returns:
        {} when no scored clip has a known outcome; else ``failure_known_clips`` (how many have one),
        ``failed_clips`` and ``failure_auroc`` (entropy as the score, failed clips as positives;
        None when all known clips failed or none did).
    """
    if scores.num_rows == 0 or not {"clip_id", "entropy"} <= set(scores.column_names):
        return {}
    failed = clip_failures(clips)
    pairs = [(h, failed.get(c)) for c, h in zip(scores.column("clip_id").to_pylist(),
                                                 scores.column("entropy").to_pylist())]
    known = [(h, f) for h, f in pairs if f is not None]
    if not known:
        return {}
    flags = [bool(f) for _, f in known]
    return {"failure_known_clips": len(known), "failed_clips": sum(flags),
            "failure_auroc": failure_auroc([h for h, _ in known], flags)}
