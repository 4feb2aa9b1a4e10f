"""A run directory's report, from its ``summary.json``, ``train/result.json`` and, after
``ray-pipeline analyze``, ``analysis/metrics.json`` (laid out like the paper's Table 8)."""

from __future__ import annotations

import json
from typing import Any

from ray_pipeline.analysis.outputs import METRICS_JSON, QUALITY_HTML, TSNE_PNG
from ray_pipeline.analysis.report import paper_table8_rows, table8_rows
from ray_pipeline.report.anomaly import is_anomaly, run_section
from ray_pipeline.report.document import Doc
from ray_pipeline.report.protocols import PROTOCOL_TASKS, protocol_run_document
from ray_pipeline.runstore import RunStore


def _read_json(store: RunStore, name: str) -> Any:
    return json.loads(store.read_text(name)) if store.exists(name) else None


def run_document(store: RunStore) -> tuple[Doc, str]:
    """A single run's (or trial's) report from its summary.json, train/result.json and analysis."""
    summary = _read_json(store, "summary.json")
    train = _read_json(store, "train/result.json")
    analysis = _read_json(store, METRICS_JSON)
    if summary is None and train is None and analysis is None:
        raise FileNotFoundError(f"{store.root}: no summary.json, train/result.json or {METRICS_JSON} (run "
                                "train/evaluate or analyze first)")
    title = f"Run report: {store.name}"
    doc = Doc()
    doc.h(1, title)
    if train:
        doc.p(f"Trained {train.get('model')} ({train.get('recipe')}) with loss {train.get('loss')}, "
              f"w={train.get('w')}, on {train.get('num_clips')} generated clips of {train.get('num_classes')} classes.")
    if is_anomaly(summary):
        run_section(doc, summary)
    elif summary and summary.get("task") in PROTOCOL_TASKS:
        protocol_run_document(summary, doc)
    elif summary:
        rows = summary.get("rows", [])
        datasets = list(dict.fromkeys(d for r in rows for d in r.get("datasets", {})))
        table = []
        for r in rows:
            cells = []
            for ds in datasets:
                e = (r["datasets"].get(ds) or {}).get("top1")
                ci = f" [{e['ci95'][0]:.1f}, {e['ci95'][1]:.1f}]" if e and e.get("ci95") else ""
                cells.append("–" if e is None else f"{e['mean']:.1f} ± {e['std']:.1f}{ci} (n={e['n']})")
            table.append([r["label"], r["role"]] + cells)
        doc.h(2, "Top-1 (%)")
        doc.table(["Model", "role"] + datasets, table)
        proto = summary.get("protocol", {})
        doc.p(f"Mean ± population std over splits [95 % CI]; {proto.get('num_clips', '?')} clips × "
              f"{proto.get('num_frames', '?')} frames per video.")
        data = summary.get("data", {})
        if data.get("failure_auroc") is not None:
            doc.p(f"Generated data: {data.get('clips')} clips, {data.get('failed_clips')} failed (known to "
                  f"the generator); CLIP entropy detects them with AUROC {data['failure_auroc']:.3f} "
                  "(0.5 = chance).")
    if analysis:
        analysis_section(doc, analysis)
    return doc, title


def analysis_section(doc: Doc, metrics: dict[str, Any]) -> None:
    """``analysis/metrics.json`` in Table 8's layout, the generated sets' figures and the t-SNE."""
    doc.h(2, "Generated data against real data (Table 8 layout)")
    header, rows = table8_rows(metrics)
    doc.table(header, rows)
    extractor = metrics.get("extractor", {})
    doc.p(f"DB = Davies-Bouldin per set (higher: classes overlap more, as in real data); MMD² "
          f"({metrics.get('estimator', 'biased')} estimator) of each set against {metrics['reference']}, on "
          f"L2-normalised CLIP video features ({extractor.get('model', 'CLIP')}, "
          f"{extractor.get('num_frames', '?')} frames). The paper's Table 8 (real HMDB-51 as the reference):")
    header, rows = paper_table8_rows()
    doc.table(header, rows)
    generated = metrics.get("generated", {})
    if generated:
        def cell(value: Any) -> str:
            return "–" if value is None else f"{value:.3f}"

        doc.table(["Generated set", "clips", "failed / known", "failure AUROC", "within-class diversity"],
                  [[name, str(g["clips"]), f"{g['failed_clips']} / {g['failure_known_clips']}"
                    if g["failure_known_clips"] else "–", cell(g["failure_auroc"]), cell(g["diversity"])]
                   for name, g in generated.items()])
    doc.img(TSNE_PNG, "t-SNE of the CLIP features of every set")
    doc.p(f"Data-quality report: {QUALITY_HTML}.")
