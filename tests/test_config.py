"""Config validation: every error names the file and the field, before any Ray work."""

import subprocess
import sys
from pathlib import Path

import pytest

from ray_pipeline.config import ConfigError, ExperimentConfig, apply_overrides, load_config, parse_override

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_defaults_are_the_papers():
    cfg = ExperimentConfig()
    c = cfg.generate.cogvideox
    assert (c.model, c.dtype, c.num_inference_steps, c.num_frames, c.height, c.width, c.guidance_scale,
            c.scheduler) == ("THUDM/CogVideoX-2b", "float16", 50, 49, 480, 720, 6.0, "ddim")
    assert cfg.generate.clips_per_class == 128
    assert cfg.score.model == "openai/clip-vit-base-patch16"
    assert (cfg.prompts.n_environments, cfg.prompts.n_characters) == (4, 16)


def test_overrides_are_typed_yaml():
    assert parse_override("generate.clips_per_class=8") == (["generate", "clips_per_class"], 8)
    assert parse_override("prompts.classes=[a, b]") == (["prompts", "classes"], ["a", "b"])
    assert parse_override("mlflow.tracking_uri=") == (["mlflow", "tracking_uri"], "")
    data = apply_overrides({"generate": {"pool": {"actors": 1}}}, ["generate.pool.actors=2", "seed=3"])
    assert data == {"generate": {"pool": {"actors": 2}}, "seed": 3}
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("generate.clips_per_class")


def test_override_applies(tmp_path):
    cfg = load_config(write(tmp_path, "name: a\ngenerate: {clips_per_class: 4}\n"),
                      ["generate.clips_per_class=8"])
    assert cfg.generate.clips_per_class == 8


@pytest.mark.parametrize("yaml_text, overrides, field, words", [
    ("generate: {clips_per_class: 0}\n", [], "generate.clips_per_class", "greater than or equal to 1"),
    ("", ["generate.clips_per_class=0"], "generate.clips_per_class", "from --set"),
    ("generate: {clip_per_class: 4}\n", [], "generate.clip_per_class", "unknown key"),
    ("score: {num_frames: many}\n", [], "score.num_frames", "valid integer"),
    ("generate: {backend: sora}\n", [], "generate.backend", "cogvideox"),
    ("generate: {cogvideox: {num_frames: 48}}\n", [], "generate.cogvideox.num_frames", "4N+1"),
    ("score: {prompt_template: 'a video'}\n", [], "score.prompt_template", "{}"),
    ("generate: {pool: {num_gpus: -1}}\n", [], "generate.pool.num_gpus", "greater than or equal to 0"),
])
def test_errors_name_file_and_field(tmp_path, yaml_text, overrides, field, words):
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    msg = str(err.value)
    assert f"{path}: {field}:" in msg
    assert words in msg


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_fails_before_any_ray_work(tmp_path):
    path = write(tmp_path, "generate: {clips_per_class: -3}\n")
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ray_pipeline", "generate", str(path), "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 2
    assert f"{path}: generate.clips_per_class:" in proc.stderr
    assert not run_dir.exists()  # nothing written, nothing started


def test_every_shipped_experiment_validates():
    files = sorted((REPO / "experiments").rglob("*.yaml"))
    for path in files:
        text = path.read_text()
        if "grid:" in text:  # sweep files are validated by the sweep loader
            continue
        load_config(path)
