"""Table 8's layout of ``analysis/metrics.json``: one row per set, DB and the three MMD² columns.

The paper's Table 8 (TC-CLIP's CLIP features, real HMDB-51 as the reference):

| Method | DB | MMD_lin | MMD_rbf | MMD_poly |
|---|---|---|---|---|
| Basic | 2.120 | 0.115 | 0.098 | 0.130 |
| IE | 4.310 | 0.112 | 0.092 | 0.122 |
| HMDB-51 | 5.040 | 0.000 | 0.000 | 0.000 |
| UCF-101 | 2.840 | 0.036 | 0.031 | 0.042 |
"""

from __future__ import annotations

from typing import Any

from ray_pipeline.analysis.compare import METRIC_KEYS

TABLE8_COLUMNS = {"davies_bouldin": "DB", "mmd_linear": "MMD² lin", "mmd_rbf": "MMD² rbf",
                  "mmd_poly": "MMD² poly"}
# The paper's rows, for a reference table beside ours.
PAPER_TABLE8 = [("Basic", [2.120, 0.115, 0.098, 0.130]), ("IE", [4.310, 0.112, 0.092, 0.122]),
                ("HMDB-51", [5.040, 0.000, 0.000, 0.000]), ("UCF-101", [2.840, 0.036, 0.031, 0.042])]


def _number(value: float, scale: float) -> str:
    # Three decimals like the paper; values below 0.01 (an MMD² of unit-norm features with the
    # poly kernel's γ = 1/dim is about 3/dim times the linear one) keep 3 significant digits.
    return f"{value:.3f}" if scale == 0 or abs(scale) >= 0.01 else f"{value:.2e}"


def _cell(value: Any, where: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):  # aggregated over seeds
        if "mean" not in value:
            raise ValueError(f"{where}: expected a number or a {{mean, std, n}} dict, got keys {sorted(value)}")
        mean = float(value["mean"])
        if value.get("n", 1) > 1:
            std = float(value.get("std", 0.0))
            # A set that does not change with the seed (a real dataset) has std exactly 0.
            return f"{_number(mean, mean)} ± {_number(std, mean) if std else '0'}"
        return _number(mean, mean)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(float(value), float(value))
    raise ValueError(f"{where}: expected a number, got {value!r}")


def _count(value: Any) -> str:
    if isinstance(value, dict):
        lo, hi = min(value["values"]), max(value["values"])
        return str(int(lo)) if lo == hi else f"{int(lo)}–{int(hi)}"
    return str(int(value))


def table8_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of Table 8 from an ``analysis/metrics.json`` dict.

    Args:
        metrics: ``compare_sets`` (one seed: plain numbers) or ``aggregate_over_seeds`` output
            (numbers as {mean, std, n}: shown as mean ± population std over seeds).

    Returns:
        (header, rows): header ["Set", "kind", "clips", "DB", "MMD² lin vs REF", ...]; one row of
        strings per set, numbers to 3 decimals like the paper (3 significant digits below 0.01).
    """
    if "sets" not in metrics or "reference" not in metrics:
        raise ValueError(f"analysis metrics need 'sets' and 'reference', got keys {sorted(metrics)}")
    ref = metrics["reference"]
    header = ["Set", "kind", "clips"] + [
        TABLE8_COLUMNS[k] + (f" vs {ref}" if k.startswith("mmd") else "") for k in METRIC_KEYS]
    rows = []
    for i, entry in enumerate(metrics["sets"]):
        name = entry.get("name", f"set {i}")
        missing = [k for k in ("n", *METRIC_KEYS) if k not in entry]
        if missing:
            raise ValueError(f"analysis metrics, set {name!r}: missing {', '.join(missing)}")
        rows.append([str(name), str(entry.get("kind", "")), _count(entry["n"])]
                    + [_cell(entry[k], f"set {name!r}, {k}") for k in METRIC_KEYS])
    return header, rows


def paper_table8_rows() -> tuple[list[str], list[list[str]]]:
    """The paper's Table 8 in the same layout (real HMDB-51 as the reference), for comparison."""
    header = ["Set"] + [TABLE8_COLUMNS[k] + (" vs HMDB-51" if k.startswith("mmd") else "") for k in METRIC_KEYS]
    return header, [[name] + [f"{v:.3f}" for v in values] for name, values in PAPER_TABLE8]
