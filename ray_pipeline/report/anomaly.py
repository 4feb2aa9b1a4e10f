"""Reports of the anomaly task in Table 5's layout: rows MIL and MIL+Ours, columns AUC and AUC_A (%).

A run's report shows its ``summary.json`` rows (one seed). A sweep's groups its trials by their
swept values other than seeds and shows, per group, each row's mean ± population std over the
trials' seeds and the paired difference MIL+Ours − MIL (same seed) with its Student-t CI over
seeds (:func:`~ray_pipeline.evaluation.statistics.paired_difference`). The paper's numbers
(X-CLIP-B/32, real UCF-Crime) follow for reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ray_pipeline.evaluation.statistics import paired_difference, t_interval
from ray_pipeline.report.document import Doc

METRICS = (("auc", "AUC"), ("auc_a", "AUC_A"))
ROW_NAMES = {"baseline": "MIL", "generated": "MIL+Ours"}
PAPER_TABLE5 = [("MIL", [81.80, 59.90]), ("MIL+Ours", [84.03, 62.44])]


def is_anomaly(summary: dict | None) -> bool:
    return bool(summary) and summary.get("task") == "anomaly"


def _entry(row: dict, metric: str) -> dict | None:
    ds = next(iter(row.get("datasets", {}).values()), {})
    return ds.get(metric)


def _paper(doc: Doc) -> None:
    doc.p("For reference, the paper's Table 5 (MIL baseline of Lv et al. with X-CLIP-B/32 on the real "
          "UCF-Crime). Numbers from the procedural world are comparable in direction only.")
    doc.table(["Method", "AUC", "AUC_A"], [[m, *(f"{v:.2f}" for v in vals)] for m, vals in PAPER_TABLE5])


def run_section(doc: Doc, summary: dict) -> None:
    """A run's Table 5: its rows, one seed."""
    rows = summary.get("rows", [])
    ds = next(iter(rows[0]["datasets"]), "?") if rows else "?"
    table = []
    for r in rows:
        cells = []
        for metric, _ in METRICS:
            e = _entry(r, metric)
            cells.append("–" if e is None else f"{e['mean']:.2f}")
        table.append([ROW_NAMES.get(r["role"], r["role"]), r["label"]] + cells)
    p = summary.get("protocol", {})
    doc.h(2, f"Table 5 layout: abnormal action detection ({ds})")
    doc.table(["Method", "model", "AUC (%)", "AUC_A (%)"], table)
    doc.p(f"Frame-level ROC-AUC over all test videos (AUC) and over the anomalous ones (AUC_A); MIL head "
          f"{p.get('head', '?')}, {p.get('num_segments', '?')} segments x {p.get('frames_per_segment', '?')} frames; "
          f"seed {', '.join(str(x) for x in rows[0]['seeds']) if rows else '?'} (one run: no CI; a sweep over seeds "
          "gives one).")
    for c in summary.get("comparisons", []):
        doc.p(f"{ROW_NAMES.get('generated')} − MIL, {dict(METRICS)[c['metric']]}: {c['diff_mean']:+.2f}")
    _paper(doc)


def _cells(trials: list[Any], role: str, metric: str) -> dict[tuple[int, str], float]:
    """(seed, "test") -> value of one role's metric, over trials (each trial's row carries its seed)."""
    out = {}
    for t in trials:
        row = next((r for r in (t.summary or {}).get("rows", []) if r["role"] == role), None)
        e = _entry(row, metric) if row else None
        if e is not None:
            seed = (row.get("seeds") or [0])[0]
            out[(int(seed), "test")] = float(e["mean"])
    return out


def _text(cells: dict) -> str:
    if not cells:
        return "–"
    v = np.asarray(list(cells.values()))
    if v.size == 1:
        return f"{v.mean():.2f}"
    lo, hi = t_interval(v)
    return f"{v.mean():.2f} ± {v.std():.2f} [{lo:.2f}, {hi:.2f}] (n={v.size})"


def sweep_section(doc: Doc, trials: list[Any], variant_label: Any) -> None:
    """A sweep's Table 5: per group of trials (non-seed values), MIL and MIL+Ours over seeds."""
    groups: dict[str, list[Any]] = {}
    labels: dict[str, str] = {}
    for t in trials:
        key = variant_label(t.variant)
        groups.setdefault(key, []).append(t)
        labels[key] = key
    table, diffs = [], []
    for key, members in groups.items():
        for role in ("baseline", "generated"):
            row = [ROW_NAMES[role] + ("" if key == "base config" else f" ({key})")]
            row += [_text(_cells(members, role, metric)) for metric, _ in METRICS]
            table.append(row)
        for metric, name in METRICS:
            a, b = _cells(members, "generated", metric), _cells(members, "baseline", metric)
            if set(a) & set(b):
                d = paired_difference(a, b)
                ci = f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]" if d.get("ci95") else ""
                sig = "" if d.get("significant") is None else (", significant" if d["significant"] else
                                                               ", not significant")
                diffs.append(f"{key}: MIL+Ours − MIL, {name} {d['diff_mean']:+.2f}{ci} over {d['n_pairs']} "
                             f"seed(s){sig}")
    doc.h(2, "Table 5 layout: abnormal action detection")
    doc.table(["Method", "AUC (%)", "AUC_A (%)"], table)
    doc.p("Mean ± population std over seeds [95 % CI, Student-t over the seeds] (n = seeds with results); each "
          "seed trains its own pre-training and MIL heads. Paired differences: same seed, Student-t 95 % CI over "
          "seeds.")
    for d in diffs:
        doc.p(d)
    _paper(doc)


def trial_rows(trials: list[Any], variant_label: Any) -> list[list[str]]:
    """Per trial: its variant with seeds, and each row's AUC / AUC_A."""
    out = []
    for t in trials:
        cells = []
        for role in ("baseline", "generated"):
            row = next((r for r in (t.summary or {}).get("rows", []) if r["role"] == role), None)
            for metric, _ in METRICS:
                e = _entry(row, metric) if row else None
                cells.append("–" if e is None else f"{e['mean']:.2f}")
        status = "finished" if t.result else ("evaluated" if t.summary else ("started" if t.attempts else "pending"))
        out.append([t.key, variant_label(t.variant, with_seeds=True), status] + cells)
    return out
