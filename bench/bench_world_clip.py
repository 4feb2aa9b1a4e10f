"""The world CLIP in vanilla CLIP's role (docs/world.md): what it knows zero-shot, and how well its
entropy finds the procedural generator's failed clips.

Run::

    python bench/bench_world_clip.py [--clip DIR] [--clips RUN_DIR] [--cache DIR]

Prints:

1. zero-shot top-1 on world_hmdb and world_ucf (the quickstart's datasets, ``world.sizes``
   defaults), measured as the evaluate stage measures the backbone: ViFi-CLIP on the CLIP
   (``build_video_text_model("vificlip", DIR)``, prompt "a photo of a {}."), 2 random TSN views of
   8 frames per video seeded by its path below the dataset, softmaxes summed; per test split, mean ± population
   std, and split into classes the source dataset (world_k400) has vs target-only classes;
2. the failure AUROC: on generated clips (``RUN_DIR``'s generate manifest; without ``--clips``,
   the quickstart's 464 clips made here with ``ray-pipeline prompts`` and ``generate``), the CLIP
   entropy over world_hmdb's class names computed as the score stage does (8 centre frames,
   "a video of a person {}.", softmax at the learned logit scale), against the generator's
   ``failure_of(seed)``: ``sklearn.metrics.roc_auc_score(failed, entropy)``, also per failure mode;
3. the diversity of Basic vs IE generated clips in CLIP feature space (mean within-class pairwise
   cosine distance and the Davies-Bouldin index of the class clusters).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from sklearn.metrics import davies_bouldin_score, roc_auc_score

from ray_pipeline.config import ProceduralConfig
from ray_pipeline.generators.procedural import ProceduralGenerator
from ray_pipeline.stages.evaluate import view_rng
from ray_pipeline.video_io import read_frames, segment_indices
from ray_pipeline.world.clip import (
    class_probabilities,
    ensure_world_clip,
    entropy,
    load_world_clip,
    text_embeddings,
    video_embeddings,
)
from ray_pipeline.world.datasets import ensure_world_datasets, read_labels, read_split
from ray_pipeline.world.vocabulary import ACTION_BY_NAME, WORLD_CLASS_LISTS, ie_prompts, target_only_classes

SCORE_TEMPLATE = "a video of a person {}."  # score.prompt_template's default
QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"


def zero_shot(clip_dir: str | os.PathLike, dataset_dir: str | os.PathLike, num_clips: int = 2,
              num_frames: int = 8, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Zero-shot hits of the CLIP as the evaluate stage scores its backbone, per test split.

    Args:
        clip_dir: a world CLIP directory.
        dataset_dir: a world target dataset (``ROOT/world_hmdb``).
        num_clips: random TSN views per video; their softmaxes are summed.
        num_frames: frames per view.
        seed: the evaluate stage's seed (views are seeded by it and the video path).

    Returns:
        ``{split: {"hit": bool array, "label": int array}}`` for ``val1``..``val3``.
    """
    import torch

    from ray_pipeline.models.base import build_video_text_model
    from ray_pipeline.training.data import Preprocess, clip_tensor

    model = build_video_text_model("vificlip", str(clip_dir)).eval()
    pre = Preprocess.from_pretrained(str(clip_dir))
    names = read_labels(dataset_dir)
    out = {}
    for k in (1, 2, 3):
        rows = read_split(dataset_dir, f"val{k}")
        hits = []
        for path, label in rows:
            video = str(path)
            rng = view_rng(seed, os.path.relpath(video, Path(dataset_dir) / "videos"))
            views = [read_frames(video, num_segments=num_frames, random=num_clips > 1, rng=rng)
                     for _ in range(num_clips)]
            pixels = torch.stack([clip_tensor(v, pre, train=False) for v in views])
            with torch.inference_mode():
                probs = model.class_logits(pixels, names).float().softmax(-1).sum(0)
            hits.append(int(probs.argmax()) == label)
        out[f"val{k}"] = {"hit": np.array(hits), "label": np.array([y for _, y in rows])}
    return out


