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
import time
from typing import Any

from ray_pipeline.training.loop import prepare_optimization, prepare_worker_model, report_epoch


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
    opt = prepare_optimization(loop, raw, steps, device)
    optimizer, scheduler, scaler, start_epoch = opt.optimizer, opt.scheduler, opt.scaler, opt.start_epoch
    if rank == 0:
        print(f"[mil] {opt.precision_note}", flush=True)

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
                    with torch.autocast(device.type, dtype=opt.amp_dtype, enabled=opt.amp_dtype is not None):
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
        report_epoch(rank, raw, opt, epoch, metrics, metrics)
