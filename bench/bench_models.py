"""TC-CLIP training step against a ViFi-CLIP step on the same backbone and batch.

One step = forward (video and text encoders, logits) + cross-entropy + backward + AdamW step,
with TC-CLIP's parameter groups. The backbone is a random CLIP built offline (nothing is
downloaded); the default size is the quickstart's scale (64x64 frames, patch 8, 8 frames,
batches of 16). Goal: TC-CLIP / ViFi-CLIP <= 1.25x.

    .venv/bin/python bench/bench_models.py                # quickstart scale, 2 threads
    .venv/bin/python bench/bench_models.py --hidden 768 --layers 12 --image-size 224 \\
        --patch 16 --text-hidden 512 --projection 512 --heads 12 --text-heads 8 \\
        --frames 16 --batch 4 --classes 400 --device cuda   # ViT-B/16 shape
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from transformers.utils import logging as hf_logging

from ray_pipeline.models import build_video_text_model
from ray_pipeline.tiny import save_tiny_clip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128, help="vision width")
    p.add_argument("--layers", type=int, default=4, help="vision layers")
    p.add_argument("--heads", type=int, default=4, help="vision heads")
    p.add_argument("--text-hidden", type=int, default=128)
    p.add_argument("--text-layers", type=int, default=4)
    p.add_argument("--text-heads", type=int, default=4)
    p.add_argument("--projection", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--steps", type=int, default=10, help="timed steps per model (after 2 warm-up)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    return p.parse_args()


class Stepper:
    """One model, its optimizer and a fixed batch; ``step()`` times one training step."""

    def __init__(self, name: str, backbone: str, args: argparse.Namespace) -> None:
        torch.manual_seed(0)
        self.args = args
        self.model = build_video_text_model(name, backbone).to(args.device).train()
        self.opt = torch.optim.AdamW(self.model.param_groups(1e-5), betas=(0.9, 0.98), weight_decay=1e-3)
        gen = torch.Generator().manual_seed(0)
        size = args.image_size
        self.clips = torch.randn(args.batch, args.frames, 3, size, size, generator=gen).to(args.device)
        self.labels = torch.randint(0, args.classes, (args.batch,), generator=gen).to(args.device)
        self.classes = [f"action number {i}" for i in range(args.classes)]

    def _sync(self) -> None:
        if self.args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def step(self) -> tuple[float, float]:
        """(wall seconds, process CPU seconds) of one training step."""
        self._sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        device_type = torch.device(self.args.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.args.amp):
            logits = self.model(self.clips, self.classes)
        loss = F.cross_entropy(logits.float(), self.labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._sync()
        return time.perf_counter() - start, time.process_time() - cpu_start


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        save_tiny_clip(
            tmp,
            image_size=args.image_size,
            patch_size=args.patch,
            vision_hidden=args.hidden,
            vision_layers=args.layers,
            vision_heads=args.heads,
            text_hidden=args.text_hidden,
            text_layers=args.text_layers,
            text_heads=args.text_heads,
            projection_dim=args.projection,
        )
        steppers = {name: Stepper(name, tmp, args) for name in ("vificlip", "tcclip")}
        wall: dict[str, list[float]] = {name: [] for name in steppers}
        cpu: dict[str, list[float]] = {name: [] for name in steppers}
        for i in range(args.steps + 2):
            # alternate step by step, so load from other processes on a shared machine hits both
            for name, stepper in steppers.items():
                seconds, cpu_seconds = stepper.step()
                if i >= 2:  # warm-up
                    wall[name].append(seconds)
                    cpu[name].append(cpu_seconds)

    patches = (args.image_size // args.patch) ** 2
    print(
        f"backbone: {args.image_size}px/{args.patch} ({patches} patches), "
        f"vision {args.hidden}x{args.layers}, "
        f"text {args.text_hidden}x{args.text_layers}; batch {args.batch} x {args.frames} frames, "
        f"{args.classes} classes; device {args.device}, threads {args.threads}, amp {args.amp}"
    )
    # Process CPU time is the steadier measure on a shared machine (other processes stretch wall
    # time, not the work done); with several threads it also counts OpenMP spin-waiting.
    print(f"{'model':<10} {'wall ms (median)':>17} {'wall ms (min)':>14} {'CPU ms (median)':>16}")
    for name in wall:
        print(
            f"{name:<10} {statistics.median(wall[name]) * 1e3:>17.1f} {min(wall[name]) * 1e3:>14.1f} "
            f"{statistics.median(cpu[name]) * 1e3:>16.1f}"
        )

    def paired(times: dict[str, list[float]]) -> float:
        return statistics.median(t / v for t, v in zip(times["tcclip"], times["vificlip"]))

    ratio_wall, ratio_cpu = paired(wall), paired(cpu)
    best = min(wall["tcclip"]) / min(wall["vificlip"])
    print(
        f"TC-CLIP / ViFi-CLIP step (median of paired steps): wall {ratio_wall:.2f}x, CPU {ratio_cpu:.2f}x; "
        f"best wall vs best wall {best:.2f}x (goal <= 1.25x)"
    )


if __name__ == "__main__":
    main()
