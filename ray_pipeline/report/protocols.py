"""Reports of the fine-tuning tasks, laid out like the paper's tables.

- few-shot: Table 2, a column per dataset and K (top-1);
- base-to-novel: Table 3, Base / Novel / HM per dataset;
- long-tail: Table 4, Few / Tail / Head / Acc per dataset (mean per-class accuracies).

Rows: the untrained backbone, the model fine-tuned on the real list (the paper's TC-CLIP row) and
the one pre-trained on generated clips first (TC-CLIP + Ours). A run's table holds its summary's
values; a sweep's holds, per cell, the mean ± population std over the trials that have it (the
training seeds), with ``n``. A sweep's HM is the HM of the mean Base and mean Novel (the seed
means, as the protocol takes it), ± the std of the trials' own HMs. The paper's numbers follow
for reference; the world's are comparable in direction only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ray_pipeline.evaluation.statistics import paired_difference, t_interval
from ray_pipeline.report.document import Doc

PROTOCOL_TASKS = ("few_shot", "base_to_novel", "long_tail")
ROLES = ("backbone", "baseline", "generated")
TITLES = {"few_shot": "Table 2 layout: few-shot top-1 (%)",
          "base_to_novel": "Table 3 layout: base-to-novel top-1 (%)",
          "long_tail": "Table 4 layout: long-tail mean per-class accuracy (%)"}
METRIC_HEADERS = {"base": "Base", "novel": "Novel", "hm": "HM", "few": "Few", "tail": "Tail", "head": "Head",
                  "acc": "Acc"}
# The paper's TC-CLIP ViT-B/16 rows (Tables 2-4), by dataset and column.
PAPER = {
    "few_shot": (["HMDB-51", "UCF-101"], ["K=2", "K=4", "K=8", "K=16"], [
        ("Vanilla CLIP", [41.9, 41.9, 41.9, 41.9, 63.6, 63.6, 63.6, 63.6]),
        ("TC-CLIP", [58.6, 63.3, 65.5, 68.8, 86.8, 90.1, 92.0, 94.3]),
        ("TC-CLIP+Ours", [63.0, 65.6, 68.9, 71.4, 88.1, 91.3, 92.9, 94.0])]),
    "base_to_novel": (["HMDB-51", "UCF-101"], ["Base", "Novel", "HM"], [
        ("Vanilla CLIP", [53.3, 46.8, 49.8, 78.5, 63.6, 70.3]),
        ("TC-CLIP", [73.3, 59.1, 65.5, 95.4, 81.6, 88.0]),
        ("TC-CLIP+Ours", [77.7, 64.0, 70.2, 95.5, 85.2, 90.1])]),
    "long_tail": (["HMDB-51", "UCF-101"], ["Few", "Tail", "Head", "Acc"], [
        ("TC-CLIP", [49.41, 79.63, 87.08, 60.39, 76.13, 66.48, 80.03, 73.46]),
        ("TC-CLIP+Ours", [52.55, 80.37, 87.50, 62.40, 79.30, 68.36, 86.25, 78.77])]),
}


def _row(summary: dict[str, Any], role: str) -> dict[str, Any] | None:
    return next((r for r in summary.get("rows", []) if r["role"] == role), None)


def metric_at(row: dict[str, Any] | None, dataset: str, path: str) -> dict[str, Any] | None:
    """A metric entry by its path under the dataset (``k2.top1``, ``hm``)."""
    node: Any = ((row or {}).get("datasets") or {}).get(dataset)
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node if isinstance(node, dict) and "mean" in node else None


def columns(task: str, summaries: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(dataset, metric path, header) of every column, in the paper's order."""
    datasets = list(dict.fromkeys(ds for s in summaries for r in s.get("rows", []) for ds in r.get("datasets", {})))
    out = []
    for ds in datasets:
        if task == "few_shot":
            ks = sorted({int(k[1:]) for s in summaries for r in s.get("rows", [])
                         for k in (r.get("datasets", {}).get(ds) or {}) if k.startswith("k") and k[1:].isdigit()})
            out += [(ds, f"k{k}.top1", f"{ds} K={k}") for k in ks]
        else:
            metrics = ("base", "novel", "hm") if task == "base_to_novel" else ("few", "tail", "head", "acc")
            out += [(ds, m, f"{ds} {METRIC_HEADERS[m]}") for m in metrics]
    return out


