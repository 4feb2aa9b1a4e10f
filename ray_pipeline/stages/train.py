"""Train stage: a video-text model (TC-CLIP or ViFi-CLIP) on generated clips with Ray Train.

DDP over ``train.num_workers`` Ray Train workers (gloo on CPU, NCCL on GPU; mixed precision on
GPU). Generated clips carry their CLIP uncertainty (entropy normalised over the generated dataset)
into the loss: the paper's UL smooths each clip's label by eps_i = w * u_i; LS, UW and UF are the
ablation's alternatives. Recipes: ``synthetic`` (the paper's zero-shot: generated clips only),
``source_synthetic`` (plus the source dataset) and ``synthetic_then_real`` (pre-train on generated,
fine-tune on real: few-shot, base-to-novel, long-tail).

Rank 0 reports a checkpoint every epoch (model as safetensors, optimizer/scheduler/epoch as a
weights-only torch file). A dead worker is replaced and training resumes from the last checkpoint
(``FailureConfig``); rerunning ``ray-pipeline train`` on the same run directory continues where it
stopped. Checkpoints live in the run store (``train/ray/<phase>-<id>/checkpoint_*``), local or a
bucket alike: workers find and fetch them through :class:`RunStore`. The result is
``train/result.json`` pointing at the final model (a path, or a URI for a remote run directory).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ray_pipeline.config import ConfigError, DatasetConfig, ExperimentConfig
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore, join_uri, local_copy

RESULT = "train/result.json"
STATE_FILE = "train_state.pt"
INFO_FILE = "train_state.json"
MODEL_DIR = "model"


# --------------------------------------------------------------------------------------------
# Data: which clips, labels and uncertainties
# --------------------------------------------------------------------------------------------


def synthetic_records(cfg: ExperimentConfig, store: RunStore) -> dict[str, Any]:
    """Generated clips with their normalised uncertainty (and UF's filtering applied)."""
    from ray_pipeline.runstore import data_store
    from ray_pipeline.stages.score import class_names_for
    from ray_pipeline.training.losses import UncertaintyNormalizer, uf_keep_mask, uf_threshold

    store = data_store(cfg.data_dir, store)

    from ray_pipeline.stages.generate import current_clips

    clips = current_clips(cfg, store)
    scores = store.manifest("score", "score_id").read()
    class_names = class_names_for(cfg)
    entropy_by_clip = {}
    if scores is not None:
        entropy_by_clip = dict(zip(scores.column("clip_id").to_pylist(), scores.column("entropy").to_pylist()))
    clip_ids = clips.column("clip_id").to_pylist()
    needs_u = cfg.train.loss in ("uw", "uf", "ul")
    missing = [c for c in clip_ids if c not in entropy_by_clip]
    if needs_u and missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(clip_ids)} clips have no CLIP score; the {cfg.train.loss!r} loss "
            "needs uncertainties: run `ray-pipeline score` first")
    entropy = np.array([entropy_by_clip.get(c, 0.0) for c in clip_ids], dtype=np.float64)
    normalizer = UncertaintyNormalizer.fit(entropy, cfg.train.uncertainty_norm, len(class_names))
    u = np.asarray(normalizer(entropy), dtype=np.float64) if needs_u else np.zeros(len(clip_ids))
    keep = np.ones(len(clip_ids), bool)
    threshold = None
    if cfg.train.loss == "uf":
        threshold = uf_threshold(u, cfg.train.uf_drop_fraction)
        keep = uf_keep_mask(u, cfg.train.uf_drop_fraction)
    videos = [v for v, k in zip(clips.column("video_uri").to_pylist(), keep) if k]
    return {
        "class_names": class_names,
        "videos": videos,
        "labels": [int(x) for x, k in zip(clips.column("class_index").to_pylist(), keep) if k],
        "uncertainty": [float(x) for x, k in zip(u, keep) if k],
        "clip_ids": sorted(c for c, k in zip(clip_ids, keep) if k),
        "normalizer": normalizer.to_dict(),
        "uf_threshold": threshold,
        "dropped": int((~keep).sum()),
    }


def real_records(ds: DatasetConfig, cfg: ExperimentConfig) -> dict[str, Any]:
    """The first split of ``ds`` as training data (real clips: uncertainty 0)."""
    from ray_pipeline.evaluation.datasets import load_splits

    split = load_splits(ds, cfg)[0]
    return {"class_names": split.class_names, "videos": split.videos, "labels": split.labels,
            "uncertainty": [0.0] * len(split), "clip_ids": sorted(split.videos)}


