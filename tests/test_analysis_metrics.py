"""Davies-Bouldin, MMD², within-class diversity and failure AUROC against independent references:
sklearn, direct double loops over the definitions, and the test vectors of
evaluation-protocols.md §6."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score, roc_auc_score
from sklearn.metrics.pairwise import cosine_distances, polynomial_kernel, rbf_kernel

from ray_pipeline.analysis import metrics
from ray_pipeline.analysis.metrics import (
    davies_bouldin,
    failure_auroc,
    median_heuristic_gamma,
    mmd2,
    within_class_diversity,
)

# §6.2's test vectors.
X62 = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
Y62 = np.array([[2, 2], [3, 2], [2, 3]], dtype=float)


def _kernel(kernel: str, a: np.ndarray, b: np.ndarray, gamma: float, degree: int, coef0: float) -> float:
    if kernel == "linear":
        return float(a @ b)
    if kernel == "rbf":
        return float(np.exp(-gamma * np.sum((a - b) ** 2)))
    return float((gamma * (a @ b) + coef0) ** degree)


def mmd2_loop(x: np.ndarray, y: np.ndarray, kernel: str, gamma: float = 0.0, degree: int = 3,
              coef0: float = 1.0, unbiased: bool = False) -> float:
    """The estimators written out term by term (Gretton et al. 2012, eq. 5 and Lemma 6)."""
    m, n = len(x), len(y)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return _kernel(kernel, a, b, gamma, degree, coef0)

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if not unbiased or i != j)
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if not unbiased or i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    if unbiased:
        return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)
    return xx / m**2 + yy / n**2 - 2 * xy / (m * n)


def median_sq_distance_loop(z: np.ndarray) -> float:
    d2 = [float(np.sum((z[i] - z[j]) ** 2)) for i, j in itertools.combinations(range(len(z)), 2)]
    return float(np.median([d for d in d2 if d > 0]))


# ------------------------------------------------------------------------------- Davies-Bouldin


def test_davies_bouldin_test_vector():
    x = [[0, 0], [1, 0], [0, 1], [5, 5], [6, 5], [5, 6], [0, 5], [1, 6]]
    y = [0, 0, 0, 1, 1, 1, 2, 2]
    assert davies_bouldin(np.array(x), y) == pytest.approx(0.2754028947922, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_davies_bouldin_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    labels = rng.integers(0, k, 60)
    labels[:k] = np.arange(k)  # every class present
    x = rng.normal(size=(60, 5)) + labels[:, None] * rng.uniform(0, 2)
    names = np.array([f"class {c}" for c in labels])  # string labels are re-encoded like sklearn's
    assert davies_bouldin(x, names) == pytest.approx(davies_bouldin_score(x, labels), rel=1e-12)


def test_davies_bouldin_degenerate_cases():
    # Every class collapsed to a point: 0.0, like sklearn.
    x = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 3.0], [3.0, 3.0]])
    assert davies_bouldin(x, [0, 0, 1, 1]) == 0.0 == davies_bouldin_score(x, [0, 0, 1, 1])
    # Two classes with one centroid: that pair's ratio is dropped (distance set to +inf).
    x = np.array([[-1.0, 0], [1.0, 0], [0, -1.0], [0, 1.0], [5.0, 5.0], [6.0, 5.0]])
    y = [0, 0, 1, 1, 2, 2]
    assert davies_bouldin(x, y) == pytest.approx(davies_bouldin_score(x, y), rel=1e-12)


@pytest.mark.parametrize("labels, match", [([0, 0, 0, 0], "2 <= classes"), ([0, 1, 2, 3], "2 <= classes"),
                                           ([0, 1, 0], "expected 4 labels")])
def test_davies_bouldin_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        davies_bouldin(np.eye(4), labels)


def test_davies_bouldin_rejects_bad_features():
    with pytest.raises(ValueError, match="2-D"):
        davies_bouldin(np.zeros(4), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        davies_bouldin(np.array([[0.0], [np.nan], [1.0], [2.0]]), [0, 0, 1, 1])


# ------------------------------------------------------------------------------------------ MMD


@pytest.mark.parametrize("kernel, gamma, biased, unbiased", [
    ("linear", None, 6.7222222222, 6.3333333333),
    ("rbf", 0.5, 1.2019471717, 0.9260189863),
    ("rbf", None, 1.1453282184, 1.0107301869),  # γ = 1/median pooled d² = 1/5
    ("poly", 0.5, 252.3559027778, 230.2916666667),
])
def test_mmd2_test_vectors(kernel, gamma, biased, unbiased):
    assert mmd2(X62, Y62, kernel, gamma=gamma) == pytest.approx(biased, abs=1e-9)
    assert mmd2(X62, Y62, kernel, gamma=gamma, unbiased=True) == pytest.approx(unbiased, abs=1e-9)


def test_mmd2_equal_size_lemma6_test_vector():
    assert mmd2(X62[:3], Y62, "rbf", gamma=0.5, unbiased=True) == pytest.approx(1.0016050212, abs=1e-9)


def test_median_heuristic_test_vector_and_loop():
    assert median_heuristic_gamma(X62, Y62) == pytest.approx(1 / 5.0)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(13, 4)), rng.normal(size=(9, 4)) + 1
    x[1] = x[0]  # a duplicate row: its zero distance is left out, as in Gretton's code
    assert median_heuristic_gamma(x, y) == pytest.approx(1 / median_sq_distance_loop(np.vstack([x, y])))
    assert median_heuristic_gamma(x) == pytest.approx(1 / median_sq_distance_loop(x))


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("explicit_gamma", [False, True])
def test_mmd2_matches_double_loop(kernel, unbiased, explicit_gamma):
    rng = np.random.default_rng(len(kernel) + 10 * unbiased + 100 * explicit_gamma)
    x = rng.normal(size=(11, 3))
    y = rng.normal(size=(7, 3)) * 1.5 + 0.5
    gamma = 0.37 if explicit_gamma else None
    if kernel == "linear":
        loop_gamma = 0.0
    elif explicit_gamma:
        loop_gamma = gamma
    elif kernel == "rbf":
        loop_gamma = 1 / median_sq_distance_loop(np.vstack([x, y]))
    else:
        loop_gamma = 1 / 3  # 1 / dim
    expected = mmd2_loop(x, y, kernel, gamma=loop_gamma, degree=2 if kernel == "poly" else 3, coef0=0.5,
                         unbiased=unbiased)
    got = mmd2(x, y, kernel, gamma=gamma, degree=2 if kernel == "poly" else 3, coef0=0.5, unbiased=unbiased)
    assert got == pytest.approx(expected, rel=1e-10)


def test_mmd2_gram_matrices_agree_with_sklearn_kernels():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(20, 6)), rng.normal(size=(15, 6)) + 0.3
    for kernel, fn, kwargs in (("rbf", rbf_kernel, {"gamma": 0.2}),
                               ("poly", polynomial_kernel, {"gamma": 0.1, "degree": 3, "coef0": 1.0})):
        kxx, kyy, kxy = fn(x, x, **kwargs), fn(y, y, **kwargs), fn(x, y, **kwargs)
        expected = kxx.mean() + kyy.mean() - 2 * kxy.mean()
        assert mmd2(x, y, kernel, **kwargs) == pytest.approx(expected, rel=1e-10)


def test_mmd2_linear_biased_is_squared_mean_difference():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(40, 8)), rng.normal(size=(25, 8)) + 0.2
    assert mmd2(x, y, "linear") == pytest.approx(float(np.sum((x.mean(0) - y.mean(0)) ** 2)), rel=1e-10)


def test_mmd2_invariants():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(20, 4)) + 1
    for kernel in ("linear", "rbf", "poly"):
        assert mmd2(x, x, kernel) == pytest.approx(0.0, abs=1e-12)
        assert mmd2(x, y, kernel, gamma=0.3) == pytest.approx(mmd2(y, x, kernel, gamma=0.3), rel=1e-12)
        assert mmd2(x, y, kernel, gamma=0.3) > 0
    # Identical samples: the unbiased estimate is below the biased one (it drops the k(x_i, x_i) = 1
    # terms of the rbf kernel) and negative.
    assert mmd2(x, x, "rbf", unbiased=True) < 0


def test_mmd2_blocked_sums_equal_one_block(monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(37, 5)), rng.normal(size=(23, 5))
    whole = {k: mmd2(x, y, k, gamma=0.4, unbiased=True) for k in ("linear", "rbf", "poly")}
    monkeypatch.setattr(metrics, "_BLOCK_ROWS", 4)
    for kernel, value in whole.items():
        assert mmd2(x, y, kernel, gamma=0.4, unbiased=True) == pytest.approx(value, rel=1e-12)


def test_median_heuristic_subsamples_large_pools_evenly(monkeypatch):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 5
    monkeypatch.setattr(metrics, "MEDIAN_MAX_ROWS", 10)
    pooled = np.vstack([x, y])
    picked = pooled[np.linspace(0, 59, 10).round().astype(int)]
    assert median_heuristic_gamma(x, y) == pytest.approx(1 / median_sq_distance_loop(picked))
    # Both sets are represented (Gretton's first-100-rows rule would see only x here).
    assert picked[:5].mean() < 2.5 < picked[5:].mean()


@pytest.mark.parametrize("call, match", [
    (lambda: mmd2(X62, Y62[:, :1], "linear"), "same feature dimension"),
    (lambda: mmd2(X62, Y62, "cosine"), "unknown kernel"),
    (lambda: mmd2(X62, Y62, "rbf", gamma=-1.0), "positive"),
    (lambda: mmd2(X62, Y62, "poly", degree=0), "degree"),
    (lambda: mmd2(X62[:1], Y62, "linear", unbiased=True), "at least 2 rows"),
    (lambda: mmd2(X62[:, 0], Y62, "linear"), "2-D"),
    (lambda: mmd2(np.full((3, 2), np.inf), Y62, "linear"), "NaN or infinite"),
])
def test_mmd2_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------- diversity, AUROC


def test_within_class_diversity_matches_pairwise_cosine_distances():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(12, 5))
    labels = np.array(["a"] * 5 + ["b"] * 6 + ["c"])
    out = within_class_diversity(x, labels)
    assert list(out) == ["a", "b", "c"]
    for name in ("a", "b"):
        d = cosine_distances(x[labels == name])
        expected = d[np.triu_indices(len(d), k=1)].mean()
        assert out[name] == pytest.approx(expected, rel=1e-10)
    assert out["c"] is None  # one clip: no pairs
    # Scale does not matter; identical directions have zero diversity.
    assert within_class_diversity(x * 7.0, labels)["a"] == pytest.approx(out["a"], rel=1e-10)
    assert within_class_diversity(np.ones((3, 2)) * [[1], [2], [3]], [0, 0, 0])[0] == pytest.approx(0.0, abs=1e-12)


def test_within_class_diversity_rejects_zero_rows():
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        within_class_diversity(np.array([[1.0, 0.0], [0.0, 0.0]]), [0, 0])


def auroc_by_pairs(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + half the ties (the Mann-Whitney statistic)."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def test_failure_auroc_matches_pair_counting_and_sklearn():
    rng = np.random.default_rng(9)
    failed = rng.random(80) < 0.3
    uncertainty = np.round(rng.normal(size=80) + 0.8 * failed, 1)  # rounding makes ties
    expected = auroc_by_pairs(uncertainty, failed)
    assert failure_auroc(uncertainty, failed) == pytest.approx(expected, rel=1e-12)
    assert failure_auroc(uncertainty, failed.astype(int)) == pytest.approx(roc_auc_score(failed, uncertainty))
    assert failure_auroc([0.1, 0.2, 0.9], [False, False, True]) == 1.0
    assert failure_auroc([0.9, 0.2, 0.1], [False, False, True]) == 0.0


def test_failure_auroc_one_class_is_none_and_bad_input_fails():
    assert failure_auroc([0.1, 0.5], [False, False]) is None
    assert failure_auroc([0.1, 0.5], [True, True]) is None
    with pytest.raises(ValueError, match="one length"):
        failure_auroc([0.1, 0.5, 0.3], [True, False])
    with pytest.raises(ValueError, match="booleans"):
        failure_auroc([0.1, 0.5], [None, True])
