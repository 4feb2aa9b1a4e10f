"""Which epoch's checkpoint a fine-tuning protocol reports.

The released few-shot and base-to-novel code (ViFi-CLIP, TC-CLIP) validates on the *test* list
during training and reports the best value (evaluation-protocols.md §2, §3 and pitfall 5): model
selection on the test split. We support that rule for reproducing the published numbers, and
default to the last epoch, which selects nothing on the test data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

EpochRule = Literal["last", "best"]
EPOCH_RULES: tuple[EpochRule, ...] = ("last", "best")


@dataclass(frozen=True)
class EpochChoice:
    """The epoch a protocol reports, its value and the rule that chose it."""

    epoch: int
    value: float
    rule: EpochRule


def select_epoch(values_by_epoch: Mapping[int, float], rule: EpochRule = "last") -> EpochChoice:
    """Pick the reported epoch from per-epoch validation values.

    Args:
        values_by_epoch: validation metric (higher is better) per epoch that was validated.
        rule: ``"last"`` (the highest epoch number) or ``"best"`` (the highest value; ties go to
            the earliest such epoch, so the choice does not depend on the mapping's order).

    Returns:
        The chosen epoch, its value and the rule.

    Raises:
        ValueError: no epochs, or an unknown rule.
    """
    if rule not in EPOCH_RULES:
        raise ValueError(f"epoch rule {rule!r}: expected one of {EPOCH_RULES}")
    if not values_by_epoch:
        raise ValueError("no validated epochs to choose from")
    if rule == "last":
        epoch = max(values_by_epoch)
    else:
        epoch = min(values_by_epoch, key=lambda e: (-values_by_epoch[e], e))
    return EpochChoice(epoch=int(epoch), value=float(values_by_epoch[epoch]), rule=rule)
