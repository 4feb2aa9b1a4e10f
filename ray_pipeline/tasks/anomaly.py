"""Weakly supervised abnormal action detection (the paper's Table 5: MIL, MIL + Ours on UCF-Crime).

Recipe, following Lv et al. (2023) as the paper does: prompts for the normal class and the 13
anomaly classes -> generated clips -> CLIP scores -> X-CLIP pre-trained on the clips with UL
(``train``, one phase) -> MIL on the real dataset's video-level labels, every video a bag of
``anomaly.num_segments`` segments (``mil``; the ranking head first embeds the training videos with
the frozen model, ``features``) -> segment scores of the test videos (``detect``) -> frame-level
AUC over all test videos and AUC_A over the anomalous ones (``summary.json``).

Rows: ``baseline`` (MIL on the backbone X-CLIP, no generated pre-training: the paper's "MIL") and
``generated`` (MIL on the pre-trained X-CLIP: "MIL+Ours"), each with ``auc`` and ``auc_a`` in
percent. One run is one seed (``train.seed`` seeds the pre-training and the MIL head); a sweep over
seeds gives the CIs. The paper's row is the ``topk_ce`` head (Lv et al. fine-tune X-CLIP-B/32);
``ranking`` is Sultani et al.'s scorer on frozen features (docs/models.md).

Segment scores become frame scores by the reference evaluation's rule
(:func:`~ray_pipeline.evaluation.anomaly.segment_to_frame_scores`, ``anomaly.clip_len`` frames per
unit), ground truth is 1-based inclusive (MIL/WSAL), AUCs pool frames over videos
(evaluation-protocols.md §5.3).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from ray_pipeline.config import AnomalyConfig, ConfigError, ExperimentConfig
from ray_pipeline.evaluation.statistics import describe, paired_difference
from ray_pipeline.models.resolve import resolve_model_path
from ray_pipeline.stages.base import Inputs, Stage
from ray_pipeline.tasks.base import DATA_STAGES, Task, build_data_stage, class_entries, generated_data_figures

WORLD_PREFIX = "world:world_ucf_crime/"
METRICS = ("auc", "auc_a")
METRIC_NAMES = {"auc": "AUC", "auc_a": "AUC_A"}


def resolve_anomaly_path(path: str, cfg: ExperimentConfig) -> Path:
    """A dataset path; ``world:world_ucf_crime/<sub>`` is inside the world's UCF-Crime, built on
    first use (``world.anomaly_sizes``) in ``cache_dir``."""
    if path.startswith(WORLD_PREFIX):
        from ray_pipeline.world.anomaly import ensure_world_anomaly

        return ensure_world_anomaly(cfg.resolved_cache_dir(), **cfg.world.anomaly_sizes) / path.split(":", 1)[1]
    return Path(os.path.expanduser(path))


class AnomalyTask(Task):
    name = "anomaly"
    stage_names = ("prompts", "generate", "score", "train", "features", "mil", "detect")
    summary_after = "detect"

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        if cfg.train.recipe != "synthetic":
            raise ConfigError(f"train.recipe: anomaly names its own phase (X-CLIP pre-trained on the generated "
                              f"clips); leave train.recipe at synthetic, got {cfg.train.recipe}")
        if self.section.head == "topk_ce":  # fine-tunes end to end: no frozen features
            self.stage_names = tuple(n for n in self.stage_names if n != "features")

    @property
    def section(self) -> AnomalyConfig:
        assert self.cfg.anomaly is not None  # the config requires the section for task anomaly
        return self.cfg.anomaly

    # ---------------------------------------------------------------- inputs
    def class_texts(self) -> tuple[list[str], int]:
        """What the top-k head scores segments against, and the normal one's index."""
        from ray_pipeline.training.mil_data import normal_index

        a = self.section
        texts = list(a.class_texts) if a.class_texts else [e.name for e in class_entries(self.cfg)]
        try:
            return texts, normal_index(texts, a.normal_class)
        except ValueError as exc:
            raise ConfigError(f"anomaly.normal_class: {exc}") from None

    @cached_property
    def backbone(self) -> str:
        return resolve_model_path(self.cfg.train.backbone, str(self.cfg.resolved_cache_dir()))

    @cached_property
    def sampling(self) -> Any:
        """Segments of the backbone's frame count (X-CLIP fixes it: cross-frame attention, MIT)."""
        from transformers import XCLIPConfig

        from ray_pipeline.training.mil_data import BagSampling

        frames = XCLIPConfig.from_pretrained(self.backbone).vision_config.num_frames
        if self.cfg.train.num_frames != frames:
            raise ConfigError(f"train.num_frames: {self.cfg.train.backbone} takes {frames} frames per clip, "
                              f"got {self.cfg.train.num_frames}")
        a = self.section
        return BagSampling(a.num_segments, frames, a.clip_len)

    @cached_property
    def dataset(self) -> dict[str, Any]:
        """Training videos (with labels) and annotated test videos, found under the video root."""
        from ray_pipeline.evaluation.anomaly import (
            index_videos,
            parse_anomaly_train_list,
            parse_temporal_annotations,
            resolve_videos,
        )
        from ray_pipeline.stages.detect import TestVideo
        from ray_pipeline.training.mil_data import BagVideo

        d = self.section.dataset
        train_list = resolve_anomaly_path(d.train_list, self.cfg)
        annotations_file = resolve_anomaly_path(d.annotations, self.cfg)
        index = index_videos(resolve_anomaly_path(d.video_root, self.cfg))
        train = parse_anomaly_train_list(train_list)
        annotations = parse_temporal_annotations(annotations_file)
        overlap = sorted({v.video for v in train} & set(annotations))
        if overlap:
            raise ConfigError(f"anomaly.dataset: {len(overlap)} videos are in both {train_list} and "
                              f"{annotations_file}, e.g. {overlap[:3]}")
        train_paths = resolve_videos([v.video for v in train], index, str(train_list))
        test_paths = resolve_videos(list(annotations), index, str(annotations_file))
        return {"train": [BagVideo(v.video, str(p), v.anomalous) for v, p in zip(train, train_paths, strict=True)],
                "test": [TestVideo(n, str(p)) for n, p in zip(annotations, test_paths, strict=True)],
                "annotations": annotations}

    # ---------------------------------------------------------------- stages
    def prepare(self) -> list[str]:
        # Builds the world's set (once, in cache_dir) or reads and checks the real files.
        data = self.dataset
        return [f"anomaly dataset {self.section.dataset.name} ({len(data['train'])} training, "
                f"{len(data['test'])} test videos)"]

    def phases(self) -> list:
        """One phase: the backbone pre-trained on the generated clips with the ``train`` section's
        loss (the paper's UL). It depends on nothing the MIL heads read, so it is shared by id
        (data store): runs and trials that differ only in the head or its settings train it once."""
        from ray_pipeline.stages.train import PhaseSpec

        t, p = self.cfg.train, self.cfg.prompts
        what = p.strategy.upper() if p.strategy == "ie" else p.strategy.capitalize()
        return [PhaseSpec("generated", "generated", loss=t.loss, role="generated", shared=True,
                          label=f"MIL + generated pre-training ({what}, {t.loss.upper()})")]

    def build(self, name: str) -> Stage:
        cfg = self.cfg
        if name not in self.stage_names:
            raise ConfigError(f"task anomaly (head {self.section.head}) has no stage {name!r}; stages: "
                              f"{', '.join(self.stage_names)}")
        if name in DATA_STAGES:
            return build_data_stage(cfg, name)
        if name == "train":
            from ray_pipeline.stages.train import TrainStage

            return TrainStage(cfg, [e.name for e in class_entries(cfg)], self.backbone, self.phases())
        texts, normal = self.class_texts()
        if name == "features":
            from ray_pipeline.stages.features import FeaturesStage

            return FeaturesStage(self.dataset["train"], self.backbone, cfg.train.model, self.sampling,
                                 self.section.pool)
        if name == "mil":
            from ray_pipeline.stages.mil import MilStage

            return MilStage(cfg, self.dataset["train"], self.backbone, self.sampling, texts, normal)
        from ray_pipeline.stages.detect import DetectStage

        return DetectStage(self.dataset["test"], self.backbone, cfg.train.model, self.sampling, texts, normal,
                           self.section.pool)

    # ---------------------------------------------------------------- summary
    def summarize(self, results: Inputs) -> dict[str, Any]:
        from ray_pipeline.evaluation.anomaly import frame_auc, segment_to_frame_scores

        rows_in = results["detect"].rows.to_pylist()
        annotations = self.dataset["annotations"]
        d = self.section.dataset
        seed = self.cfg.train.seed
        clip_len = self.section.clip_len
        by_model: dict[str, list[dict]] = {}
        for r in rows_in:
            by_model.setdefault(r["model"], []).append(r)
        mil = {r["model"]: r for r in results["mil"].rows.to_pylist()} if "mil" in results else {}
        rows, cells = [], {}
        for label, det in by_model.items():
            unreadable = sorted(r["video"] for r in det if r["error"] is not None)
            scores = {r["video"]: segment_to_frame_scores(r["scores"], r["num_frames"], clip_len)
                      for r in det if r["error"] is None}
            kept = {v: iv for v, iv in annotations.items() if v not in unreadable}
            aucs = frame_auc(scores, kept)
            entry: dict[str, Any] = {}
            for metric in METRICS:
                c = {(seed, "test"): 100.0 * aucs[metric]}
                cells[(label, metric)] = c
                entry[metric] = describe(c)
            entry.update(videos=len(kept), anomalous_videos=sum(bool(iv) for iv in kept.values()),
                         frames=int(sum(len(s) for v, s in scores.items() if v in kept)),
                         corrupt_videos=len(unreadable))
            if unreadable:
                entry["corrupt"] = unreadable[:20]
            m = mil.get(label, {})
            rows.append({"label": label, "role": det[0]["role"], "seeds": [seed], "head": det[0]["head"],
                         "final_loss": m.get("final_loss"), "datasets": {d.name: entry}})
        rows.sort(key=lambda r: (r["role"] != "baseline", r["label"]))
        comparisons = []
        baseline = next((r["label"] for r in rows if r["role"] == "baseline"), None)
        for row in rows:
            if baseline is None or row["label"] == baseline:
                continue
            for metric in METRICS:
                comparisons.append({"a": row["label"], "b": baseline, "metric": metric, "dataset": d.name,
                                    **paired_difference(cells[(row["label"], metric)], cells[(baseline, metric)])})
        data = generated_data_figures(results)
        a = self.section
        texts, normal = self.class_texts()
        return {
            "task": self.name, "rows": rows, "comparisons": comparisons, "data": data,
            "protocol": {
                "head": a.head, "num_segments": a.num_segments, "clip_len": clip_len,
                "frames_per_segment": self.sampling.frames_per_segment, "model": self.cfg.train.backbone,
                "class_texts": texts, "normal_class": texts[normal],
                "frame_scores": "segment scores spread over their clip units' frames (Evaluate_Anomaly_Detector.m)",
                "ground_truth": "1-based inclusive intervals", "auc": "frame-level ROC-AUC over all test videos",
                "auc_a": "frame-level ROC-AUC over the anomalous test videos", "std": "population (ddof=0)",
                "ci95": "Student-t over seeds (a sweep); one run is one seed: no CI", "metric_unit": "percent"},
        }

    def summary_markdown(self, summary: dict[str, Any]) -> str:
        rows = summary["rows"]
        ds = next(iter(rows[0]["datasets"])) if rows else "?"
        lines = [f"| method | role | {ds} AUC (%) | {ds} AUC_A (%) |", "|---|---|---|---|"]
        for r in rows:
            e = r["datasets"].get(ds, {})
            cells = [format_auc(e.get(m)) for m in METRICS]
            lines.append(f"| {r['label']} | {r['role']} | " + " | ".join(cells) + " |")
        p = summary["protocol"]
        corrupt = sum(e.get("corrupt_videos", 0) for r in rows for e in r["datasets"].values())
        seeds = rows[0]["seeds"] if rows else []
        lines += ["", f"Frame-level AUC over all test videos and AUC_A over the anomalous ones (percent); head "
                  f"{p['head']}, {p['num_segments']} segments x {p['frames_per_segment']} frames, seeds {seeds}; "
                  f"unreadable videos skipped: {corrupt}."]
        for c in summary.get("comparisons", []):
            lines.append(f"- {c['a']} − {c['b']}: {METRIC_NAMES[c['metric']]} {c['diff_mean']:+.2f}"
                         + (f" [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if c.get("ci95") else "")
                         + f", {c['n_pairs']} pair(s)")
        return "\n".join(lines) + "\n"


def format_auc(m: dict[str, Any] | None) -> str:
    """``81.80`` for one seed, ``81.80 ± 0.52 [81.1, 82.5] (n=3)`` over several; ``–`` if absent."""
    if m is None:
        return "–"
    if m["n"] == 1:
        return f"{m['mean']:.2f}"
    ci = f" [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]" if m.get("ci95") else ""
    return f"{m['mean']:.2f} ± {m['std']:.2f}{ci} (n={m['n']})"
