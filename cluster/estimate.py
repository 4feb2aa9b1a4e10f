"""GPU time, wall-clock time and cost of generating the clips behind each of the paper's tables.

    python cluster/estimate.py                                    # the tables in docs/cluster.md
    python cluster/estimate.py --gpus 16 --price A100=USD --price H100=USD  # adds a cost column
    python cluster/estimate.py --from-run RUN_DIR --gpu-name L4   # your measured seconds per clip
    python cluster/estimate.py --backend wan --speedup compile     # another backend, a speed-up
    python cluster/estimate.py --list                              # every figure and its source

Generation dominates a run's cost: every clip is a full denoising loop. Per-clip times are
GPU-seconds for one clip on one GPU at the backend's defaults, as published (``BACKENDS``; the
paper's CogVideoX-2B, 50 steps, 49 frames, 720x480, by default); ``--speedup`` scales them by a
published eager-to-faster ratio (``SPEEDUPS``), and ``--from-run`` uses instead the mean
``gen_seconds`` the generate stage measured in a run directory. Where nothing is published (a GPU,
a backend's cache), there is no figure here: measure it. Clip ids are content-derived, so a table
whose clips an earlier table already generated (same classes, prompt strategy and seeds, same run
directory) costs nothing new.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

CLIPS_PER_CLASS = 128  # the paper: 128 videos per category, 50 inference steps


@dataclass(frozen=True)
class Figure:
    """A published number and where it comes from."""

    value: float
    source: str


# GPU-seconds per clip at each backend's defaults, eager, 50 steps.
BACKENDS: dict[str, dict[str, Figure]] = {
    "cogvideox": {
        "A100": Figure(90.0, "THUDM/CogVideo README: CogVideoX-2B fp16, 50 steps, 49 frames 720x480, ~90 s"),
        "H100": Figure(45.0, "THUDM/CogVideo README: the same on an H100, ~45 s"),
    },
    "wan": {
        "A100": Figure(259.7, "hao-ai-lab/FastVideo PR #1366: Wan2.1-T2V-1.3B, A100-80GB, 480x832, 81 frames, "
                              "50 steps, eager"),
        "RTX4090": Figure(240.0, "Wan2.1 README: ~4 min for a 5 s 480p clip (1.3B, RTX 4090)"),
    },
    "ltx": {
        "H100": Figure(161 / 24, "LTX-Video model card: 768x512 at 24 fps generated faster than it plays on "
                                 "an H100, so a 161-frame clip takes under 161/24 = 6.7 s (a bound from a "
                                 "claim, not a timing)"),
    },
}
# Published eager -> faster time ratios, applied to the per-clip figures above.
SPEEDUPS: dict[str, dict[str, Figure]] = {
    "cogvideox": {
        "compile": Figure(81.2 / 93.9, "sayakpaul/diffusers-torchao README: CogVideoX-2B bf16 A100, 93.9 s eager "
                                       "-> 81.2 s torch.compile"),
        "pab": Figure(184.0 / 245.9, "huggingface/diffusers PR #9562 benchmark: CogVideoX 1.0, 50 steps, "
                                     "49 frames 720x480, 245.9 s -> 184.0 s with Pyramid Attention Broadcast"),
        "faster_cache": Figure(159.0 / 245.9, "huggingface/diffusers PR #9562/#10163 benchmark: the same, "
                                              "245.9 s -> 159.0 s with FasterCache"),
    },
    "wan": {
        "compile": Figure(198.1 / 259.7, "hao-ai-lab/FastVideo PR #1366: Wan2.1-T2V-1.3B A100-80GB, 259.7 s "
                                         "eager -> 198.1 s torch.compile"),
    },
    "ltx": {},
}
# Without a published figure: First Block Cache, TaylorSeer and MagCache on every backend, PAB on
# LTX, compile on LTX. bench/gpu_check.py measures cache on/off step times on an H200.

# The paper's generator (kept as the default table's per-clip seconds).
SECONDS_PER_CLIP = {gpu: f.value for gpu, f in BACKENDS["cogvideox"].items()}
CLASSES = {
    "HMDB-51": 51,
    "UCF-101": 101,
    "K600": 220,  # the zero-shot protocol's 220 classes new in Kinetics-600
    "UCF-Crime": 14,  # Normal + its 13 anomaly classes: the anomaly task's prompts (classes: ucf_crime)
}
# (dataset, prompt strategy) sets of clips each table trains on.
TABLES = [
    ("1 zero-shot", [("HMDB-51", "ie"), ("UCF-101", "ie"), ("K600", "ie")]),
    ("2 few-shot", [("HMDB-51", "ie"), ("UCF-101", "ie")]),
    ("3 base-to-novel", [("HMDB-51", "ie"), ("UCF-101", "ie")]),
    ("4 long-tail", [("HMDB-51", "ie"), ("UCF-101", "ie")]),
    ("5 anomaly detection", [("UCF-Crime", "ie")]),
    ("6 prompt-strategy ablation", [("HMDB-51", s) for s in ("basic", "env", "cha", "ie")]),
    ("7 label-smoothing ablation", [("HMDB-51", "ie"), ("UCF-101", "ie")]),
    ("8 DB / MMD", [("HMDB-51", "basic"), ("HMDB-51", "ie")]),
]


def measured_seconds_per_clip(run_dir: str) -> float:
    """Mean ``gen_seconds`` over a run directory's generate manifest (local path or URI)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ray_pipeline.runstore import RunStore

    store = RunStore(run_dir)
    parts = store.manifest("generate", "clip_id").parts()
    if not parts:
        raise SystemExit(f"no generate manifest in {store.uri('generate/manifest')}")
    # One thread: Arrow's parquet reader threads can abort this short-lived CLI at interpreter exit
    # ("terminate called without an active exception", apache/arrow#34314); the manifest is small.
    table = pa.concat_tables([pq.read_table(io.BytesIO(store.read_bytes(p)), use_threads=False) for p in parts],
                             promote_options="permissive")
    seconds = table.column("gen_seconds").to_pylist()
    return sum(seconds) / len(seconds)