def _cell(values: list[float], expected: int | None = None) -> str:
    if not values:
        return "–"
    n = len(values)
    count = f"n={n}" if expected in (None, n) else f"n={n} of {expected}"
    if n == 1:
        return f"{values[0]:.1f}"
    lo, hi = t_interval(values)
    return f"{np.mean(values):.1f} ± {np.std(values):.1f} [{lo:.1f}, {hi:.1f}] ({count})"


def _paper_table(doc: Doc, task: str) -> None:
    datasets, cols, rows = PAPER[task]
    doc.p("For reference, the paper's rows (TC-CLIP ViT-B/16, real datasets). Numbers from another world (the "
          "procedural one) are comparable in direction only.")
    doc.table(["Method"] + [f"{d} {c}" for d in datasets for c in cols],
              [[name] + [f"{v:.1f}" if task != "long_tail" else f"{v:.2f}" for v in vals] for name, vals in rows])


def _protocol_lines(summary: dict[str, Any]) -> list[str]:
    p = summary.get("protocol", {})
    lines = [f"Reported epoch: {p.get('epoch_rule_text', p.get('epoch_rule', '?'))}; {p.get('views', '?')}, "
             f"{p.get('num_frames', '?')} frames per view."]
    ft = p.get("finetune") or {}
    pre = p.get("pretrain") or {}
    if ft:
        lines.append(f"Fine-tuning: {ft.get('epochs')} epochs at lr {ft.get('lr'):g} "
                     f"(warm-up {ft.get('warmup_epochs')}), batch {ft.get('batch_size')}, loss {ft.get('loss')}"
                     + (f" (epsilon {ft.get('epsilon')})" if ft.get("loss") == "ls" else "")
                     + f"; generated pre-training: {pre.get('epochs')} epochs at lr {pre.get('lr'):g}, loss "
                     f"{str(pre.get('loss')).upper()} (w = {pre.get('w')}).")
    lt = (p.get("long_tail") or {}).get("stats")
    if lt:
        prof = p["long_tail"]["profile"]
        lines.append(f"Long-tailed training set: {lt['num_train']} videos of {lt['num_classes']} classes, "
                     f"I = {lt['imbalance']:.1f} ({lt['n_max']}/{lt['n_min']}), head {lt['head_pct']:.0f} %, "
                     f"tail {lt['tail_pct']:.0f} %, few {lt['few_pct']:.0f} % of the classes; profile: "
                     f"{prof['description']}.")
    if summary.get("task") == "base_to_novel":
        lines.append(f"HM: {p.get('hm', '')}.")
    return lines


def protocol_run_document(summary: dict[str, Any], doc: Doc | None = None) -> Doc:
    """A run's fine-tuning task in its paper table (plus comparisons and the protocol)."""
    doc = doc or Doc()
    task = summary["task"]
    cols = columns(task, [summary])
    doc.h(2, TITLES[task])
    rows = []
    for role in ROLES:
        row = _row(summary, role)
        if row is None:
            continue
        cells = []
        for ds, path, _ in cols:
            e = metric_at(row, ds, path)
            cells.append("–" if e is None else (f"{e['mean']:.1f}" if e.get("n", 1) == 1 or e.get("std") is None
                                               else f"{e['mean']:.1f} ± {e['std']:.1f} (n={e['n']})"))
        rows.append([row["label"]] + cells)
    doc.table(["Method"] + [h for _, _, h in cols], rows)
    doc.p("Rows: the untrained backbone; fine-tuned from it on the real list (the paper's TC-CLIP row); "
          "pre-trained on the generated clips, then fine-tuned the same way (the paper's +Ours).")
    for line in _protocol_lines(summary):
        doc.p(line)
    comparisons = [c for c in summary.get("comparisons", []) if c.get("b") == (_row(summary, "baseline") or {})
                   .get("label")]
    if comparisons:
        items = []
        for c in comparisons:
            ci = c.get("ci95")
            text = f"{c['dataset']} {c['metric']}: {c['diff_mean']:+.1f}"
            text += f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else ""
            text += f" ({c['n_pairs']} pair{'s' if c['n_pairs'] != 1 else ''}"
            text += ", not significant)" if c.get("significant") is False else ")"
            items.append(text)
        doc.p("Generated pre-training − fine-tuned only: " + "; ".join(items) + ".")
    _paper_table(doc, task)
    return doc


