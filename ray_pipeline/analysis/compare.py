"""Table 8's numbers for a list of feature sets: Davies-Bouldin per set, MMD² of each against a reference.

The input is plain: one :class:`FeatureSet` per real or generated set (CLIP video features and
class labels). Features are L2-normalised per clip here, before any metric, as the score stage's
video features already are (normalising twice changes nothing). Every row is measured with one
kernel of each kind, so that rows are comparable: γ_rbf is the median heuristic over the
reference set's own pairwise squared distances, γ_poly = 1/dim, degree 3, coef0 1; MMD² is the
biased V-statistic (the reference against itself is then exactly 0, as in the paper's table).

``compare_sets`` returns the dict that ``analysis/metrics.json`` holds:

```
{"reference": "world_hmdb", "features": "L2-normalised CLIP video features",
 "estimator": "biased", "statistic": "MMD^2",
 "kernels": {"linear": {}, "rbf": {"gamma": 1.7, "rule": "..."}, "poly": {"gamma": 0.0039, "degree": 3,
             "coef0": 1.0}},
 "sets": [{"name": "Basic", "kind": "generated", "n": 464, "classes": 29, "davies_bouldin": 2.1,
           "mmd_linear": 0.11, "mmd_rbf": 0.09, "mmd_poly": 0.13}, ...]}
```

``aggregate_over_seeds`` merges several such dicts (one per seed) into one of the same shape
whose numbers are ``{"mean", "std", "n", "values"}`` (population std, as everywhere here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ray_pipeline.analysis.metrics import davies_bouldin, median_heuristic_gamma, mmd2

METRIC_KEYS = ("davies_bouldin", "mmd_linear", "mmd_rbf", "mmd_poly")
POLY_DEGREE, POLY_COEF0 = 3, 1.0


@dataclass(frozen=True)
class FeatureSet:
    """One dataset's clip features.

    Attributes:
        name: the row label, e.g. "world_hmdb", "Basic", "IE".
        kind: "real" or "generated".
        features: (n, d) CLIP video features, one row per clip.
        labels: n class labels (indices or names) for Davies-Bouldin.
    """

    name: str
    kind: str
    features: np.ndarray
    labels: np.ndarray


def l2_normalise(features: np.ndarray, name: str = "features") -> np.ndarray:
    """Rows scaled to unit Euclidean norm (float64); a zero row is an error naming the set.

    Args:
        features: (n, d) array.
        name: what the array is, for the error message.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (n, d) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any() or not np.isfinite(norms).all():
        bad = int(np.flatnonzero((norms[:, 0] == 0) | ~np.isfinite(norms[:, 0]))[0])
        raise ValueError(f"{name}: row {bad} is zero or not finite and cannot be normalised")
    return x / norms


def compare_sets(sets: Sequence[FeatureSet], reference: str) -> dict[str, Any]:
    """Davies-Bouldin of every set and MMD² (linear, rbf, poly) of every set against ``reference``.

    Args:
        sets: the sets, in table order; names must be unique and one must be ``reference``.
        reference: the name of the set that MMD is measured against (the first real set).

    Returns:
        The ``analysis/metrics.json`` dict described in this module's docstring.
    """
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ValueError(f"set names must be unique, got {names}")
    if reference not in names:
        raise ValueError(f"reference set {reference!r} is not among the sets {names}")
    dims = {s.name: np.asarray(s.features).shape[-1] for s in sets}
    if len(set(dims.values())) != 1:
        raise ValueError(f"all sets need features of one dimension, got {dims}")
    unit = {s.name: l2_normalise(s.features, f"set {s.name!r}") for s in sets}
    ref = unit[reference]
    gamma_rbf = median_heuristic_gamma(ref)
    gamma_poly = 1.0 / ref.shape[1]
    rows = []
    for s in sets:
        x = unit[s.name]
        labels = np.asarray(s.labels)
        try:
            db = davies_bouldin(x, labels)
        except ValueError as exc:
            raise ValueError(f"set {s.name!r}: {exc}") from exc
        rows.append({
            "name": s.name, "kind": s.kind, "n": int(x.shape[0]), "classes": int(np.unique(labels).size),
            "davies_bouldin": db,
            "mmd_linear": mmd2(x, ref, "linear"),
            "mmd_rbf": mmd2(x, ref, "rbf", gamma=gamma_rbf),
            "mmd_poly": mmd2(x, ref, "poly", gamma=gamma_poly, degree=POLY_DEGREE, coef0=POLY_COEF0),
        })
    return {
        "reference": reference,
        "features": "L2-normalised CLIP video features",
        "estimator": "biased",
        "statistic": "MMD^2",
        "kernels": {
            "linear": {},
            "rbf": {"gamma": gamma_rbf,
                    "rule": f"1 / median pairwise squared distance within {reference}"},
            "poly": {"gamma": gamma_poly, "degree": POLY_DEGREE, "coef0": POLY_COEF0},
        },
        "sets": rows,
    }


def _stat(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size), "values": [float(v) for v in arr]}


def aggregate_over_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One metrics dict from several (one per seed) of the same sets and reference.

    Args:
        runs: ``compare_sets`` outputs; each must list the same set names against the same reference.

    Returns:
        The same shape, with each metric (and ``n``, the clip count) as {"mean", "std", "n", "values"}
        over the runs, the kernels' γ likewise, and ``seeds`` = the number of runs.
    """
    if not runs:
        raise ValueError("aggregate_over_seeds needs at least one metrics dict")
    first = runs[0]
    names = [s["name"] for s in first["sets"]]
    for i, run in enumerate(runs[1:], start=1):
        if run["reference"] != first["reference"] or [s["name"] for s in run["sets"]] != names:
            raise ValueError(f"metrics {i} compares other sets or another reference than metrics 0: "
                             f"{run['reference']} {[s['name'] for s in run['sets']]} vs "
                             f"{first['reference']} {names}")
    sets = []
    for k, name in enumerate(names):
        rows = [run["sets"][k] for run in runs]
        row = {"name": name, "kind": rows[0]["kind"], "classes": rows[0]["classes"],
               "n": _stat([r["n"] for r in rows])}
        row.update({key: _stat([r[key] for r in rows]) for key in METRIC_KEYS})
        sets.append(row)
    kernels = {"linear": {},
               "rbf": {"gamma": _stat([r["kernels"]["rbf"]["gamma"] for r in runs]),
                       "rule": first["kernels"]["rbf"]["rule"]},
               "poly": dict(first["kernels"]["poly"])}
    return {**{k: first[k] for k in ("reference", "features", "estimator", "statistic")},
            "kernels": kernels, "seeds": len(runs), "sets": sets}
