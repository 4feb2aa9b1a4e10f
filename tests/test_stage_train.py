"""Ray Train: DDP equivalence, worker failure recovery, resumable CLI runs, checkpoint loading."""

import json
import threading
import time

import psutil
import pytest

from ray_pipeline.config import ExperimentConfig
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.train import RESULT
from ray_pipeline.training.records import TrainingRecords, merge_records
from tests.helpers import TINY_CLASSES, quiet_console, run_stage, write_synthetic_clips

pytestmark = pytest.mark.integration


def _config(clip: str, **train) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "ray": {"num_cpus": 2}, "prompts": {"classes": TINY_CLASSES},
        "generate": {"backend": "cogvideox", "clips_per_class": 6},
        "train": {"model": "tcclip", "backbone": clip, "epochs": 2, "batch_size": 8, "num_frames": 4,
                  "lr": 1e-3, "warmup_epochs": 0, **train},
    })


def _epoch_losses(store: RunStore, name: str) -> dict[int, float]:
    base = store.local_path(f"train/ray/{name}")
    infos = [json.loads(p.read_text()) for p in base.glob("checkpoint_*/train_state.json")]
    return {i["epoch"]: i["loss"] for i in infos}


def test_two_workers_match_one_worker_on_the_same_global_batch(tmp_path, ray_cluster, tiny_clip):
    losses = {}
    for workers in (1, 2):
        store = RunStore(tmp_path / f"w{workers}")
        cfg = _config(tiny_clip, num_workers=workers)
        write_synthetic_clips(store, cfg)
        stats = run_stage(cfg, store, "train")
        assert stats["epochs"] == 2
        result = json.loads(store.read_text(RESULT))
        losses[workers] = _epoch_losses(store, result["phases"][0]["name"])
    assert losses[1].keys() == losses[2].keys() == {0, 1}
    for epoch in (0, 1):
        assert losses[2][epoch] == pytest.approx(losses[1][epoch], rel=1e-4, abs=1e-5)


def _kill_a_worker_after_first_checkpoint(run_dir, killed: list, raylet_pid: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if list(run_dir.glob("train/ray/*/checkpoint_*/train_state.json")):
            for proc in psutil.process_iter(["cmdline"]):
                cmd = " ".join(proc.info["cmdline"] or [])
                try:  # this cluster's worker: other Ray clusters may run on the machine
                    ours = proc.environ().get("RAY_RAYLET_PID") == str(raylet_pid)
                except (psutil.AccessDenied, psutil.NoSuchProcess):
                    continue
                if cmd.startswith("ray::RayTrainWorker") and ours:
                    proc.kill()
                    killed.append(proc.pid)
                    return
        time.sleep(0.05)


def test_killed_worker_is_replaced_and_training_resumes(tmp_path, ray_cluster, tiny_clip):
    store = RunStore(tmp_path / "run")
    cfg = _config(tiny_clip, model="vificlip", epochs=8, max_failures=2, num_frames=8)
    cfg.generate.clips_per_class = 16  # slow enough that the kill lands mid-run
    write_synthetic_clips(store, cfg)
    killed: list[int] = []
    import ray

    raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(tmp_path / "run", killed, raylet))
    killer.start()
    stats = run_stage(cfg, store, "train")
    killer.join()
    assert killed, "no training worker was found to kill"
    assert stats["epochs"] == 8
    # The replacement worker group started from the last checkpoint, not from scratch.
    assert stats["resumed_from_epoch"] > 0


def test_rerun_continues_and_final_model_loads_without_pickle(tmp_path, ray_cluster, tiny_clip):
    from ray_pipeline.models.base import load_video_text_model

    store = RunStore(tmp_path / "run")
    cfg = _config(tiny_clip, model="vificlip", epochs=2)
    write_synthetic_clips(store, cfg)
    run_stage(cfg, store, "train")
    console = quiet_console()
    again = run_stage(cfg, store, "train", console)
    assert "already trained" in console.stream.getvalue()
    assert again["epochs"] == 2
    result = json.loads(store.read_text(RESULT))
    model = load_video_text_model(result["model_dir"])
    assert model.name == "vificlip"
    # The optimizer state is a weights-only torch file: loadable with weights_only=True.
    import torch

    state = torch.load(f"{result['phases'][0]['checkpoint']}/train_state.pt", weights_only=True)
    assert state["epoch"] == 1


def test_merge_records_unions_classes_by_name():
    a = TrainingRecords(["wave", "run"], ["a0", "a1"], [1, 0], [0.5, 0.1], ["a0", "a1"], ["generated"] * 2)
    b = TrainingRecords(["jump", "wave"], ["b0", "b1"], [0, 1], [0.0, 0.0], ["b0", "b1"], ["real"] * 2)
    m = merge_records(a, b)
    assert m.class_names == ["wave", "run", "jump"]
    assert [m.class_names[i] for i in m.labels] == ["run", "wave", "jump", "wave"]
    assert m.uncertainty == [0.5, 0.1, 0.0, 0.0]
    assert m.source == ["generated", "generated", "real", "real"]


