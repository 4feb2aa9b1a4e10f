"""``ray-pipeline report RUN_DIR_OR_SWEEP``: paper-style tables (Markdown and HTML) and curves.

For a **sweep directory** (it has ``sweep.json``), trials are grouped by their swept values other
than seeds (any axis whose field is ``seed``, e.g. ``train.seed``); each cell is the trained
model's zero-shot top-1 averaged over the dataset's splits (``summary.json``), then mean ±
population std (ddof=0) over the seeds of that cell, with ``n`` the seeds that have results.
Layouts follow the paper: a ``prompts.strategy`` sweep is Table 6 (+Basic/+Cha/+Env/+IE), a
``train.loss`` sweep is Table 7 (+LS/+UW/+UF/+UL), each under a first row for the backbone
without generated data; ``train.w`` and ``generate.clips_per_class`` sweeps also get a PNG curve.
Any other grid gets the same table with one row per combination.

For a **run directory** (``summary.json``), the models × datasets table (mean ± std over splits).

Outputs: ``report.md``, ``report.html`` and ``report/*.png`` in the directory.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ray_pipeline.runstore import RunStore
from ray_pipeline.stages.evaluate import BASELINE  # the untrained backbone's label in summary.json

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
REPORT_MD, REPORT_HTML, PLOT_DIR = "report.md", "report.html", "report"


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


# --------------------------------------------------------------------------------------------
# A tiny document model rendered to both Markdown and HTML
# --------------------------------------------------------------------------------------------


@dataclass
class Doc:
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", header, rows))

    def img(self, path: str, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "table":
                header, rows = b[1], b[2]
                lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                body.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "table":
                head = "".join(f"<th>{e(c)}</th>" for c in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif b[0] == "img":
                body.append(f'<p><img src="{e(b[1])}" alt="{e(b[2])}" width="560"></p>')
        style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.3em .7em;"
                 "text-align:right}th:first-child,td:first-child{text-align:left}thead{background:#eee}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


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


def _trained_model(summary: dict) -> str | None:
    return next((m for m in summary.get("models", {}) if m != BASELINE), None)


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
    for rec in json.loads(root.read_text("trials.json")):
        store = RunStore(root.uri(f"trials/{rec['key']}"))
        attempts = store.read_text("attempts.jsonl").count("\n") if store.exists("attempts.jsonl") else 0
        ev = rec.get("config", {}).get("evaluate", {})
        datasets = [d["name"] for d in ev["datasets"]] if "datasets" in ev else None
        trials.append(TrialData(rec["key"], rec["variant"], _read_json(store, "summary.json"),
                                _read_json(store, "trial_result.json"), _read_json(store, "train/result.json"),
                                attempts, datasets))
    return trials


def _datasets(trials: list[TrialData]) -> list[str]:
    names: dict[str, None] = {}
    for t in trials:
        for per_ds in (t.summary or {}).get("models", {}).values():
            names.update(dict.fromkeys(per_ds))
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
                model = _trained_model(t.summary) if t.summary else None
                if model and ds in t.summary["models"][model]:
                    vals.append(float(t.summary["models"][model][ds]["top1_mean"]))
            cells[ds] = Cell(vals, sum(t.expects(ds) for t in members))
        rows.append((dict(zip(axes, json.loads(k))), cells))
    baseline = {}
    with_base = [t for t in trials if t.summary and BASELINE in t.summary.get("models", {})]
    for ds in datasets:
        vals = [float(t.summary["models"][BASELINE][ds]["top1_mean"]) for t in with_base
                if ds in t.summary["models"][BASELINE]]
        if vals:
            baseline[ds] = Cell(vals, len(vals))
    return SweepTable(axes, seed_axes, datasets, baseline, rows)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


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
    for i, (name, points) in enumerate(sorted(lines.items())):
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


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def sweep_document(roots: list[RunStore]) -> tuple[Doc, dict[str, bytes], str]:
    """The report of one sweep, or of several combined into one table (e.g. Table 7's UCF-101
    and HMDB-51 columns come from one sweep per target dataset); plus its plots and title."""
    metas = [json.loads(r.read_text("sweep.json")) for r in roots]
    trials = [t for r in roots for t in load_trials(r)]
    table = aggregate(trials)
    done = [t for t in trials if t.summary]
    title = "Sweep report: " + " + ".join(m.get("name", "sweep") for m in metas)
    doc = Doc()
    doc.h(1, title)
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
        rows.append([BASELINE] + [table.baseline[ds].text() if ds in table.baseline else "–"
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
        model = _trained_model(t.summary) if t.summary else None
        accs = []
        for ds in table.datasets:
            e = t.summary["models"][model].get(ds) if model else None
            accs.append(f"{e['top1_mean']:.1f} ± {e['top1_std']:.1f}" if e else "–")
        status = "finished" if t.result else ("evaluated" if t.summary else ("started" if t.attempts else "pending"))
        clips = str(t.train.get("num_clips")) if t.train else "–"
        loss = t.result.get("train.final_loss") if t.result else None
        trow.append([t.key, variant_label(t.variant, with_seeds=True), status, str(t.attempts), clips,
                     f"{loss:.4f}" if isinstance(loss, (int, float)) else "–"] + accs)
    doc.p("Per trial: top-1 mean ± std over the dataset's splits; attempts = times the trial function started "
          "(a finished trial is never started again).")
    doc.table(["trial", "variant", "status", "attempts", "train clips", "final loss"] + table.datasets, trow)
    return doc, plots, title


def run_document(store: RunStore) -> tuple[Doc, str]:
    """A single run's (or trial's) report from its summary.json and train/result.json."""
    summary = _read_json(store, "summary.json")
    train = _read_json(store, "train/result.json")
    if summary is None and train is None:
        raise FileNotFoundError(f"{store.root}: no summary.json or train/result.json (run train/evaluate first)")
    title = f"Run report: {store.name}"
    doc = Doc()
    doc.h(1, title)
    if train:
        doc.p(f"Trained {train.get('model')} ({train.get('recipe')}) with loss {train.get('loss')}, "
              f"w={train.get('w')}, on {train.get('num_clips')} generated clips of {train.get('num_classes')} classes.")
    if summary:
        models = summary.get("models", {})
        datasets = list(dict.fromkeys(d for per in models.values() for d in per))
        rows = []
        for model, per in models.items():
            cells = []
            for ds in datasets:
                e = per.get(ds)
                cells.append("–" if e is None else f"{e['top1_mean']:.1f} ± {e['top1_std']:.1f} "
                             f"({e['num_splits']} splits)")
            rows.append([model] + cells)
        doc.h(2, "Zero-shot top-1 (%)")
        doc.table(["Model"] + datasets, rows)
        proto = summary.get("protocol", {})
        doc.p(f"Mean ± population std over splits; {proto.get('num_clips', '?')} clips × "
              f"{proto.get('num_frames', '?')} frames per video.")
    return doc, title


def write_run_report(store: RunStore) -> list[str]:
    """``report.md`` and ``report.html`` for one run directory; returns the written paths."""
    doc, title = run_document(store)
    store.write_text(REPORT_MD, doc.markdown())
    store.write_text(REPORT_HTML, doc.html(title))
    return [REPORT_MD, REPORT_HTML]


def write_report(root: RunStore, *more: RunStore, out: RunStore | None = None) -> list[str]:
    """Report for a sweep (``sweep.json``) or a run directory, written into it (or ``out``);
    several sweeps are combined into one report. Returns the written paths, relative to the
    output directory."""
    roots = [root, *more]
    out = out or root
    if len(roots) == 1 and not root.exists("sweep.json"):
        return write_run_report(root) if out is root else _copy_run_report(root, out)
    for r in roots:
        if not r.exists("sweep.json") or not r.exists("trials.json"):
            raise FileNotFoundError(f"{r.root}: not a sweep directory (no sweep.json / trials.json); "
                                    "several directories can be combined only if all are sweeps")
    doc, plots, title = sweep_document(roots)
    for path, data in plots.items():
        out.write_bytes(path, data)
    out.write_text(REPORT_MD, doc.markdown())
    out.write_text(REPORT_HTML, doc.html(title))
    return [REPORT_MD, REPORT_HTML, *plots]


def _copy_run_report(run: RunStore, out: RunStore) -> list[str]:
    doc, title = run_document(run)
    out.write_text(REPORT_MD, doc.markdown())
    out.write_text(REPORT_HTML, doc.html(title))
    return [REPORT_MD, REPORT_HTML]
