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

import numpy as np

from ray_pipeline.report.anomaly import is_anomaly, sweep_section, trial_rows
from ray_pipeline.report.document import Doc
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import SWEEP_FILE, TRIAL_ATTEMPTS, TRIAL_RESULT, TRIALS_FILE, trial_dir

BACKBONE_ROW = "backbone (no generated data)"
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
    """Per-trial values (each the mean over splits) of one table cell."""

    values: list[float]
    expected: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values))  # population std (ddof=0), as the paper and TC-CLIP

    def text(self) -> str:
        if not self.values:
            return "–"
        n = len(self.values)
        count = f"n={n}" if n == self.expected else f"n={n} of {self.expected}"
        if n == 1:  # a std over one value says nothing (e.g. the untrained backbone, evaluated once)
            return f"{self.mean:.1f} ({count})"
        return f"{self.mean:.1f} ± {self.std:.1f} ({count})"


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
    """The aggregated sweep: rows (variants without seeds) x datasets."""

    axes: list[str]  # non-seed axes
    seed_axes: list[str]
    datasets: list[str]
    baseline: dict[str, Cell]
    rows: list[tuple[dict[str, Any], dict[str, Cell]]]


def aggregate(trials: list[TrialData]) -> SweepTable:
    """Group trials by non-seed values; per dataset, the trained model's top-1 over seeds."""
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
        cells = {}
        for ds in datasets:
            vals = []
            for t in members:
                entry = top1(summary_row(t.summary, "generated"), ds)
                if entry is not None:
                    vals.append(float(entry["mean"]))
            cells[ds] = Cell(vals, sum(t.expects(ds) for t in members))
        rows.append((dict(zip(axes, json.loads(k))), cells))
    baseline = {}
    for ds in datasets:
        entries = [top1(summary_row(t.summary, "backbone"), ds) for t in trials]
        vals = [float(e["mean"]) for e in entries if e is not None]
        if vals:
            baseline[ds] = Cell(vals, len(vals))
    return SweepTable(axes, seed_axes, datasets, baseline, rows)


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
            if cells[ds].values:
                name = f"{ds} · {rest}" if rest else ds
                lines.setdefault(name, []).append((float(variant[axis]), cells[ds]))
    colors = {}
    for name, points in sorted(lines.items()):
        points.sort(key=lambda p: p[0])
        xs = [p[0] for p in points]
        line = ax.errorbar(xs, [p[1].mean for p in points], yerr=[p[1].std for p in points], marker="o",
                           capsize=3, label=name)
        colors.setdefault(name.split(" · ")[0], line[0].get_color())
    for ds, cell in table.baseline.items():
        ax.axhline(cell.mean, linestyle="--", linewidth=1, color=colors.get(ds, "gray"),
                   label=f"{ds} · backbone, no generated data")
    if axis == "generate.clips_per_class":
        ax.set_xscale("log", base=2)
        values = sorted({float(v[axis]) for v, _ in table.rows})
        ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("zero-shot top-1 (%)")
    n = max((len(c.values) for _, cells in table.rows for c in cells.values()), default=0)
    ax.set_title(f"{title} (mean ± std over {n} seed{'s' if n != 1 else ''})")
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
    table = aggregate(trials)
    done = [t for t in trials if t.summary]
    title = "Sweep report: " + " + ".join(m.get("name", "sweep") for m in metas)
    doc = Doc()
    doc.h(1, title)
    if done and all(is_anomaly(t.summary) for t in done):
        return _anomaly_document(doc, roots, metas, trials), {}, title
    n_seeds = max((len(c.values) for _, cells in table.rows for c in cells.values()), default=0)
    for root, meta in zip(roots, metas):
        axes_text = "; ".join(f"{a['path']} {{{a['kind']}: {json.dumps(a['spec'])}}}" for a in meta.get("axes", []))
        doc.p(f"{meta.get('source')} ({root.root}): {len(load_trials(root))} trials. Axes: {axes_text or 'none'}.")
    doc.p(f"{len(trials)} trials, {len(done)} with results.")
    doc.p("Cells: zero-shot top-1 (%) of the trained model, each trial averaged over the dataset's splits, then "
          f"mean ± population std over seeds ({', '.join(table.seed_axes) or 'no seed axis'}; n = seeds with "
          f"results, up to {n_seeds}). The first row is the backbone without generated data.")
    layout = table.axes[0] if len(table.axes) == 1 and table.axes[0] in LAYOUT_TITLES else None
    doc.h(2, LAYOUT_TITLES.get(layout, "Results") if layout else "Results")
    header = ["Method"] + [f"{ds}" for ds in table.datasets]
    rows = []
    if table.baseline:
        rows.append([BACKBONE_ROW] + [table.baseline[ds].text() if ds in table.baseline else "–"
                                      for ds in table.datasets])
    for variant, cells in table.rows:
        rows.append([variant_label(variant)] + [cells[ds].text() for ds in table.datasets])
    doc.table(header, rows)
    if layout in PAPER:
        name, cols, prow = PAPER[layout]
        doc.p(f"For reference, the paper's {name} with TC-CLIP ViT-B/16 on the real datasets. Numbers from "
              "another world (the procedural one) are comparable only in direction, not in value.")
        doc.table(["Method"] + cols, [[label] + [f"{v:.1f}" for v in vals] for label, vals in prow])
    plots: dict[str, bytes] = {}
    for axis in table.axes:
        numeric = all(isinstance(v.get(axis), (int, float)) and not isinstance(v.get(axis), bool)
                      for v, _ in table.rows)
        if not numeric or not any(c.values for _, cells in table.rows for c in cells.values()):
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


def _anomaly_document(doc: Doc, roots: list[RunStore], metas: list[dict], trials: list[TrialData]) -> Doc:
    """An anomaly sweep in Table 5's layout (``report/anomaly.py``)."""
    for root, meta in zip(roots, metas):
        axes_text = "; ".join(f"{a['path']} {{{a['kind']}: {json.dumps(a['spec'])}}}" for a in meta.get("axes", []))
        doc.p(f"{meta.get('source')} ({root.root}): {len(load_trials(root))} trials. Axes: {axes_text or 'none'}.")
    doc.p(f"{len(trials)} trials, {sum(bool(t.summary) for t in trials)} with results.")
    sweep_section(doc, trials, variant_label)
    doc.h(2, "Trials")
    doc.table(["trial", "variant", "status", "MIL AUC", "MIL AUC_A", "MIL+Ours AUC", "MIL+Ours AUC_A"],
              trial_rows(trials, variant_label))
    return doc
