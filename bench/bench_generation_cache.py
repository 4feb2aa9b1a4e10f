"""Step caches on vs off on tiny CogVideoX (and Wan / LTX-Video) pipelines: what the speed costs.

For each cache a backend offers (diffusers 0.42.1, see config.UNSUPPORTED_CACHES), against the
same pipeline uncached, same prompts and seeds:

- step-time ratio: time inside the transformer per denoising step, cached / uncached (median of
  ``--repeats`` calls after one warm-up); the whole call's ratio is printed too;
- attention work: attention query projections run, cached / uncached;
- output difference: max |diff| and PSNR (dB) of the float frames in [0, 1] against the uncached
  ones, and, for scale, the same between two seeds of the uncached pipeline.

The models are random and tiny (built offline), so the ratios say how much work a cache skips
and how far it moves the output here, not what it saves on a GPU: at this size per-call
overheads (the hooks themselves) weigh more than attention does. bench/gpu_check.py times the
CogVideoX-2B-sized transformer. The procedural world's generator has no denoiser, so there is no
world-scale version of this benchmark and no CLIP-score agreement to report from it.

    .venv/bin/python bench/bench_generation_cache.py [--backends cogvideox wan ltx] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from ray_pipeline.config import CogVideoXConfig, LTXConfig, WanConfig, supported_caches
from ray_pipeline.generators.base import get_generator_class
from ray_pipeline.tiny import build_tiny_cogvideox, build_tiny_ltx, build_tiny_wan

PROMPTS = ["a person wave in a park", "a man run on the beach"]
SEEDS = [0, 1]


def build(backend: str, root: Path) -> tuple[str, type, dict]:
    """A tiny pipeline with a few more blocks and pixels than the tests use, and its sizes."""
    if backend == "cogvideox":
        path = build_tiny_cogvideox(root / backend, num_layers=8, latent_size=8)
        return str(path), CogVideoXConfig, {"height": 64, "width": 64, "num_frames": 17}
    if backend == "wan":
        return str(build_tiny_wan(root / backend, num_layers=8)), WanConfig, {"height": 64, "width": 64,
                                                                              "num_frames": 17}
    path = build_tiny_ltx(root / backend, num_layers=8)
    return str(path), LTXConfig, {"height": 64, "width": 64, "num_frames": 17}


class Meter:
    """Times the transformer's forward calls and counts attention query projections."""

    def __init__(self, transformer) -> None:
        self.seconds, self.calls, self.queries, self._t0 = 0.0, 0, 0, 0.0
        transformer.register_forward_pre_hook(self._start)
        transformer.register_forward_hook(self._stop)
        for name, module in transformer.named_modules():
            if name.endswith(".to_q"):
                module.register_forward_hook(self._query)

    def reset(self) -> None:
        self.seconds, self.calls, self.queries = 0.0, 0, 0

    def _start(self, *_) -> None:
        self._t0 = time.perf_counter()

    def _stop(self, *_) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.calls += 1

    def _query(self, *_) -> None:
        self.queries += 1


def measure(gen, repeats: int, steps: int) -> dict:
    meter = Meter(gen.pipe.transformer)
    frames = gen.render(PROMPTS, SEEDS)  # warm-up
    step_s, call_s, queries = [], [], 0
    for _ in range(repeats):
        meter.reset()
        start = time.perf_counter()
        out = gen.render(PROMPTS, SEEDS)
        call_s.append(time.perf_counter() - start)
        step_s.append(meter.seconds / steps)
        queries = meter.queries
        np.testing.assert_array_equal(out, frames)  # no state carried from call to call
    return {"frames": frames, "step_s": statistics.median(step_s), "call_s": statistics.median(call_s),
            "queries": queries}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", default=["cogvideox", "wan", "ltx"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("| backend | cache | step-time ratio | call-time ratio | attention work | max abs diff | PSNR (dB) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            model, cfg_cls, sizes = build(backend, Path(tmp))
            common = {"model": model, "dtype": "float32", "num_inference_steps": args.steps,
                      "max_sequence_length": 16, "negative_prompt": "", **sizes}
            cls = get_generator_class(backend)
            base_gen = cls(cfg_cls(**common))
            base = measure(base_gen, args.repeats, args.steps)
            other_seeds = base_gen.render(PROMPTS, [s + 10 for s in SEEDS])
            print(f"| {backend} | none ({base['step_s'] * 1e3:.1f} ms/step, {base['call_s']:.2f} s/call) "
                  f"| 1.00 | 1.00 | 1.00 | another seed: {np.abs(other_seeds - base['frames']).max():.3f} "
                  f"| another seed: {psnr(other_seeds, base['frames']):.1f} |")
            ratios = base_gen.mag_ratios(PROMPTS, SEEDS)
            for kind in supported_caches(backend):
                cache = {"kind": kind, **({"mag": {"mag_ratios": ratios}} if kind == "mag" else {})}
                run = measure(cls(cfg_cls(**common, cache=cache)), args.repeats, args.steps)
                diff = np.abs(run["frames"] - base["frames"]).max()
                print(f"| {backend} | {kind} | {run['step_s'] / base['step_s']:.2f} | "
                      f"{run['call_s'] / base['call_s']:.2f} | {run['queries'] / base['queries']:.2f} | "
                      f"{diff:.3f} | {psnr(run['frames'], base['frames']):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