def protocol_sweep_table(doc: Doc, task: str, summaries: Sequence[dict[str, Any]]) -> None:
    """A sweep's paper table: per cell, the trials' values over seeds (module docstring)."""
    cols = columns(task, summaries)
    # The trials that evaluate a dataset (combined sweeps each have their own).
    expected = {ds: sum(any(ds in r.get("datasets", {}) for r in s.get("rows", [])) for s in summaries)
                for ds, _, _ in cols}
    doc.h(2, TITLES[task])
    rows = []
    for role in ROLES:
        have = [s for s in summaries if _row(s, role) is not None]
        if not have:
            continue
        labels = sorted({_row(s, role)["label"] for s in have})
        cells = []
        for ds, path, _ in cols:
            if path == "hm":
                cells.append(_hm_cell(have, role, ds))
                continue
            values = [e["mean"] for s in have if (e := metric_at(_row(s, role), ds, path)) is not None]
            if role == "backbone":  # the same untrained model in every trial: one value, not a spread
                values = list(dict.fromkeys(values))
            cells.append(_cell(values, None if role == "backbone" else expected[ds]))
        rows.append([" / ".join(labels)] + cells)
    doc.table(["Method"] + [h for _, _, h in cols], rows)
    doc.p("Cells: mean ± population std over the trials (training seeds) that have the cell [95 % CI, "
          "Student-t over the seeds]; the backbone is evaluated once. HM: of the mean Base and mean Novel, ± the "
          "std of the trials' HMs.")
    diffs = paired_rows(summaries, cols)
    if diffs:
        doc.p("Paired differences, +Ours − TC-CLIP (the same trial: same training seed and list), 95 % CI over "
              "the seeds; a CI that contains 0 is not significant:")
        doc.table(["Column", "+Ours − TC-CLIP", "95 % CI", "seeds", "verdict"], diffs)
    for line in _protocol_lines(summaries[0]):
        doc.p(line)
    _paper_table(doc, task)


def paired_rows(summaries: Sequence[dict[str, Any]], cols: list[tuple[str, str, str]]) -> list[list[str]]:
    """Per column: the generated row minus the baseline row, paired within each trial (one trial is
    one training seed), with its Student-t CI over the trials."""
    out = []
    for ds, path, header in cols:
        gen, base = {}, {}
        for i, s in enumerate(summaries):
            g, b = metric_at(_row(s, "generated"), ds, path), metric_at(_row(s, "baseline"), ds, path)
            if g is not None and b is not None:
                gen[(i, "test")], base[(i, "test")] = g["mean"], b["mean"]
        if not gen:
            continue
        d = paired_difference(gen, base)
        ci = d["ci95"]
        verdict = "–" if d["significant"] is None else ("significant" if d["significant"] else "not significant")
        out.append([header, f"{d['diff_mean']:+.1f}", "–" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]",
                    str(d["n_pairs"]), verdict])
    return out


def _hm_cell(summaries: Sequence[dict[str, Any]], role: str, ds: str) -> str:
    base = [e["mean"] for s in summaries if (e := metric_at(_row(s, role), ds, "base")) is not None]
    novel = [e["mean"] for s in summaries if (e := metric_at(_row(s, role), ds, "novel")) is not None]
    hms = [e["mean"] for s in summaries if (e := metric_at(_row(s, role), ds, "hm")) is not None]
    if role == "backbone":
        hms = list(dict.fromkeys(hms))
    if not base or len(base) != len(novel):
        return "–"
    b, n = float(np.mean(base)), float(np.mean(novel))
    hm = 0.0 if b + n == 0 else 2 * b * n / (b + n)
    return f"{hm:.1f}" if len(hms) <= 1 else f"{hm:.1f} ± {np.std(hms):.1f} (n={len(hms)})"
