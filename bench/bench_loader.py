"""The training input pipeline against the training step, at the paper's 16 frames per clip.

Decoded clips/s of the training loader (decord, TSN sampling, random crop and flip, CLIP
normalisation; `ray_pipeline.training.data`) with 0, 1 and 2 decoding processes, against the clips/s
a TC-CLIP step consumes (the same `train_epoch` the Ray Train worker runs, on batches already in
memory). A ratio >= 1 means the loader keeps the step fed.

Two workloads:

* ``world``: the quickstart's clips (the world's 64x64 HMDB-51 stand-in, 16 frames) and TC-CLIP on
  the world's CLIP, batch 16, 1 thread (what the quickstart's Ray Train worker gets on 2 cores).
* ``paper``: clips the size CogVideoX-2B generates (720x480, 49 frames; the GPU check's textured
  clips, H.264 as the pipeline writes them) decoded to 16 frames at 224 px. The step that consumes
  them is TC-CLIP ViT-B/16 on a GPU, which no CPU here measures: pass ``--gpu-step-clips-per-s``
  (bench/gpu_check.py's ``input_pipeline.step_clips_per_s``) for the ratio and the decoding
  processes a GPU needs; without it the row reports the loader alone.

    .venv/bin/python bench/bench_loader.py [--repeats 3] [--gpu-step-clips-per-s 60]

Each figure is the median of ``--repeats`` passes after a warm-up pass (process start-up, first
decode); the spread between repeats is printed beside it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRAMES = 16  # the paper's (and TC-CLIP's) frames per training clip


def loader_rate(videos: list[str], pre, workers: int, batch: int, repeats: int) -> tuple[list[float], float]:
    """Clips/s of the training loader with ``workers`` decoding processes, per repeat (epoch), and
    (with 0 processes) the CPU seconds one clip takes, which a busy machine does not inflate."""
    from torch.utils.data import DistributedSampler

    from ray_pipeline.training.data import ClipDataset, LoaderPlan, training_loader

    dataset = ClipDataset(videos, [0] * len(videos), [0.0] * len(videos), pre, FRAMES, train=True)
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, drop_last=True)
    plan = LoaderPlan(workers, False, 2 if workers else None, workers > 0)
    loader = training_loader(dataset, sampler, batch, plan)
    rates, cpu = [], []
    for epoch in range(repeats + 1):  # epoch 0 warms up (process start, first decodes)
        sampler.set_epoch(epoch)
        start, start_cpu, clips = time.perf_counter(), time.process_time(), 0
        for pixels, *_ in loader:
            clips += len(pixels)
        if epoch:
            rates.append(clips / (time.perf_counter() - start))
            cpu.append((time.process_time() - start_cpu) / clips)
    return rates, statistics.median(cpu) if not workers else float("nan")


def step_rate(backbone: str, pre, videos: list[str], batch: int, repeats: int) -> list[float]:
    """Clips/s a TC-CLIP training step consumes (batches decoded beforehand, in memory)."""
    import torch

    from ray_pipeline.models import build_video_text_model
    from ray_pipeline.training.data import ClipDataset
    from ray_pipeline.training.loop import train_epoch
    from ray_pipeline.training.losses import build_loss

    dataset = ClipDataset(videos[:batch], list(range(batch)), [0.5] * batch, pre, FRAMES, train=True)
    items = [dataset[i] for i in range(batch)]
    batches = [(torch.stack([x[0] for x in items]), torch.tensor([x[1] % 4 for x in items]),
                torch.tensor([x[2] for x in items], dtype=torch.float64), torch.tensor([x[3] for x in items]))] * 2
    torch.manual_seed(0)
    model = build_video_text_model("tcclip", backbone)
    optimizer = torch.optim.AdamW(model.param_groups(1e-5), weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss = build_loss("ul", weight=0.3)
    classes = ["wave", "run", "jump", "clap"]
    rates = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        train_epoch(model, batches, loss, optimizer, scheduler, None, classes, torch.device("cpu"), None)
        if r:
            rates.append(len(batches) * batch / (time.perf_counter() - start))
    return rates


def fmt(rates: list[float]) -> str:
    med = statistics.median(rates)
    spread = (max(rates) - min(rates)) / med * 100 if med else 0.0
    return f"{med:7.1f} (±{spread / 2:.0f}%)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="decoding processes to measure")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--world-clips", type=int, default=64)
    ap.add_argument("--paper-clips", type=int, default=12)
    ap.add_argument("--gpu-step-clips-per-s", type=float, default=None,
                    help="clips/s of TC-CLIP ViT-B/16 training on the GPU (bench/gpu_check.py's loader section)")
    ap.add_argument("--cache-dir", default="~/.cache/ray_pipeline")
    args = ap.parse_args()

    import torch
    from gpu_check import write_clips  # bench/ is this script's folder

    from ray_pipeline.models.preprocess import Preprocess
    from ray_pipeline.tiny import build_tiny_clip
    from ray_pipeline.world.clip import ensure_world_clip
    from ray_pipeline.world.datasets import ensure_world_datasets

    torch.set_num_threads(1)
    cache = os.path.expanduser(args.cache_dir)
    world = sorted(str(p) for p in (ensure_world_datasets(cache) / "world_hmdb" / "videos").rglob("*.mp4"))
    world = world[:args.world_clips]
    world_clip = str(ensure_world_clip(cache))
    world_pre = Preprocess.from_pretrained(world_clip)
    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    paper, codec = write_clips(tmp / "paper", args.paper_clips, 49, 480, 720)  # the GPU check's clips
    # A CLIP ViT-B/16's preprocessing (224 px); only its preprocessor config is read.
    paper_pre = Preprocess.from_pretrained(str(build_tiny_clip(tmp / "clip224", image_size=224, patch_size=16)))

    print(f"\n{FRAMES} frames per clip, clips/s (median of {args.repeats}, ± half the spread); "
          f"{os.cpu_count()} CPUs here")
    step = step_rate(world_clip, world_pre, world, 16, args.repeats)
    print(f"\nworld: {len(world)} clips 64x64 -> TC-CLIP on the world CLIP, batch 16, 1 thread")
    print(f"  training step consumes {fmt(step)} clips/s")
    for w in args.workers:
        rates, cpu_s = loader_rate(world, world_pre, w, 16, args.repeats)
        print(f"  loader, {w} decoding process(es): {fmt(rates)} clips/s, "
              f"{statistics.median(rates) / statistics.median(step):5.2f}x the step"
              + (f"; {cpu_s * 1000:.0f} CPU ms per clip" if not w else ""))

    print(f"\npaper: {len(paper)} clips 720x480x49 ({codec}) -> 224 px")
    cpu_per_clip = float("nan")
    for w in args.workers:
        rates, cpu_s = loader_rate(paper, paper_pre, w, 4, args.repeats)
        line = f"  loader, {w} decoding process(es): {fmt(rates)} clips/s"
        if not w:
            cpu_per_clip = cpu_s
            line += f"; {cpu_s:.2f} CPU s per clip: one idle core decodes {1 / cpu_s:.1f} clips/s"
        if args.gpu_step_clips_per_s:
            line += f", {statistics.median(rates) / args.gpu_step_clips_per_s:5.2f}x the GPU step"
        print(line)
    if args.gpu_step_clips_per_s and cpu_per_clip == cpu_per_clip:
        need = math.ceil(args.gpu_step_clips_per_s * cpu_per_clip)
        print(f"  the GPU step consumes {args.gpu_step_clips_per_s:.1f} clips/s: about {need} cores of this machine's "
              f"speed keep it fed (train.loader.num_workers = {need}, train.cpus_per_worker >= {need + 1})")
    else:
        print("  GPU step: not measured here (pass --gpu-step-clips-per-s from bench/gpu_check.py)")


if __name__ == "__main__":
    main()
