"""Reports: paper layouts, mean ± population std over seeds checked against summary.json, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ray_pipeline.evaluation.statistics import describe
from ray_pipeline.report import write_report
from ray_pipeline.report.sweep import BACKBONE_ROW as BASELINE
from ray_pipeline.runstore import RunStore

TRAINED = "tcclip+generated (ul, synthetic)"


def _summary(values: dict[str, list[float]], baseline: dict[str, list[float]] | None = None) -> dict:
    """A summary.json as the zero-shot task writes it, from per-split accuracies."""
    def entry(per_split: list[float]) -> dict:
        return {"top1": describe({(0, f"val{i + 1}"): v for i, v in enumerate(per_split)}),
                "videos": 10, "corrupt_videos": 0}

    rows = []
    if baseline:
        rows.append({"label": BASELINE, "role": "backbone", "seeds": [],
                     "datasets": {ds: entry(v) for ds, v in baseline.items()}})
    rows.append({"label": TRAINED, "role": "generated", "seeds": [0],
                 "datasets": {ds: entry(v) for ds, v in values.items()}})
    return {"task": "zero_shot", "rows": rows,
            "protocol": {"num_clips": 2, "num_frames": 8, "std": "population (ddof=0)"}}


def _fake_sweep(root: Path, axes: list[dict], trials: list[tuple[dict, dict | None]],
                datasets: list[str] | None = None) -> list[str]:
    """A sweep directory as `ray-pipeline sweep` leaves it (sweep.json, trials.json, trial folders)."""
    keys = []
    records = []
    config = {"evaluate": {"datasets": [{"name": d} for d in datasets]}} if datasets else {}
    for i, (variant, summary) in enumerate(trials):
        key = f"k{i:03d}"
        keys.append(key)
        records.append({"key": key, "index": i, "name": "fake", "variant": variant, "data_group": "g",
                        "evaluate_baseline": i == 0, "config": config})
        d = root / "trials" / key
        d.mkdir(parents=True)
        (d / "attempts.jsonl").write_text('{"started": 0}\n')
        if summary is not None:
            (d / "summary.json").write_text(json.dumps(summary))
            (d / "trial_result.json").write_text(json.dumps({"train.final_loss": 0.5}))
    (root / "trials.json").write_text(json.dumps(records))
    (root / "sweep.json").write_text(json.dumps({"name": "fake", "source": "fake.yaml", "axes": axes}))
    return keys


def test_table6_layout_with_mean_and_population_std_over_seeds(tmp_path):
    rng = np.random.default_rng(0)
    strategies = ["ie", "basic", "env", "cha"]  # file order differs from the paper's
    trials, expected = [], {}
    for s in strategies:
        per_seed = []
        for seed in (0, 1, 2):
            splits = {"world_hmdb": list(rng.uniform(20, 60, 3)), "world_ucf": list(rng.uniform(30, 70, 3))}
            base = {"world_hmdb": [30.0, 31.0, 32.0], "world_ucf": [40.0, 40.0, 40.0]} if not trials else None
            trials.append(({"prompts.strategy": s, "train.seed": seed}, _summary(splits, base)))
            per_seed.append({ds: np.mean(v) for ds, v in splits.items()})
        expected[s] = {ds: (np.mean([p[ds] for p in per_seed]), np.std([p[ds] for p in per_seed]))
                       for ds in ("world_hmdb", "world_ucf")}
    root = tmp_path / "sweep"
    _fake_sweep(root, [{"path": "prompts.strategy", "kind": "grid", "spec": strategies},
                       {"path": "train.seed", "kind": "grid", "spec": [0, 1, 2]}], trials)
    written = write_report(RunStore(root))
    assert set(written) == {"report.md", "report.html"}
    md = (root / "report.md").read_text()
    assert "Table 6 layout" in md
    rows = [line for line in md.splitlines() if line.startswith("| +") or line.startswith(f"| {BASELINE}")]
    assert [r.split(" | ")[0][2:] for r in rows[:5]] == [BASELINE, "+Basic", "+Cha", "+Env", "+IE"]
    for s, label in zip(["basic", "cha", "env", "ie"], ["+Basic", "+Cha", "+Env", "+IE"]):
        cells = [f"{m:.1f} ± {sd:.1f} (n=3)" for m, sd in (expected[s]["world_hmdb"], expected[s]["world_ucf"])]
        assert f"| {label} | {cells[0]} | {cells[1]} |" in md
    assert f"| {BASELINE} | 31.0 (n=1) | 40.0 (n=1) |" in md
    assert "| +IE | 61.0 |" in md  # the paper's Table 6 row, for reference
    html = (root / "report.html").read_text()
    assert html.count("<table>") == 3 and f"{expected['ie']['world_hmdb'][0]:.1f} ± " in html


def test_table7_layout_and_missing_results(tmp_path):
    trials = []
    for loss in ("ul", "ls", "uf", "uw"):
        for seed in (0, 1):
            done = not (loss == "uf" and seed == 1)  # one trial has no results yet
            trials.append(({"train.loss": loss, "train.seed": seed},
                           _summary({"hmdb": [50.0 + seed, 52.0 + seed]}) if done else None))
    root = tmp_path / "sweep"
    _fake_sweep(root, [{"path": "train.loss", "kind": "grid", "spec": ["ul", "ls", "uf", "uw"]}], trials)
    write_report(RunStore(root))
    md = (root / "report.md").read_text()
    assert "Table 7 layout" in md
    order = [line.split(" | ")[0][2:] for line in md.splitlines() if line.startswith("| +")]
    assert order[:4] == ["+LS", "+UW", "+UF", "+UL"]
    assert "| +UL | 51.5 ± 0.5 (n=2) |" in md  # seeds 51.0 and 52.0
    assert "| +UF | 51.0 (n=1 of 2) |" in md
    assert "| pending |" not in md and "| started |" in md  # the unfinished trial is listed


@pytest.mark.parametrize("axis, png", [("train.w", "w_curve.png"),
                                       ("generate.clips_per_class", "clips_per_class_curve.png")])
def test_numeric_axes_get_a_curve(tmp_path, axis, png):
    values = [0.5, 0.1, 0.3] if axis == "train.w" else [64, 16, 32]
    trials = [({axis: v, "train.seed": s}, _summary({"hmdb": [40 + 10 * (i + 1) + s]}, {"hmdb": [35.0]}))
              for i, v in enumerate(values) for s in (0, 1)]
    root = tmp_path / "sweep"
    _fake_sweep(root, [{"path": axis, "kind": "grid", "spec": values}], trials)
    written = write_report(RunStore(root))
    assert f"report/{png}" in written
    data = (root / "report" / png).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    md = (root / "report.md").read_text()
    assert "![" in md and f"(report/{png})" in md
    short = axis.split(".")[-1]
    labels = [line.split(" | ")[0][2:] for line in md.splitlines() if line.startswith(f"| {short}=")]
    assert labels[:3] == [f"{short}={v}" for v in sorted(values)]  # numeric order, not file order


def test_run_directory_report(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "summary.json").write_text(json.dumps(_summary({"hmdb": [40.0, 50.0]}, {"hmdb": [30.0, 30.0]})))
    (root / "train").mkdir()
    (root / "train" / "result.json").write_text(json.dumps({"model": "tcclip", "recipe": "synthetic", "loss": "ul",
                                                            "w": 0.3, "num_clips": 96, "num_classes": 12}))
    assert write_report(RunStore(root)) == ["report.md", "report.html"]
    md = (root / "report.md").read_text()
    # CI by hand: sem = 7.071 / sqrt(2) = 5.0, t(0.975, 1) = 12.706 -> 45 ± 63.5
    assert f"| {TRAINED} | generated | 45.0 ± 5.0 [-18.5, 108.5] (n=2) |" in md and "96 generated clips" in md


def test_report_cli(tmp_path, capsys):
    from ray_pipeline.cli import main

    assert main(["report", str(tmp_path / "nothing")]) == 1
    assert "no summary.json" in capsys.readouterr().err
    root = tmp_path / "run"
    root.mkdir()
    (root / "summary.json").write_text(json.dumps(_summary({"hmdb": [40.0]})))
    assert main(["report", str(root)]) == 0
    assert "40.0 ± 0.0 (n=1)" in capsys.readouterr().out


def test_two_sweeps_combine_into_table7_columns(tmp_path, capsys):
    """Table 7's UCF-101 and HMDB-51 columns: one sweep per target dataset, one combined table."""
    from ray_pipeline.cli import main

    dirs = []
    for ds, offset in (("ucf", 80.0), ("hmdb", 55.0)):
        trials = [({"train.loss": loss, "train.seed": seed},
                   _summary({ds: [offset + i + seed, offset + i + seed]},
                            {ds: [offset - 5]} if i == seed == 0 else None))
                  for i, loss in enumerate(("ls", "uw", "uf", "ul")) for seed in (0, 1)]
        _fake_sweep(tmp_path / ds, [{"path": "train.loss", "kind": "grid", "spec": ["ls", "uw", "uf", "ul"]}], trials,
                    datasets=[ds])
        dirs.append(str(tmp_path / ds))
    assert main(["report", *dirs, "--out", str(tmp_path / "table7")]) == 0
    md = (tmp_path / "table7" / "report.md").read_text()
    assert md == capsys.readouterr().out
    assert "| Method | ucf | hmdb |" in md and "Table 7 layout" in md
    assert f"| {BASELINE} | 75.0 (n=1) | 50.0 (n=1) |" in md
    assert "| +UL | 83.5 ± 0.5 (n=2) | 58.5 ± 0.5 (n=2) |" in md
    assert main(["report", dirs[0], str(tmp_path / "nothing")]) == 1
