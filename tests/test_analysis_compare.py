"""Table 8's numbers (compare_sets, aggregate_over_seeds) and layout (table8_rows)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score

from ray_pipeline.analysis.compare import FeatureSet, aggregate_over_seeds, compare_sets, l2_normalise
from ray_pipeline.analysis.metrics import median_heuristic_gamma, mmd2
from ray_pipeline.analysis.report import paper_table8_rows, table8_rows


def _set(name: str, kind: str, seed: int, shift: float, spread: float, n_per_class: int = 10,
         classes: int = 4, dim: int = 16) -> FeatureSet:
    """Class centres shared by every set (one 'world'); sets differ in offset and within-class spread."""
    centres = np.random.default_rng(100).normal(size=(classes, dim))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    feats = centres[labels] + shift + spread * rng.normal(size=(len(labels), dim))
    return FeatureSet(name, kind, feats, labels)


def _sets(seed: int = 0) -> list[FeatureSet]:
    return [_set("real", "real", seed, 0.0, 1.0), _set("other real", "real", seed + 1, 0.1, 1.0),
            _set("Basic", "generated", seed + 2, 0.8, 0.2), _set("IE", "generated", seed + 3, 0.4, 0.5)]


def test_compare_sets_against_direct_metrics():
    sets = _sets()
    out = compare_sets(sets, reference="real")
    assert out["reference"] == "real" and out["estimator"] == "biased" and out["statistic"] == "MMD^2"
    ref = l2_normalise(sets[0].features)
    gamma_rbf = out["kernels"]["rbf"]["gamma"]
    assert gamma_rbf == pytest.approx(median_heuristic_gamma(ref))
    assert out["kernels"]["poly"] == {"gamma": 1 / 16, "degree": 3, "coef0": 1.0}
    for s, row in zip(sets, out["sets"]):
        x = s.features / np.linalg.norm(s.features, axis=1, keepdims=True)
        assert row["name"] == s.name and row["kind"] == s.kind and row["n"] == 40 and row["classes"] == 4
        assert row["davies_bouldin"] == pytest.approx(davies_bouldin_score(x, s.labels), rel=1e-10)
        assert row["mmd_linear"] == pytest.approx(np.sum((x.mean(0) - ref.mean(0)) ** 2), rel=1e-10)
        assert row["mmd_rbf"] == pytest.approx(mmd2(x, ref, "rbf", gamma=gamma_rbf), rel=1e-12)
        assert row["mmd_poly"] == pytest.approx(mmd2(x, ref, "poly", gamma=1 / 16), rel=1e-12)
    by_name = {r["name"]: r for r in out["sets"]}
    assert by_name["real"]["mmd_linear"] == by_name["real"]["mmd_rbf"] == by_name["real"]["mmd_poly"] == 0.0
    # The fixture's ordering, as in the paper: tighter classes (Basic) give a lower DB, and a set
    # further from the reference a larger MMD.
    assert by_name["Basic"]["davies_bouldin"] < by_name["IE"]["davies_bouldin"] < by_name["real"]["davies_bouldin"]
    for key in ("mmd_linear", "mmd_rbf", "mmd_poly"):
        assert by_name["other real"][key] < by_name["IE"][key] < by_name["Basic"][key]
    json.dumps(out)  # metrics.json-ready: plain Python types only


def test_compare_sets_normalises_features():
    sets = _sets()
    scaled = [FeatureSet(s.name, s.kind, s.features * np.linspace(0.5, 4, len(s.features))[:, None], s.labels)
              for s in sets]
    a, b = compare_sets(sets, "real"), compare_sets(scaled, "real")
    for ra, rb in zip(a["sets"], b["sets"]):
        for key in ("davies_bouldin", "mmd_linear", "mmd_rbf", "mmd_poly"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-9)


def test_compare_sets_rejects_bad_input():
    sets = _sets()
    with pytest.raises(ValueError, match="reference set 'HMDB'"):
        compare_sets(sets, "HMDB")
    with pytest.raises(ValueError, match="unique"):
        compare_sets([sets[0], sets[0]], "real")
    with pytest.raises(ValueError, match="one dimension"):
        compare_sets([sets[0], FeatureSet("x", "real", np.ones((4, 3)), np.array([0, 0, 1, 1]))], "real")
    zero = FeatureSet("broken", "generated", np.zeros((40, 16)), sets[0].labels)
    with pytest.raises(ValueError, match="set 'broken': row 0 is zero"):
        compare_sets([sets[0], zero], "real")
    one_class = FeatureSet("one", "generated", sets[2].features, np.zeros(40, dtype=int))
    with pytest.raises(ValueError, match="set 'one': davies_bouldin needs"):
        compare_sets([sets[0], one_class], "real")


def test_aggregate_over_seeds():
    runs = [compare_sets(_sets(seed), "real") for seed in (0, 10, 20)]
    agg = aggregate_over_seeds(runs)
    assert agg["seeds"] == 3 and agg["reference"] == "real"
    for k, row in enumerate(agg["sets"]):
        for key in ("davies_bouldin", "mmd_rbf"):
            values = [r["sets"][k][key] for r in runs]
            assert row[key] == {"mean": pytest.approx(np.mean(values)), "std": pytest.approx(np.std(values)),
                                "n": 3, "values": pytest.approx(values)}
    assert agg["kernels"]["rbf"]["gamma"]["n"] == 3
    json.dumps(agg)
    with pytest.raises(ValueError, match="metrics 1 compares other sets"):
        aggregate_over_seeds([runs[0], compare_sets(_sets()[:2], "real")])
    with pytest.raises(ValueError, match="at least one"):
        aggregate_over_seeds([])


def test_table8_rows_single_run_and_seeds():
    out = compare_sets(_sets(), "real")
    header, rows = table8_rows(out)
    assert header == ["Set", "kind", "clips", "DB", "MMD² lin vs real", "MMD² rbf vs real", "MMD² poly vs real"]
    assert [r[0] for r in rows] == ["real", "other real", "Basic", "IE"]
    basic = out["sets"][2]
    assert rows[2] == ["Basic", "generated", "40", f"{basic['davies_bouldin']:.3f}", f"{basic['mmd_linear']:.3f}",
                       f"{basic['mmd_rbf']:.3f}", f"{basic['mmd_poly']:.3f}"]
    assert rows[0][4:] == ["0.000", "0.000", "0.000"]
    agg = aggregate_over_seeds([compare_sets(_sets(seed), "real") for seed in (0, 10, 20)])
    _, rows = table8_rows(agg)
    db = agg["sets"][3]["davies_bouldin"]
    assert rows[3][3] == f"{db['mean']:.3f} ± {db['std']:.3f}"
    assert rows[3][2] == "40"


def test_table8_rows_keeps_small_values_readable():
    row = {"name": "IE", "kind": "generated", "n": 5, "davies_bouldin": 4.31, "mmd_linear": 0.0156,
           "mmd_rbf": {"mean": 0.0145, "std": 0.0012, "n": 3}, "mmd_poly": 0.000362}
    _, rows = table8_rows({"reference": "r", "sets": [row]})
    assert rows[0][3:] == ["4.310", "0.016", "0.015 ± 0.001", "3.62e-04"]
    row["mmd_poly"] = {"mean": 0.000362, "std": 0.00004, "n": 3}
    assert table8_rows({"reference": "r", "sets": [row]})[1][0][-1] == "3.62e-04 ± 4.00e-05"
    row["mmd_poly"] = {"mean": 0.000362, "std": 0.0, "n": 3}
    assert table8_rows({"reference": "r", "sets": [row]})[1][0][-1] == "3.62e-04 ± 0"


def test_table8_rows_names_what_is_missing():
    with pytest.raises(ValueError, match="'sets' and 'reference'"):
        table8_rows({"sets": []})
    with pytest.raises(ValueError, match="set 'IE': missing mmd_rbf"):
        table8_rows({"reference": "r", "sets": [{"name": "IE", "n": 3, "davies_bouldin": 1.0, "mmd_linear": 0.1,
                                                  "mmd_poly": 0.2}]})
    with pytest.raises(ValueError, match="set 'IE', mmd_rbf: expected a number"):
        table8_rows({"reference": "r", "sets": [{"name": "IE", "n": 3, "davies_bouldin": 1.0, "mmd_linear": 0.1,
                                                  "mmd_rbf": "high", "mmd_poly": 0.2}]})


def test_paper_table8_rows():
    header, rows = paper_table8_rows()
    assert header[1] == "DB" and [r[0] for r in rows] == ["Basic", "IE", "HMDB-51", "UCF-101"]
    assert rows[1] == ["IE", "4.310", "0.112", "0.092", "0.122"]
