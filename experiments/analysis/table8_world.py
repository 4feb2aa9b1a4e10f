"""Table 8 in the world: Basic vs IE generated sets against world_hmdb and world_ucf, over seeds.

    .venv/bin/python experiments/analysis/table8_world.py --out runs/table8-world \
        [--seeds 0 1 2] [--figure docs/img/table8_world_tsne.png]

Per seed: the data stages (prompts, generate, score) of ``table8_world.yaml`` with
``prompts.strategy`` basic and ie (run directories ``OUT/<strategy>-seed<k>``, clips and features in
one shared ``OUT/data``), then ``ray-pipeline analyze`` of the IE run with the Basic run compared
(``OUT/ie-seed<k>/analysis/``: metrics.json, tsne.png, quality.html). Then Table 8 as mean ±
population std over seeds (``OUT/table8.md``, ``OUT/table8.json``) and seed 0's t-SNE picture
(``OUT/tsne.png``, and ``--figure``). Rerunning skips everything already done (rows and features
are content-addressed); after a new world CLIP lands, the same command measures it afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from ray_pipeline.analysis.command import analyze  # noqa: E402
from ray_pipeline.analysis.compare import aggregate_over_seeds  # noqa: E402
from ray_pipeline.analysis.outputs import TSNE_PNG  # noqa: E402
from ray_pipeline.analysis.report import paper_table8_rows, table8_rows  # noqa: E402
from ray_pipeline.cluster import Cluster  # noqa: E402
from ray_pipeline.config import ExperimentConfig, load_config  # noqa: E402
from ray_pipeline.console import Console, run_console  # noqa: E402
from ray_pipeline.pipeline import Pipeline  # noqa: E402
from ray_pipeline.runstore import RunStore  # noqa: E402
from ray_pipeline.tracking import RunTracker  # noqa: E402

CONFIG = Path(__file__).with_name("table8_world.yaml")
DATA_STAGES = ["prompts", "generate", "score"]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def tracked(cfg: ExperimentConfig, store: RunStore, command: str, console: Console, cluster: Cluster,
            work: list[str] | None = None, compare: list[str] | None = None) -> None:
    """One command on one run directory, tracked in its MLflow like the CLI's."""
    store.write_text("config.yaml", cfg.to_yaml())
    tracker = RunTracker(cfg, store, command)
    ok = False
    try:
        if command == "analyze":
            analyze(cfg, store, compare or [], console, tracker=tracker, cluster=cluster)
        else:
            Pipeline(cfg, store, console, tracker=tracker, cluster=cluster).run(work, until="score")
        ok = True
    finally:
        tracker.end(tracker.parent, ok)


def seed_figures(per_seed: list[dict], name: str) -> dict[str, dict]:
    """Failure AUROC and within-class diversity of generated set ``name``, mean ± std over seeds."""
    out = {}
    for key in ("failure_auroc", "diversity", "failed_clips"):
        values = [m["generated"][name][key] for m in per_seed if m["generated"][name][key] is not None]
        if values:
            arr = np.asarray(values, dtype=np.float64)
            out[key] = {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size),
                        "values": [float(v) for v in arr]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where the runs, shared data and tables go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--figure", help="also copy seed 0's t-SNE picture here (e.g. docs/img/...)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config overrides for every run (e.g. generate.clips_per_class=8)")
    args = parser.parse_args()
    out = RunStore(args.out)
    data_dir = out.uri("data")
    started = time.perf_counter()
    per_seed: list[dict] = []
    with run_console(out, "table8", verbose=False) as console:
        cluster = None
        try:
            for seed in args.seeds:
                runs = {}
                for strategy in ("basic", "ie"):
                    overrides = [f"seed={seed}", f"prompts.strategy={strategy}", f"data_dir={data_dir}",
                                 f"name=table8-world-{strategy}-seed{seed}"]
                    cfg = load_config(CONFIG, [*args.set, *overrides])
                    cluster = cluster or Cluster(cfg.ray)
                    store = RunStore(out.uri(f"{strategy}-seed{seed}"))
                    console.line(f"[table8] seed {seed}, {strategy}: data stages in {store.root}")
                    tracked(cfg, store, "data", console, cluster, work=DATA_STAGES)
                    runs[strategy] = (cfg, store)
                cfg, store = runs["ie"]
                tracked(cfg, store, "analyze", console, cluster, compare=[runs["basic"][1].root])
                per_seed.append(json.loads(store.read_text("analysis/metrics.json")))
                if seed == args.seeds[0]:
                    picture = store.read_bytes(TSNE_PNG)
        finally:
            if cluster is not None:
                cluster.close()
        table = aggregate_over_seeds(per_seed)
        generated = {name: seed_figures(per_seed, name) for name in per_seed[0]["generated"]}
        out.write_text("table8.json", json.dumps({"table8": table, "generated": generated,
                                                  "seeds": args.seeds}, indent=2))
        header, rows = table8_rows(table)
        extra = [[name, *(f"{g[k]['mean']:.3f} ± {g[k]['std']:.3f}" if k in g else "–"
                          for k in ("failure_auroc", "diversity"))] for name, g in generated.items()]
        text = "\n\n".join([
            f"Table 8 in the world, mean ± population std over seeds {args.seeds} "
            f"(clip seeds; the real sets do not change with them):",
            markdown(header, rows),
            markdown(["Generated set", "failure AUROC (entropy)", "within-class diversity"], extra),
            "The paper's Table 8 (real HMDB-51 as the reference):",
            markdown(*paper_table8_rows()),
        ]) + "\n"
        out.write_text("table8.md", text)
        out.write_bytes("tsne.png", picture)
        if args.figure:
            Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
            Path(args.figure).write_bytes(picture)
        console.line(text)
        console.line(f"[table8] {len(args.seeds)} seeds in {time.perf_counter() - started:.0f} s; "
                     f"wrote {out.uri('table8.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