def generated_entropy(clip_dir: str | os.PathLike, run_dir: str | os.PathLike, failure_rate: float,
                      num_frames: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Score-stage entropy of every clip in ``run_dir``'s generate manifest, and its failure mode.

    Args:
        clip_dir: a world CLIP directory.
        run_dir: a run (or data) directory with ``generate/manifest`` of procedural clips.
        failure_rate: the generator's ``failure_rate`` (the quickstart's: 0.1).
        num_frames: frames per clip (the score stage's ``num_frames``).

    Returns:
        (entropy in nats, failure mode per clip: ``"good"``, ``"frozen"``, ``"wrong"``, ``"garbled"``).
    """
    table = pq.read_table(Path(run_dir) / "generate" / "manifest").to_pandas().drop_duplicates("clip_id")
    model, tokenizer, processor = load_world_clip(clip_dir)
    temb = text_embeddings(model, tokenizer, [SCORE_TEMPLATE.format(c) for c in WORLD_CLASS_LISTS["world_hmdb"]])
    clips = [read_frames(uri, num_segments=num_frames) for uri in table["video_uri"]]
    h = entropy(class_probabilities(model, video_embeddings(model, processor, clips), temb)).numpy()
    gen = ProceduralGenerator(ProceduralConfig(failure_rate=failure_rate))
    modes = np.array([gen.failure_of(int(s)) or "good" for s in table["seed"]])
    return h, modes


def make_quickstart_clips(out: Path) -> None:
    """The quickstart's generated clips, made by the real prompts and generate stages."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stage in ("prompts", "generate"):
        subprocess.run([sys.executable, "-m", "ray_pipeline", stage, str(QUICKSTART), "--run-dir", str(out)],
                       check=True, env=env, stdout=subprocess.DEVNULL)


def diversity(clip_dir: str | os.PathLike) -> None:
    """Basic vs IE prompts: within-class spread and Davies-Bouldin of CLIP features."""
    model, _, processor = load_world_clip(clip_dir)
    classes = WORLD_CLASS_LISTS["world_hmdb"]
    good = ProceduralGenerator(ProceduralConfig(failure_rate=0.0))
    for strategy in ("basic", "ie"):
        feats, labels = [], []
        for k, cls in enumerate(classes):
            ps = ([f"A person is {ACTION_BY_NAME[cls].gerund}."] * 10 if strategy == "basic"
                  else ie_prompts(cls, 10, k))
            cl = good.generate(ps, list(range(100 * k, 100 * k + 10)))
            feats.append(video_embeddings(model, processor, [c[segment_indices(len(c), 8)] for c in cl]).numpy())
            labels += [k] * 10
        x, y = np.concatenate(feats), np.array(labels)
        within = np.mean([1 - (f @ f.T)[~np.eye(len(f), dtype=bool)].mean() for f in feats])
        print(f"   {strategy:<6} mean within-class pairwise cosine distance {within:.4f}, "
              f"Davies-Bouldin {davies_bouldin_score(x, y):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=None, help="a world CLIP directory (default: the shipped one)")
    ap.add_argument("--clips", default=None, help="a run directory with generated clips (default: make the "
                    "quickstart's in a temporary directory)")
    ap.add_argument("--failure-rate", type=float, default=0.1, help="the generator's failure_rate for --clips")
    ap.add_argument("--cache", default="~/.cache/ray_pipeline", help="where the world's datasets are built")
    ap.add_argument("--skip-diversity", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    path = args.clip or ensure_world_clip(None)
    t0 = time.time()
    root = ensure_world_datasets(os.path.expanduser(args.cache))
    print(f"CLIP {path}\ndatasets {root} ({time.time() - t0:.1f}s)")

    print("\n1. zero-shot top-1 (%), ViFi-CLIP on the CLIP, 'a photo of a {}.', 2 views x 8 frames")
    print(f"{'dataset':<12}{'val1':>7}{'val2':>7}{'val3':>7}{'mean ± std':>14}{'chance':>8}"
          f"{'in source':>11}{'target-only':>13}")
    for name in ("world_hmdb", "world_ucf"):
        t0 = time.time()
        res = zero_shot(path, root / name)
        names = read_labels(root / name)
        only = [names.index(c) for c in target_only_classes(name)]
        accs = [100 * r["hit"].mean() for r in res.values()]
        hit = np.concatenate([r["hit"] for r in res.values()])
        lab = np.concatenate([r["label"] for r in res.values()])
        rare = np.isin(lab, only)
        print(f"{name:<12}" + "".join(f"{a:>7.1f}" for a in accs)
              + f"{np.mean(accs):>8.1f} ± {np.std(accs):<4.1f}{100 / len(names):>8.1f}"
              + f"{100 * hit[~rare].mean():>11.1f}{100 * hit[rare].mean():>13.1f}   ({time.time() - t0:.0f}s)")

    if args.clips:
        run_dir, rate = Path(args.clips), args.failure_rate
    else:
        run_dir, rate = Path(tempfile.mkdtemp(prefix="world_clip_bench_")), 0.1
        t0 = time.time()
        make_quickstart_clips(run_dir)
        print(f"\nquickstart clips made in {run_dir} ({time.time() - t0:.0f}s)")
    h, modes = generated_entropy(path, run_dir, rate)
    failed = modes != "good"
    print(f"\n2. failure AUROC of the score stage's entropy over world_hmdb's {len(WORLD_CLASS_LISTS['world_hmdb'])} "
          f"class names (max {np.log(29):.2f} nats), {len(h)} clips, {int(failed.sum())} failed")
    print(f"   all failures: AUROC {roc_auc_score(failed, h):.3f}; mean entropy failed {h[failed].mean():.3f} "
          f"vs good {h[~failed].mean():.3f}")
    for m in ("frozen", "wrong", "garbled"):
        sel = (modes == m) | ~failed
        if (modes == m).any():
            auroc = roc_auc_score(modes[sel] == m, h[sel])
            print(f"   {m:<8} n={int((modes == m).sum()):>3}  AUROC vs good {auroc:.3f}"
                  f"  mean entropy {h[modes == m].mean():.3f}")

    if not args.skip_diversity:
        print("\n3. diversity of generated clips in CLIP feature space (world_hmdb classes, 10 clips each)")
        diversity(path)


if __name__ == "__main__":
    main()
