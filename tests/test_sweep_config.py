"""Sweep files: axes, expansion, validation errors (file + field), work sharing, resource plans."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ray_pipeline.config import ConfigError
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.resources import plan_resources
from ray_pipeline.sweep.space import attach, load_sweep
from tests.helpers import shared_path

REPO = Path(__file__).resolve().parents[1]
SPLITS = shared_path("data", "vifi-clip-splits")


def _write(tmp_path: Path, data: dict | str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_grid_axes_expand_to_their_product_in_file_order(tmp_path):
    path = _write(tmp_path, {"prompts": {"strategy": {"grid": ["basic", "env", "cha", "ie"]}},
                             "train": {"seed": {"grid": [0, 1]}, "epochs": 1}})
    sweep = load_sweep(path)
    assert [a.path for a in sweep.axes] == ["prompts.strategy", "train.seed"]
    assert len(sweep.trials) == 8 and len({t.key for t in sweep.trials}) == 8
    assert sweep.trials[1].variant == {"prompts.strategy": "basic", "train.seed": 1}
    assert all(t.config.train.epochs == 1 for t in sweep.trials)
    assert [t.config.prompts.strategy for t in sweep.trials[::2]] == ["basic", "env", "cha", "ie"]
    # Keys are content hashes: the same file gives the same keys (a restart finds its trials).
    assert [t.key for t in load_sweep(path).trials] == [t.key for t in sweep.trials]


def test_dotted_and_nested_axes_are_the_same_sweep(tmp_path):
    nested = load_sweep(_write(tmp_path, {"train": {"loss": {"grid": ["ls", "ul"]}, "epochs": 2}}, "a.yaml"))
    dotted = load_sweep(_write(tmp_path, {"train.loss": {"grid": ["ls", "ul"]}, "train": {"epochs": 2}}, "b.yaml"))
    assert [t.key for t in nested.trials] == [t.key for t in dotted.trials]
    assert nested.sweep_id == dotted.sweep_id


def test_set_overrides_can_add_axes(tmp_path):
    path = _write(tmp_path, {"train": {"loss": {"grid": ["ls", "ul"]}}})
    sweep = load_sweep(path, ["train.seed={grid: [0, 1, 2]}", "train.epochs=3"])
    assert len(sweep.trials) == 6
    assert {t.config.train.seed for t in sweep.trials} == {0, 1, 2}
    assert all(t.config.train.epochs == 3 for t in sweep.trials)


def test_distributions_are_drawn_reproducibly_with_tune_samplers(tmp_path):
    data = {"sweep": {"num_samples": 4, "sample_seed": 7},
            "train": {"w": {"uniform": [0.1, 0.5]}, "loss": {"choice": ["ls", "ul"]},
                      "epochs": {"randint": [1, 4]}, "lr": {"loguniform": [1e-6, 1e-4]}},
            "generate": {"clips_per_class": {"grid": [16, 32]}}}
    sweep = load_sweep(_write(tmp_path, data))
    assert len(sweep.trials) == 8
    for t in sweep.trials:
        assert 0.1 <= t.config.train.w <= 0.5 and 1 <= t.config.train.epochs < 4
        assert 1e-6 <= t.config.train.lr <= 1e-4 and t.config.train.loss in ("ls", "ul")
        assert type(t.variant["train.epochs"]) is int and type(t.variant["train.w"]) is float
    again = load_sweep(_write(tmp_path, data))
    assert [t.variant for t in again.trials] == [t.variant for t in sweep.trials]
    data["sweep"]["sample_seed"] = 8
    other = load_sweep(_write(tmp_path, data))
    assert [t.variant["train.w"] for t in other.trials] != [t.variant["train.w"] for t in sweep.trials]


@pytest.mark.parametrize("data, expected", [
    ({"train": {"w": {"uniform": [0.5]}}}, r"train\.w: \{uniform: \.\.\.\} needs \[low, high\]"),
    ({"train": {"w": {"grid": []}}}, r"train\.w: \{grid: \.\.\.\} needs a non-empty list"),
    ({"train": {"lr": {"loguniform": [0, 1]}}}, r"train\.lr: \{loguniform: \.\.\.\} needs low > 0"),
    ({"train": {"loss": {"grid": ["ul", "bogus"]}}},
     r"\(trial 2 of 2: train\.loss=bogus\): train\.loss: Input should be"),
    ({"train": {"w": {"grid": [0.3, 1.5]}}}, r"\(trial 2 of 2: train\.w=1\.5\): train\.w: Input should be less than"),
    ({"train": {"ww": {"grid": [0.1, 0.3]}}}, r": train\.ww: unknown key"),
    ({"ray": {"num_cpus": {"grid": [1, 2]}}}, r"ray\.num_cpus: cannot be swept"),
    ({"data_dir": {"grid": ["a", "b"]}}, r"data_dir: cannot be swept"),
    ({"sweep": {"max_concurent_trials": 2}}, r"sweep\.max_concurent_trials: unknown key"),
    ({"sweep": {"num_samples": 2}, "train": {"seed": {"grid": [0, 1]}}}, r"sweep\.num_samples: 2 repeats"),
    ({"train": {"seed": {"grid": [0, 0]}}}, r"identical configs"),
])
def test_sweep_errors_name_the_file_and_the_field(tmp_path, data, expected):
    path = _write(tmp_path, data, "bad-sweep.yaml")
    with pytest.raises(ConfigError, match=expected) as info:
        load_sweep(path)
    assert str(path) in str(info.value)


def test_cli_rejects_a_bad_sweep_before_any_ray_work(tmp_path, capsys):
    from ray_pipeline.cli import main

    path = _write(tmp_path, {"train": {"loss": {"grid": ["ul", "xx"]}}}, "bad.yaml")
    assert main(["sweep", str(path), "--run-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path} (trial 2 of 2: train.loss=xx): train.loss:" in err
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_trials_and_shared_data(tmp_path, capsys):
    from ray_pipeline.cli import main

    path = _write(tmp_path, {"prompts": {"strategy": {"grid": ["basic", "ie"]}},
                             "generate": {"clips_per_class": {"grid": [8, 16]}}})
    assert main(["sweep", str(path), "--run-dir", str(tmp_path / "out"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "4 trials from 2 axes" in err
    assert err.count("2 trial(s) share prompts, clips and scores; clips_per_class [8, 16] share one pool") == 2
    assert not (tmp_path / "out").exists()


def test_data_groups_follow_the_fields_that_decide_the_rows(tmp_path):
    # Strategy changes the prompts; clips_per_class only selects a prefix; train/evaluate axes
    # change nothing upstream.
    sweep = load_sweep(_write(tmp_path, {
        "prompts": {"strategy": {"grid": ["basic", "env", "cha", "ie"]}},
        "generate": {"clips_per_class": {"grid": [16, 32, 64, 128]}},
        "train": {"loss": {"grid": ["ls", "ul"]}, "w": {"grid": [0.1, 0.3]}}}))
    assert len(sweep.trials) == 64 and len(sweep.groups) == 4
    for g in sweep.groups:
        assert g.clips_per_class == [16, 32, 64, 128] and g.config.generate.clips_per_class == 128
        assert len(g.trial_keys) == 16 and list(g.differs_by) == ["prompts.strategy"]
    assert {g.config.prompts.strategy for g in sweep.groups} == {"basic", "env", "cha", "ie"}
    # A shared data_dir is set when the sweep gets its directory; keys do not depend on it.
    keys = [t.key for t in sweep.trials]
    attach(sweep, RunStore(tmp_path / "out"))
    assert {t.config.data_dir for t in sweep.trials} == {str((tmp_path / "out" / "data").resolve())}
    assert [t.key for t in sweep.trials] == keys and len(sweep.groups) == 4


def test_changing_a_data_field_splits_groups_but_train_fields_do_not(tmp_path):
    sweep = load_sweep(_write(tmp_path, {"generate": {"procedural": {"failure_rate": {"grid": [0.0, 0.2]}}},
                                         "train": {"seed": {"grid": [0, 1]}}}))
    assert len(sweep.groups) == 2
    assert all(g.differs_by == {"generate.procedural.failure_rate": g.config.generate.procedural.failure_rate}
               for g in sweep.groups)


def test_resource_plan_fits_drivers_and_workers(tmp_path):
    sweep = load_sweep(_write(tmp_path, {"train": {"loss": {"grid": ["ls", "uw", "uf", "ul"]}}}))
    plan = plan_resources(sweep, {"CPU": 2.0})
    # 2 cores: one trial at a time; its driver 0.5 CPU + one 1.5-CPU worker = the whole machine.
    assert plan.max_concurrent_trials == 1 and plan.driver_cpus == 0.5
    assert set(plan.train_cpus_per_worker.values()) == {1.5}
    assert set(plan.evaluate_cpus_per_actor.values()) == {1.0}  # share - driver - ray.reserve_cpus

    fixed = load_sweep(_write(tmp_path, {"train": {"loss": {"grid": ["ls", "uw", "uf", "ul"]},
                                                   "cpus_per_worker": 2, "num_workers": 2, "batch_size": 32}}))
    plan = plan_resources(fixed, {"CPU": 16.0})
    assert plan.max_concurrent_trials == 3  # floor(16 / (0.5 + 2 x 2))
    assert set(plan.train_cpus_per_worker.values()) == {2}

    gpu = load_sweep(_write(tmp_path, {"sweep": {"max_concurrent_trials": 8},
                                       "train": {"seed": {"grid": list(range(8))}, "use_gpu": True}}))
    plan = plan_resources(gpu, {"CPU": 32.0, "GPU": 4.0})
    assert plan.max_concurrent_trials == 4  # one GPU per trial
    with pytest.raises(ConfigError, match="needs 1 GPUs"):
        plan_resources(gpu, {"CPU": 32.0})

    crowded = load_sweep(_write(tmp_path, {"sweep": {"max_concurrent_trials": 4},
                                           "train": {"loss": {"grid": ["ls", "ul"]}, "cpus_per_worker": 1}}))
    with pytest.raises(ConfigError, match="exceeds its share"):
        plan_resources(crowded, {"CPU": 2.0})


# --------------------------------------------------------------------------------------------
# The shipped sweep files
# --------------------------------------------------------------------------------------------


def _paper_data_root(tmp_path: Path) -> Path:
    """A stand-in for /mnt/shared/datasets: the real split/label files, empty video folders."""
    root = tmp_path / "datasets"
    shutil.copytree(SPLITS, root / "vifi-clip-splits")
    k400 = root / "vifi-clip-splits" / "datasets_splits" / "k400_splits"
    (k400 / "train.txt").write_text((k400 / "train_tiny.txt").read_text())  # left out of shared/ (size)
    for name in ("hmdb51", "ucf101", "k400", "k600"):
        (root / name / "videos").mkdir(parents=True)
    # The official split folders the long-tail configs read (their files: tests/test_tasks_finetune.py).
    (root / "hmdb51" / "testTrainMulti_7030_splits").mkdir()
    (root / "ucf101" / "ucfTrainTestlist").mkdir()
    # UCF-Crime's published files the anomaly config reads (their contents: tests/test_task_anomaly.py).
    (root / "ucf_crime" / "videos").mkdir(parents=True)
    for name in ("Anomaly_Train.txt", "Temporal_Anomaly_Annotation.txt"):
        (root / "ucf_crime" / name).touch()
    return root


def _sweep_files(folder: str) -> list[Path]:
    return sorted((REPO / "experiments" / folder).glob("*.yaml"))


@pytest.mark.parametrize("path", _sweep_files("sweeps"), ids=lambda p: p.name)
def test_world_sweep_files_validate(path):
    sweep = load_sweep(path)
    assert sweep.trials and path.read_text().startswith("#")
    assert all(t.config.generate.backend == "procedural" for t in sweep.trials)
    seeds = [a for a in sweep.axes if a.path.endswith("seed")]
    assert seeds and len(seeds[0].spec) >= 2, "a world-scale grid needs >= 2 seeds"


@pytest.mark.skipif(not SPLITS.is_dir(), reason="../shared/data/vifi-clip-splits not present")
@pytest.mark.parametrize("path", _sweep_files("paper"), ids=lambda p: p.name)
def test_paper_sweep_files_validate(tmp_path, path):
    root = _paper_data_root(tmp_path)
    text = path.read_text().replace("/mnt/shared/datasets", str(root))
    sweep = load_sweep(_write(tmp_path, text, path.name))
    assert sweep.trials and text.startswith("#")
    for t in sweep.trials:
        c = t.config
        assert c.generate.backend == "cogvideox" and c.generate.cogvideox.model == "THUDM/CogVideoX-2b"
        assert c.generate.clips_per_class == 128 or "generate.clips_per_class" in t.variant
        if c.task == "anomaly":  # Table 5: X-CLIP-B/32 on UCF-Crime's own files
            assert c.train.model == "xclip" and c.train.backbone == "microsoft/xclip-base-patch32"
            assert all(str(root) in getattr(c.anomaly.dataset, f) for f in ("video_root", "train_list", "annotations"))
            continue
        assert c.train.model == "tcclip" and c.train.backbone == "openai/clip-vit-base-patch16"
        section = getattr(c, c.task, None)  # a fine-tuning task reads its own lists
        if section is None:
            assert c.evaluate.datasets and all(str(root) in d.root for d in c.evaluate.datasets)
        else:
            assert str(root) in section.data.lists and str(root) in section.data.videos
