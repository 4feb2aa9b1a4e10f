"""``ray-pipeline analyze`` end to end on a tiny run, and the generator's failures reaching the
generate manifest, the score stage's metrics and ``summary.json``.

The tiny run: procedural clips of 4 classes (half of the seeds fail), an IE run and a Basic run to
compare, a tiny random CLIP as the score stage's model and a tiny real dataset. The numbers are
checked against independent computations: sklearn's Davies-Bouldin and ROC AUC, the linear MMD²
identity ‖x̄ − ȳ‖², and features recomputed by the score stage's scorer outside Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import davies_bouldin_score, roc_auc_score

from ray_pipeline.analysis.command import analyze, real_sets
from ray_pipeline.analysis.failures import failure_figures
from ray_pipeline.config import ConfigError, ExperimentConfig
from ray_pipeline.generators.base import VideoGenerator
from ray_pipeline.generators.procedural import ProceduralGenerator
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.analyze import FEATURES_MANIFEST, FeatureExtraction
from ray_pipeline.stages.base import StageResult
from ray_pipeline.stages.evaluate import BACKBONE_LABEL, OUT_SCHEMA
from tests.helpers import (
    TINY_CLASSES,
    pipeline,
    quiet_console,
    run_prompts,
    stage_context,
    write_tiny_dataset,
)
from tests.test_analysis_quality_report import _check_page

pytestmark = pytest.mark.integration


def _cfg(clip: str, dataset: dict, strategy: str = "ie") -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": f"tiny-{strategy}", "ray": {"num_cpus": 2},
        "prompts": {"classes": TINY_CLASSES, "strategy": strategy},
        "generate": {"backend": "procedural", "clips_per_class": 3,
                     "procedural": {"size": 32, "num_frames": 4, "failure_rate": 0.5}},
        "score": {"model": clip, "num_frames": 2, "pool": {"actors": 1, "batch_size": 4}},
        "train": {"backbone": clip, "num_frames": 2},
        "evaluate": {"datasets": [dataset], "num_clips": 1, "pool": {"actors": 1, "batch_size": 8}},
        "analysis": {"frames_per_strip": 3, "clips_per_strip": 2},
    })


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _write_data_stages(cfg: ExperimentConfig, store: RunStore) -> None:
    """Prompts, generate and score rows through the stages' own process() (their Ray runs are
    tested elsewhere; here only analyze's feature extraction needs Ray)."""
    run_prompts(cfg, store)
    p = pipeline(cfg, store)
    generate, score = p.build("generate"), p.build("score")
    planned = generate.plan(p.context(generate), p.run([], until="prompts"))
    generate.setup("cpu")
    clips = generate.process(planned)
    store.manifest("generate", "clip_id").write_part(clips)
    score.setup("cpu")
    planned = score.plan(p.context(score), {"generate": StageResult(clips)})
    store.manifest("score", "score_id").write_part(score.process(planned))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_clip, one_torch_thread):
    """An IE run and a Basic run with their data stages done."""
    root = tmp_path_factory.mktemp("analyze")
    dataset = write_tiny_dataset(root / "real", TINY_CLASSES, per_class=3)
    out = {}
    for strategy in ("ie", "basic"):
        cfg = _cfg(tiny_clip, dataset, strategy)
        store = RunStore(root / strategy)
        store.write_text("config.yaml", cfg.to_yaml())
        _write_data_stages(cfg, store)
        out[strategy] = (cfg, store)
    return out


@pytest.fixture(scope="module")
def analysed(runs, ray_cluster):
    """``analyze`` of the IE run beside the Basic run, twice: the console lines of both."""
    cfg, store = runs["ie"]
    lines = []
    for _ in range(2):
        console = quiet_console()
        analyze(cfg, store, [runs["basic"][1].root], console)
        lines.append(console.stream.getvalue())
    return lines


def _features(store: RunStore) -> dict[str, np.ndarray]:
    rows = store.manifest("analysis/features", "feature_id").read().to_pylist()
    return {r["key"]: np.asarray(r["feature"], np.float64) for r in rows}


def _generated(cfg: ExperimentConfig, store: RunStore) -> tuple[pa.Table, pa.Table]:
    results = pipeline(cfg, store).run([], until="score")
    return results["generate"].rows, results["score"].rows


def test_generate_manifest_records_the_worlds_failures(runs):
    cfg, store = runs["ie"]
    clips, _ = _generated(cfg, store)
    world = ProceduralGenerator(cfg.generate.procedural)
    expected = [world.failure_of(s) for s in clips.column("seed").to_pylist()]
    assert clips.column("failure").to_pylist() == expected
    assert clips.column("failed").to_pylist() == [f is not None for f in expected]
    assert 0 < sum(f is not None for f in expected) < clips.num_rows  # both outcomes, for the AUROC


