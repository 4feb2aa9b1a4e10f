"""The Ray Train worker loop: build the model, train the phase's epochs, checkpoint every epoch.

DDP over the Ray Train workers (gloo on CPU, NCCL on GPU; mixed precision on GPU: bf16 where the
GPU has it, else fp16 with a GradScaler). Clips are decoded by DataLoader processes into pinned
memory on GPU (``train.loader``), and a step never waits on the GPU from the host: batches are
copied without blocking, input checks run on the loader's CPU tensors, and the epoch's loss is
summed on the device and read once per epoch. Rank 0 reports a checkpoint every epoch (model as
safetensors, optimizer/scheduler/epoch as a weights-only torch file, and ``train_state.json`` with
the epoch's metrics). A dead worker is replaced and training resumes from the newest checkpoint in
the phase's folder of the run store (fetched first when the store is remote), so does a rerun of
the command.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the run store needs pyarrow; train_epoch runs where it is absent (the GPU check)
    from ray_pipeline.runstore import RunStore

STATE_FILE = "train_state.pt"
INFO_FILE = "train_state.json"
MODEL_DIR = "model"
# The metric Ray Train ranks a phase's checkpoints by when it keeps chosen epochs (stages/train.py).
RANK_METRIC = "checkpoint_rank"


def lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up from 0, then cosine decay to ``min_ratio`` of the base LR (per step)."""

    def fn(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return fn


def latest_checkpoint(store: RunStore, folder: str) -> tuple[str | None, dict | None]:
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


def epoch_checkpoints(store: RunStore, folder: str) -> dict[int, str]:
    """Every checkpoint of ``folder`` by its finished (0-based) epoch, as ``store.uri``."""
    out = {}
    for directory in store.list_dirs(folder):
        info_rel = f"{directory}/{INFO_FILE}"
        if directory.rpartition("/")[2].startswith("checkpoint_") and store.exists(info_rel):
            out[int(json.loads(store.read_text(info_rel))["epoch"])] = store.uri(directory)
    return out


def checkpoint_rank(epoch: int, keep_epochs: set[int]) -> int:
    """Kept epochs rank above every other checkpoint, newer above older within each kind."""
    return epoch + (1_000_000 if epoch in keep_epochs else 0)


def load_checkpoint_dir(directory: str, model, optimizer, scheduler, scaler) -> int:
    """Restore from a checkpoint directory; returns the next epoch to run."""
    import torch

    model.load(os.path.join(directory, MODEL_DIR))
    state = torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]) + 1


def choose_precision(requested: str, device: Any) -> tuple[str, str]:
    """The autocast precision a worker runs (``no``, ``bf16``, ``fp16``) and why, for the log.

    CPU trains in fp32; bf16 only where the GPU has it (compute capability 8.0+), else fp16,
    which needs a GradScaler."""
    import torch

    if device.type != "cuda" or requested == "no":
        return "no", f"fp32 on {device.type}"
    name = torch.cuda.get_device_name(device)
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        return "fp16", f"fp16 autocast with a GradScaler: {name} has no bf16 (train.mixed_precision: bf16)"
    return requested, f"{requested} autocast on {name}" + (" with a GradScaler" if requested == "fp16" else "")


def train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, class_names: list[str], device,
                amp_dtype) -> Any:
    """One pass over ``loader``; returns [sum of per-clip losses, clips] on ``device``.

    No step waits on the device from the host: the batch is copied without blocking (from pinned
    memory when the loader pins), the loss checks its inputs on the loader's CPU tensors, and the
    loss sum stays on the device. (An fp16 GradScaler still reads its inf check once per step.)
    Shared by the Ray Train loop and the plain-loop benchmark, so both time the same work."""
    import torch

    model.train()
    loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
    for pixels, labels, uncertainty, real in loader:
        pixels = pixels.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext():
            logits = model(pixels, class_names)
        loss = loss_fn(logits.float(), labels, uncertainty, real)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # fp16: scale the loss so small gradients survive
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        loss_sum[0] += loss.detach().double() * len(labels)
        loss_sum[1] += len(labels)
    return loss_sum


def prepare_worker_model(loop: dict[str, Any]) -> tuple[int, int, Any, Any]:
    """A Ray Train worker's threads, seed and model (loaded from ``init_model`` or built from the
    backbone), wrapped for DDP; returns (rank, world size, model, the unwrapped model)."""
    import ray.train
    import ray.train.torch
    import torch

    from ray_pipeline.models.base import build_video_text_model, load_video_text_model
    from ray_pipeline.runstore import local_copy

    ctx = ray.train.get_context()
    torch.set_num_threads(loop["torch_threads"])
    torch.manual_seed(loop["seed"])
    if loop.get("init_model"):
        with local_copy(loop["init_model"]) as init_dir:
            model = load_video_text_model(init_dir)
    else:
        model = build_video_text_model(loop["model"], loop["backbone"], **loop.get("model_options", {}))
    model = ray.train.torch.prepare_model(model)
    raw = model.module if hasattr(model, "module") else model
    return ctx.get_world_rank(), ctx.get_world_size(), model, raw


@dataclass
class Optimization:
    """What a worker steps: the optimizer, its schedule and precision, and the epoch it starts at."""

    optimizer: Any
    scheduler: Any
    scaler: Any          # a GradScaler under fp16, else None
    amp: str | None      # "bf16", "fp16" or None (full precision)
    amp_dtype: Any
    precision_note: str
    start_epoch: int