def merge_records(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Union of two labelled sets over the union of their class names (matched by name)."""
    names = list(a["class_names"]) + [n for n in b["class_names"] if n not in a["class_names"]]
    index = {n: i for i, n in enumerate(names)}
    relabel = lambda rec: [index[rec["class_names"][i]] for i in rec["labels"]]  # noqa: E731
    return {"class_names": names, "videos": a["videos"] + b["videos"],
            "labels": relabel(a) + relabel(b), "uncertainty": a["uncertainty"] + b["uncertainty"],
            "clip_ids": sorted(a["clip_ids"] + b["clip_ids"])}


# --------------------------------------------------------------------------------------------
# The per-worker loop (runs inside Ray Train workers)
# --------------------------------------------------------------------------------------------


def _lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up from 0, then cosine decay to ``min_ratio`` of the base LR (per step)."""

    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return fn


def _load_checkpoint_dir(directory: str, model, optimizer, scheduler, scaler) -> int:
    """Restore from a checkpoint directory; returns the next epoch to run."""
    import torch

    model.load(os.path.join(directory, MODEL_DIR))
    state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]) + 1


def train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, class_names: list[str], device,
                amp_dtype) -> "torch.Tensor":  # noqa: F821
    """One pass over ``loader``; returns [sum of per-clip losses, clips] on ``device``.

    Shared by the Ray Train loop and the plain-loop benchmark, so both time the same work."""
    import torch

    model.train()
    loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
    for pixels, labels, uncertainty in loader:
        pixels, labels = pixels.to(device), labels.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(pixels, class_names)
        loss = loss_fn(logits.float(), labels, uncertainty.to(device))
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # fp16: scale the loss so small gradients survive
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        loss_sum += torch.tensor([loss.item() * len(labels), len(labels)], dtype=torch.float64, device=device)
    return loss_sum


