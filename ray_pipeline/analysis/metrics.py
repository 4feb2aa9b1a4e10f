"""Dataset-level metrics of feature sets: Davies-Bouldin, MMD², within-class diversity, failure AUROC.

Numpy in, Python floats out. Features are used as given: the analysis L2-normalises CLIP video
features before calling these (evaluation-protocols.md §6), so the Euclidean distances here are
chordal distances on the unit sphere.

- ``davies_bouldin``: sklearn's definition (mean, not squared, distance to the centroid).
- ``mmd2``: MMD² (not its root), biased V-statistic by default, unbiased U-statistic (Gretton et
  al. 2012, Lemma 6) on request; kernels ``linear`` (xᵀy), ``rbf`` (exp(−γ‖x−y‖²), γ by default
  from Gretton's median heuristic: 1 / median pooled pairwise squared distance) and ``poly``
  ((γ·xᵀy + coef0)^degree, γ by default 1/dim, as sklearn and KID).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

KERNELS = ("linear", "rbf", "poly")
# Kernel sums are taken over row blocks so that memory stays O(block x n), not O(m x n).
_BLOCK_ROWS = 1024
# The median heuristic looks at pairwise distances of at most this many pooled rows (about 2M
# pairs); beyond it, evenly spaced rows of the pooled set stand in for all of them.
MEDIAN_MAX_ROWS = 2048


def _features(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (samples, dims), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: empty array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def _labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per feature row), got shape {arr.shape}")
    return arr


def davies_bouldin(features: np.ndarray, labels: Sequence[Any] | np.ndarray) -> float:
    """Davies-Bouldin index of a labelled feature set, as ``sklearn.metrics.davies_bouldin_score``.

    s_k is the mean Euclidean distance of class k's rows to their centroid, d_ij the distance
    between centroids, DB = (1/K) Σ_i max_{j≠i} (s_i + s_j) / d_ij. Lower means tighter, better
    separated classes; the paper reads a higher DB as a more complex (more real-like) dataset.

    Args:
        features: (n, d) array.
        labels: n class labels of any hashable type; re-encoded, so only equality matters.

    Returns:
        The index (≥ 0); 0.0 when every class collapses to a point or all centroids coincide.

    Raises:
        ValueError: on malformed arrays, or unless 2 ≤ number of classes ≤ n − 1.
    """
    x = _features(features, "features")
    y = _labels(labels, x.shape[0])
    _, codes = np.unique(y, return_inverse=True)
    k = int(codes.max()) + 1
    if not 2 <= k <= x.shape[0] - 1:
        raise ValueError(f"davies_bouldin needs 2 <= classes <= samples - 1; got {k} classes "
                         f"for {x.shape[0]} samples")
    centroids = np.stack([x[codes == c].mean(axis=0) for c in range(k)])
    spread = np.array([np.linalg.norm(x[codes == c] - centroids[c], axis=1).mean() for c in range(k)])
    gaps = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
    if np.allclose(spread, 0) or np.allclose(gaps, 0):
        return 0.0
    gaps[gaps == 0] = np.inf  # coincident centroids (and the diagonal) contribute no ratio
    ratios = (spread[:, None] + spread[None, :]) / gaps
    return float(ratios.max(axis=1).mean())


def _sq_norms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a)


def _gram(a: np.ndarray, b: np.ndarray, kernel: str, gamma: float, degree: int, coef0: float) -> np.ndarray:
    dots = a @ b.T
    if kernel == "linear":
        return dots
    if kernel == "rbf":
        sq = np.maximum(_sq_norms(a)[:, None] + _sq_norms(b)[None, :] - 2.0 * dots, 0.0)
        return np.exp(-gamma * sq)
    return (gamma * dots + coef0) ** degree


def _kernel_diagonal(a: np.ndarray, kernel: str, gamma: float, degree: int, coef0: float) -> np.ndarray:
    if kernel == "linear":
        return _sq_norms(a)
    if kernel == "rbf":
        return np.ones(a.shape[0])
    return (gamma * _sq_norms(a) + coef0) ** degree


def _kernel_sum(a: np.ndarray, b: np.ndarray, kernel: str, gamma: float, degree: int, coef0: float) -> float:
    total = 0.0
    for start in range(0, a.shape[0], _BLOCK_ROWS):
        total += float(_gram(a[start:start + _BLOCK_ROWS], b, kernel, gamma, degree, coef0).sum())
    return total


def median_heuristic_gamma(x: np.ndarray, y: np.ndarray | None = None) -> float:
    """Gretton's median heuristic for the RBF kernel exp(−γ‖x−y‖²): γ = 1 / median(d²).

    d² runs over the distinct pairs (i < j) of the pooled rows [x; y] (x alone when y is None)
    with d² > 0, as in Gretton's
    reference ``mmdTestBoot.m`` (σ = sqrt(median/2) with k = exp(−d²/(2σ²))), except that instead
    of the first 100 rows it uses all pooled rows up to ``MEDIAN_MAX_ROWS`` and evenly spaced rows
    beyond that, so that both sets are represented.

    Args:
        x: (m, d) array.
        y: (n, d) array, or None.

    Returns:
        γ > 0; 1.0 when all pooled rows coincide (then every γ gives the same kernel matrix).
    """
    parts = [_features(x, "x")] + ([] if y is None else [_features(y, "y")])
    if len(parts) == 2 and parts[0].shape[1] != parts[1].shape[1]:
        raise ValueError(f"x and y must have the same feature dimension, got {parts[0].shape[1]} "
                         f"and {parts[1].shape[1]}")
    pooled = np.concatenate(parts)
    if pooled.shape[0] > MEDIAN_MAX_ROWS:
        pooled = pooled[np.linspace(0, pooled.shape[0] - 1, MEDIAN_MAX_ROWS).round().astype(np.int64)]
    norms = _sq_norms(pooled)
    sq = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (pooled @ pooled.T), 0.0)
    upper = sq[np.triu_indices(pooled.shape[0], k=1)]
    # Duplicate rows come out of the expansion ‖a‖² + ‖b‖² − 2aᵀb as rounding noise, not as 0.
    upper = upper[upper > 1e-9 * float(norms.max())]
    if upper.size == 0:
        return 1.0
    return float(1.0 / np.median(upper))


def resolve_gamma(x: np.ndarray, y: np.ndarray, kernel: str, gamma: float | None) -> float | None:
    """The γ ``mmd2`` uses for ``kernel``: as given, else the median heuristic (rbf) or 1/dim (poly);
    None for the linear kernel, which has none.

    Args:
        x: (m, d) array.
        y: (n, d) array.
        kernel: "linear", "rbf" or "poly".
        gamma: an explicit γ > 0, or None for the default.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    if kernel == "linear":
        return None
    if gamma is not None:
        if not np.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"gamma must be a positive number, got {gamma!r}")
        return float(gamma)
    if kernel == "rbf":
        return median_heuristic_gamma(x, y)
    return 1.0 / np.asarray(x).shape[1]


