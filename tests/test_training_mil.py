"""MIL building blocks: segment features, the ranking and top-k losses by hand, the scorer loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ray_pipeline.training.mil import (
    ScorerTrainConfig,
    SegmentScorer,
    binary_logits,
    mil_ranking_loss,
    normal_vs_rest_logits,
    score_segments,
    segment_features,
    segment_frame_indices,
    topk_mil_ce_loss,
    train_segment_scorer,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_segment_features_average_then_normalise() -> None:
    # 4 clips in 2 segments: clips 1-2 and 3-4 (boundaries round(linspace(1, 4, 3)) = 1, 3, 4)
    clips = np.array([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0], [2.0, 4.0]])
    out = segment_features(clips, num_segments=2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], np.array([2.0, 1.0]) / math.sqrt(5), rtol=1e-6)
    np.testing.assert_allclose(out[1], np.array([1.0, 3.0]) / math.sqrt(10), rtol=1e-6)
    # fewer clips than segments: segments repeat single clips, still unit norm
    three = segment_features(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]))
    assert three.shape == (32, 2)
    np.testing.assert_allclose(np.linalg.norm(three, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(three[31], [0.6, 0.8], rtol=1e-6)
    with pytest.raises(ValueError, match="zero"):
        segment_features(np.array([[1.0, 0.0], [-1.0, 0.0]]), num_segments=1)


def test_segment_frame_indices_stay_inside_their_segments() -> None:
    idx = segment_frame_indices(96, num_segments=32, frames_per_segment=8)
    assert idx.shape == (32, 8)
    assert idx.min() >= 0 and idx.max() <= 95
    assert (np.diff(idx.reshape(-1)) >= 0).all()  # in time order across segments
    # 2 segments of 4 frames each over an 8-frame video, 2 frames per segment: window centres
    assert segment_frame_indices(8, 2, 2).tolist() == [[1, 3], [5, 7]]
    # a video shorter than frames_per_segment repeats frames
    assert segment_frame_indices(3, 1, 4).tolist() == [[0, 1, 1, 2]]


def test_ranking_loss_matches_hand_computation() -> None:
    a = torch.tensor([[0.1, 0.8, 0.3], [0.5, 0.4, 0.2]])
    n = torch.tensor([[0.2, 0.6, 0.1], [0.3, 0.3, 0.9]])
    # a bag pair: hinge 1 - 0.8 + 0.6; smoothness 0.7^2 + 0.5^2; sparsity 1.2
    pair = mil_ranking_loss(a[:1], n[:1], smoothness=0.1, sparsity=0.01)
    assert float(pair) == pytest.approx(0.8 + 0.1 * 0.74 + 0.01 * 1.2, abs=1e-6)
    # two of each: hinges per normal bag (0.8 + 1.1, 1.1 + 1.4), averaged over normal bags = 2.2;
    # smoothness 0.74 + 0.05 and sparsity 1.2 + 1.1 summed over the anomalous bags only
    both = mil_ranking_loss(a, n)
    assert float(both) == pytest.approx(2.2 + 8e-5 * 0.79 + 8e-5 * 2.3, abs=1e-6)
    # a normal bag already far below: no hinge
    assert float(mil_ranking_loss(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]]), 0.0, 0.0)) == 0.0


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_topk_ce_matches_hand_computation() -> None:
    z = torch.tensor([[0.0, 2.0, -1.0], [-2.0, 1.0, 0.0]])
    labels = torch.tensor([1, 0])
    # video 1 (anomalous): top segment z = 2: CE -log s(2), weight s(2)
    # video 2 (normal): top segment z = 1: CE -log(1 - s(1)), weight max(s(1), 1 - s(1))
    mil = (-math.log(_sigmoid(2)) * _sigmoid(2) - math.log(1 - _sigmoid(1)) * _sigmoid(1)) / 2
    p = [[_sigmoid(v) for v in row] for row in z.tolist()]
    smooth = sum(sum((r[i + 1] - r[i]) ** 2 for i in range(2)) for r in p) / 2
    sparse = sum(sum(r) for r in p) / 2
    got = topk_mil_ce_loss(binary_logits(z), labels)
    assert float(got) == pytest.approx(mil + 0.01 * smooth + 0.001 * sparse, abs=1e-6)
    # k = 2: video 1 uses z = 2 and 0, video 2 uses z = 1 and 0
    terms = [-math.log(_sigmoid(2)) * _sigmoid(2), -math.log(0.5) * 0.5,
             -math.log(1 - _sigmoid(1)) * _sigmoid(1), -math.log(0.5) * 0.5]
    got2 = topk_mil_ce_loss(binary_logits(z), labels, k=2, smoothness=0.0, sparsity=0.0)
    assert float(got2) == pytest.approx(sum(terms) / 4, abs=1e-6)
    with pytest.raises(ValueError, match="k must be"):
        topk_mil_ce_loss(binary_logits(z), labels, k=4)


def test_normal_vs_rest_keeps_the_normal_probability() -> None:
    logits = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    two = normal_vs_rest_logits(logits, normal_index=2)
    assert two.shape == (3, 5, 2)
    p_normal = logits.softmax(-1)[..., 2]
    assert torch.allclose(two.softmax(-1)[..., 0], p_normal, atol=1e-6)
    assert torch.allclose(two.softmax(-1)[..., 1], 1 - p_normal, atol=1e-6)
    with pytest.raises(ValueError, match="normal_index"):
        normal_vs_rest_logits(logits, normal_index=4)


def test_scorer_shape_and_dropout_placement() -> None:
    torch.manual_seed(0)
    scorer = SegmentScorer(16)
    assert [m.out_features for m in (scorer.fc1, scorer.fc2, scorer.fc3)] == [512, 32, 1]
    x = torch.randn(3, 32, 16)
    scorer.eval()
    with torch.no_grad():
        s = scorer.score(x)
        assert s.shape == (3, 32)
        assert float(s.min()) > 0 and float(s.max()) < 1
        assert torch.equal(scorer.score(x), s)  # eval: no dropout
    expected = sum(layer.weight.pow(2).sum() for layer in (scorer.fc1, scorer.fc2, scorer.fc3))
    assert torch.allclose(scorer.weight_penalty(), expected)


def _toy_bags(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal bags of noise; anomalous bags where 4 consecutive segments carry a signal."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(24, 32, 8)).astype(np.float32)
    anomalous = rng.normal(size=(24, 32, 8)).astype(np.float32)
    truth = np.zeros((24, 32), dtype=bool)
    for i in range(24):
        start = rng.integers(0, 28)
        anomalous[i, start:start + 4, 0] += 4.0
        truth[i, start:start + 4] = True
    return anomalous, normal, truth


@pytest.mark.parametrize("head", ["ranking", "topk_ce"])
def test_training_loop_learns_and_is_deterministic(head: str) -> None:
    from sklearn.metrics import roc_auc_score

    anomalous, normal, _ = _toy_bags()
    config = ScorerTrainConfig(head=head, iterations=150, bags_per_side=8, seed=3)
    first = train_segment_scorer(anomalous, normal, config)
    again = train_segment_scorer(anomalous, normal, config)
    assert first.losses == again.losses
    assert len(first.losses) == 150
    test_a, test_n, test_truth = _toy_bags(seed=1)
    scores = np.concatenate([score_segments(first.scorer, test_a), score_segments(first.scorer, test_n)])
    labels = np.concatenate([test_truth, np.zeros_like(test_truth)])
    assert roc_auc_score(labels.reshape(-1), scores.reshape(-1)) > 0.9
    with pytest.raises(ValueError, match="unknown MIL head"):
        ScorerTrainConfig(head="svm")