def test_failure_auroc_in_score_metrics_and_summary(runs):
    cfg, store = runs["ie"]
    clips, scores = _generated(cfg, store)
    failed = dict(zip(clips.column("clip_id").to_pylist(), clips.column("failed").to_pylist()))
    entropy = scores.column("entropy").to_pylist()
    flags = [failed[c] for c in scores.column("clip_id").to_pylist()]
    expected = roc_auc_score(flags, entropy)
    stats = pipeline(cfg, store).run([], until="score")["score"].stats
    assert stats["failure_auroc"] == pytest.approx(expected)
    assert stats["failed_clips"] == sum(flags) and stats["failure_known_clips"] == len(flags)
    # The task's summary.json, with one evaluated video standing in for the evaluate stage's rows.
    p = pipeline(cfg, store)
    results = p.run([], until="score")
    results["evaluate"] = StageResult(pa.Table.from_pylist([{
        "eval_id": "e", "model": BACKBONE_LABEL, "role": "backbone", "dataset": "tiny", "split": "val1",
        "split_key": "tiny/val1", "video": "v.mp4", "label": 0, "predicted": 0, "top1": True, "top5": True,
        "error": None}], schema=OUT_SCHEMA))
    summary = p.write_summary(results)
    assert json.loads(store.read_text("summary.json"))["data"] == summary["data"]
    assert summary["data"]["failure_auroc"] == pytest.approx(expected)
    assert summary["data"]["failed_clips"] == sum(flags)
    assert p.task.metrics(summary)["data.failure_auroc"] == pytest.approx(expected)


def test_failures_unknown_to_the_backend_stay_unknown():
    clips = pa.table({"clip_id": ["a", "b", "c"], "failed": pa.array([None, None, None], pa.bool_())})
    scores = pa.table({"clip_id": ["a", "b", "c"], "entropy": [0.1, 0.2, 0.3]})
    assert failure_figures(clips, scores) == {}
    assert failure_figures(clips.drop(["failed"]), scores) == {}  # rows from before the column existed
    known = pa.table({"clip_id": ["a", "b", "c"], "failed": [True, True, None]})
    expected = {"failure_known_clips": 2, "failed_clips": 2, "failure_auroc": None}
    assert failure_figures(known, scores) == expected


def test_a_backend_that_cannot_tell_writes_null_failures(tmp_path, tiny_clip):

    class Plain(VideoGenerator):
        """A backend without failure knowledge: uniform grey clips."""

        name = "plain"

        def __init__(self, config=None, device="cpu", cache_dir=None) -> None:
            pass

        @property
        def fps(self) -> int:
            return 8

        @classmethod
        def identity(cls, config):
            return {}

        def generate(self, prompts, seeds):
            return [np.full((2, 16, 16, 3), 128, np.uint8) for _ in prompts]

    cfg = _cfg(tiny_clip, write_tiny_dataset(tmp_path / "real", TINY_CLASSES, per_class=1))
    store = RunStore(tmp_path / "run")
    run_prompts(cfg, store)
    p = pipeline(cfg, store)
    stage = p.build("generate")
    planned = stage.plan(p.context(stage), p.run([], until="prompts")).slice(0, 2)
    stage.generator = Plain()
    out = stage.process(planned)
    assert out.column("failed").to_pylist() == [None, None]
    assert out.column("failure").to_pylist() == [None, None]


def test_analyze_writes_table8_metrics_against_independent_computations(runs, analysed):
    cfg, store = runs["ie"]
    metrics = json.loads(store.read_text("analysis/metrics.json"))
    assert [s["name"] for s in metrics["sets"]] == ["tiny", "IE", "Basic"]
    assert metrics["reference"] == "tiny" and metrics["features"].startswith("L2-normalised")
    features = _features(store)
    [real] = real_sets(cfg)
    x_real = _unit(np.stack([features[k] for k in real.keys]))
    own_clips, _ = _generated(cfg, store)
    x_ie = _unit(np.stack([features[k] for k in sorted(own_clips.column("clip_id").to_pylist())]))
    by_name = {s["name"]: s for s in metrics["sets"]}
    assert by_name["tiny"]["n"] == len(real) == 4 * 3
    assert by_name["IE"]["n"] == by_name["Basic"]["n"] == 12
    assert by_name["tiny"]["davies_bouldin"] == pytest.approx(davies_bouldin_score(x_real, real.labels))
    ie_labels = [n for _, n in sorted(zip(own_clips.column("clip_id").to_pylist(),
                                          own_clips.column("class_name").to_pylist()))]
    assert by_name["IE"]["davies_bouldin"] == pytest.approx(davies_bouldin_score(x_ie, ie_labels))
    assert by_name["IE"]["mmd_linear"] == pytest.approx(float(np.sum((x_ie.mean(0) - x_real.mean(0)) ** 2)))
    assert by_name["tiny"]["mmd_linear"] == by_name["tiny"]["mmd_rbf"] == by_name["tiny"]["mmd_poly"] == 0.0
    ie = metrics["generated"]["IE"]
    clips, scores = _generated(cfg, store)
    assert ie["failure_auroc"] == pytest.approx(failure_figures(clips, scores)["failure_auroc"])
    assert metrics["generated"]["Basic"]["run_dir"] == runs["basic"][1].root


