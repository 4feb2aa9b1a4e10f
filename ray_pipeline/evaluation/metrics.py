"""Accuracies from the evaluate stage's per-video rows."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass
class SplitCounts:
    """One model on one split: videos scored, videos that could not be decoded, hits."""

    videos: int = 0
    corrupt: int = 0
    top1: int = 0
    top5: int = 0

    def accuracy(self, k: int = 1) -> float:
        """Top-k accuracy in percent over the decodable videos."""
        hits = self.top1 if k == 1 else self.top5
        return 100.0 * hits / max(1, self.videos)


def split_counts(rows: pa.Table) -> dict[str, dict[str, dict[str, SplitCounts]]]:
    """model label -> dataset -> split -> counts, in first-seen order."""
    out: dict[str, dict[str, dict[str, SplitCounts]]] = {}
    for r in rows.select(["model", "dataset", "split", "top1", "top5", "error"]).to_pylist():
        c = out.setdefault(r["model"], {}).setdefault(r["dataset"], {}).setdefault(r["split"], SplitCounts())
        if r["error"]:
            c.corrupt += 1
            continue
        c.videos += 1
        c.top1 += int(r["top1"])
        c.top5 += int(r["top5"])
    return out
