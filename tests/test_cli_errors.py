"""Errors a user can cause name the thing and the fix, without a traceback, before any Ray work."""

from __future__ import annotations

import socket

import pytest
import yaml

from ray_pipeline.cli import main


def _config(tmp_path, **data) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "cache_dir": str(tmp_path / "cache"), **data}))
    return str(path)


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    """Every error here must come before any Ray work: starting Ray fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr("ray_pipeline.cluster.start_ray", refuse)


def test_validate_rejects_an_unknown_class_list(tmp_path, capfd):
    config = _config(tmp_path, prompts={"classes": "hmdb52"})
    assert main(["validate", config]) == 2
    err = capfd.readouterr().err
    assert "prompts.classes" in err and "unknown class list 'hmdb52'" in err and "hmdb51" in err
    assert "Traceback" not in err


def test_a_run_dir_that_is_a_file_is_a_config_error(tmp_path, capfd):
    run_dir = tmp_path / "not-a-dir"
    run_dir.write_text("x")
    assert main(["prompts", _config(tmp_path), "--run-dir", str(run_dir)]) == 2
    err = capfd.readouterr().err
    assert f"--run-dir {run_dir}: is a file, not a directory" in err and "Traceback" not in err


def test_evaluate_with_nothing_to_evaluate_says_so(tmp_path, capfd, monkeypatch):
    from tests.helpers import write_tiny_dataset

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    dataset = write_tiny_dataset(tmp_path / "data", ["wave", "run"], per_class=1)
    config = _config(tmp_path, evaluate={"datasets": [dataset], "baseline": False})
    assert main(["evaluate", config, "--run-dir", str(tmp_path / "run")]) == 2
    err = capfd.readouterr().err
    assert "nothing to evaluate" in err and "run `ray-pipeline train` first" in err
    assert "evaluate.baseline is false" in err and "Traceback" not in err


def test_an_unreachable_llm_server_is_named_in_the_error(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    config = _config(tmp_path, prompts={"classes": ["wave"], "writer": "openai",
                                        "openai": {"base_url": url, "max_retries": 0, "timeout_s": 2}},
                     generate={"clips_per_class": 1})
    assert main(["prompts", config, "--run-dir", str(tmp_path / "run")]) == 1
    err = capfd.readouterr().err
    assert f"cannot connect to {url}" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["score", "train"])
def test_a_stage_before_its_upstream_names_the_command_to_run(tmp_path, capfd, monkeypatch, command):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = _config(tmp_path, prompts={"classes": ["wave", "run"]})
    assert main([command, config, "--run-dir", str(tmp_path / "run")]) == 1
    err = capfd.readouterr().err
    assert "no generate rows for this config yet: run `ray-pipeline generate` first" in err
    assert "Traceback" not in err
