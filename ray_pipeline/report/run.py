"""A run directory's report, from its ``summary.json`` and ``train/result.json``."""

from __future__ import annotations

import json
from typing import Any

from ray_pipeline.report.anomaly import is_anomaly, run_section
from ray_pipeline.report.document import Doc
from ray_pipeline.runstore import RunStore


def _read_json(store: RunStore, name: str) -> Any:
    return json.loads(store.read_text(name)) if store.exists(name) else None


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
    if is_anomaly(summary):
        run_section(doc, summary)
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
    return doc, title
