"""The Ray Train worker loop of the top-k MIL head: a video-text model fine-tuned on weakly labelled bags.

Lv et al.'s MIL baseline (evaluation-protocols.md §5.3 (i), (iii), (iv)): every training video is
a bag of segment clips; the model scores each segment against the class texts, the scores fold
into (normal, abnormal) logits (:func:`~ray_pipeline.training.mil_data.abnormal_logits`), and
:func:`~ray_pipeline.training.mil.topk_mil_ce_loss` compares the top-k segments with the video
label. A global batch is ``bags_per_side`` anomalous and as many normal videos
(:func:`~ray_pipeline.training.mil_data.bag_batches`); each worker takes every world-th video of
it and back-propagates one video at a time (a bag is ``S x F`` frames), so memory holds one bag's
activations whatever the batch, and the gradient is the batch mean as if it had been one pass.

Checkpoints and resumption are the train stage's (:mod:`ray_pipeline.training.loop`): rank 0
reports one per epoch; a replaced worker or a rerun continues from the newest one in the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ray_pipeline.runstore import RunStore, local_copy
from ray_pipeline.training.loop import (
    INFO_FILE,
    MODEL_DIR,
    STATE_FILE,
    choose_precision,
    latest_checkpoint,
    load_checkpoint_dir,
    lr_lambda,
    prepare_worker_model,
)


def mil_train_loop_per_worker(loop: dict[str, Any]) -> None:
    """One Ray Train worker of a top-k MIL fine-tune; ``loop`` is what the mil stage sends."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    from ray_pipeline.models.preprocess import Preprocess
    from ray_pipeline.training.mil import topk_mil_ce_loss
    from ray_pipeline.training.mil_data import BagDataset, BagSampling, abnormal_logits, bag_batches

    rank, world, model, raw = prepare_worker_model(loop)
    device = ray.train.torch.get_device()

    data = loop["data"]
    pre = Preprocess.from_pretrained(loop["preprocess_from"])
    dataset = BagDataset(data["videos"], data["labels"], pre, BagSampling(**loop["sampling"]),
                         train=loop["augment"], seed=loop["seed"])
    steps = len(bag_batches(data["labels"], loop["bags_per_side"], 0, loop["seed"]))
    optimizer = torch.optim.AdamW(raw.param_groups(loop["lr"]), betas=(0.9, 0.98), eps=1e-8,
                                  weight_decay=loop["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(
        loop["epochs"] * steps, int(loop["warmup_epochs"] * steps), loop["lr_min_ratio"]))
    amp, precision_note = choose_precision(loop["mixed_precision"], device)
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    if rank == 0:
        print(f"[mil] {precision_note}", flush=True)

    start_epoch = 0
    latest, _ = latest_checkpoint(RunStore(loop["run_store"]), loop["checkpoint_folder"])
    checkpoint = ray.train.get_checkpoint()
    if latest is not None:
        with local_copy(latest) as directory:
            start_epoch = load_checkpoint_dir(directory, raw, optimizer, scheduler, scaler)
    elif checkpoint is not None:
        with checkpoint.as_directory() as d:
            start_epoch = load_checkpoint_dir(d, raw, optimizer, scheduler, scaler)

    texts, normal, head = loop["class_texts"], loop["normal_index"], loop["head"]
    for epoch in range(start_epoch, loop["epochs"]):
        dataset.set_epoch(epoch)
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        for batch in bag_batches(data["labels"], loop["bags_per_side"], epoch, loop["seed"]):
            mine = batch[rank::world]
            optimizer.zero_grad(set_to_none=True)
            for j, i in enumerate(mine):
                pixels, label = dataset[i]
                # Gradients are all-reduced once per batch, on each worker's last video.
                sync = j == len(mine) - 1 or not hasattr(model, "no_sync")
                with contextlib.nullcontext() if sync else model.no_sync():
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        logits = abnormal_logits(model, pixels.unsqueeze(0).to(device), texts, normal)
                    loss = topk_mil_ce_loss(logits, torch.tensor([label], device=device), head["k"],
                                            head["smoothness"], head["sparsity"]) / len(mine)
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                loss_sum += torch.tensor([loss.item() * len(mine), 1.0], dtype=torch.float64, device=device)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
        if world > 1:
            dist.all_reduce(loss_sum)
        metrics = {"epoch": epoch, "epochs": loop["epochs"], "loss": float(loss_sum[0] / max(loss_sum[1], 1.0)),
                   "start_epoch": start_epoch, "lr": scheduler.get_last_lr()[0],
                   "epoch_seconds": time.perf_counter() - epoch_start, "steps_per_epoch": steps}
        if rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                raw.save(os.path.join(tmp, MODEL_DIR))
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch}
                if scaler is not None:
                    state["scaler"] = scaler.state_dict()
                torch.save(state, os.path.join(tmp, STATE_FILE))
                Path(tmp, INFO_FILE).write_text(json.dumps(metrics))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)
