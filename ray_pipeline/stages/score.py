"""Score stage: CLIP scores every generated clip against every class name (Ray Data actors).

Per clip the actor decodes only the frames it samples (decord), embeds them with a
``transformers`` CLIPModel, averages the L2-normalised frame features, re-normalises, and compares
the video embedding with each class prompt. The stored row holds enough to recompute any
normalisation later: the raw cosine similarities and the logit scale, the softmax, its entropy H
(nats; the paper's eq. 3), p(intended class) and the prediction.

Manifest ``score/manifest`` (id ``score_id``): ``score_id, clip_id, class_index, class_name,
similarity (list<float>), logit_scale, probs (list<float>), entropy, entropy_max (= log K),
p_intended, predicted_index, predicted_class, scorer``.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ray_pipeline.cluster import init_ray, plan_actor_pool
from ray_pipeline.config import ExperimentConfig
from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.ray_data import run_actor_pool
from ray_pipeline.video_io import read_frames


def _pooled(output):
    # transformers v5 returns BaseModelOutputWithPooling from get_*_features; v4 a tensor.
    return output.pooler_output if hasattr(output, "pooler_output") else output


def resolve_model_path(model: str, cache_dir: str) -> str:
    """``world:clip`` names the procedural world's CLIP; anything else is a hub id or path."""
    if model == "world:clip":
        from ray_pipeline.world.clip import ensure_world_clip

        return str(ensure_world_clip(cache_dir))
    return model


