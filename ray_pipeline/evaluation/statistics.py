"""Summary statistics that say how sure a number is.

- A metric over cells (splits, or seeds x splits) is reported as mean, population std (ddof = 0,
  as TC-CLIP reports it), a 95 % confidence interval and ``n``.
- The CI is a Student-t interval: over the per-seed means (splits averaged first) when there are
  at least 2 seeds, else over the splits themselves; ``ci_over`` says which. One cell has no CI.
- "A vs B" is a paired comparison: differences of cells with the same seed and split, then the
  same t-interval over their per-seed means (or over splits with one seed); a CI that contains 0
  is not significant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as _stats

# A cell is (seed, split) -> value.
Cells = Mapping[tuple[int, str], float]


def t_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    """Two-sided Student-t CI of the mean of ``values`` (sample std, ddof = 1); None below 2 values
    and a zero-width interval when all values are equal."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    mean = float(x.mean())
    half = float(_stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return [mean - half, mean + half]


def _units(cells: Cells) -> tuple[list[float], str]:
    """The values the CI is taken over: per-seed means of splits with >= 2 seeds, else splits."""
    seeds = sorted({seed for seed, _ in cells})
    if len(seeds) >= 2:
        return [float(np.mean([v for (s, _), v in cells.items() if s == seed])) for seed in seeds], "seeds"
    return [float(v) for v in cells.values()], "splits"


def describe(cells: Cells) -> dict[str, Any]:
    """``{mean, std, ci95, n, ci_over, per_split}`` of a metric's cells (``per_split`` averages
    over seeds)."""
    values = [float(v) for v in cells.values()]
    if not values:
        raise ValueError("no cells to describe")
    units, over = _units(cells)
    splits = sorted({split for _, split in cells})
    per_split = {split: float(np.mean([v for (_, s), v in cells.items() if s == split])) for split in splits}
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "ci95": t_interval(units),
            "n": len(values), "ci_over": over, "per_split": per_split}


def paired_difference(a: Cells, b: Cells) -> dict[str, Any]:
    """A minus B over the cells both have (same seed and split).

    Returns ``{diff_mean, ci95, n_pairs, ci_over, significant}``; ``significant`` is None when
    there is no CI (a single pair), else whether the CI excludes 0.
    """
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two results share no (seed, split) cell to pair")
    diffs = {cell: float(a[cell]) - float(b[cell]) for cell in common}
    units, over = _units(diffs)
    ci = t_interval(units)
    significant = None if ci is None else bool(ci[0] > 0 or ci[1] < 0)
    return {"diff_mean": float(np.mean(list(diffs.values()))), "ci95": ci, "n_pairs": len(common),
            "ci_over": over, "significant": significant}