def clips(sets: list[tuple[str, str]], clips_per_class: int) -> int:
    return sum(CLASSES[dataset] for dataset, _ in sets) * clips_per_class


def table_rows(clips_per_class: int) -> list[tuple[str, str, int, int]]:
    """(table, sets, clips it trains on, clips not generated by an earlier table)."""
    done: set[tuple[str, str]] = set()
    out = []
    for name, sets in TABLES:
        new = [s for s in sets if s not in done]
        done.update(sets)
        label = ", ".join(f"{d} {s}" for d, s in sets)
        out.append((name, label, clips(sets, clips_per_class), clips(new, clips_per_class)))
    return out


def markdown(seconds_per_clip: dict[str, float], prices: dict[str, float], gpus: int,
             clips_per_class: int) -> str:
    gpu_names = list(seconds_per_clip)
    header = ["table", "generated sets (dataset, prompt strategy)", "clips", "new clips"]
    header += [f"{g} GPU-h" for g in gpu_names] + [f"wall, {gpus}x {g}" for g in gpu_names]
    header += [f"cost, {g} at ${prices[g]:g}/h" for g in gpu_names if g in prices]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    total_new = 0
    for name, label, n, new in table_rows(clips_per_class):
        total_new += new
        hours = {g: new * s / 3600 for g, s in seconds_per_clip.items()}
        row = [name, label, f"{n:,}", f"{new:,}"]
        row += [f"{hours[g]:,.1f}" for g in gpu_names] + [f"{hours[g] / gpus:,.1f} h" for g in gpu_names]
        row += [f"${hours[g] * prices[g]:,.0f}" for g in gpu_names if g in prices]
        lines.append("| " + " | ".join(row) + " |")
    hours = {g: total_new * s / 3600 for g, s in seconds_per_clip.items()}
    row = ["all tables", "", "", f"{total_new:,}"]
    row += [f"{hours[g]:,.1f}" for g in gpu_names] + [f"{hours[g] / gpus:,.1f} h" for g in gpu_names]
    row += [f"${hours[g] * prices[g]:,.0f}" for g in gpu_names if g in prices]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def dataset_markdown(seconds_per_clip: dict[str, float], gpus: int, clips_per_class: int) -> str:
    """One generated set per dataset: what a single `ray-pipeline run` on that class list costs."""
    gpu_names = list(seconds_per_clip)
    header = ["one generated set", "classes", "clips"] + [f"{g} GPU-h" for g in gpu_names]
    header += [f"wall, {gpus}x {g}" for g in gpu_names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, classes in CLASSES.items():
        n = classes * clips_per_class
        hours = [n * seconds_per_clip[g] / 3600 for g in gpu_names]
        row = [dataset, str(classes), f"{n:,}"] + [f"{h:,.1f}" for h in hours]
        row += [f"{h / gpus:,.1f} h" for h in hours]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def seconds_per_clip(backend: str, speedup: str | None) -> dict[str, float]:
    """Per-GPU seconds per clip for ``backend``, scaled by a published ``speedup`` if given."""
    if backend not in BACKENDS:
        raise SystemExit(f"--backend: unknown {backend!r}; known: {sorted(BACKENDS)}")
    factor = 1.0
    if speedup is not None:
        known = SPEEDUPS[backend]
        if speedup not in known:
            raise SystemExit(f"--speedup: no published figure for {speedup!r} on {backend}; "
                             f"published: {sorted(known) or 'none'} (measure it and use --seconds-per-clip)")
        factor = known[speedup].value
    return {gpu: f.value * factor for gpu, f in BACKENDS[backend].items()}


def sources_markdown() -> str:
    """Every per-clip figure and speed-up with its source."""
    lines = ["| backend | GPU | seconds per clip | source |", "|---|---|---|---|"]
    for backend, figures in BACKENDS.items():
        lines += [f"| {backend} | {gpu} | {f.value:,.1f} | {f.source} |" for gpu, f in figures.items()]
    lines += ["", "| backend | speed-up | time ratio | source |", "|---|---|---|---|"]
    for backend, figures in SPEEDUPS.items():
        lines += [f"| {backend} | {name} | {f.value:.3f} | {f.source} |" for name, f in figures.items()]
    return "\n".join(lines)


def _pairs(values: list[str], what: str) -> dict[str, float]:
    out = {}
    for v in values:
        name, sep, number = v.partition("=")
        if not sep:
            raise SystemExit(f"{what}: expected GPU=NUMBER, got {v!r}")
        out[name] = float(number)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", type=int, default=8, help="GPUs generating in parallel (default 8)")
    p.add_argument("--backend", default="cogvideox", help=f"generator whose figures to use: {sorted(BACKENDS)}")
    p.add_argument("--speedup", help="scale by a published speed-up of that backend (compile, pab, ...)")
    p.add_argument("--list", action="store_true", help="print every figure with its source and exit")
    p.add_argument("--seconds-per-clip", action="append", default=[], metavar="GPU=S",
                   help="per-clip GPU-seconds (repeatable; default: the backend's published figures)")
    p.add_argument("--price", action="append", default=[], metavar="GPU=USD",
                   help="your USD per GPU-hour; adds a cost column (repeatable)")
    p.add_argument("--clips-per-class", type=int, default=CLIPS_PER_CLASS)
    p.add_argument("--from-run", metavar="RUN_DIR", help="use the mean gen_seconds measured in this run")
    p.add_argument("--gpu-name", default="measured", help="column label for --from-run")
    args = p.parse_args(argv)
    if args.list:
        print(sources_markdown())
        return 0
    if args.speedup and (args.from_run or args.seconds_per_clip):
        raise SystemExit("--speedup scales the published eager figures; a measured or given time already "
                         "includes the settings it was taken with")
    spc = _pairs(args.seconds_per_clip, "--seconds-per-clip") or seconds_per_clip(args.backend, args.speedup)
    if args.from_run:
        spc = {args.gpu_name: measured_seconds_per_clip(args.from_run)}
    print(dataset_markdown(spc, args.gpus, args.clips_per_class))
    print()
    print(markdown(spc, _pairs(args.price, "--price"), args.gpus, args.clips_per_class))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