def train_loop_per_worker(loop: dict[str, Any]) -> None:
    """One Ray Train worker: build the model, train ``loop['epochs']`` epochs, report each."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler

    from ray_pipeline.models.base import build_video_text_model, load_video_text_model
    from ray_pipeline.training.data import ClipDataset, Preprocess
    from ray_pipeline.training.losses import build_loss

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(loop["torch_threads"])
    torch.manual_seed(loop["seed"])
    if loop.get("init_model"):
        with local_copy(loop["init_model"]) as init_dir:
            model = load_video_text_model(init_dir)
    else:
        model = build_video_text_model(loop["model"], loop["backbone"], **loop["model_options"])
    model = ray.train.torch.prepare_model(model)
    raw = model.module if hasattr(model, "module") else model
    device = ray.train.torch.get_device()

    data = loop["data"]
    pre = Preprocess.from_pretrained(loop["preprocess_from"])
    dataset = ClipDataset(data["videos"], data["labels"], data["uncertainty"], pre, loop["num_frames"],
                          train=loop["augment"], seed=loop["seed"])
    per_worker = loop["batch_size"] // world
    if len(dataset) < loop["batch_size"]:
        raise ValueError(f"{len(dataset)} training clips, fewer than one global batch of {loop['batch_size']}")
    # Same shuffled order for any worker count: each rank takes every world-th index of it.
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=loop["seed"],
                                 drop_last=True)
    loader = DataLoader(dataset, batch_size=per_worker, sampler=sampler, drop_last=True, num_workers=0)

    optimizer = torch.optim.AdamW(raw.param_groups(loop["lr"]), betas=(0.9, 0.98), eps=1e-8,
                                  weight_decay=loop["weight_decay"])
    steps = len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(
        loop["epochs"] * steps, int(loop["warmup_epochs"] * steps), loop["lr_min_ratio"]))
    amp = loop["mixed_precision"] if device.type == "cuda" else "no"
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    start_epoch = 0
    # After a worker failure (a replacement worker group) or a rerun of the CLI: the newest
    # checkpoint in this phase's folder of the run store, fetched first when the store is remote.
    latest, _ = _latest_checkpoint(RunStore(loop["run_store"]), loop["checkpoint_folder"])
    checkpoint = ray.train.get_checkpoint()
    if latest is not None:
        with local_copy(latest) as directory:
            start_epoch = _load_checkpoint_dir(directory, raw, optimizer, scheduler, scaler)
    elif checkpoint is not None:
        with checkpoint.as_directory() as d:
            start_epoch = _load_checkpoint_dir(d, raw, optimizer, scheduler, scaler)

    loss_fn = build_loss(loop["loss"], **loop["loss_options"])
    class_names = data["class_names"]
    tracking = None
    if rank == 0 and loop.get("mlflow_run_id"):
        import mlflow

        mlflow.set_tracking_uri(loop["mlflow_uri"])
        tracking = mlflow.start_run(run_id=loop["mlflow_run_id"])

    for epoch in range(start_epoch, loop["epochs"]):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        epoch_start = time.perf_counter()
        loss_sum = train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, class_names, device, amp_dtype)
        if world > 1:
            dist.all_reduce(loss_sum)
        metrics = {"epoch": epoch, "loss": float(loss_sum[0] / loss_sum[1]), "start_epoch": start_epoch,
                   "lr": scheduler.get_last_lr()[0], "epoch_seconds": time.perf_counter() - epoch_start,
                   "steps_per_epoch": steps}
        if rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                raw.save(os.path.join(tmp, MODEL_DIR))
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch}
                if scaler is not None:
                    state["scaler"] = scaler.state_dict()
                torch.save(state, os.path.join(tmp, STATE_FILE))
                Path(tmp, INFO_FILE).write_text(json.dumps(metrics))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
            if tracking is not None:
                import mlflow

                mlflow.log_metrics({f"train.{loop['phase']}.{k}": v for k, v in metrics.items()
                                    if k not in ("epoch", "steps_per_epoch")}, step=epoch)
        else:
            ray.train.report(metrics)
    if tracking is not None:
        import mlflow

        mlflow.end_run()


# --------------------------------------------------------------------------------------------
# Driver side
# --------------------------------------------------------------------------------------------


def _latest_checkpoint(store: RunStore, folder: str) -> tuple[str | None, dict | None]:
    """The checkpoint of ``folder`` with the highest finished epoch, as ``store.uri`` (a local
    path for a local store), and its info; (None, None) if there is none."""
    best, best_info = None, None
    for directory in store.list_dirs(folder):
        info_rel = f"{directory}/{INFO_FILE}"
        if not directory.rpartition("/")[2].startswith("checkpoint_") or not store.exists(info_rel):
            continue
        try:
            info = json.loads(store.read_text(info_rel))
            epoch = info["epoch"]
        except (ValueError, KeyError) as exc:
            raise ValueError(f"corrupt checkpoint info {store.uri(info_rel)}: {exc}") from exc
        if best_info is None or epoch > best_info["epoch"]:
            best, best_info = store.uri(directory), info
    return best, best_info


def run_phase(cfg: ExperimentConfig, store: RunStore, phase: str, data: dict[str, Any], *, epochs: int,
              init_model: str | None, loss: str, loss_options: dict[str, Any], log: Callable[[str], None],
              mlflow_run: tuple[str, str] | None = None, callbacks: list | None = None) -> dict[str, Any]:
    """Train one phase with a TorchTrainer; returns the final checkpoint's path and metrics."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from ray_pipeline.cluster import init_ray
    from ray_pipeline.stages.score import resolve_model_path

    t = cfg.train
    phase_id = row_id("train", phase=phase, data=data["clip_ids"], classes=data["class_names"],
                      u=data["uncertainty"], init=init_model, epochs=epochs, loss=loss,
                      opts=loss_options, train=t.model_dump(mode="json", exclude={"num_workers", "cpus_per_worker",
                                                                                  "max_failures", "use_gpu"}))
    name = f"{phase}-{phase_id}"
    folder = f"train/ray/{name}"
    resume_from, info = _latest_checkpoint(store, folder)
    if info is not None and info["epoch"] >= epochs - 1:
        # Decided from the run store alone: a finished phase needs no cluster.
        log(f"[train] {phase}: already finished ({epochs} epochs) in {store.uri(folder)}")
        return {"checkpoint": resume_from, "metrics": info, "name": name}
    resources = init_ray(cfg.ray)
    backbone = resolve_model_path(t.backbone, str(cfg.resolved_cache_dir()))
    if t.use_gpu and resources.get("GPU", 0) < t.num_workers:
        raise ConfigError(f"train.use_gpu with {t.num_workers} workers, but the cluster has "
                          f"{resources.get('GPU', 0):g} GPUs")
    cpus = t.cpus_per_worker or max(0.5, (resources.get("CPU", 1) - cfg.ray.reserve_cpus) / t.num_workers)
    if resume_from:
        log(f"[train] {phase}: resuming after epoch {info['epoch']} from {resume_from}")
    loop = {
        "phase": phase, "model": t.model, "backbone": backbone, "model_options": t.model_options,
        "init_model": init_model, "preprocess_from": backbone, "data": data, "epochs": epochs,
        "lr": t.lr, "lr_min_ratio": t.lr_min_ratio, "warmup_epochs": t.warmup_epochs,
        "weight_decay": t.weight_decay, "batch_size": t.batch_size, "num_frames": t.num_frames,
        "augment": t.augment, "mixed_precision": t.mixed_precision, "seed": t.seed,
        "loss": loss, "loss_options": loss_options,
        "run_store": store.root, "checkpoint_folder": folder,
        "torch_threads": max(1, int(cpus)),
        "mlflow_uri": mlflow_run[0] if mlflow_run else None,
        "mlflow_run_id": mlflow_run[1] if mlflow_run else None,
    }
    log(f"[train] {phase}: {len(data['videos'])} clips, {len(data['class_names'])} classes, "
        f"{epochs} epochs, {t.num_workers} worker(s) x {cpus:g} CPU, loss {loss}")
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=loop,
        scaling_config=ray.train.ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu,
                                               resources_per_worker={"CPU": cpus}),
        run_config=ray.train.RunConfig(
            # The store's own filesystem: a URI's options (endpoint_override, scheme) are in it.
            name=name, storage_path=store.fs_path("train/ray"), storage_filesystem=store.fs,
            failure_config=ray.train.FailureConfig(max_failures=t.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            # e.g. Tune's TuneReportCallback when a sweep trial drives this trainer
            callbacks=list(callbacks or [])),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    checkpoint, info = _latest_checkpoint(store, folder)
    if checkpoint is None:
        raise RuntimeError(f"[train] {phase}: training finished but {store.uri(folder)} holds no checkpoint_*/"
                           f"{INFO_FILE}")
    return {"checkpoint": checkpoint, "metrics": info, "name": name}


def run_train(cfg: ExperimentConfig, store: RunStore, *, log: Callable[[str], None] = print,
              callbacks: list | None = None) -> dict:
    """Train by ``cfg.train.recipe``; writes ``train/result.json`` with the final model's path.

    ``callbacks``: Ray Train ``UserCallback``s for every phase's trainer (a sweep passes Tune's
    ``TuneReportCallback`` so per-epoch metrics reach Tune).
    """
    t = cfg.train
    loss_options: dict[str, Any] = {"weight": t.w, "epsilon": t.epsilon}
    data = synthetic_records(cfg, store)
    if t.loss == "uf":
        loss_options["uf_threshold"] = data["uf_threshold"]
        log(f"[train] UF dropped the {data['dropped']} most uncertain clips")
    if t.recipe == "source_synthetic":
        data = merge_records(data, real_records(t.source, cfg))
    mlflow_run = _active_mlflow_run()
    phases = [run_phase(cfg, store, "synthetic", data, epochs=t.epochs, init_model=None, loss=t.loss,
                        loss_options=loss_options, log=log, mlflow_run=mlflow_run, callbacks=callbacks)]
    if t.recipe == "synthetic_then_real":
        real = real_records(t.real, cfg)
        init = join_uri(phases[0]["checkpoint"], MODEL_DIR)
        # Real clips are trusted: plain LS as in TC-CLIP's own recipe.
        phases.append(run_phase(cfg, store, "real", real, epochs=t.finetune_epochs, init_model=init,
                                loss="ls", loss_options={"epsilon": t.epsilon}, log=log, mlflow_run=mlflow_run,
                                callbacks=callbacks))
    final = phases[-1]
    result = {"model_dir": join_uri(final["checkpoint"], MODEL_DIR), "recipe": t.recipe,
              "model": t.model, "loss": t.loss, "w": t.w, "phases": phases,
              "normalizer": data.get("normalizer"), "num_clips": len(data["videos"]),
              "num_classes": len(data["class_names"])}
    store.write_text(RESULT, json.dumps(result, indent=2, default=str))
    m = final["metrics"]
    return {"final_loss": m.get("loss"), "epochs": m.get("epoch", -1) + 1, "num_clips": len(data["videos"]),
            "resumed_from_epoch": m.get("start_epoch", 0)}


def _active_mlflow_run() -> tuple[str, str] | None:
    try:
        import mlflow
    except ImportError:
        return None
    run = mlflow.active_run()
    return (mlflow.get_tracking_uri(), run.info.run_id) if run else None
