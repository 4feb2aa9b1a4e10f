"""Reports of the fine-tuning tasks in the paper's layouts (Tables 2-4): a run's summary, and a
sweep's trials aggregated over seeds (mean ± population std; HM from the mean Base and Novel)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ray_pipeline.evaluation.base_to_novel import harmonic_mean
from ray_pipeline.evaluation.statistics import describe
from ray_pipeline.report import write_report
from ray_pipeline.report.protocols import protocol_run_document
from ray_pipeline.runstore import RunStore
from tests.helpers import fake_sweep

LABELS = {"backbone": "backbone (no training)", "baseline": "TC-CLIP fine-tuned",
          "generated": "TC-CLIP + generated (IE, UL), fine-tuned"}
PROTOCOL = {"epoch_rule": "last", "epoch_rule_text": "the last epoch's model", "views": "2 clips x 1 crop",
            "num_frames": 8, "finetune": {"epochs": 10, "lr": 5e-4, "warmup_epochs": 1, "batch_size": 16,
                                          "loss": "ls", "epsilon": 0.1},
            "pretrain": {"epochs": 10, "lr": 1e-3, "loss": "ul", "w": 0.3}}


def _m(value: float, seed: int = 0, split: str = "val1") -> dict:
    return describe({(seed, split): value})


def _few_shot(ds: str, values: dict[str, dict[int, float]]) -> dict:
    rows = [{"label": LABELS[r], "role": r, "seeds": [0],
             "datasets": {ds: {f"k{k}": {"top1": _m(v)} for k, v in per_k.items()}}} for r, per_k in values.items()]
    return {"task": "few_shot", "rows": rows, "comparisons": [], "protocol": PROTOCOL}


def _b2n(ds: str, values: dict[str, tuple[float, float]]) -> dict:
    rows = [{"label": LABELS[r], "role": r, "seeds": [0],
             "datasets": {ds: {"base": _m(b), "novel": _m(n), "hm": {**_m(harmonic_mean(b, n)), "std": 0.0}}}}
            for r, (b, n) in values.items()]
    return {"task": "base_to_novel", "rows": rows, "comparisons": [], "protocol": {**PROTOCOL, "hm": "HM"}}


def test_run_report_is_table2(tmp_path):
    summary = _few_shot("world_hmdb_fs", {"backbone": {2: 11.0, 16: 11.0}, "baseline": {2: 7.6, 16: 12.4},
                                          "generated": {2: 10.7, 16: 16.2}})
    md = protocol_run_document(summary).markdown()
    assert "Table 2 layout" in md and "| Method | world_hmdb_fs K=2 | world_hmdb_fs K=16 |" in md
    assert f"| {LABELS['generated']} | 10.7 | 16.2 |" in md and f"| {LABELS['backbone']} | 11.0 | 11.0 |" in md
    assert "| TC-CLIP+Ours | 63.0 | 65.6 | 68.9 | 71.4 | 88.1 |" in md  # the paper's row for reference
    assert "Reported epoch: the last epoch's model" in md


def test_sweep_reports_combine_datasets_and_seeds(tmp_path):
    hmdb, ucf = tmp_path / "hmdb", tmp_path / "ucf"
    fake_sweep(hmdb, [_b2n("hmdb", {"baseline": (70.0 + 2 * s, 50.0 + 2 * s), "generated": (75.0 + s, 60.0)}
                             | {"backbone": (50.0, 40.0)}) for s in range(3)])  # every trial evaluates it
    fake_sweep(ucf, [_b2n("ucf", {"baseline": (90.0, 80.0 + s), "generated": (91.0, 85.0)}) for s in range(3)])
    write_report(RunStore(hmdb), RunStore(ucf), out=RunStore(tmp_path / "out"))
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Table 3 layout" in md
    assert "| Method | hmdb Base | hmdb Novel | hmdb HM | ucf Base | ucf Novel | ucf HM |" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {LABELS['baseline']} |"))
    cells = row.split(" | ")[1:]
    half = stats.t.ppf(0.975, 2) * np.std([70, 72, 74], ddof=1) / np.sqrt(3)  # Student-t over the 3 seeds
    assert cells[0] == f"72.0 ± {np.std([70, 72, 74]):.1f} [{72 - half:.1f}, {72 + half:.1f}] (n=3)"
    assert cells[1].startswith("52.0 ± ")
    hms = [harmonic_mean(70 + 2 * s, 50 + 2 * s) for s in range(3)]
    assert cells[2] == f"{harmonic_mean(72.0, 52.0):.1f} ± {np.std(hms):.1f} (n=3)"  # HM of the means
    assert cells[4].startswith("81.0 ± ")
    backbone = next(line for line in md.splitlines() if line.startswith(f"| {LABELS['backbone']} |"))
    assert backbone.split(" | ")[1:4] == ["50.0", "40.0", f"{harmonic_mean(50, 40):.1f}"]
    assert "| TC-CLIP+Ours | 77.7 | 64.0 | 70.2 | 95.5 | 85.2 | 90.1 |" in md
    assert md.count("| finished |") == 6
    # +Ours − TC-CLIP paired within each trial: hmdb Base 75+s − (70+2s) = 5 − s, i.e. 5, 4, 3.
    d = np.array([5.0, 4.0, 3.0])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert f"| hmdb Base | +4.0 | [{4 - half:+.1f}, {4 + half:+.1f}] | 3 | significant |" in md
    # ucf Base: 91 − 90 in every trial, a zero-width interval that excludes 0.
    assert "| ucf Base | +1.0 | [+1.0, +1.0] | 3 | significant |" in md


def test_sweeps_of_different_tasks_are_not_mixed(tmp_path):
    fake_sweep(tmp_path / "a", [_b2n("hmdb", {"baseline": (70.0, 50.0)})])
    fake_sweep(tmp_path / "b", [_few_shot("hmdb", {"baseline": {2: 30.0}})])
    with pytest.raises(ValueError, match="different tasks"):
        write_report(RunStore(tmp_path / "a"), RunStore(tmp_path / "b"), out=RunStore(tmp_path / "out"))
