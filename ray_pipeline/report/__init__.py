"""``ray-pipeline report RUN_DIR_OR_SWEEP``: paper-style tables (Markdown and HTML) and curves.

For a **sweep directory** (it has ``sweep.json``) the tables of :mod:`.sweep`; for a **run
directory** (``summary.json``) its models x datasets table (:mod:`.run`). Outputs: ``report.md``,
``report.html`` and ``report/*.png`` in the directory (or ``--out``).
"""

from __future__ import annotations

from ray_pipeline.report.run import run_document
from ray_pipeline.report.sweep import sweep_document, variant_label
from ray_pipeline.runstore import RunStore
from ray_pipeline.sweep.layout import SWEEP_FILE, TRIALS_FILE

REPORT_MD, REPORT_HTML = "report.md", "report.html"

__all__ = ["REPORT_HTML", "REPORT_MD", "variant_label", "write_report", "write_run_report"]


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
    if len(roots) == 1 and not root.exists(SWEEP_FILE):
        return write_run_report(root) if out is root else _copy_run_report(root, out)
    for r in roots:
        if not r.exists(SWEEP_FILE) or not r.exists(TRIALS_FILE):
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