class ClipScorer:
    """A CLIP model with its class-prompt text features computed once."""

    def __init__(self, model: str, class_names: list[str], template: str, num_frames: int,
                 device: str = "cpu", dtype: str = "float32", cache_dir: str | None = None) -> None:
        import torch
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        self.device, self.num_frames, self.class_names = device, num_frames, list(class_names)
        self.model = CLIPModel.from_pretrained(model, dtype=getattr(torch, dtype), cache_dir=cache_dir)
        self.model.to(device).eval()
        self.processor = CLIPImageProcessor.from_pretrained(model, cache_dir=cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(model, cache_dir=cache_dir)
        prompts = [template.format(c) for c in self.class_names]
        tokens = tokenizer(prompts, padding=True, return_tensors="pt").to(device)
        with torch.inference_mode():
            text = _pooled(self.model.get_text_features(**tokens)).float()
        self.text_features = torch.nn.functional.normalize(text, dim=-1)
        self.logit_scale = float(self.model.logit_scale.detach().exp())

    def video_features(self, clips: list[np.ndarray]) -> "torch.Tensor":  # noqa: F821
        """Mean of per-frame normalised embeddings, re-normalised: (B, D)."""
        import torch

        frames = [f for clip in clips for f in clip]
        pixels = self.processor(images=frames, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self.model.dtype)
        with torch.inference_mode():
            feats = _pooled(self.model.get_image_features(pixel_values=pixels)).float()
        feats = torch.nn.functional.normalize(feats, dim=-1)
        lengths = [len(c) for c in clips]
        per_clip = [chunk.mean(0) for chunk in torch.split(feats, lengths)]
        return torch.nn.functional.normalize(torch.stack(per_clip), dim=-1)

    def score(self, clips: list[np.ndarray], intended: list[int]) -> dict[str, list]:
        import torch

        video = self.video_features(clips)
        similarity = video @ self.text_features.T  # cosine, (B, K)
        probs = torch.softmax(self.logit_scale * similarity, dim=-1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
        predicted = probs.argmax(-1)
        p_intended = probs[torch.arange(len(clips)), torch.as_tensor(intended)]
        return {
            "similarity": similarity.cpu().numpy().astype(np.float32).tolist(),
            "probs": probs.cpu().numpy().astype(np.float32).tolist(),
            "entropy": entropy.cpu().numpy().astype(np.float64).tolist(),
            "p_intended": p_intended.cpu().numpy().astype(np.float64).tolist(),
            "predicted_index": predicted.cpu().numpy().astype(np.int32).tolist(),
        }


class ScoreActor:
    """Ray Data actor around :class:`ClipScorer`."""

    def __init__(self, torch_threads: int, **scorer_kwargs) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        self.scorer = ClipScorer(**scorer_kwargs)

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = self.scorer.num_frames
        clips = [read_frames(uri, num_segments=n) for uri in batch.column("video_uri").to_pylist()]
        intended = [int(i) for i in batch.column("class_index").to_pylist()]
        out = self.scorer.score(clips, intended)
        k = len(self.scorer.class_names)
        names = self.scorer.class_names
        columns = {
            "score_id": batch.column("score_id"), "clip_id": batch.column("clip_id"),
            "class_index": batch.column("class_index"), "class_name": batch.column("class_name"),
            "similarity": pa.array(out["similarity"], pa.list_(pa.float32())),
            "logit_scale": pa.array([self.scorer.logit_scale] * len(clips), pa.float64()),
            "probs": pa.array(out["probs"], pa.list_(pa.float32())),
            "entropy": pa.array(out["entropy"], pa.float64()),
            "entropy_max": pa.array([float(np.log(k))] * len(clips), pa.float64()),
            "p_intended": pa.array(out["p_intended"], pa.float64()),
            "predicted_index": pa.array(out["predicted_index"], pa.int32()),
            "predicted_class": pa.array([names[i] for i in out["predicted_index"]]),
            "scorer": batch.column("scorer"),
        }
        return pa.table(columns)


def class_names_for(cfg: ExperimentConfig) -> list[str]:
    if isinstance(cfg.prompts.classes, list):
        return list(cfg.prompts.classes)
    from ray_pipeline.prompts.classlists import get_class_names

    return get_class_names(cfg.prompts.classes)


def run_score(cfg: ExperimentConfig, store: RunStore, *, log: Callable[[str], None] = print) -> dict:
    """Score every generated clip not yet in the score manifest."""
    from ray_pipeline.stages.generate import current_clips

    clips = current_clips(cfg, store)
    class_names = class_names_for(cfg)
    model = resolve_model_path(cfg.score.model, str(cfg.resolved_cache_dir()))
    s = cfg.score
    scorer = row_id("scorer", model=s.model, template=s.prompt_template, num_frames=s.num_frames,
                    dtype=s.dtype, classes=class_names)
    ids = [row_id("score", clip_id=c, scorer=scorer) for c in clips.column("clip_id").to_pylist()]
    rows = clips.select(["clip_id", "class_index", "class_name", "video_uri"])
    rows = rows.append_column("score_id", pa.array(ids)).append_column(
        "scorer", pa.array([scorer] * rows.num_rows))
    manifest = store.manifest("score", "score_id")
    done = manifest.done_ids()
    todo = rows.filter(pc.invert(pc.is_in(rows.column("score_id"), pa.array(sorted(done), pa.string()))))
    resources = init_ray(cfg.ray)
    plan = plan_actor_pool(s.pool, resources, cfg.ray.reserve_cpus, "score")
    start = time.perf_counter()
    pool = run_actor_pool(
        "score", todo, ScoreActor,
        dict(torch_threads=plan.torch_threads, model=model, class_names=class_names,
             template=s.prompt_template, num_frames=s.num_frames, device=plan.device, dtype=s.dtype,
             cache_dir=cfg.generate.weights_cache),
        plan, s.pool.batch_size, manifest, total=rows.num_rows, done=rows.num_rows - todo.num_rows, log=log,
    )
    seconds = time.perf_counter() - start
    written = pool.written
    table = manifest.read()
    stats = {"rows": rows.num_rows, "rows_new": written, "seconds": seconds,
             "clips_per_s": written / seconds if written else 0.0}
    if table is not None and table.num_rows:
        entropy = np.asarray(table.column("entropy").to_pylist())
        correct = np.asarray(table.column("predicted_index").to_pylist()) == np.asarray(
            table.column("class_index").to_pylist())
        stats.update(entropy_mean=float(entropy.mean()), entropy_std=float(entropy.std()),
                     clip_top1=float(correct.mean()))
    return stats
