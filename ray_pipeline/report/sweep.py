"""Sweep reports: trials grouped by their swept values other than seeds (any axis whose field is
``seed``, e.g. ``train.seed``); each cell is the generated-data model's zero-shot top-1 averaged over
the dataset's splits (its ``summary.json`` row with role ``generated``), then mean ± population std
(ddof=0) over the seeds of that cell, with ``n`` the seeds that have results. Layouts follow the
paper: a ``prompts.strategy`` sweep is Table 6 (+Basic/+Cha/+Env/+IE), a ``train.loss`` sweep is
Table 7 (+LS/+UW/+UF/+UL), each under a first row for the backbone (role ``backbone``);
``train.w`` and ``generate.clips_per_class`` sweeps also get a PNG curve. Any other grid gets the
same table with one row per combination.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from ray_pipeline.evaluation.statistics import describe, paired_difference
from ray_pipeline.report.anomaly import sweep_section, trial_rows
from ray_pipeline.report.document import Doc
from ray_pipeline.report.protocols import PROTOCOL_TASKS, metric_at, protocol_sweep_table
from ray_pipeline.report.protocols import columns as protocol_columns
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import SWEEP_FILE, TRIAL_ATTEMPTS, TRIAL_RESULT, TRIALS_FILE, trial_dir

BACKBONE_ROW = "backbone (no generated data)"
BASELINE_ROW = "baseline (no generated data)"
PLOT_DIR = "report"

# Paper row labels and order (Tables 6 and 7).
STRATEGY_LABELS = {"basic": "+Basic", "cha": "+Cha", "env": "+Env", "ie": "+IE"}
LOSS_LABELS = {"ce": "+CE", "ls": "+LS", "uw": "+UW", "uf": "+UF", "ul": "+UL"}
# The paper's numbers (TC-CLIP ViT-B/16, real datasets), shown for reference under its layouts.
PAPER = {
    "prompts.strategy": ("Table 6 (zero-shot top-1, HMDB-51)", ["HMDB-51"],
                         [("TC-CLIP", [56.0]), ("+Basic", [57.6]), ("+Cha", [60.0]), ("+Env", [59.7]),
                          ("+IE", [61.0])]),
    "train.loss": ("Table 7 (zero-shot top-1)", ["UCF-101", "HMDB-51"],
                   [("TC-CLIP", [85.4, 56.0]), ("+LS", [85.8, 60.7]), ("+UW", [86.0, 60.4]),
                    ("+UF", [86.5, 60.3]), ("+UL", [86.5, 61.0])]),
}
LAYOUT_TITLES = {
    "prompts.strategy": "Table 6 layout: information enhancement (prompt strategy)",
    "train.loss": "Table 7 layout: uncertainty-based label smoothing (loss)",
}
CURVES = {
    "train.w": ("w_curve.png", "UL weight w (ε_i = w·u_i)", "w curve"),
    "generate.clips_per_class": ("clips_per_class_curve.png", "generated clips per class", "clips-per-class curve"),
}


def is_seed_axis(path: str) -> bool:
    """Seeds are repeats, not variants: ``seed``, ``train.seed``, ``evaluate.seed``..."""
    return path.split(".")[-1] == "seed"


def variant_label(variant: dict[str, Any], with_seeds: bool = False) -> str:
    """The paper's name for a variant: ``+IE``, ``+UL``; else ``w=0.3``; seeds left out by default."""
    parts = []
    for path, value in variant.items():
        if is_seed_axis(path) and not with_seeds:
            continue
        if path == "prompts.strategy" and value in STRATEGY_LABELS:
            parts.append(STRATEGY_LABELS[value])
        elif path == "train.loss" and value in LOSS_LABELS:
            parts.append(LOSS_LABELS[value])
        else:
            parts.append(f"{path.split('.')[-1]}={value}")
    return ", ".join(parts) or "base config"


