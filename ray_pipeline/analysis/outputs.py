"""What ``ray-pipeline analyze`` writes, from plain inputs (feature arrays and clip records):

- ``analysis/metrics.json``: Table 8's numbers (``compare.compare_sets``: Davies-Bouldin per set,
  MMD² of each set against the first real set, on L2-normalised CLIP features), plus per generated
  set its failures, failure AUROC and within-class diversity, the feature extractor and the t-SNE;
- ``analysis/tsne.png``: one t-SNE of every set together, Figure 1's layout (a panel per set);
- ``analysis/quality.html`` with ``analysis/quality/*.png``: the data-quality report of the
  analysed run's own generated set, with the two above in it.

Every file goes through a :class:`~ray_pipeline.runstore.RunStore` (atomic, local or bucket);
``metrics.json`` is written last, so its presence means the analysis finished.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ray_pipeline.analysis.compare import METRIC_KEYS, FeatureSet, compare_sets, l2_normalise
from ray_pipeline.analysis.metrics import failure_auroc, within_class_diversity
from ray_pipeline.analysis.quality_report import ClipRecord, write_quality_report
from ray_pipeline.analysis.tsne import tsne_embedding, tsne_perplexity, tsne_png
from ray_pipeline.runstore import RunStore

ANALYSIS_DIR = "analysis"
METRICS_JSON = f"{ANALYSIS_DIR}/metrics.json"
TSNE_PNG = f"{ANALYSIS_DIR}/tsne.png"
QUALITY_HTML = f"{ANALYSIS_DIR}/quality.html"


@dataclass(frozen=True)
class GeneratedSet:
    """A generated set: its clips and their CLIP features, row for row.

    Attributes:
        name: the row label ("IE", "Basic", ...).
        run_dir: the run directory it came from.
        clips: one record per clip (class, uncertainty, failed or None, video).
        features: (len(clips), d) CLIP video features.
    """

    name: str
    run_dir: str
    clips: Sequence[ClipRecord]
    features: np.ndarray

    def feature_set(self) -> FeatureSet:
        return FeatureSet(self.name, "generated", self.features, np.array([c.class_name for c in self.clips]))


def generated_figures(generated: GeneratedSet) -> dict[str, Any]:
    """Clip count, failures (where known), failure AUROC and mean within-class diversity of a set."""
    known = [c for c in generated.clips if c.failed is not None]
    labels = np.array([c.class_name for c in generated.clips])
    diversity = [v for v in within_class_diversity(generated.features, labels).values() if v is not None]
    return {
        "run_dir": generated.run_dir, "clips": len(generated.clips),
        "failure_known_clips": len(known), "failed_clips": sum(bool(c.failed) for c in known),
        "failure_auroc": failure_auroc([c.uncertainty for c in known], [bool(c.failed) for c in known])
        if known else None,
        "diversity": float(np.mean(diversity)) if diversity else None,
    }


def write_analysis(store: RunStore, real: Sequence[FeatureSet], generated: Sequence[GeneratedSet], *,
                   report_set: str, class_names: Sequence[str], tsne_seed: int = 0, frames_per_strip: int = 6,
                   clips_per_strip: int = 3, extractor: dict[str, Any] | None = None,
                   skipped: dict[str, int] | None = None) -> dict[str, Any]:
    """Compute and write the analysis of ``real`` and ``generated`` sets; returns ``metrics.json``.

    Args:
        store: the run directory the files go into (under ``analysis/``).
        real: the real sets; MMD is measured against the first.
        generated: the generated sets (the analysed run's and any compared runs').
        report_set: the name of the generated set the data-quality report is about.
        class_names: the generated sets' classes, in display order.
        tsne_seed: the t-SNE's random state.
        frames_per_strip: frames per clip in the report's frame strips.
        clips_per_strip: clips per most / least uncertain strip.
        extractor: what computed the features (recorded in ``metrics.json``).
        skipped: per set, videos left out because they could not be decoded.
    """
    if not real:
        raise ValueError("the analysis needs at least one real set (MMD is measured against the first)")
    own = next((g for g in generated if g.name == report_set), None)
    if own is None:
        raise ValueError(f"report set {report_set!r} is not among the generated sets "
                         f"{[g.name for g in generated]}")
    sets = list(real) + [g.feature_set() for g in generated]
    metrics = compare_sets(sets, reference=real[0].name)
    metrics["extractor"] = dict(extractor or {})
    metrics["skipped_videos"] = dict(skipped or {})
    metrics["generated"] = {g.name: generated_figures(g) for g in generated}

    # One embedding of every set (unit-norm features, as the metrics), one panel per set.
    names = list(dict.fromkeys([*class_names, *(str(y) for s in sets for y in s.labels)]))
    index = {n: i for i, n in enumerate(names)}
    stacked = np.vstack([l2_normalise(s.features, f"set {s.name!r}") for s in sets])
    points = tsne_embedding(stacked, tsne_seed)
    labels = np.array([index[str(y)] for s in sets for y in s.labels])
    members = np.concatenate([np.full(len(s.labels), k) for k, s in enumerate(sets)])
    store.write_bytes(TSNE_PNG, tsne_png(points, labels, members, names, [s.name for s in sets]))
    metrics["tsne"] = {"png": "tsne.png", "seed": int(tsne_seed), "points": int(stacked.shape[0]),
                       "perplexity": tsne_perplexity(stacked.shape[0]),
                       "features": "L2-normalised CLIP video features of every set, embedded together"}

    write_quality_report(
        store, own.clips, features=own.features, metrics=metrics,
        extra_images=[("tsne.png", "t-SNE of the CLIP features of every set (one embedding, a panel per set; "
                                   "colour = class, grey = the other sets)")],
        class_names=class_names, html_path=QUALITY_HTML, frames_per_strip=frames_per_strip,
        clips_per_strip=clips_per_strip, title=f"Data quality: {own.name} ({store.name})")
    metrics["quality_report"] = "quality.html"
    store.write_text(METRICS_JSON, json.dumps(metrics, indent=2))
    return metrics


def _metric_name(text: str) -> str:
    # MLflow metric names take letters, digits, _ - . / and spaces only.
    return re.sub(r"[^\w\-./ ]", "_", text)


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """``metrics.json`` as flat tracker metrics: ``<set>.davies_bouldin``, ``<set>.mmd_rbf``, ...,
    ``<set>.failure_auroc`` and ``<set>.diversity`` (None values left out)."""
    out: dict[str, float] = {}
    for row in metrics.get("sets", []):
        for key in METRIC_KEYS:
            if isinstance(row.get(key), (int, float)):
                out[_metric_name(f"{row['name']}.{key}")] = float(row[key])
    for name, figures in metrics.get("generated", {}).items():
        for key in ("failure_auroc", "diversity", "failed_clips"):
            if isinstance(figures.get(key), (int, float)):
                out[_metric_name(f"{name}.{key}")] = float(figures[key])
    return out