def test_cached_features_are_the_score_stages_video_features(runs, analysed, tiny_clip):
    from ray_pipeline.models.clip_scorer import ClipScorer
    from ray_pipeline.video_io import read_frames

    cfg, store = runs["ie"]
    clips, _ = _generated(cfg, store)
    scorer = ClipScorer(tiny_clip, TINY_CLASSES, cfg.score.prompt_template, cfg.score.num_frames)
    picked = clips.slice(0, 3).to_pylist()
    direct = scorer.video_features([read_frames(r["video_uri"], num_segments=2) for r in picked]).numpy()
    cached = _features(store)
    for row, expected in zip(picked, direct):
        np.testing.assert_allclose(cached[row["clip_id"]], expected, atol=1e-5)


def test_rerun_extracts_nothing(runs, analysed):
    first, second = analysed
    assert "features new" in first and "(0 features new)" not in first
    assert "(0 features new)" in second
    _, store = runs["ie"]
    rows = store.manifest("analysis/features", "feature_id").read()
    assert rows.num_rows == 12 + 12 + 12  # one row per distinct video, however often analysed


def test_quality_report_and_tsne_render(runs, analysed):
    _, store = runs["ie"]
    root = Path(store.root)
    parser = _check_page(root, "analysis/quality.html")
    assert "tsne.png" in parser.images and "quality/failure_roc.png" in parser.images
    text = (root / "analysis" / "quality.html").read_text()
    assert "Table 8 layout" in text and "MMD² lin vs tiny" in text
    assert (root / "analysis" / "tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_lays_out_table8(runs, analysed):
    from ray_pipeline.cli import main

    _, store = runs["ie"]
    assert main(["report", store.root]) == 0
    text = (Path(store.root) / "report.md").read_text()
    assert "Table 8 layout" in text and "| IE | generated | 12 |" in text
    assert "![t-SNE" in text and "analysis/tsne.png" in text
    assert "failure AUROC" in text


def test_feature_extraction_without_ray_records_unreadable_videos(runs, tmp_path, tiny_clip):
    cfg, store = runs["ie"]
    clips, _ = _generated(cfg, store)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    good = clips.column("video_uri")[0].as_py()
    videos = pa.table({"key": ["good", "broken"], "video_uri": [good, str(broken)]})
    stage = FeatureExtraction(cfg.score, tiny_clip, TINY_CLASSES, cfg.score.pool, videos)
    planned = stage.plan(stage_context(cfg, store, "score"), {})
    stage.setup("cpu")
    out = {r["key"]: r for r in stage.process(planned).to_pylist()}
    assert out["broken"]["feature"] is None and out["broken"]["error"]
    assert len(out["good"]["feature"]) > 0 and out["good"]["error"] is None
    assert FEATURES_MANIFEST == "analysis/features/manifest"


def test_analyze_errors_name_what_is_missing(runs, tmp_path):
    cfg, _ = runs["ie"]
    empty = RunStore(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no scored clips"):
        analyze(cfg, empty, [], quiet_console())
    with pytest.raises(ConfigError, match="no config.yaml"):
        analyze(cfg, runs["ie"][1], [str(tmp_path / "nowhere")], quiet_console())
    no_real = cfg.model_copy(deep=True)
    no_real.evaluate.datasets = []
    with pytest.raises(ConfigError, match="evaluate.datasets"):
        analyze(no_real, runs["ie"][1], [], quiet_console())


def test_stage_result_of_analyze_resolves_from_metrics(runs, analysed):
    from ray_pipeline.stages.analyze import AnalyzeStage

    cfg, store = runs["ie"]
    p = pipeline(cfg, store)
    stage = AnalyzeStage(cfg.analysis, cfg.score, cfg.score.model, TINY_CLASSES, "IE", [], [])
    result = stage.resolve(p.context(stage), {"generate": StageResult(pa.table({}))})
    assert result.rows.column("name").to_pylist() == ["tiny", "IE", "Basic"]
    assert result.stats["IE.davies_bouldin"] == pytest.approx(result.rows.column("davies_bouldin")[1].as_py())


def test_cli_analyze_before_the_data_stages_says_what_to_run(tmp_path, capfd, monkeypatch):
    import yaml

    from ray_pipeline.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr("ray_pipeline.cluster.start_ray", refuse)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    dataset = write_tiny_dataset(tmp_path / "real", ["wave", "run"], per_class=1)
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "cache_dir": str(tmp_path / "cache"),
                                      "evaluate": {"datasets": [dataset]}}))
    assert main(["analyze", str(config), "--run-dir", str(tmp_path / "run")]) == 1
    err = capfd.readouterr().err
    assert "no scored clips for its config yet" in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # argparse: --compare needs a run directory
        main(["analyze", str(config), "--run-dir", str(tmp_path / "run"), "--compare"])
