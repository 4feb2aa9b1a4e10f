"""Evaluate stage: zero-shot action recognition on every configured dataset split.

Each split is scored only against its own class names (HMDB-51/UCF-101: 3 test splits of all
classes; K600: 3 splits of 160 new classes each). A video is seen through ``num_clips`` random TSN
samples (TC-CLIP's 2 clips x 1 centre crop); per-view softmaxes are summed. Top-1 (and top-5) are
reported as mean and population std over splits, as TC-CLIP does. A video that cannot be decoded
is counted and reported, never fatal.

Models: the backbone as is (frame-averaged CLIP, "without generated data") when
``evaluate.baseline``, and the trained model of ``train/result.json`` when it exists.

Manifest ``evaluate/manifest`` (id ``eval_id``): ``eval_id, model, dataset, split, video, label,
predicted, top1, top5, error``. Summary: ``summary.json`` and ``summary.md`` in the run directory.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_pipeline.cluster import init_ray, plan_actor_pool
from ray_pipeline.config import ExperimentConfig
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore, local_copy
from ray_pipeline.stages.ray_data import run_actor_pool

BASELINE = "backbone (no generated data)"


class EvaluateActor:
    """Loads one model; scores batches of (video, split class names) rows."""

    def __init__(self, model_dir: str | None, backbone: str, num_frames: int, num_clips: int, seed: int,
                 class_names: dict[str, list[str]], device: str, torch_threads: int) -> None:
        import torch

        from ray_pipeline.models.base import build_video_text_model, load_video_text_model
        from ray_pipeline.training.data import Preprocess

        torch.set_num_threads(torch_threads)
        if model_dir:
            # A remote model (a run directory in a bucket) is fetched to a temporary folder on this
            # actor's node, loaded, and the copy dropped: everything needed is in memory then.
            with local_copy(model_dir) as local_dir:
                self.model = load_video_text_model(local_dir)
                # A trained model was fed the backbone's preprocessing (train uses
                # preprocess_from=backbone); its checkpoint holds no preprocessor_config.json.
                own = os.path.isfile(os.path.join(local_dir, "preprocessor_config.json"))
                self.pre = Preprocess.from_pretrained(local_dir if own else backbone)
        else:
            self.model = build_video_text_model("vificlip", backbone)
            self.pre = Preprocess.from_pretrained(backbone)
        self.model = self.model.to(device).eval()
        self.num_frames, self.num_clips, self.seed, self.device = num_frames, num_clips, seed, device
        self.class_names = class_names  # split key -> names

    def _views(self, video: str):
        import torch

        from ray_pipeline.training.data import clip_tensor
        from ray_pipeline.video_io import read_frames

        # Random TSN offsets per view (as TC-CLIP's multi-clip test), seeded per video: repeatable.
        rng = np.random.default_rng([self.seed, int(row_id("v", v=video), 16) % (2**32)])
        views = [read_frames(video, num_segments=self.num_frames, random=self.num_clips > 1, rng=rng)
                 for _ in range(self.num_clips)]
        return torch.stack([clip_tensor(v, self.pre, train=False) for v in views])

    def __call__(self, batch: pa.Table) -> pa.Table:
        import torch

        rows = batch.to_pylist()
        for row in rows:
            row.update(predicted=-1, top1=False, top5=False, error=None)
            try:
                pixels = self._views(row["video"]).to(self.device)
            except Exception as exc:  # unreadable or corrupt file: count it, go on
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            names = self.class_names[row["split_key"]]
            with torch.inference_mode():
                probs = self.model.class_logits(pixels, names).float().softmax(-1).sum(0)
            order = probs.argsort(descending=True).tolist()
            row.update(predicted=order[0], top1=order[0] == row["label"], top5=row["label"] in order[:5])
        return pa.Table.from_pylist(rows, schema=_OUT_SCHEMA)


_OUT_SCHEMA = pa.schema([
    ("eval_id", pa.string()), ("model", pa.string()), ("dataset", pa.string()), ("split", pa.string()),
    ("split_key", pa.string()), ("video", pa.string()), ("label", pa.int64()), ("predicted", pa.int64()),
    ("top1", pa.bool_()), ("top5", pa.bool_()), ("error", pa.string()),
])


def models_to_evaluate(cfg: ExperimentConfig, store: RunStore) -> list[tuple[str, str | None]]:
    """(label, model_dir) pairs; model_dir None is the untrained backbone."""
    models: list[tuple[str, str | None]] = []
    if cfg.evaluate.baseline:
        models.append((BASELINE, None))
    if store.exists("train/result.json"):
        result = json.loads(store.read_text("train/result.json"))
        models.append((f"{result['model']}+generated ({result['loss']}, {result['recipe']})", result["model_dir"]))
    return models


def summarize(table: pa.Table, cfg: ExperimentConfig) -> dict:
    """Per model and dataset: top-1 (top-5) per split, mean and population std over splits."""
    rows = table.to_pylist()
    summary: dict = {"models": {}}
    top5_for = {d.name: d.top5 for d in cfg.evaluate.datasets}
    for model in dict.fromkeys(r["model"] for r in rows):
        per_ds = {}
        for ds in dict.fromkeys(r["dataset"] for r in rows if r["model"] == model):
            splits = {}
            for r in rows:
                if r["model"] != model or r["dataset"] != ds:
                    continue
                s = splits.setdefault(r["split"], {"videos": 0, "corrupt": 0, "top1": 0, "top5": 0})
                if r["error"]:
                    s["corrupt"] += 1
                    continue
                s["videos"] += 1
                s["top1"] += int(r["top1"])
                s["top5"] += int(r["top5"])
            acc1 = [100.0 * s["top1"] / max(1, s["videos"]) for s in splits.values()]
            entry = {"top1_mean": float(np.mean(acc1)), "top1_std": float(np.std(acc1)), "num_splits": len(acc1),
                     "top1_per_split": dict(zip(splits, acc1)),
                     "videos": sum(s["videos"] for s in splits.values()),
                     "corrupt_videos": sum(s["corrupt"] for s in splits.values())}
            if top5_for.get(ds):
                acc5 = [100.0 * s["top5"] / max(1, s["videos"]) for s in splits.values()]
                entry.update(top5_mean=float(np.mean(acc5)), top5_std=float(np.std(acc5)))
            per_ds[ds] = entry
        summary["models"][model] = per_ds
    return summary


def summary_markdown(summary: dict) -> str:
    datasets = list(dict.fromkeys(d for m in summary["models"].values() for d in m))
    lines = ["| model | " + " | ".join(f"{d} top-1 (%)" for d in datasets) + " |",
             "|---|" + "---|" * len(datasets)]
    for model, per_ds in summary["models"].items():
        cells = []
        for d in datasets:
            e = per_ds.get(d)
            cells.append("–" if e is None else f"{e['top1_mean']:.1f} ± {e['top1_std']:.1f} ({e['num_splits']} splits)")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    corrupt = sum(e["corrupt_videos"] for m in summary["models"].values() for e in m.values())
    lines.append("")
    lines.append(f"Zero-shot top-1, mean ± population std over splits; unreadable videos skipped: {corrupt}.")
    return "\n".join(lines) + "\n"


def run_evaluate(cfg: ExperimentConfig, store: RunStore, *, log: Callable[[str], None] = print) -> dict:
    from ray_pipeline.evaluation.datasets import load_splits
    from ray_pipeline.stages.score import resolve_model_path

    ev = cfg.evaluate
    if not ev.datasets:
        log("[evaluate] no evaluate.datasets configured: nothing to do")
        return {"rows": 0}
    backbone = resolve_model_path(cfg.train.backbone, str(cfg.resolved_cache_dir()))
    num_frames = ev.num_frames or cfg.train.num_frames
    manifest = store.manifest("evaluate", "eval_id")
    resources = init_ray(cfg.ray)
    plan = plan_actor_pool(ev.pool, resources, cfg.ray.reserve_cpus, "evaluate")
    splits = [(ds, split) for ds in ev.datasets for split in load_splits(ds, cfg)]
    class_names = {f"{ds.name}/{split.name}": split.class_names for ds, split in splits}
    start = time.perf_counter()
    written = 0
    wanted: set[str] = set()
    for label, model_dir in models_to_evaluate(cfg, store):
        model_key = row_id("eval-model", model=model_dir or backbone, frames=num_frames, clips=ev.num_clips,
                           seed=ev.seed)
        rows = [{"eval_id": row_id("eval", m=model_key, d=ds.name, s=split.name, v=v),
                 "model": label, "dataset": ds.name, "split": split.name, "split_key": f"{ds.name}/{split.name}",
                 "video": v, "label": int(y)}
                for ds, split in splits for v, y in zip(split.videos, split.labels)]
        table = pa.Table.from_pylist(rows)
        wanted.update(table.column("eval_id").to_pylist())
        done = manifest.done_ids()
        todo = table.filter(pc.invert(pc.is_in(table.column("eval_id"), pa.array(sorted(done), pa.string()))))
        log(f"[evaluate] {label}: {table.num_rows} videos over {len(splits)} splits")
        written += run_actor_pool(
            "evaluate", todo, EvaluateActor,
            dict(model_dir=model_dir, backbone=backbone, num_frames=num_frames, num_clips=ev.num_clips,
                 seed=ev.seed, class_names=class_names, device=plan.device, torch_threads=plan.torch_threads),
            plan, ev.pool.batch_size, manifest, total=table.num_rows, done=table.num_rows - todo.num_rows,
            log=log).written
    results = manifest.require("evaluation rows")
    results = results.filter(pc.is_in(results.column("eval_id"), pa.array(sorted(wanted), pa.string())))
    summary = summarize(results, cfg)
    summary["protocol"] = {"num_clips": ev.num_clips, "num_frames": num_frames, "std": "population (ddof=0)"}
    store.write_text("summary.json", json.dumps(summary, indent=2))
    store.write_text("summary.md", summary_markdown(summary))
    log("[evaluate] summary:\n" + summary_markdown(summary))
    metrics = {"rows_new": written, "seconds": time.perf_counter() - start}
    for i, (model, per_ds) in enumerate(summary["models"].items()):
        for ds, e in per_ds.items():
            metrics[f"{ds}.model{i}.top1_mean"] = e["top1_mean"]
            metrics[f"{ds}.model{i}.top1_std"] = e["top1_std"]
    return metrics
