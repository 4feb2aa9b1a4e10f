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


def _summary(values: dict[str, list[float]], baseline: dict[str, list[float]] | None = None, *, seed: int = 0,
             source: dict[str, list[float]] | None = None) -> dict:
    """A summary.json as the zero-shot task writes it, from per-split accuracies: the backbone
    (``baseline`` here, as the old report called it), the source-trained model, the generated one."""
    def entry(per_split: list[float]) -> dict:
        return {"top1": describe({(seed, f"val{i + 1}"): v for i, v in enumerate(per_split)}),
                "videos": 10, "corrupt_videos": 0}

    rows = []
    if baseline:
        rows.append({"label": BASELINE, "role": "backbone", "seeds": [],
                     "datasets": {ds: entry(v) for ds, v in baseline.items()}})
    if source:
        rows.append({"label": "TC-CLIP (source)", "role": "baseline", "seeds": [seed],
                     "datasets": {ds: entry(v) for ds, v in source.items()}})
    rows.append({"label": TRAINED, "role": "generated", "seeds": [seed],
                 "datasets": {ds: entry(v) for ds, v in values.items()}})
    return {"task": "zero_shot", "rows": rows,
            "protocol": {"num_clips": 2, "num_frames": 8, "std": "population (ddof=0)"}}


def _expected(per_seed: list[list[float]], *, seeds: int | None = None, expected_seeds: int | None = None) -> str:
    """A cell's text computed here with numpy and scipy: mean ± population std over every
    (seed, split), Student-t CI over the per-seed means (over the splits with one seed)."""
    from scipy import stats as st

    values = [v for splits in per_seed for v in splits]
    units = [float(np.mean(s)) for s in per_seed] if len(per_seed) >= 2 else values
    half = st.t.ppf(0.975, len(units) - 1) * np.std(units, ddof=1) / np.sqrt(len(units))
    mean = np.mean(values)
    ci = f" [{np.mean(units) - half:.1f}, {np.mean(units) + half:.1f}]"
    if seeds is None:
        return f"{mean:.1f} ± {np.std(values):.1f}{ci} (n={len(values)})"
    tail = f" of {expected_seeds}" if expected_seeds and expected_seeds != seeds else ""
    return f"{mean:.1f} ± {np.std(values):.1f}{ci} ({seeds} seed{'s' if seeds != 1 else ''}{tail}, n={len(values)})"


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
                        "config": config})
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
    trials, per_seed = [], {}
    for s in strategies:
        for seed in (0, 1, 2):
            splits = {"world_hmdb": list(rng.uniform(20, 60, 3)), "world_ucf": list(rng.uniform(30, 70, 3))}
            base = {"world_hmdb": [30.0, 31.0, 32.0], "world_ucf": [40.0, 41.0, 42.0]} if not trials else None
            trials.append(({"prompts.strategy": s, "train.seed": seed}, _summary(splits, base, seed=seed)))
            for ds, v in splits.items():
                per_seed.setdefault((s, ds), []).append(v)
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
        cells = [_expected(per_seed[(s, ds)], seeds=3) for ds in ("world_hmdb", "world_ucf")]
        assert f"| {label} | {cells[0]} | {cells[1]} |" in md
    # The backbone, shared by every trial: its splits once (CI over splits: t(0.975, 2) * 1 / sqrt(3)).
    assert f"| {BASELINE} | 31.0 ± 0.8 [28.5, 33.5] (n=3) | 41.0 ± 0.8 [38.5, 43.5] (n=3) |" in md
    assert "| +IE | 61.0 |" in md  # the paper's Table 6 row, for reference
    # IE against each other strategy, paired by seed and split.
    assert md.count("| +IE − +") == 3 * 2
    html = (root / "report.html").read_text()
    assert html.count("<table>") == 4 and _expected(per_seed[("ie", "world_hmdb")], seeds=3)[:6] in html


def test_table7_layout_and_missing_results(tmp_path):
    trials = []
    for loss in ("ul", "ls", "uf", "uw"):
        for seed in (0, 1):
            done = not (loss == "uf" and seed == 1)  # one trial has no results yet
            trials.append(({"train.loss": loss, "train.seed": seed},
                           _summary({"hmdb": [50.0 + seed, 52.0 + seed + (loss == "ul")]}, seed=seed,
                                    source={"hmdb": [45.0 + seed, 46.0 + seed]}) if done else None))
    root = tmp_path / "sweep"
    _fake_sweep(root, [{"path": "train.loss", "kind": "grid", "spec": ["ul", "ls", "uf", "uw"]}], trials)
    write_report(RunStore(root))
    md = (root / "report.md").read_text()
    assert "Table 7 layout" in md
    order = [line.split(" | ")[0][2:] for line in md.splitlines() if line.startswith("| +")]
    assert order[:4] == ["+LS", "+UW", "+UF", "+UL"]
    assert f"| +UL | {_expected([[50.0, 53.0], [51.0, 54.0]], seeds=2)} |" in md
    assert f"| +UF | {_expected([[50.0, 52.0]], seeds=1, expected_seeds=2)} |" in md
    # The source-trained baseline, once per seed however many trials evaluated it.
    assert f"| TC-CLIP (source) | {_expected([[45.0, 46.0], [46.0, 47.0]])} |" in md
    # UL - LS paired by (seed, split): differences 0, 1, 0, 1 -> per-seed means 0.5, 0.5: CI of width 0.
    assert "| +UL − +LS | hmdb | +0.5 | [+0.5, +0.5] | 4 | seeds | yes |" in md
    # UL - UF: UF has seed 0 only, so 2 pairs (differences 0 and 1), one seed: CI over the pairs... none.
    assert "| +UL − +UF | hmdb | +0.5 |" in md
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
                            {ds: [offset - 5]} if i == seed == 0 else None, seed=seed))
                  for i, loss in enumerate(("ls", "uw", "uf", "ul")) for seed in (0, 1)]
        _fake_sweep(tmp_path / ds, [{"path": "train.loss", "kind": "grid", "spec": ["ls", "uw", "uf", "ul"]}], trials,
                    datasets=[ds])
        dirs.append(str(tmp_path / ds))
    assert main(["report", *dirs, "--out", str(tmp_path / "table7")]) == 0
    md = (tmp_path / "table7" / "report.md").read_text()
    assert md == capsys.readouterr().out
    assert "| Method | ucf | hmdb |" in md and "Table 7 layout" in md
    assert f"| {BASELINE} | 75.0 ± 0.0 (n=1) | 50.0 ± 0.0 (n=1) |" in md
    assert (f"| +UL | {_expected([[83.0, 83.0], [84.0, 84.0]], seeds=2)} | "
            f"{_expected([[58.0, 58.0], [59.0, 59.0]], seeds=2)} |") in md
    assert main(["report", dirs[0], str(tmp_path / "nothing")]) == 1
