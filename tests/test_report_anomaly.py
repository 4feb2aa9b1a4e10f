"""Reports of the anomaly task in Table 5's layout: a run's summary, and a sweep's trials over seeds
(mean ± population std per row, the paired difference MIL+Ours − MIL with its Student-t CI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ray_pipeline.evaluation.statistics import describe
from ray_pipeline.report import write_report
from ray_pipeline.runstore import RunStore
from tests.helpers import fake_sweep

LABELS = {"baseline": "MIL (no generated pre-training)", "generated": "MIL + generated pre-training (IE, UL)"}


def _summary(seed: int, values: dict[str, tuple[float, float]]) -> dict:
    rows = [{"label": LABELS[role], "role": role, "seeds": [seed], "head": "ranking",
             "datasets": {"world_ucf_crime": {"auc": describe({(seed, "test"): auc}),
                                              "auc_a": describe({(seed, "test"): auc_a}),
                                              "videos": 52, "anomalous_videos": 26, "corrupt_videos": 0}}}
            for role, (auc, auc_a) in values.items()]
    return {"task": "anomaly", "rows": rows, "comparisons": [],
            "protocol": {"head": "ranking", "num_segments": 32, "frames_per_segment": 8}}


def test_run_report_is_table5(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_text("summary.json", json.dumps(_summary(0, {"baseline": (69.99, 68.12), "generated": (69.47, 66.55)})))
    write_report(store)
    md = store.read_text("report.md")
    assert "Table 5 layout" in md and "| Method | model | AUC (%) | AUC_A (%) |" in md
    assert f"| MIL | {LABELS['baseline']} | 69.99 | 68.12 |" in md
    assert f"| MIL+Ours | {LABELS['generated']} | 69.47 | 66.55 |" in md
    assert "| MIL+Ours | 84.03 | 62.44 |" in md  # the paper's row, for reference


def test_sweep_report_aggregates_seeds_and_pairs_them(tmp_path):
    base = [(70.0, 68.0), (66.0, 65.0), (71.0, 66.0)]
    gen = [(72.0, 69.0), (69.0, 66.5), (72.5, 68.0)]
    fake_sweep(tmp_path / "sweep", [_summary(s, {"baseline": base[s], "generated": gen[s]}) for s in range(3)])
    write_report(RunStore(tmp_path / "sweep"), out=RunStore(tmp_path / "out"))
    md = (tmp_path / "out" / "report.md").read_text()
    auc_b = np.array([b[0] for b in base])
    row = next(line for line in md.splitlines() if line.startswith("| MIL |"))
    half_b = stats.t.ppf(0.975, 2) * auc_b.std(ddof=1) / np.sqrt(3)
    assert row.split(" | ")[1] == (f"{auc_b.mean():.2f} ± {auc_b.std():.2f} "
                                   f"[{auc_b.mean() - half_b:.2f}, {auc_b.mean() + half_b:.2f}] (n=3)")
    # The paired difference over seeds, its Student-t 95 % interval computed here by hand.
    d = np.array([g[0] - b[0] for g, b in zip(gen, base)])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert f"MIL+Ours − MIL, AUC {d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}] over 3 seed(s)" in md
    assert md.count("| finished |") == 3 and "84.03" in md


def test_anomaly_and_other_sweeps_are_not_mixed(tmp_path):
    fake_sweep(tmp_path / "a", [_summary(0, {"baseline": (70.0, 68.0)})])
    other = {"task": "few_shot", "rows": [], "comparisons": [], "protocol": {}}
    fake_sweep(tmp_path / "b", [other])
    with pytest.raises(ValueError, match="different tasks"):
        write_report(RunStore(tmp_path / "a"), RunStore(tmp_path / "b"), out=RunStore(tmp_path / "out"))


def test_trial_metrics_are_the_rows_aucs():
    """What a sweep trial reports to Tune and MLflow: each row's AUC and AUC_A by role."""
    from ray_pipeline.config import load_config
    from ray_pipeline.tasks import get_task

    task = get_task(load_config(Path(__file__).resolve().parents[1] / "experiments" / "world" / "anomaly.yaml"))
    metrics = task.metrics(_summary(1, {"baseline": (70.0, 68.0), "generated": (72.0, 69.0)}))
    assert metrics["world_ucf_crime.baseline.auc_mean"] == 70.0
    assert metrics["world_ucf_crime.generated.auc_a_mean"] == 69.0
    assert {k.split(".")[-1] for k in metrics} == {"auc_mean", "auc_std", "auc_a_mean", "auc_a_std"}
