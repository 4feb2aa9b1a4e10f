"""Zero-shot action recognition (the paper's Table 1, and the ablations of Tables 6-7).

Recipe: prompts -> generate -> score -> train -> evaluate. The target datasets' class names are all
the task knows of them; the model never trains on their videos. Each evaluation split is scored
against its own class names; top-1 (and top-5 where configured) per split, then mean, population
std and a 95 % CI over splits (one training seed per run; sweeps carry the seeds).

Rows of ``summary.json``: ``backbone`` (the pretrained CLIP untrained: vanilla CLIP's role) and the
models the train stage handed on: ``baseline`` (TC-CLIP trained on the source dataset: the paper's
"TC-CLIP" row) and ``generated`` (trained further on the generated clips: "+Ours"). Comparisons,
paired by split: each trained model against the backbone, and the generated-data model against
the baseline.
"""

from __future__ import annotations

from typing import Any

from ray_pipeline.evaluation.metrics import split_counts
from ray_pipeline.evaluation.statistics import describe, paired_difference
from ray_pipeline.models.resolve import resolve_model_path
from ray_pipeline.stages.base import Inputs, Stage
from ray_pipeline.tasks.base import DATA_STAGES, Task, build_data_stage, class_entries, generated_data_figures


class ZeroShotTask(Task):
    name = "zero_shot"
    stage_names = ("prompts", "generate", "score", "train", "evaluate")

    def build(self, name: str) -> Stage:
        cfg = self.cfg
        cache_dir = str(cfg.resolved_cache_dir())
        if name in DATA_STAGES:
            return build_data_stage(cfg, name)
        if name == "train":
            from ray_pipeline.stages.train import TrainStage

            return TrainStage(cfg, [e.name for e in class_entries(cfg)],
                              resolve_model_path(cfg.train.backbone, cache_dir))
        if name == "evaluate":
            from ray_pipeline.evaluation.datasets import load_splits
            from ray_pipeline.stages.evaluate import EvaluateStage

            splits = [(ds.name, split) for ds in cfg.evaluate.datasets for split in load_splits(ds, cfg)]
            # An X-CLIP backbone is evaluated as the X-CLIP it is; a CLIP one as frame-averaged CLIP.
            backbone_model = "xclip" if cfg.train.model == "xclip" else "vificlip"
            return EvaluateStage(cfg.evaluate, splits, resolve_model_path(cfg.train.backbone, cache_dir),
                                 cfg.evaluate.num_frames or cfg.train.num_frames, backbone_model)
        raise KeyError(f"zero_shot has no stage {name!r}; stages: {', '.join(self.stage_names)}")

    # ---------------------------------------------------------------- summary
    def summarize(self, results: Inputs) -> dict[str, Any]:
        ev = results["evaluate"].rows
        counts = split_counts(ev)
        roles = dict(zip(ev.column("model").to_pylist(), ev.column("role").to_pylist()))
        top5 = {d.name: d.top5 for d in self.cfg.evaluate.datasets}
        seed = self.cfg.train.seed
        rows, cells = [], {}
        for label, per_ds in counts.items():
            role = roles[label]
            datasets: dict[str, Any] = {}
            for ds, splits in per_ds.items():
                names = sorted(splits)
                entry: dict[str, Any] = {}
                for k, metric in ((1, "top1"), (5, "top5")):
                    if k == 5 and not top5.get(ds):
                        continue
                    c = {(seed, s): splits[s].accuracy(k) for s in names}
                    cells[(label, ds, metric)] = c
                    entry[metric] = describe(c)
                entry["videos"] = sum(splits[s].videos for s in names)
                entry["corrupt_videos"] = sum(splits[s].corrupt for s in names)
                datasets[ds] = entry
            rows.append({"label": label, "role": role, "seeds": [] if role == "backbone" else [seed],
                         "datasets": datasets})
        comparisons = []
        first = {role: next((r["label"] for r in rows if r["role"] == role), None) for role in ("backbone", "baseline")}
        for row in rows:
            # Every trained model against CLIP untrained; generated-data models also against the
            # same recipe without generated data (the paper's comparison).
            refs = [first["backbone"]] + ([first["baseline"]] if row["role"] in ("generated", "ablation") else [])
            for ref in refs:
                if ref is None or ref == row["label"]:
                    continue
                for ds in row["datasets"]:
                    for metric in ("top1", "top5"):
                        a, b = cells.get((row["label"], ds, metric)), cells.get((ref, ds, metric))
                        if a and b:
                            comparisons.append({"a": row["label"], "b": ref, "metric": metric, "dataset": ds,
                                                **paired_difference(a, b)})
        data = generated_data_figures(results)
        ev_cfg = self.cfg.evaluate
        return {
            "task": self.name, "rows": rows, "comparisons": comparisons, "data": data,
            "protocol": {"num_clips": ev_cfg.num_clips, "num_frames": ev_cfg.num_frames or self.cfg.train.num_frames,
                         "views": f"{ev_cfg.num_clips} clips x 1 crop", "std": "population (ddof=0)",
                         "ci95": "Student-t over splits (one training seed)", "metric_unit": "percent"},
        }

    def summary_markdown(self, summary: dict[str, Any]) -> str:
        rows = summary["rows"]
        datasets = list(dict.fromkeys(d for r in rows for d in r["datasets"]))
        lines = ["| model | role | " + " | ".join(f"{d} top-1 (%)" for d in datasets) + " |",
                 "|---|---|" + "---|" * len(datasets)]
        for r in rows:
            cells = []
            for d in datasets:
                m = r["datasets"].get(d, {}).get("top1")
                cells.append("–" if m is None else format_metric(m))
            lines.append(f"| {r['label']} | {r['role']} | " + " | ".join(cells) + " |")
        corrupt = sum(e.get("corrupt_videos", 0) for r in rows for e in r["datasets"].values())
        lines += ["", f"Zero-shot top-1, mean ± population std over splits [95 % CI]; unreadable videos skipped: "
                  f"{corrupt}."]
        for c in summary.get("comparisons", []):
            if c["metric"] != "top1":
                continue
            lines.append(f"- {c['dataset']}: {c['a']} − {c['b']} = {format_difference(c)}")
        return "\n".join(lines) + "\n"


def format_metric(m: dict[str, Any]) -> str:
    """``41.2 ± 1.1 [39.9, 42.5] (3 splits)``; no CI for a single cell."""
    ci = f" [{m['ci95'][0]:.1f}, {m['ci95'][1]:.1f}]" if m.get("ci95") else ""
    return f"{m['mean']:.1f} ± {m['std']:.1f}{ci} (n={m['n']})"


def format_difference(c: dict[str, Any]) -> str:
    """``+4.9 [1.2, 8.6], n=3 pairs`` plus "not significant" when the CI contains 0."""
    ci = c.get("ci95")
    text = f"{c['diff_mean']:+.1f}" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "") + f", {c['n_pairs']} pairs"
    if c.get("significant") is False:
        text += ", not significant"
    return text
