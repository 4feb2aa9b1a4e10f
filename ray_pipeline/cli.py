"""``ray-pipeline`` (also ``python -m ray_pipeline``): one subcommand per stage, plus ``run``,
``validate``, ``sweep``, ``analyze`` and ``report``.

Every subcommand takes an experiment YAML, ``--run-dir`` and repeated ``--set dotted.key=value``.
The config (and the run directory, and the MLflow URI) is validated before any Ray work starts;
config errors exit with status 2 and a message naming the file and the field, expected failures
(a stage run before the one it needs, a bad dataset file, an unreachable LLM server) with status 1
and a message saying what to do. A run prints one line per stage start and end, progress and the
summary; the frameworks' own output goes to ``RUN_DIR/logs/`` (``--verbose`` shows it instead).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ray_pipeline.config import ConfigError, ExperimentConfig, load_config
from ray_pipeline.runstore import RunStore

# Stage commands and what they do (the anomaly task's own stages last).
STAGES = {
    "prompts": ("write text-to-video prompts for every class",
                "An LLM (openai) or the offline template writer writes action, environment and character "
                "descriptions per class (strategy basic/env/cha/ie) and composes one prompt per clip."),
    "generate": ("render one clip per prompt on a Ray Data actor pool",
                 "Text-to-video backend (cogvideox or procedural) in Ray Data actors; each actor loads the model "
                 "once and writes mp4 files into the run (or data) directory."),
    "score": ("CLIP-score every clip against all class names",
              "CLIP actors embed sampled frames, compare with every class prompt and store the similarities, "
              "softmax, entropy (the clip's uncertainty) and prediction."),
    "train": ("train TC-CLIP / ViFi-CLIP / X-CLIP on the clips with Ray Train",
              "DDP training with uncertainty-based label smoothing (or LS/UW/UF/CE); checkpoints every epoch; a "
              "rerun on the same run directory continues where it stopped."),
    "evaluate": ("evaluate every model on the task's datasets; writes summary.json/.md",
                 "Zero-shot: every split scored against its own class names, 2 clips x 1 crop by default; top-1 "
                 "(top-5) mean, std and 95 % CI over splits, for the backbone and the trained models."),
    "features": ("anomaly task: frozen segment embeddings of the training videos (ranking head)",
                 "Every training video cut into anomaly.num_segments segments, each embedded by the backbone and "
                 "by every trained model (Ray Data actors); the backbone's rows are shared by every seed."),
    "mil": ("anomaly task: MIL on the training videos' video-level labels",
            "ranking: Sultani et al.'s scorer on the frozen features; topk_ce: the model fine-tuned with Lv et "
            "al.'s top-k MIL cross-entropy (Ray Train, checkpoints every epoch)."),
    "detect": ("anomaly task: segment scores of the test videos; writes summary.json/.md",
               "Every MIL model scores every annotated test video's segments; frame-level AUC and AUC_A."),
}
# Expected failures: their message, not a traceback (anything else is a bug and keeps it).
EXPECTED = (FileNotFoundError, RuntimeError, ValueError)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML, e.g. experiments/quickstart.yaml")
    p.add_argument("--run-dir", help="run directory: a path or pyarrow.fs URI (default: runs/<name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set generate.clips_per_class=8 (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show Ray's and the libraries' own output (default: kept in RUN_DIR/logs/)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ray-pipeline",
        description="Generated video data for data-limited action understanding, on Ray. "
                    "Each stage is idempotent: rerunning skips rows already done.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (short, long) in STAGES.items():
        _add_common(sub.add_parser(name, help=short, description=long))
    _add_common(sub.add_parser(
        # The task decides its stages: the first five are every task's; the anomaly task ends with its own.
        "run", help="run every stage of the config's task in order: " + " -> ".join(list(STAGES)[:5])
        + " (anomaly: ... -> train -> features -> mil -> detect)",
        description="Run all stages of the task in order; each skips the rows it has already done."))
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
    analyze = sub.add_parser(
        "analyze", help="what the generated data looks like: DB, MMD, t-SNE and the data-quality report",
        description="CLIP features (the score stage's model, Ray Data actors, cached by clip id) of this run's "
                    "generated clips, of --compare runs' and of the real videos in evaluate.datasets; "
                    "Davies-Bouldin per set, MMD² (linear, rbf, poly) against the first real set on "
                    "L2-normalised features, a t-SNE picture and the data-quality report: RUN_DIR/analysis/ "
                    "(metrics.json, tsne.png, quality.html). Needs the data stages done (run or score first).")
    _add_common(analyze)
    analyze.add_argument("--compare", nargs="+", action="extend", default=[], metavar="RUN_DIR",
                         help="other run directories whose generated sets to compare (e.g. a Basic run beside "
                              "an IE run); each is read with its own config.yaml")
    report = sub.add_parser(
        "report", help="paper-style tables and plots for a sweep or run directory",
        description="Write report.md, report.html and report/*.png: for a sweep, Table 6/7-style tables "
                    "(mean ± std over seeds) and w / clips-per-class curves; for a run, its summary.")
    report.add_argument("path", metavar="RUN_DIR_OR_SWEEP", nargs="+",
                        help="a sweep or run directory; several sweeps give one combined table (e.g. one "
                             "sweep per target dataset for Table 7's two columns)")
    report.add_argument("--out", help="where to write the report (default: the first directory)")
    return parser


def open_run_dir(path: str) -> RunStore:
    """The run directory, which may not exist yet but must not be a file."""
    import pyarrow.fs as pafs

    store = RunStore(path)
    info = store.fs.get_file_info(store.base)
    if info.type == pafs.FileType.File:
        raise ConfigError(f"--run-dir {path}: is a file, not a directory; give a folder (it is created if missing)")
    return store


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":
        return _report(args)
    if args.command == "sweep":
        from ray_pipeline.sweep.driver import run_sweep

        try:
            return run_sweep(args.config, args.set, args.run_dir, dry_run=args.dry_run,
                             retry_failed=args.retry_failed, verbose=args.verbose)
        except ConfigError as exc:
            _stderr(str(exc))
            return 2
        except EXPECTED as exc:
            _stderr(f"[sweep] failed: {exc}")
            return 1
    try:
        cfg = load_config(args.config, args.set)
        store = open_run_dir(args.run_dir or f"runs/{cfg.name}")
        from ray_pipeline.tracking import resolve_tracking_uri

        resolve_tracking_uri(cfg, store)
    except ConfigError as exc:
        _stderr(str(exc))
        return 2
    if args.command == "validate":
        print(cfg.to_yaml(), end="")
        return 0
    return _run(cfg, store, args.command, args.verbose, getattr(args, "compare", []))


def _run(cfg: ExperimentConfig, store: RunStore, command: str, verbose: bool, compare: Sequence[str] = ()) -> int:
    from ray_pipeline.cluster import Cluster
    from ray_pipeline.console import run_console
    from ray_pipeline.pipeline import Pipeline
    from ray_pipeline.tracking import RunTracker

    store.write_text("config.yaml", cfg.to_yaml())
    with run_console(store, command, verbose) as console:
        tracker = None
        ok = False
        cluster = Cluster(cfg.ray)
        try:
            tracker = RunTracker(cfg, store, command)
            if command == "analyze":
                from ray_pipeline.analysis.command import analyze

                analyze(cfg, store, compare, console, tracker=tracker, cluster=cluster)
            else:
                pipeline = Pipeline(cfg, store, console, tracker=tracker, cluster=cluster)
                pipeline.run(None if command == "run" else [command], until=None if command == "run" else command)
            ok = True
            return 0
        except ConfigError as exc:
            console.line(str(exc))
            return 2
        except EXPECTED as exc:
            console.line(f"[{command}] failed: {exc}")
            return 1
        finally:
            if tracker is not None:
                tracker.end(tracker.parent, ok)
            # Inside the redirection, so that Ray's last forwarded worker lines land in the log.
            cluster.close()


def _report(args: argparse.Namespace) -> int:
    from ray_pipeline.report import write_report

    stores = [RunStore(p) for p in args.path]
    out = RunStore(args.out) if args.out else stores[0]
    try:
        written = write_report(*stores, out=out)
    except EXPECTED as exc:
        _stderr(f"[report] failed: {exc}")
        return 1
    print(out.read_text(written[0]), end="")
    _stderr(f"[report] wrote {', '.join(written)} in {out.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