@dataclass
class Cell:
    """One table cell: per-(seed, split) accuracies of the trials behind it.

    Shown as mean ± population std over the cells [95 % CI] (n = seeds x splits): the CI is a
    Student-t interval over per-seed means with >= 2 seeds, else over splits
    (:mod:`ray_pipeline.evaluation.statistics`).
    """

    cells: dict[tuple[int, str], float]
    expected_seeds: int

    @property
    def seeds(self) -> int:
        return len({seed for seed, _ in self.cells})

    @property
    def stats(self) -> dict[str, Any]:
        return describe(self.cells)

    @property
    def mean(self) -> float:
        return self.stats["mean"]

    @property
    def std(self) -> float:
        return self.stats["std"]

    def text(self) -> str:
        if not self.cells:
            return "–"
        st = self.stats
        ci = f" [{st['ci95'][0]:.1f}, {st['ci95'][1]:.1f}]" if st["ci95"] else ""
        if not self.expected_seeds:  # a shared model (the backbone): its seeds are not the trials'
            return f"{st['mean']:.1f} ± {st['std']:.1f}{ci} (n={st['n']})"
        seeds = f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"
        if self.seeds != self.expected_seeds:
            seeds += f" of {self.expected_seeds}"
        return f"{st['mean']:.1f} ± {st['std']:.1f}{ci} ({seeds}, n={st['n']})"


def summary_row(summary: dict | None, role: str) -> dict | None:
    """The first row of ``summary.json`` with ``role`` (``backbone``, ``generated``...)."""
    return next((r for r in (summary or {}).get("rows", []) if r["role"] == role), None)


def top1(row: dict | None, dataset: str) -> dict | None:
    """A row's top-1 entry on ``dataset`` (mean, std, ci95, n, per_split), if evaluated."""
    return ((row or {}).get("datasets", {}).get(dataset) or {}).get("top1")


def _read_json(store: RunStore, name: str) -> Any:
    return json.loads(store.read_text(name)) if store.exists(name) else None


