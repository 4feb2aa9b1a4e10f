"""ToMe bipartite soft matching as TC-CLIP uses it: schedules, hand-made merges, gradients."""

from __future__ import annotations

import pytest
import torch

from ray_pipeline.models.tome import bipartite_merge_step, merge_schedule, merge_tokens

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_schedule_matches_tc_clip_vit_b16() -> None:
    # 196 patches * 0.3 -> 58 seeds per frame; k = 96, r = 100 (tc-clip.md §1.2)
    t16 = merge_schedule(16 * 58, 96, 100)
    assert t16 == [928, 828, 728, 628, 528, 428, 328, 228, 128, 96]
    assert merge_schedule(8 * 58, 96, 100) == [464, 364, 264, 164, 96]
    t32 = merge_schedule(32 * 58, 96, 100)
    assert t32[0] == 1856 and t32[-1] == 96 and len(t32) - 1 == 18


def test_schedule_never_merges_more_than_half_or_below_target() -> None:
    assert merge_schedule(150, 96, 100) == [150, 96]  # one step of 54
    assert merge_schedule(300, 10, 200) == [300, 150, 75, 38, 19, 10]  # capped at n // 2
    assert merge_schedule(50, 96, 100) == [50]  # fewer seeds than k: nothing to merge
    with pytest.raises(ValueError):
        merge_schedule(10, 0, 1)


def _tokens(*rows: list[float]) -> torch.Tensor:
    return torch.tensor([rows], dtype=torch.float32)


def test_merge_step_by_hand() -> None:
    # positions 0, 2 are set A; 1, 3 are set B
    a0, b0, a1, b1 = [1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]
    x = _tokens(a0, b0, a1, b1)
    # a0 -> b0 has cosine 1, a1 -> b1 only 0.71: the one merge (r=1) is a0 into b0
    out, size = bipartite_merge_step(x, torch.ones(1, 4), 1)
    assert torch.allclose(out, _tokens([0.0, 1.0], [1.5, 0.0], [1.0, 1.0]))
    assert size.tolist() == [[1.0, 2.0, 1.0]]

    # the average is weighted by how many tokens each entry already stands for
    out, size = bipartite_merge_step(x, torch.tensor([[3.0, 1.0, 1.0, 1.0]]), 1)
    assert torch.allclose(out, _tokens([0.0, 1.0], [1.25, 0.0], [1.0, 1.0]))
    assert size.tolist() == [[1.0, 4.0, 1.0]]


def test_two_sources_into_one_destination() -> None:
    a0, b0, a1, b1 = [1.0, 0.0], [1.0, 0.0], [1.0, 0.1], [0.0, 1.0]
    out, size = bipartite_merge_step(_tokens(a0, b0, a1, b1), torch.ones(1, 4), 2)
    expected_b0 = (torch.tensor(a0) + torch.tensor(b0) + torch.tensor(a1)) / 3
    assert out.shape == (1, 2, 2)
    assert torch.allclose(out[0, 0], expected_b0)
    assert torch.allclose(out[0, 1], torch.tensor(b1))
    assert size.tolist() == [[3.0, 1.0]]


def test_unmerged_a_tokens_in_descending_link_order() -> None:
    # a0 links weakly, a1 strongly: with r=1 a1 merges and a0 is kept in front
    a0, b0, a1, b1 = [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 1.0]
    out, _ = bipartite_merge_step(_tokens(a0, b0, a1, b1), torch.ones(1, 4), 1)
    assert torch.allclose(out, _tokens(a0, [0.0, 1.0], b1))
    with pytest.raises(ValueError):
        bipartite_merge_step(_tokens(a0, b0, a1, b1), torch.ones(1, 4), 3)


def test_merge_to_target_preserves_mass_and_batches_independently() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 928, 8)
    out, size = merge_tokens(x, 96, 100)
    assert out.shape == (2, 96, 8) and size.shape == (2, 96)
    assert torch.allclose(size.sum(dim=1), torch.full((2,), 928.0))
    # a size-weighted average keeps the sum of the original tokens
    assert torch.allclose((out * size.unsqueeze(-1)).sum(dim=1), x.sum(dim=1), atol=1e-3)
    single, _ = merge_tokens(x[1:], 96, 100)
    assert torch.allclose(single[0], out[1], atol=1e-6)


def test_odd_counts_and_no_merge() -> None:
    torch.manual_seed(1)
    x = torch.randn(1, 7, 4)
    out, size = merge_tokens(x, 3, 2)  # 7 -> 5 -> 3
    assert out.shape == (1, 3, 4) and float(size.sum()) == 7.0
    same, ones = merge_tokens(x, 10, 4)
    assert torch.equal(same, x) and torch.equal(ones, torch.ones(1, 7))


def test_gradient_flows_through_the_averaging_only() -> None:
    a0, b0, a1, b1 = [1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]
    x = _tokens(a0, b0, a1, b1).requires_grad_(True)
    out, _ = merge_tokens(x, 3, 1)
    out.sum().backward()
    # a0 and b0 are averaged (weight 1/2 each); a1 and b1 pass through
    assert torch.allclose(x.grad[0, :, 0], torch.tensor([0.5, 0.5, 1.0, 1.0]))
