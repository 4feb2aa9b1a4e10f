"""Token merging (ToMe bipartite soft matching) as TC-CLIP uses it to build context tokens.

TC-CLIP gathers the most-attended patch tokens of every frame ("seed tokens") and merges them,
per video, down to ``k`` context tokens. Each merge step splits the current sequence into the
even positions (set A) and the odd positions (set B), links every A token to its most similar B
token (cosine similarity of the hidden states), and merges the ``r`` A tokens with the strongest
links into their B partners by a size-weighted average. Output order: the unmerged A tokens (in
descending order of their link score, as ToMe's reference implementation leaves them) then B.

The choice of which tokens merge is made without gradients; the averaging is differentiable.
"""

from __future__ import annotations

import torch


def merge_schedule(num_tokens: int, target: int, r: int) -> list[int]:
    """Token counts after each merge step, starting with ``num_tokens`` and ending at ``target``.

    Each step removes ``min(r, count - target, count // 2)`` tokens: never more than ``r``, never
    below the target, and never more than half (bipartite matching can merge at most every A
    token). With fewer tokens than the target no merging happens.

    Args:
        num_tokens: tokens before merging (e.g. T * seed tokens per frame).
        target: tokens wanted at the end (TC-CLIP's ``k``).
        r: tokens removed per step (TC-CLIP's ``tome_r``).

    Returns:
        The counts, first ``num_tokens``, last ``max(target, ...)``; one entry per state.
    """
    if r < 1 or target < 1:
        raise ValueError(f"merge_schedule needs r >= 1 and target >= 1, got r={r}, target={target}")
    counts = [num_tokens]
    n = num_tokens
    while n > target:
        step = min(r, n - target, n // 2)
        if step < 1:  # n == 1 cannot shrink; unreachable for target >= 1 but keeps the loop finite
            break
        n -= step
        counts.append(n)
    return counts


def bipartite_merge_step(
    x: torch.Tensor, size: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ToMe step: merge ``r`` tokens of set A into set B by size-weighted averaging.

    Args:
        x: [B, n, D] token features (averages of the tokens they stand for).
        size: [B, n] how many original tokens each entry stands for.
        r: tokens to remove, ``0 <= r <= n // 2``.

    Returns:
        ``(x, size)`` with ``n - r`` tokens: ``[unmerged A ; B]``.
    """
    n, dim = x.shape[1], x.shape[2]
    if r <= 0:
        return x, size
    if r > n // 2:
        raise ValueError(f"cannot merge {r} of {n} tokens in one bipartite step (max {n // 2})")
    with torch.no_grad():
        metric = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        scores = metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)  # [B, |A|, |B|]
        node_max, node_idx = scores.max(dim=-1)
        # stable sort: equal scores keep position order, so the result is deterministic
        edge_idx = torch.argsort(node_max, dim=-1, descending=True, stable=True)
        unm_idx = edge_idx[:, r:]
        src_idx = edge_idx[:, :r]
        dst_idx = node_idx.gather(1, src_idx)

    # Merge weighted sums and sizes with the same index plan, then renormalise.
    weighted = x * size.unsqueeze(-1)
    wa, wb = weighted[:, ::2], weighted[:, 1::2]
    sa, sb = size[:, ::2], size[:, 1::2]
    unm = wa.gather(1, unm_idx.unsqueeze(-1).expand(-1, -1, dim))
    src = wa.gather(1, src_idx.unsqueeze(-1).expand(-1, -1, dim))
    dst = wb.scatter_reduce(1, dst_idx.unsqueeze(-1).expand(-1, -1, dim), src, reduce="sum")
    size_dst = sb.scatter_reduce(1, dst_idx, sa.gather(1, src_idx), reduce="sum")
    new_size = torch.cat([sa.gather(1, unm_idx), size_dst], dim=1)
    new_x = torch.cat([unm, dst], dim=1) / new_size.unsqueeze(-1)
    return new_x, new_size


def merge_tokens(x: torch.Tensor, target: int, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``x`` [B, n, D] down to ``target`` tokens with repeated bipartite steps of ``r``.

    Sizes start at 1 (TC-CLIP resets them every layer).

    Returns:
        ``(tokens [B, min(n, target), D], sizes [B, min(n, target)])``; sizes sum to n.
    """
    size = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    counts = merge_schedule(x.shape[1], target, r)
    for before, after in zip(counts[:-1], counts[1:]):
        x, size = bipartite_merge_step(x, size, before - after)
    return x, size
