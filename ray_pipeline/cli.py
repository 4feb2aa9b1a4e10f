"""``ray-pipeline`` (also ``python -m ray_pipeline``): one subcommand per stage, plus ``run``.

Every subcommand takes an experiment YAML, ``--run-dir`` and repeated ``--set dotted.key=value``.
The config is validated (and the MLflow URI resolved) before any Ray work starts; config errors
exit with status 2 and a message naming the file and the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ray_pipeline.config import ConfigError, ExperimentConfig, load_config
from ray_pipeline.runstore import RunStore


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    description: str
    entry: str  # "module:function", imported lazily so --help stays fast
    data_stage: bool = False  # reads/writes the (possibly shared) data store, not the run's own

    def run(self, cfg: ExperimentConfig, store: RunStore) -> dict:
        import importlib

        from ray_pipeline.runstore import data_store

        module, func = self.entry.split(":")
        fn: Callable[..., dict] = getattr(importlib.import_module(module), func)
        return fn(cfg, data_store(cfg.data_dir, store) if self.data_stage else store, log=_log)


STAGES = [
    Stage("prompts", "write text-to-video prompts for every class",
          "An LLM (openai) or the offline template writer writes action, environment and character "
          "descriptions per class (strategy basic/env/cha/ie) and composes one prompt per clip.",
          "ray_pipeline.stages.prompts:run_prompts", data_stage=True),
    Stage("generate", "render one clip per prompt on a Ray Data actor pool",
          "Text-to-video backend (cogvideox or procedural) in Ray Data actors; each actor loads the "
          "model once and writes mp4 files into the run directory.",
          "ray_pipeline.stages.generate:run_generate", data_stage=True),
    Stage("score", "CLIP-score every clip against all class names",
          "CLIP actors embed sampled frames, compare with every class prompt and store the "
          "similarities, softmax, entropy (the clip's uncertainty) and prediction.",
          "ray_pipeline.stages.score:run_score", data_stage=True),
    Stage("train", "train TC-CLIP / ViFi-CLIP on the clips with Ray Train",
          "DDP training with uncertainty-based label smoothing (or LS/UW/UF/CE); checkpoints every "
          "epoch; a rerun on the same run directory continues where it stopped.",
          "ray_pipeline.stages.train:run_train"),
    Stage("evaluate", "zero-shot evaluation over each dataset's splits; writes summary.json/.md",
          "Every split scored against its own class names, 2 clips x 1 crop by default; top-1 "
          "(top-5) mean and std over splits, for the backbone and for the trained model.",
          "ray_pipeline.stages.evaluate:run_evaluate"),
]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML, e.g. experiments/quickstart.yaml")
    p.add_argument("--run-dir", help="run directory: a path or pyarrow.fs URI (default: runs/<name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set generate.clips_per_class=8 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ray-pipeline",
        description="Generated video data for data-limited action understanding, on Ray. "
                    "Each stage is idempotent: rerunning skips rows already done.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        _add_common(sub.add_parser(stage.name, help=stage.help, description=stage.description))
    _add_common(sub.add_parser(
        "run", help="run every stage in order: " + " -> ".join(s.name for s in STAGES),
        description="Run all stages in order; each skips the rows it has already done."))
    _add_common(sub.add_parser("validate", help="check a config and print it resolved",
                               description="Validate the config (no Ray work) and print it as YAML."))
    sweep = sub.add_parser(
        "sweep", help="run a grid / search over any config fields with Ray Tune (resumable)",
        description="Expand the search axes of a sweep file ({grid: [...]}, {uniform: [a, b]}, ...; "
                    "see docs/sweeps.md), validate every trial, run the data stages once per distinct "
                    "upstream config into SWEEP_DIR/data, then train+evaluate each trial as a Ray Tune "
                    "trial. Rerunning the same command resumes (Tuner.restore).")
    _add_common(sweep)
    sweep.add_argument("--dry-run", action="store_true",
                       help="validate and print the trials and shared data groups, run nothing")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="also rerun trials that failed in an earlier launch (a fresh Tune experiment; "
                            "finished trials return their stored results)")
    report = sub.add_parser(
        "report", help="paper-style tables and plots for a sweep or run directory",
        description="Write report.md, report.html and report/*.png: for a sweep, Table 6/7-style tables "
                    "(mean ± std over seeds) and w / clips-per-class curves; for a run, its summary.")
    report.add_argument("path", metavar="RUN_DIR_OR_SWEEP", nargs="+",
                        help="a sweep or run directory; several sweeps give one combined table (e.g. one "
                             "sweep per target dataset for Table 7's two columns)")
    report.add_argument("--out", help="where to write the report (default: the first directory)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":
        from ray_pipeline.stages.report import write_report

        stores = [RunStore(p) for p in args.path]
        out = RunStore(args.out) if args.out else stores[0]
        try:
            written = write_report(*stores, out=out)
        except (FileNotFoundError, ValueError) as exc:
            _log(f"[report] failed: {exc}")
            return 1
        print(out.read_text(written[0]), end="")
        _log(f"[report] wrote {', '.join(written)} in {out.root}")
        return 0
    if args.command == "sweep":
        from ray_pipeline.sweep import run_sweep

        try:
            return run_sweep(args.config, args.set, args.run_dir, dry_run=args.dry_run,
                             retry_failed=args.retry_failed, log=_log)
        except ConfigError as exc:
            _log(str(exc))
            return 2
        except (FileNotFoundError, RuntimeError, ValueError) as exc:
            _log(f"[sweep] failed: {exc}")
            return 1
    try:
        cfg = load_config(args.config, args.set)
        store = RunStore(args.run_dir or f"runs/{cfg.name}")
        from ray_pipeline.tracking import resolve_tracking_uri

        resolve_tracking_uri(cfg, store)
    except ConfigError as exc:
        _log(str(exc))
        return 2
    if args.command == "validate":
        print(cfg.to_yaml(), end="")
        return 0

    from ray_pipeline.tracking import log_stage_metrics, stage_run

    store.write_text("config.yaml", cfg.to_yaml())
    stages = STAGES if args.command == "run" else [s for s in STAGES if s.name == args.command]
    for stage in stages:
        try:
            with stage_run(cfg, store, stage.name):
                stats = stage.run(cfg, store)
                log_stage_metrics(stats)
        except ConfigError as exc:
            _log(str(exc))
            return 2
        except (FileNotFoundError, RuntimeError, ValueError) as exc:
            # Expected failures (missing upstream stage, failed LLM classes, bad dataset files)
            # get their message, not a traceback; anything else is a bug and keeps its traceback.
            _log(f"[{stage.name}] failed: {exc}")
            return 1
        _log(f"[{stage.name}] done: {json.dumps(stats, default=str)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