def test_pretrain_on_synthetic_then_finetune_on_real(tmp_path, ray_cluster, tiny_clip):
    from tests.helpers import write_tiny_dataset

    real = write_tiny_dataset(tmp_path / "real", ["wave", "run", "clap", "walk"], per_class=4)
    store = RunStore(tmp_path / "run")
    cfg = _config(tiny_clip, model="vificlip", epochs=1, finetune={"epochs": 1}, recipe="synthetic_then_real",
                  real=real)
    write_synthetic_clips(store, cfg)
    stats = run_stage(cfg, store, "train")
    result = json.loads(store.read_text(RESULT))
    assert [p["name"].split("-")[0] for p in result["phases"]] == ["synthetic", "real"]
    assert result["model_dir"].startswith(result["phases"][1]["checkpoint"])
    assert stats["epochs"] == 1


def _max_weight_difference(a: str, b: str) -> float:
    from safetensors.torch import load_file

    from ray_pipeline.models.base import WEIGHTS_FILE

    wa, wb = load_file(f"{a}/{WEIGHTS_FILE}"), load_file(f"{b}/{WEIGHTS_FILE}")
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def test_source_then_generated_starts_from_the_shared_source_model(tmp_path, ray_cluster, tiny_clip):
    """The paper's recipe: TC-CLIP on the source dataset (the baseline row), then the same model
    trained further on generated clips (+Ours). The source phase lives in the shared data store and
    a run that differs only downstream of it (another loss) reuses it instead of training again."""
    from tests.helpers import write_tiny_dataset

    source = write_tiny_dataset(tmp_path / "source", ["wave", "run", "clap", "walk"], per_class=4)
    data_dir = tmp_path / "data"
    store = RunStore(tmp_path / "run")
    # lr ~ 0 in the generated phase: its model must equal the source model it started from.
    cfg = _config(tiny_clip, model="vificlip", epochs=1, recipe="source_then_generated", source=source,
                  source_phase={"epochs": 2, "lr": 1e-3}, lr=1e-12)
    cfg.data_dir = str(data_dir)
    write_synthetic_clips(RunStore(data_dir), cfg)
    stats = run_stage(cfg, store, "train")
    result = json.loads(store.read_text(RESULT))
    assert [m["role"] for m in result["models"]] == ["baseline", "generated"]
    baseline, generated = result["models"]
    assert baseline["model_dir"].startswith(str(data_dir / "train" / "ray" / "source-"))  # shared
    assert generated["model_dir"].startswith(str(tmp_path / "run" / "train" / "ray" / "generated-"))
    assert baseline["num_classes"] == 4 and generated["num_clips"] == len(TINY_CLASSES) * 6
    assert stats["phases"] == 2
    assert _max_weight_difference(baseline["model_dir"], generated["model_dir"]) < 1e-6

    # Another trial (loss LS) in another run directory: the source phase is found, not retrained.
    console = quiet_console()
    other = cfg.model_copy(deep=True)
    other.train.loss = "ls"
    run_stage(other, RunStore(tmp_path / "run2"), "train", console)
    text = console.stream.getvalue()
    assert "source: already trained" in text and "generated: already trained" not in text
    again = json.loads(RunStore(tmp_path / "run2").read_text(RESULT))
    assert again["models"][0]["model_dir"] == baseline["model_dir"]


def test_source_recipe_trains_the_baseline_only(tmp_path, ray_cluster, tiny_clip):
    from tests.helpers import write_tiny_dataset

    source = write_tiny_dataset(tmp_path / "source", ["wave", "run"], per_class=8)
    store = RunStore(tmp_path / "run")
    cfg = _config(tiny_clip, model="vificlip", epochs=1, recipe="source", source=source)
    write_synthetic_clips(store, cfg)
    run_stage(cfg, store, "train")
    [model] = json.loads(store.read_text(RESULT))["models"]
    assert model["role"] == "baseline" and model["label"] == "ViFi-CLIP (source)"


def test_a_shared_phase_another_run_is_training_is_waited_for_not_trained_twice(tmp_path, ray_cluster, tiny_clip):
    """Two sweeps on one data store: the second to reach a shared phase waits on its lock, then
    finds the first's finished checkpoints instead of training into the same Ray Train folder."""
    import shutil

    from tests.helpers import console_to, write_tiny_dataset

    source = write_tiny_dataset(tmp_path / "source", ["wave", "run"], per_class=8)
    cfg = _config(tiny_clip, model="vificlip", epochs=1, recipe="source", source=source)
    cfg.data_dir = str(tmp_path / "trained")
    run_stage(cfg, RunStore(tmp_path / "run1"), "train")
    [phase] = json.loads(RunStore(tmp_path / "run1").read_text(RESULT))["phases"]
    folder = f"train/ray/{phase['name']}"

    shared = RunStore(tmp_path / "data")
    holding, copied = threading.Event(), []

    def other_run() -> None:  # holds the phase's lock while it "trains" (copies a finished phase in)
        with shared.lock(folder):
            holding.set()
            time.sleep(1.0)
            shutil.copytree(tmp_path / "trained" / folder, shared.local_path(folder))
            copied.append(time.monotonic())

    thread = threading.Thread(target=other_run)
    thread.start()
    assert holding.wait(10)
    cfg.data_dir = shared.root
    lines: list[str] = []
    run_stage(cfg, RunStore(tmp_path / "run2"), "train", console_to(lines.append))
    thread.join()
    text = "\n".join(lines)
    assert "waiting for another run that is training it" in text
    assert "trained by another run meanwhile" in text and "epoch 1/1" not in text
    [model] = json.loads(RunStore(tmp_path / "run2").read_text(RESULT))["models"]
    assert model["model_dir"].startswith(str(shared.local_path(folder)))
