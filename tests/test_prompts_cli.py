"""`ray-pipeline prompts` end to end: template writer at paper scale, openai writer with MLflow."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pytest
import yaml

from ray_pipeline.config import load_config
from ray_pipeline.runstore import RunStore
from tests.helpers import prompt_rows
from tests.test_prompts_openai import KEY, KEY_ENV, FakeOpenAI, assert_key_absent

cli = pytest.importorskip("ray_pipeline.cli")
pytestmark = pytest.mark.integration


def test_cli_template_hmdb51_x128_ie(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"name": "ie", "cache_dir": str(tmp_path / "cache"),
                                      "prompts": {"classes": "hmdb51", "strategy": "ie"}}))
    start = time.perf_counter()
    assert cli.main(["prompts", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    elapsed = time.perf_counter() - start
    assert elapsed < 60, elapsed  # MLflow start-up dominates; the stage itself takes ~0.5 s
    cfg, store = load_config(config), RunStore(tmp_path / "run")
    rows = prompt_rows(cfg, store).to_pylist()
    assert len(rows) == 51 * 128
    per_class: dict[str, tuple[set, set]] = defaultdict(lambda: (set(), set()))
    for r in rows:
        per_class[r["class_name"]][0].add(r["environment"])
        per_class[r["class_name"]][1].add(r["character"])
    assert all(len(e) == 4 and len(c) == 16 for e, c in per_class.values())
    assert "[prompts] done" in (err := capfd.readouterr().err) and "6528 rows (6528 new" in err


def test_cli_openai_writer_keeps_the_key_out_of_mlflow(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(KEY_ENV, KEY)
    server = FakeOpenAI()
    try:
        config = tmp_path / "exp.yaml"
        config.write_text(yaml.safe_dump({
            "name": "llm", "cache_dir": str(tmp_path / "cache"), "generate": {"clips_per_class": 4},
            "prompts": {"classes": ["wave", "run"], "writer": "openai", "response_cache": "run",
                        "openai": {"base_url": server.url, "api_key_env": KEY_ENV, "timeout_s": 5,
                                   "retry_backoff_s": 0.01}},
        }))
        run_dir = tmp_path / "run"
        assert cli.main(["prompts", str(config), "--run-dir", str(run_dir)]) == 0
        assert len(server.chat_requests()) == 6
        assert cli.main(["prompts", str(config), "--run-dir", str(run_dir)]) == 0
        assert len(server.chat_requests()) == 6  # the rerun asked nothing
    finally:
        server.close()

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {p.info.run_id for p in parents}]
    assert len(parents) == 2 and len(nested) == 2  # one invocation each, its stage nested under it
    assert {r.data.tags["stage"] for r in nested} == {"prompts"}
    for run in runs:
        assert KEY not in json.dumps(run.data.params) and KEY not in json.dumps(run.data.tags)
    for run in parents:
        assert run.data.params["prompts.openai.api_key_env"] == KEY_ENV
    out = capfd.readouterr()
    assert_key_absent(tmp_path, texts=(out.out, out.err))