def prepare_optimization(loop: dict[str, Any], raw: Any, steps: int, device: Any) -> Optimization:
    """AdamW over the model's parameter groups with warm-up + cosine per step, the precision the
    device allows, and the state to resume from: after a worker failure (a replacement worker group)
    or a rerun of the CLI, the newest checkpoint in this phase's folder of the run store (fetched
    first when the store is remote), else the one Ray Train hands the worker group."""
    import ray.train
    import torch

    from ray_pipeline.runstore import RunStore, local_copy

    optimizer = torch.optim.AdamW(raw.param_groups(loop["lr"]), betas=(0.9, 0.98), eps=1e-8,
                                  weight_decay=loop["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(
        loop["epochs"] * steps, int(loop["warmup_epochs"] * steps), loop["lr_min_ratio"]))
    amp, precision_note = choose_precision(loop["mixed_precision"], device)
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    start_epoch = 0
    latest, _ = latest_checkpoint(RunStore(loop["run_store"]), loop["checkpoint_folder"])
    checkpoint = ray.train.get_checkpoint()
    if latest is not None:
        with local_copy(latest) as directory:
            start_epoch = load_checkpoint_dir(directory, raw, optimizer, scheduler, scaler)
    elif checkpoint is not None:
        with checkpoint.as_directory() as d:
            start_epoch = load_checkpoint_dir(d, raw, optimizer, scheduler, scaler)
    return Optimization(optimizer, scheduler, scaler, amp, amp_dtype, precision_note, start_epoch)


def report_epoch(rank: int, raw: Any, opt: Optimization, epoch: int, metrics: dict, info: dict) -> None:
    """Report one epoch to Ray Train: rank 0 with a checkpoint (the model as safetensors, the
    optimizer/scheduler/scaler state with the epoch, and ``info``), every other rank its metrics."""
    import ray.train
    import torch

    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        raw.save(os.path.join(tmp, MODEL_DIR))
        state = {"optimizer": opt.optimizer.state_dict(), "scheduler": opt.scheduler.state_dict(), "epoch": epoch}
        if opt.scaler is not None:
            state["scaler"] = opt.scaler.state_dict()
        torch.save(state, os.path.join(tmp, STATE_FILE))
        Path(tmp, INFO_FILE).write_text(json.dumps(info))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def train_loop_per_worker(loop: dict[str, Any]) -> None:
    """One Ray Train worker: build the model, train ``loop['epochs']`` epochs, report each."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    from ray_pipeline.models.preprocess import Preprocess
    from ray_pipeline.training.data import ClipDataset, plan_loader, training_loader
    from ray_pipeline.training.losses import build_loss

    rank, world, model, raw = prepare_worker_model(loop)
    device = ray.train.torch.get_device()

    data = loop["data"]
    pre = Preprocess.from_pretrained(loop["preprocess_from"])
    dataset = ClipDataset(data["videos"], data["labels"], data["uncertainty"], pre, loop["num_frames"],
                          train=loop["augment"], seed=loop["seed"], real=[s == "real" for s in data["source"]])
    per_worker = loop["batch_size"] // world
    if len(dataset) < loop["batch_size"]:
        raise ValueError(f"{len(dataset)} training clips, fewer than one global batch of {loop['batch_size']}")
    # Same shuffled order for any worker count: each rank takes every world-th index of it.
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=loop["seed"],
                                 drop_last=True)
    loader_plan = plan_loader(loop["loader"], device.type, loop["worker_cpus"], loop["torch_threads"])
    loader = training_loader(dataset, sampler, per_worker, loader_plan)

    steps = len(loader)
    opt = prepare_optimization(loop, raw, steps, device)
    optimizer, scheduler, scaler, start_epoch = opt.optimizer, opt.scheduler, opt.scaler, opt.start_epoch
    if rank == 0:  # the worker's output goes to the run's log; the driver prints the epoch's info
        print(f"[train] {loop['phase']}: {opt.precision_note}; {loader_plan.describe()}", flush=True)

    loss_fn = build_loss(loop["loss"], **loop["loss_options"])
    class_names = data["class_names"]
    keep_epochs = set(loop.get("keep_epochs", ()))
    for epoch in range(start_epoch, loop["epochs"]):
        sampler.set_epoch(epoch)  # EpochIndices hands the epoch to every decoding process
        epoch_start = time.perf_counter()
        loss_sum = train_epoch(model, loader, loss_fn, optimizer, scheduler, scaler, class_names, device,
                               opt.amp_dtype)
        if world > 1:
            dist.all_reduce(loss_sum)
        metrics = {"epoch": epoch, "epochs": loop["epochs"], "loss": float(loss_sum[0] / loss_sum[1]),
                   "start_epoch": start_epoch, "lr": scheduler.get_last_lr()[0],
                   "epoch_seconds": time.perf_counter() - epoch_start, "steps_per_epoch": steps,
                   RANK_METRIC: checkpoint_rank(epoch, keep_epochs)}
        # How the epoch ran, for the driver's log (kept out of the reported metrics: numbers only there).
        info = {**metrics, "precision": opt.amp, "precision_note": opt.precision_note,
                "loader": loader_plan.describe()}
        report_epoch(rank, raw, opt, epoch, metrics, info)