@dataclass
class TrialData:
    key: str
    variant: dict[str, Any]
    summary: dict | None
    result: dict | None  # trial_result.json
    train: dict | None  # train/result.json
    attempts: int
    datasets: list[str] | None = None  # what the trial evaluates (its config), None if unknown

    def expects(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets


def load_trials(root: RunStore) -> list[TrialData]:
    """Every trial of a sweep with whatever results it has so far."""
    trials = []
    for rec in json.loads(root.read_text(TRIALS_FILE)):
        store = RunStore(root.uri(trial_dir(rec["key"])))
        attempts = store.read_text(TRIAL_ATTEMPTS).count("\n") if store.exists(TRIAL_ATTEMPTS) else 0
        ev = rec.get("config", {}).get("evaluate", {})
        datasets = [d["name"] for d in ev["datasets"]] if "datasets" in ev else None
        trials.append(TrialData(rec["key"], rec["variant"], _read_json(store, "summary.json"),
                                _read_json(store, TRIAL_RESULT), _read_json(store, "train/result.json"),
                                attempts, datasets))
    return trials


def _datasets(trials: list[TrialData]) -> list[str]:
    names: dict[str, None] = {}
    for t in trials:
        for row in (t.summary or {}).get("rows", []):
            names.update(dict.fromkeys(row.get("datasets", {})))
    return list(names)


def _sort_key(path: str, value: Any, first_seen: int) -> tuple:
    if path == "prompts.strategy" and value in STRATEGY_LABELS:
        return (0, list(STRATEGY_LABELS).index(value), "")
    if path == "train.loss" and value in LOSS_LABELS:
        return (0, list(LOSS_LABELS).index(value), "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, first_seen, str(value))


@dataclass
class SweepTable:
    """The aggregated sweep: rows (variants without seeds) x datasets, plus the rows of the models
    every variant shares: the backbone and the baseline (the same recipe without generated data)."""

    axes: list[str]  # non-seed axes
    seed_axes: list[str]
    datasets: list[str]
    backbone: dict[str, Cell]
    baseline: dict[str, Cell]
    rows: list[tuple[dict[str, Any], dict[str, Cell]]]
    baseline_label: str = "baseline (no generated data)"


def trial_seed(t: TrialData) -> int:
    """The training seed behind a trial's numbers."""
    row = summary_row(t.summary, "generated") or summary_row(t.summary, "baseline")
    if row and row.get("seeds"):
        return int(row["seeds"][0])
    seeds = [v for k, v in t.variant.items() if is_seed_axis(k) and isinstance(v, int)]
    return seeds[0] if seeds else 0


def role_cells(trials: list[TrialData], role: str, dataset: str, *, one_per_seed: bool = False,
               seed_of=trial_seed) -> dict[tuple[int, str], float]:
    """(seed, split) -> top-1 of the ``role`` row of each trial; a shared model (the backbone, the
    baseline of a seed) counted once however many trials evaluated it."""
    cells: dict[tuple[int, str], float] = {}
    for t in trials:
        entry = top1(summary_row(t.summary, role), dataset)
        if entry is None:
            continue
        seed = seed_of(t)
        if one_per_seed and any(s == seed for s, _ in cells):
            continue
        for split, value in entry["per_split"].items():
            cells[(seed, split)] = float(value)
    return cells


def aggregate(trials: list[TrialData]) -> SweepTable:
    """Group trials by non-seed values; per dataset, the generated-data model's top-1 per
    (seed, split), and the shared rows."""
    all_axes = list(dict.fromkeys(k for t in trials for k in t.variant))
    axes = [a for a in all_axes if not is_seed_axis(a)]
    seed_axes = [a for a in all_axes if is_seed_axis(a)]
    datasets = _datasets(trials)
    groups: dict[str, list[TrialData]] = {}
    first: dict[str, int] = {}
    for i, t in enumerate(trials):
        k = json.dumps([t.variant.get(a) for a in axes])
        groups.setdefault(k, []).append(t)
        first.setdefault(k, i)

    def order(k: str) -> tuple:
        values = json.loads(k)
        return tuple(_sort_key(a, v, first[k]) for a, v in zip(axes, values))

    rows = []
    for k in sorted(groups, key=order):
        members = groups[k]
        cells = {ds: Cell(role_cells(members, "generated", ds), len({trial_seed(t) for t in members
                                                                      if t.expects(ds)}))
                 for ds in datasets}
        rows.append((dict(zip(axes, json.loads(k))), cells))
    backbone = {ds: Cell(role_cells(trials, "backbone", ds, one_per_seed=True, seed_of=lambda t: 0), 0)
                for ds in datasets}
    baseline = {ds: Cell(role_cells(trials, "baseline", ds, one_per_seed=True), 0) for ds in datasets}
    label = next((r["label"] for t in trials for r in (t.summary or {}).get("rows", []) if r["role"] == "baseline"),
                 BASELINE_ROW)
    return SweepTable(axes, seed_axes, datasets, {d: c for d, c in backbone.items() if c.cells},
                      {d: c for d, c in baseline.items() if c.cells}, rows, label)


# The paper's proposal on each ablation axis: what every other variant is compared with.
PROPOSED = {"train.loss": "ul", "prompts.strategy": "ie"}


def comparisons(table: SweepTable) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(A, B, dataset, paired difference A - B): each variant against the baseline, and on an
    ablation axis the paper's proposal against each other variant; pairs share seed and split."""
    out = []
    for variant, cells in table.rows:
        for ds, cell in cells.items():
            base = table.baseline.get(ds)
            if base is not None and cell.cells and set(cell.cells) & set(base.cells):
                out.append((variant_label(variant), table.baseline_label, ds,
                            paired_difference(cell.cells, base.cells)))
    if len(table.axes) == 1 and table.axes[0] in PROPOSED:
        axis = table.axes[0]
        ref = next(((v, c) for v, c in table.rows if v[axis] == PROPOSED[axis]), None)
        if ref is not None:
            for variant, cells in table.rows:
                if variant[axis] == PROPOSED[axis]:
                    continue
                for ds, cell in cells.items():
                    a = ref[1][ds].cells
                    if a and cell.cells and set(a) & set(cell.cells):
                        out.append((variant_label(ref[0]), variant_label(variant), ds,
                                    paired_difference(a, cell.cells)))
    return out


def curve_png(table: SweepTable, axis: str, xlabel: str, title: str) -> bytes:
    """Top-1 against a numeric axis: one line per dataset (and other axes' values), std bars,
    the backbone baseline dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    others = [a for a in table.axes if a != axis]
    lines: dict[str, list[tuple[float, Cell]]] = {}
    for variant, cells in table.rows:
        rest = variant_label({a: variant[a] for a in others}) if others else ""
        for ds in table.datasets:
            if cells[ds].cells:
                name = f"{ds} · {rest}" if rest else ds
                lines.setdefault(name, []).append((float(variant[axis]), cells[ds]))
    colors = {}
    for name, points in sorted(lines.items()):
        points.sort(key=lambda p: p[0])
        xs = [p[0] for p in points]
        line = ax.errorbar(xs, [p[1].mean for p in points], yerr=[p[1].std for p in points], marker="o",
                           capsize=3, label=name)
        colors.setdefault(name.split(" · ")[0], line[0].get_color())
    for ds, cell in table.backbone.items():
        ax.axhline(cell.mean, linestyle=":", linewidth=1, color=colors.get(ds, "gray"), label=f"{ds} · backbone")
    for ds, cell in table.baseline.items():
        ax.axhline(cell.mean, linestyle="--", linewidth=1, color=colors.get(ds, "gray"),
                   label=f"{ds} · {table.baseline_label}")
    if axis == "generate.clips_per_class":
        ax.set_xscale("log", base=2)
        values = sorted({float(v[axis]) for v, _ in table.rows})
        ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("zero-shot top-1 (%)")
    n = max((c.seeds for _, cells in table.rows for c in cells.values()), default=0)
    ax.set_title(f"{title} (mean ± std over {n} seed{'s' if n != 1 else ''} x splits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def sweep_document(roots: list[RunStore]) -> tuple[Doc, dict[str, bytes], str]:
    """The report of one sweep, or of several combined into one table (e.g. Table 7's UCF-101
    and HMDB-51 columns come from one sweep per target dataset); plus its plots and title."""
    metas = [json.loads(r.read_text(SWEEP_FILE)) for r in roots]
    trials = [t for r in roots for t in load_trials(r)]
    tasks = {t.summary.get("task") for t in trials if t.summary}
    if tasks & set(PROTOCOL_TASKS):
        return protocol_sweep_document(roots, metas, trials)
    if "anomaly" in tasks:
        return anomaly_sweep_document(roots, metas, trials)
    table = aggregate(trials)
    doc, title = sweep_header(roots, metas, trials)
    n_seeds = max((c.seeds for _, cells in table.rows for c in cells.values()), default=0)
    doc.p("Cells: zero-shot top-1 (%) of the model trained with generated data, per training seed "
          f"({', '.join(table.seed_axes) or 'no seed axis'}; up to {n_seeds}) and evaluation split: mean ± "
          "population std over those cells [95 % CI: Student-t over the per-seed means with 2 or more seeds, "
          "else over splits] (n = seeds x splits). The first rows are the models every variant shares: the "
          "backbone untrained and the baseline (the recipe without generated data).")
    layout = table.axes[0] if len(table.axes) == 1 and table.axes[0] in LAYOUT_TITLES else None
    doc.h(2, LAYOUT_TITLES.get(layout, "Results") if layout else "Results")
    header = ["Method"] + [f"{ds}" for ds in table.datasets]
    rows = []
    for label, shared in ((BACKBONE_ROW, table.backbone), (table.baseline_label, table.baseline)):
        if shared:
            rows.append([label] + [shared[ds].text() if ds in shared else "–" for ds in table.datasets])
    for variant, cells in table.rows:
        rows.append([variant_label(variant)] + [cells[ds].text() for ds in table.datasets])
    doc.table(header, rows)
    if layout in PAPER:
        name, cols, prow = PAPER[layout]
        doc.p(f"For reference, the paper's {name} with TC-CLIP ViT-B/16 on the real datasets. Numbers from "
              "another world (the procedural one) are comparable only in direction, not in value.")
        doc.table(["Method"] + cols, [[label] + [f"{v:.1f}" for v in vals] for label, vals in prow])
    diffs = comparisons(table)
    if diffs:
        doc.h(2, "Paired differences")
        doc.p("A − B on the cells both have (same training seed and split); 95 % CI as above. A difference "
              "whose CI contains 0 is not significant.")
        diff_rows = []
        for a, b, ds, d in diffs:
            ci = f"[{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]" if d["ci95"] else "–"
            verdict = {True: "yes", False: "no (CI contains 0)", None: "– (one pair)"}[d["significant"]]
            diff_rows.append([f"{a} − {b}", ds, f"{d['diff_mean']:+.1f}", ci, str(d["n_pairs"]), d["ci_over"], verdict])
        doc.table(["comparison", "dataset", "A − B", "95 % CI", "pairs", "CI over", "significant"], diff_rows)
    plots: dict[str, bytes] = {}
    for axis in table.axes:
        numeric = all(isinstance(v.get(axis), (int, float)) and not isinstance(v.get(axis), bool)
                      for v, _ in table.rows)
        if not numeric or not any(c.cells for _, cells in table.rows for c in cells.values()):
            continue
        fname, xlabel, heading = CURVES.get(axis, (f"{axis.replace('.', '_')}_curve.png", axis, f"{axis} curve"))
        if axis not in CURVES and len(table.axes) > 1:
            continue
        path = f"{PLOT_DIR}/{fname}"
        plots[path] = curve_png(table, axis, xlabel, heading)
        doc.h(2, heading[0].upper() + heading[1:])
        doc.img(path, heading)
    doc.h(2, "Trials")
    trow = []
    for t in trials:
        accs = []
        for ds in table.datasets:
            e = top1(summary_row(t.summary, "generated"), ds)
            accs.append(f"{e['mean']:.1f} ± {e['std']:.1f}" if e else "–")
        status = "finished" if t.result else ("evaluated" if t.summary else ("started" if t.attempts else "pending"))
        clips = str(t.train.get("num_clips")) if t.train else "–"
        loss = t.result.get("train.final_loss") if t.result else None
        trow.append([t.key, variant_label(t.variant, with_seeds=True), status, str(t.attempts), clips,
                     f"{loss:.4f}" if isinstance(loss, (int, float)) else "–"] + accs)
    doc.p("Per trial: top-1 mean ± std over the dataset's splits; attempts = times the trial function started "
          "(a finished trial is never started again).")
    doc.table(["trial", "variant", "status", "attempts", "train clips", "final loss"] + table.datasets, trow)
    return doc, plots, title


def one_task(trials: list[TrialData]) -> str | None:
    """The task the finished trials ran (None before any finished); a report lays out one task's
    table, so sweeps of different tasks are reported separately."""
    tasks = sorted({t.summary["task"] for t in trials if t.summary})
    if len(tasks) > 1:
        raise ValueError(f"the sweeps ran different tasks ({', '.join(tasks)}); report them separately")
    return tasks[0] if tasks else None


def sweep_header(roots: list[RunStore], metas: list[dict], trials: list[TrialData]) -> tuple[Doc, str]:
    """A sweep report's title and opening: each sweep's source file, trial count and axes."""
    title = "Sweep report: " + " + ".join(m.get("name", "sweep") for m in metas)
    doc = Doc()
    doc.h(1, title)
    for root, meta in zip(roots, metas):
        axes_text = "; ".join(f"{a['path']} {{{a['kind']}: {json.dumps(a['spec'])}}}" for a in meta.get("axes", []))
        doc.p(f"{meta.get('source')} ({root.root}): {len(load_trials(root))} trials. Axes: {axes_text or 'none'}.")
    doc.p(f"{len(trials)} trials, {sum(bool(t.summary) for t in trials)} with results.")
    return doc, title


def anomaly_sweep_document(roots: list[RunStore], metas: list[dict], trials: list[TrialData]
                           ) -> tuple[Doc, dict[str, bytes], str]:
    """An anomaly sweep in Table 5's layout (``report/anomaly.py``)."""
    one_task(trials)
    doc, title = sweep_header(roots, metas, trials)
    sweep_section(doc, trials, variant_label)
    doc.h(2, "Trials")
    doc.table(["trial", "variant", "status", "MIL AUC", "MIL AUC_A", "MIL+Ours AUC", "MIL+Ours AUC_A"],
              trial_rows(trials, variant_label))
    return doc, {}, title


def protocol_sweep_document(roots: list[RunStore], metas: list[dict], trials: list[TrialData]
                            ) -> tuple[Doc, dict[str, bytes], str]:
    """A sweep of a fine-tuning task (few-shot, base-to-novel, long-tail) in its paper table."""
    done = [t for t in trials if t.summary]
    task = one_task(trials)
    doc, title = sweep_header(roots, metas, trials)
    varying = [a for a in dict.fromkeys(k for t in trials for k in t.variant) if not is_seed_axis(a)]
    if varying:
        doc.p(f"Only seeds are aggregated; the trials also vary {', '.join(varying)}, which this layout does not "
              "separate.")
    protocol_sweep_table(doc, task, [t.summary for t in done])
    cols = protocol_columns(task, [t.summary for t in done])
    trow = []
    for t in trials:
        status = "finished" if t.result else ("evaluated" if t.summary else ("started" if t.attempts else "pending"))
        row = summary_row(t.summary, "generated")
        cells = []
        for ds, path, _ in cols:
            e = metric_at(row, ds, path)
            cells.append("–" if e is None else f"{e['mean']:.1f}")
        trow.append([t.key, variant_label(t.variant, with_seeds=True), status, str(t.attempts)] + cells)
    doc.h(2, "Trials")
    doc.p("Per trial: the generated-data model's values.")
    doc.table(["trial", "variant", "status", "attempts"] + [h for _, _, h in cols], trow)
    return doc, {}, title
