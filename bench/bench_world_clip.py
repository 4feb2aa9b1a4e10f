"""The procedural world's headline numbers (docs/world.md): what its CLIP knows and what the
procedural generator's failures and prompt strategies do to it.

Run: ``python bench/bench_world_clip.py [--cache DIR] [--target-per-class 15]``. Prints:

1. zero-shot top-1 of the world CLIP on world_hmdb and world_ucf, per test split (mean ± population
   std over the three splits, as TC-CLIP reports), against chance, and split by classes the source
   dataset has vs classes only the target has;
2. the mean CLIP entropy over world_hmdb's class names of failed vs good generated clips;
3. the diversity of Basic vs IE generated clips in CLIP feature space (mean within-class pairwise
   cosine distance, and the Davies-Bouldin index of the class clusters);
4. how long the datasets took to build.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import davies_bouldin_score

from ray_pipeline.config import ProceduralConfig
from ray_pipeline.generators.procedural import ProceduralGenerator
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

TEMPLATE = "a video of a person {}."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="where to build the datasets (default: a temp dir)")
    ap.add_argument("--target-per-class", type=int, default=15)
    ap.add_argument("--clip", default=None, help="a world CLIP directory (default: the shipped one)")
    args = ap.parse_args()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="world_bench_"))
    t0 = time.time()
    root = ensure_world_datasets(cache, source_train_per_class=1, source_val_per_class=1,
                                 target_per_class=args.target_per_class, clips_per_group=3)
    print(f"datasets at {root} ({time.time() - t0:.1f}s)")
    path = args.clip or ensure_world_clip(None)
    model, tokenizer, processor = load_world_clip(path)

    print("\n1. zero-shot top-1, template", repr(TEMPLATE))
    print(f"{'dataset':<12}{'split1':>8}{'split2':>8}{'split3':>8}{'mean±std':>14}{'chance':>8}"
          f"{'in source':>11}{'target-only':>13}")
    for name in ("world_hmdb", "world_ucf"):
        d = root / name
        classes = read_labels(d)
        temb = text_embeddings(model, tokenizer, [TEMPLATE.format(c) for c in classes])
        only = {classes.index(c) for c in target_only_classes(name)}
        accs, hits, labels = [], [], []
        for k in (1, 2, 3):
            rows = read_split(d, f"val{k}")
            clips = [read_frames(str(p), num_segments=8) for p, _ in rows]
            pred = (video_embeddings(model, processor, clips) @ temb.T).argmax(-1).numpy()
            y = np.array([lab for _, lab in rows])
            accs.append(float((pred == y).mean()))
            hits += list(pred == y)
            labels += list(y)
        hits, labels = np.array(hits), np.array(labels)
        mask = np.isin(labels, list(only))
        print(f"{name:<12}" + "".join(f"{100 * a:>8.1f}" for a in accs)
              + f"{100 * np.mean(accs):>8.1f}±{100 * np.std(accs):<5.1f}{100 / len(classes):>8.1f}"
              + f"{100 * hits[~mask].mean():>11.1f}{100 * hits[mask].mean():>13.1f}")

    classes = WORLD_CLASS_LISTS["world_hmdb"]
    temb = text_embeddings(model, tokenizer, [TEMPLATE.format(c) for c in classes])
    gen = ProceduralGenerator(ProceduralConfig(failure_rate=0.5))
    prompts, seeds = [], []
    for k, cls in enumerate(classes):
        for i, p in enumerate(ie_prompts(cls, 10)):
            prompts.append(p)
            seeds.append(10_000 + 100 * k + i)
    clips = gen.generate(prompts, seeds)
    emb = video_embeddings(model, processor, [c[segment_indices(len(c), 8)] for c in clips])
    h = entropy(class_probabilities(model, emb, temb)).numpy()
    modes = np.array([gen.failure_of(s) or "good" for s in seeds])
    print(f"\n2. CLIP entropy over {len(classes)} world_hmdb class names (max {np.log(len(classes)):.2f}), "
          f"IE prompts, failure_rate 0.5")
    for m in ("good", "frozen", "wrong", "garbled"):
        print(f"   {m:<8} n={int((modes == m).sum()):>4}  mean entropy {h[modes == m].mean():.3f}")
    print(f"   failed (all) mean {h[modes != 'good'].mean():.3f} vs good {h[modes == 'good'].mean():.3f}")

    print("\n3. diversity of generated clips in CLIP feature space (world_hmdb classes, 10 clips each)")
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


if __name__ == "__main__":
    main()
