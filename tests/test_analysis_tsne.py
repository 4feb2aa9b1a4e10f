"""t-SNE embedding and Figure 1's picture."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ray_pipeline.analysis.tsne import class_colors, tsne_embedding, tsne_perplexity, tsne_png


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    """sklearn's Barnes-Hut t-SNE runs on OpenMP threads: one is plenty for these sizes."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _clusters(n_per: int = 15, classes: int = 3, dim: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per)
    centres = rng.normal(size=(classes, dim)) * 10
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def test_perplexity_is_capped_for_small_sets():
    assert tsne_perplexity(1000) == 30.0
    assert tsne_perplexity(10) == 3.0
    assert tsne_perplexity(4) == 1.0


def test_tsne_embedding_keeps_clusters_and_is_seeded():
    x, labels = _clusters()
    a = tsne_embedding(x, seed=0)
    assert a.shape == (45, 2) and np.isfinite(a).all()
    np.testing.assert_allclose(tsne_embedding(x, seed=0), a)
    # Every point's nearest neighbour in the map is from its own cluster.
    d = np.linalg.norm(a[:, None] - a[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).all()


def test_tsne_embedding_small_set():
    x, _ = _clusters(n_per=2, classes=3)
    assert tsne_embedding(x, seed=1).shape == (6, 2)
    with pytest.raises(ValueError, match="n >= 4"):
        tsne_embedding(x[:3], seed=0)


def test_tsne_png_one_panel_per_set():
    x, labels = _clusters()
    sets = np.arange(45) % 3
    data = tsne_png(tsne_embedding(x, 0), labels, sets, ["wave", "run", "jump"], ["real", "Basic", "IE"])
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    width, height = image.size
    assert width > 2.5 * height  # three panels side by side (plus a legend)
    pixels = np.asarray(image.convert("RGB"))
    for colour in class_colors(3)[:, :3]:  # every class colour is drawn
        target = np.round(colour * 255).astype(int)
        assert (np.abs(pixels.astype(int) - target).sum(-1) < 6).any()


def test_tsne_png_many_classes_without_legend():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(120, 2))
    names = [f"c{k}" for k in range(40)]
    data = tsne_png(points, np.arange(120) % 40, np.arange(120) % 2, names, ["a", "b"])
    assert Image.open(io.BytesIO(data)).size[0] > 0
    assert len({tuple(c) for c in class_colors(51)}) == 51  # distinct, no greys among them
    assert not any(c[0] == c[1] == c[2] for c in class_colors(54))
    assert len({tuple(c) for c in class_colors(80)}) == 80


@pytest.mark.parametrize("kwargs, match", [
    ({"points": np.zeros((4, 3))}, "points"),
    ({"labels": [0, 1, 2]}, "labels: expected 4"),
    ({"labels": [0, 1, 2, 5]}, "labels: indices"),
    ({"sets": [0, 0, 1, 2]}, "sets: indices"),
])
def test_tsne_png_rejects_bad_input(kwargs, match):
    args = {"points": np.zeros((4, 2)), "labels": [0, 1, 0, 1], "sets": [0, 0, 1, 1],
            "class_names": ["a", "b"], "set_names": ["x", "y"], **kwargs}
    with pytest.raises(ValueError, match=match):
        tsne_png(**args)
