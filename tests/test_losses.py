"""CE / LS / UW / UF / UL against hand-computed values, and uncertainty normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ray_pipeline.training.losses import (
    ClassificationLoss,
    UncertaintyNormalizer,
    build_loss,
    normalize_uncertainty,
    smoothed_targets,
    uf_keep_mask,
    uf_threshold,
)


def _log_softmax(z: list[float]) -> list[float]:
    lse = math.log(sum(math.exp(v) for v in z))
    return [v - lse for v in z]


LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, -0.5]])
LABELS = torch.tensor([0, 2])


def _ce(row: int) -> float:
    return -_log_softmax(LOGITS[row].tolist())[int(LABELS[row])]


def _ul(row: int, eps: float) -> float:
    lp = _log_softmax(LOGITS[row].tolist())
    y = int(LABELS[row])
    k = len(lp)
    return -(1 - eps) * lp[y] - eps / (k - 1) * sum(v for i, v in enumerate(lp) if i != y)


# ----------------------------------------------------------------------------------------------
# Hand-computed values
# ----------------------------------------------------------------------------------------------


def test_ce_by_hand() -> None:
    loss = build_loss("ce")(LOGITS[:1], LABELS[:1])
    assert float(loss) == pytest.approx(0.16984601955628564, rel=1e-6)  # log(e^2+1+e^-1) - 2
    assert float(build_loss("ce")(LOGITS, LABELS)) == pytest.approx((_ce(0) + _ce(1)) / 2, rel=1e-6)


def test_ul_by_hand_k3() -> None:
    u = torch.tensor([0.5, 1.0])
    loss = build_loss("ul", weight=0.3)(LOGITS, LABELS, u)
    # row 0: eps = 0.15 -> -(0.85 log p0 + 0.075 (log p1 + log p2))
    assert _ul(0, 0.15) == pytest.approx(0.5448460195562856, rel=1e-9)
    assert float(loss) == pytest.approx((_ul(0, 0.15) + _ul(1, 0.3)) / 2, rel=1e-6)


def test_ul_by_hand_k2() -> None:
    loss = build_loss("ul", weight=0.3)(torch.tensor([[1.0, -1.0]]), torch.tensor([1]), torch.tensor([0.5]))
    # eps = 0.15, K - 1 = 1: -(0.85 log p1 + 0.15 log p0)
    assert float(loss) == pytest.approx(1.8269280110429722, rel=1e-6)


def test_targets_follow_eq4() -> None:
    q = smoothed_targets(torch.tensor([1, 0]), 4, torch.tensor([0.3, 0.0]))
    assert torch.allclose(q, torch.tensor([[0.1, 0.7, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(q.sum(dim=1), torch.ones(2))
    q2 = smoothed_targets(torch.tensor([0]), 2, torch.tensor([0.2]))
    assert torch.allclose(q2, torch.tensor([[0.8, 0.2]]))
    with pytest.raises(ValueError):
        smoothed_targets(torch.tensor([0]), 1, torch.tensor([0.1]))


def test_ul_with_zero_epsilon_is_ce() -> None:
    ce = build_loss("ce")(LOGITS, LABELS)
    assert torch.allclose(build_loss("ul")(LOGITS, LABELS, torch.zeros(2)), ce, atol=1e-7)
    assert torch.allclose(build_loss("ul", weight=0.0)(LOGITS, LABELS, torch.ones(2)), ce, atol=1e-7)
    assert torch.allclose(build_loss("ls", epsilon=0.0)(LOGITS, LABELS), ce, atol=1e-7)
    # K = 2 too
    z, y = torch.tensor([[0.3, -0.2]]), torch.tensor([0])
    assert torch.allclose(build_loss("ul")(z, y, torch.zeros(1)), build_loss("ce")(z, y), atol=1e-7)


def test_ls_equals_ul_with_constant_uncertainty() -> None:
    ls = build_loss("ls", epsilon=0.12)(LOGITS, LABELS)
    ul = build_loss("ul", weight=0.3)(LOGITS, LABELS, torch.full((2,), 0.4))  # eps = 0.3 * 0.4
    assert torch.allclose(ls, ul, atol=1e-7)
    assert float(ls) == pytest.approx((_ul(0, 0.12) + _ul(1, 0.12)) / 2, rel=1e-6)


def test_uw_by_hand() -> None:
    u = torch.tensor([0.0, 1.0])
    loss = build_loss("uw", weight=0.3)(LOGITS, LABELS, u)
    assert float(loss) == pytest.approx((1.0 * _ce(0) + 0.7 * _ce(1)) / 2, rel=1e-6)
    assert torch.allclose(build_loss("uw")(LOGITS, LABELS, torch.zeros(2)), build_loss("ce")(LOGITS, LABELS))


def test_uf_by_hand() -> None:
    loss_fn = build_loss("uf", uf_threshold=0.5)
    assert float(loss_fn(LOGITS, LABELS, torch.tensor([0.2, 0.9]))) == pytest.approx(_ce(0), rel=1e-6)
    both = float(loss_fn(LOGITS, LABELS, torch.tensor([0.5, 0.1])))  # 0.5 is at the cut: kept
    assert both == pytest.approx((_ce(0) + _ce(1)) / 2, rel=1e-6)
    # every clip dropped: zero loss that still backpropagates (DDP needs the graph)
    z = LOGITS.clone().requires_grad_(True)
    dropped = loss_fn(z, LABELS, torch.tensor([0.9, 1.0]))
    assert float(dropped.detach()) == 0.0
    dropped.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_uf_threshold_and_mask() -> None:
    u = [0.0, 0.1, 0.5, 0.9, 1.0]
    assert uf_threshold(u, 0.2) == 0.9  # drop 1 of 5
    assert uf_threshold(u, 0.4) == 0.5  # drop 2
    assert uf_threshold(u, 0.0) == 1.0  # drop none
    assert uf_keep_mask(u, 0.4).tolist() == [True, True, True, False, False]
    # ties at the cut are kept, so fewer may be dropped
    assert uf_keep_mask([0.0, 0.5, 0.5, 0.5], 0.25).tolist() == [True] * 4
    with pytest.raises(ValueError):
        uf_threshold(u, 1.0)


def test_ul_gradient_is_softmax_minus_targets() -> None:
    z = LOGITS.clone().requires_grad_(True)
    u = torch.tensor([0.3, 0.8])
    build_loss("ul")(z, LABELS, u).backward()
    q = smoothed_targets(LABELS, 3, 0.3 * u)
    assert torch.allclose(z.grad, (LOGITS.softmax(dim=-1) - q) / 2, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------


def test_minmax_normalisation() -> None:
    norm = UncertaintyNormalizer.fit([1.0, 2.0, 3.0])
    assert (norm.low, norm.high) == (1.0, 3.0)
    assert np.allclose(norm([1.0, 2.0, 3.0, 4.0, 0.0]), [0.0, 0.5, 1.0, 1.0, 0.0])
    out = norm(torch.tensor([2.5]))
    assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.tensor([0.75]))
    assert np.allclose(normalize_uncertainty(np.array([0.2, 0.4, 1.2])), [0.0, 0.2, 1.0])
    # all equal: no information, no smoothing
    assert np.array_equal(UncertaintyNormalizer.fit([0.7, 0.7])([0.7]), [0.0])
    assert UncertaintyNormalizer.from_dict(norm.to_dict()) == norm


def test_logk_normalisation() -> None:
    norm = UncertaintyNormalizer.fit([0.1, 0.2], method="logk", num_classes=4)
    assert np.allclose(norm([math.log(4), math.log(2), 0.0]), [1.0, 0.5, 0.0])
    with pytest.raises(ValueError):
        UncertaintyNormalizer.fit([0.1], method="logk")
    with pytest.raises(ValueError):
        UncertaintyNormalizer.fit([0.1], method="zscore")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        UncertaintyNormalizer.fit([])


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uf_threshold"):
        build_loss("uf")
    with pytest.raises(ValueError, match="needs per-sample"):
        build_loss("ul")(LOGITS, LABELS)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        build_loss("ul")(LOGITS, LABELS, torch.tensor([0.5, 2.3]))  # raw entropy, not normalised
    with pytest.raises(ValueError):
        build_loss("ul")(LOGITS, LABELS, torch.tensor([0.5]))
    assert build_loss("ul").needs_uncertainty and not build_loss("ls").needs_uncertainty
    assert isinstance(build_loss("ce"), ClassificationLoss)


def test_half_precision_logits() -> None:
    loss = build_loss("ul")(LOGITS.bfloat16(), LABELS, torch.tensor([0.5, 1.0]))
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx((_ul(0, 0.15) + _ul(1, 0.3)) / 2, rel=2e-2)


# --------------------------------------------------------------------------------------------
# Mixed batches: the variant acts on generated clips; real clips are treated alike by every variant
# --------------------------------------------------------------------------------------------

# Row 0 generated (u = 0.8), row 1 real (its uncertainty is ignored).
MIXED_U = torch.tensor([0.8, 0.0])
REAL = torch.tensor([False, True])


@pytest.mark.parametrize("name, generated_term", [
    ("ce", lambda: _ce(0)),
    ("ls", lambda: _ul(0, 0.1)),
    ("ul", lambda: _ul(0, 0.3 * 0.8)),
    ("uw", lambda: (1 - 0.3 * 0.8) * _ce(0)),
])
def test_mixed_batch_matches_hand_values(name, generated_term):
    loss = build_loss(name, weight=0.3, epsilon=0.1, real_epsilon=0.2)
    real_term = _ul(1, 0.2)  # LS with real_epsilon, whatever the variant
    expected = (generated_term() + real_term) / 2
    assert float(loss(LOGITS, LABELS, MIXED_U, REAL)) == pytest.approx(expected, rel=1e-6)


def test_mixed_batch_uf_drops_only_generated_clips():
    loss = build_loss("uf", uf_threshold=0.5, real_epsilon=0.1)
    # The generated clip (u = 0.8) is dropped; the real one is kept although its "u" is above too.
    assert float(loss(LOGITS, LABELS, torch.tensor([0.8, 0.9]), REAL)) == pytest.approx(_ul(1, 0.1), rel=1e-6)


def test_real_clips_are_treated_the_same_by_every_variant():
    only_real = torch.tensor([True, True])
    values = {name: float(build_loss(name, weight=0.3, epsilon=0.1, uf_threshold=0.5)(LOGITS, LABELS, MIXED_U,
                                                                                      only_real))
              for name in ("ce", "ls", "uw", "uf", "ul")}
    assert len(set(values.values())) == 1
    assert values["ul"] == pytest.approx((_ul(0, 0.1) + _ul(1, 0.1)) / 2, rel=1e-6)


def test_all_generated_batches_keep_the_old_path():
    for name in ("ce", "ls", "uw", "ul"):
        loss = build_loss(name, weight=0.3, epsilon=0.1)
        assert torch.equal(loss(LOGITS, LABELS, MIXED_U, torch.tensor([False, False])), loss(LOGITS, LABELS, MIXED_U))