def mmd2(x: np.ndarray, y: np.ndarray, kernel: str, *, gamma: float | None = None, degree: int = 3,
         coef0: float = 1.0, unbiased: bool = False) -> float:
    """Squared maximum mean discrepancy between the samples ``x`` and ``y`` (MMD², not MMD).

    Biased (V-statistic): (1/m²)Σk(x,x') + (1/n²)Σk(y,y') − (2/mn)Σk(x,y), which is ≥ 0 and for
    the linear kernel equals ‖x̄ − ȳ‖². Unbiased (Gretton et al. JMLR 2012, Lemma 6): the two
    within-set sums leave out i = j and divide by m(m−1) and n(n−1); it can be negative.

    Args:
        x: (m, d) array.
        y: (n, d) array with the same d.
        kernel: "linear" (xᵀy), "rbf" (exp(−γ‖x−y‖²)) or "poly" ((γ·xᵀy + coef0)^degree).
        gamma: the kernel's γ; None = median heuristic for rbf (``median_heuristic_gamma``),
            1/d for poly. Ignored by the linear kernel.
        degree: the polynomial kernel's degree (≥ 1).
        coef0: the polynomial kernel's constant term.
        unbiased: the U-statistic instead of the V-statistic (needs m, n ≥ 2).

    Returns:
        MMD² as a float.
    """
    a, b = _features(x, "x"), _features(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}")
    if kernel == "poly" and (int(degree) != degree or degree < 1):
        raise ValueError(f"degree must be a positive integer, got {degree!r}")
    g = resolve_gamma(a, b, kernel, gamma) or 0.0
    m, n = a.shape[0], b.shape[0]
    kxx, kyy = _kernel_sum(a, a, kernel, g, degree, coef0), _kernel_sum(b, b, kernel, g, degree, coef0)
    kxy = _kernel_sum(a, b, kernel, g, degree, coef0)
    if not unbiased:
        # A squared RKHS norm; clipping removes only rounding below zero.
        return max(kxx / m**2 + kyy / n**2 - 2.0 * kxy / (m * n), 0.0)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased estimator needs at least 2 rows in each set, got {m} and {n}")
    kxx -= float(_kernel_diagonal(a, kernel, g, degree, coef0).sum())
    kyy -= float(_kernel_diagonal(b, kernel, g, degree, coef0).sum())
    return float(kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2.0 * kxy / (m * n))


def within_class_diversity(features: np.ndarray, labels: Sequence[Any] | np.ndarray) -> dict[Any, float | None]:
    """Per class, the mean cosine distance 1 − cos(f_i, f_j) over its distinct pairs i < j.

    Args:
        features: (n, d) array; rows need not be normalised, but none may be zero.
        labels: n class labels.

    Returns:
        {label: mean pairwise cosine distance}, in sorted label order; None for a class with one row.
    """
    x = _features(features, "features")
    y = _labels(labels, x.shape[0])
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError(f"features: row {int(np.argmax(norms == 0))} is all zeros (cosine undefined)")
    unit = x / norms[:, None]
    out: dict[Any, float | None] = {}
    for label in np.unique(y):
        rows = unit[y == label]
        count = rows.shape[0]
        key = label.item() if isinstance(label, np.generic) else label
        if count < 2:
            out[key] = None
            continue
        sims = rows @ rows.T
        mean_sim = (sims.sum() - np.trace(sims)) / (count * (count - 1))
        out[key] = float(1.0 - mean_sim)
    return out


def failure_auroc(uncertainty: Sequence[float] | np.ndarray, failed: Sequence[bool] | np.ndarray) -> float | None:
    """How well uncertainty ranks failed clips above good ones: ROC AUC with "failed" positive.

    Args:
        uncertainty: n scores, higher meaning more likely failed (e.g. CLIP entropy).
        failed: n booleans (or 0/1), True for a failed clip.

    Returns:
        The AUROC in [0, 1] (0.5 = chance), or None when only one of the two classes is present.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(uncertainty, dtype=np.float64)
    flags = np.asarray(failed)
    if scores.ndim != 1 or flags.shape != scores.shape:
        raise ValueError(f"uncertainty and failed must be 1-D of one length, got {scores.shape} and {flags.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("uncertainty: contains NaN or infinite values")
    if flags.dtype != bool:
        if not np.isin(flags, (0, 1)).all():
            raise ValueError("failed: expected booleans or 0/1 values")
        flags = flags.astype(bool)
    if flags.all() or not flags.any():
        return None
    return float(roc_auc_score(flags, scores))
