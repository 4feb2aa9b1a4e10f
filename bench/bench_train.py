"""A training step under Ray Train (1 worker, DDP-prepared) vs a plain single-process loop.

Both run the same epoch function (`ray_pipeline.training.loop.train_epoch`) on the same model,
clips and batch; the Ray number is the per-step time measured inside the worker over the last
epochs (worker start-up excluded), the loop's likewise. Goal: Ray Train <= 1.10x the loop.

    .venv/bin/python bench/bench_train.py [--model tcclip] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tcclip", choices=["tcclip", "vificlip"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--clips-per-class", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from ray_pipeline.config import ExperimentConfig
    from ray_pipeline.models.base import build_video_text_model
    from ray_pipeline.models.preprocess import Preprocess
    from ray_pipeline.runstore import RunStore
    from ray_pipeline.stages.train import RESULT
    from ray_pipeline.tiny import build_tiny_clip
    from ray_pipeline.training.data import ClipDataset
    from ray_pipeline.training.loop import train_epoch
    from ray_pipeline.training.losses import build_loss
    from tests.helpers import TINY_CLASSES, pipeline, run_stage, write_synthetic_clips

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    clip = str(build_tiny_clip(tmp / "clip", image_size=32, patch_size=8))
    store = RunStore(tmp / "run")
    cfg = ExperimentConfig.model_validate({
        "ray": {"num_cpus": 2}, "prompts": {"classes": TINY_CLASSES},
        "generate": {"backend": "cogvideox", "clips_per_class": args.clips_per_class},
        "train": {"model": args.model, "backbone": clip, "epochs": args.epochs, "batch_size": 8,
                  "num_frames": 8, "lr": 1e-4, "warmup_epochs": 0, "cpus_per_worker": args.threads}})
    write_synthetic_clips(store, cfg)

    # Plain loop: same data, model, loss and epoch function, no Ray.
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg.train.seed)
    p = pipeline(cfg, store)
    train_stage = p.build("train")
    data = train_stage.phases(p.context(train_stage), p.run([], until="score"))[0].data.as_dict()
    model = build_video_text_model(args.model, clip)
    dataset = ClipDataset(data["videos"], data["labels"], data["uncertainty"], Preprocess.from_pretrained(clip),
                          cfg.train.num_frames, train=True, seed=0)
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.param_groups(cfg.train.lr), betas=(0.9, 0.98), weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    loss_fn = build_loss("ul", weight=0.3)
    loop_steps = []
    for epoch in range(args.epochs):
        dataset.set_epoch(epoch)
        start = time.perf_counter()
        train_epoch(model, loader, loss_fn, optimizer, scheduler, None, data["class_names"], torch.device("cpu"), None)
        loop_steps.append((time.perf_counter() - start) / len(loader))

    run_stage(cfg, store, "train")
    result = json.loads(store.read_text(RESULT))
    folder = Path(result["phases"][0]["checkpoint"]).parent
    infos = sorted((json.loads(p.read_text()) for p in folder.glob("checkpoint_*/train_state.json")),
                   key=lambda i: i["epoch"])
    ray_steps = [i["epoch_seconds"] / i["steps_per_epoch"] for i in infos]

    # The first epoch pays one-off costs (allocator warm-up, decoder start): compare the rest.
    loop_s, ray_s = min(loop_steps[1:] or loop_steps), min(ray_steps)
    print(f"\n{args.model}, batch {cfg.train.batch_size} x {cfg.train.num_frames} frames of 32x32, "
          f"{args.threads} thread(s), best epoch after the first")
    print(f"{'plain loop s/step':>18}{'Ray Train s/step':>18}{'ratio':>8}")
    print(f"{loop_s:>18.3f}{ray_s:>18.3f}{ray_s / loop_s:>7.2f}x")


if __name__ == "__main__":
    main()
