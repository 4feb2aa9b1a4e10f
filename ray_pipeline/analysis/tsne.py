"""t-SNE of feature sets and Figure 1's picture of it.

One embedding is computed over all sets together (real and generated), so that every panel
shares one map and one pair of axes; the picture then draws one panel per set, like the paper's
Figure 1(b) (HMDB-51, synthetic Basic, synthetic IE, left to right), each point coloured by its
class, with the other sets' points in light grey behind for reference.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

DEFAULT_PERPLEXITY = 30.0  # sklearn's default
LEGEND_MAX_CLASSES = 30  # above this a class legend would be taller than the figure


def tsne_perplexity(n: int) -> float:
    """sklearn's default perplexity, capped at (n − 1) / 3 for small sets (it must stay below n)."""
    return float(min(DEFAULT_PERPLEXITY, max(1.0, (n - 1) / 3.0)))


def tsne_embedding(features: np.ndarray, seed: int) -> np.ndarray:
    """A 2-D t-SNE embedding (sklearn, PCA initialisation) of the rows of ``features``.

    Args:
        features: (n, d) array with n ≥ 4, e.g. the L2-normalised CLIP features of every set stacked.
        seed: random state; the same features and seed give the same embedding.

    Returns:
        (n, 2) float64 array.
    """
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError(f"t-SNE needs a (n, d) array with n >= 4 rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features: contains NaN or infinite values")
    tsne = TSNE(n_components=2, perplexity=tsne_perplexity(x.shape[0]), init="pca", random_state=int(seed))
    return np.asarray(tsne.fit_transform(x), dtype=np.float64)


# Greys are left out of the class palette: grey means "another set" in the picture.
_PALETTE = (("tab20", [i for i in range(20) if i not in (14, 15)]), ("tab20b", list(range(20))),
            ("tab20c", list(range(16))))
BACKGROUND = "#e4e4e4"


def class_colors(num_classes: int) -> np.ndarray:
    """(K, 4) RGBA colours: tab20, tab20b, tab20c without their greys (54), evenly spaced hues beyond."""
    from matplotlib import colormaps

    table = np.concatenate([colormaps[name](np.array(idx)) for name, idx in _PALETTE])
    if num_classes <= len(table):
        return table[:num_classes]
    return colormaps["hsv"](np.linspace(0, 1, num_classes, endpoint=False))


def tsne_png(points: np.ndarray, labels: Sequence[int] | np.ndarray, sets: Sequence[int] | np.ndarray,
             class_names: Sequence[str], set_names: Sequence[str], *, title: str | None = None) -> bytes:
    """Figure 1's layout: one panel per set, colour = class, all panels on the same axes.

    Args:
        points: (n, 2) embedding, e.g. from :func:`tsne_embedding`.
        labels: n class indices into ``class_names``.
        sets: n set indices into ``set_names`` (panel order = ``set_names`` order).
        class_names: the class names (a legend is drawn for up to 30 classes).
        set_names: the panel titles, e.g. ["world_hmdb", "Basic", "IE"].
        title: an optional figure title.

    Returns:
        The PNG's bytes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    pts = np.asarray(points, dtype=np.float64)
    lab, grp = np.asarray(labels), np.asarray(sets)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected shape (n, 2), got {pts.shape}")
    n = pts.shape[0]
    for name, arr in (("labels", lab), ("sets", grp)):
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected {n} entries (one per point), got shape {arr.shape}")
    if n and (lab.min() < 0 or lab.max() >= len(class_names)):
        raise ValueError(f"labels: indices must lie in [0, {len(class_names)}), got {lab.min()}..{lab.max()}")
    if n and (grp.min() < 0 or grp.max() >= len(set_names)):
        raise ValueError(f"sets: indices must lie in [0, {len(set_names)}), got {grp.min()}..{grp.max()}")
    colors = class_colors(len(class_names))
    panels = len(set_names)
    legend = len(class_names) <= LEGEND_MAX_CLASSES
    panels_width, legend_width = 3.6 * panels, (2.2 if len(class_names) > 15 else 1.3) if legend else 0.0
    fig = Figure(figsize=(panels_width + legend_width, 3.9), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, sharex=True, sharey=True, squeeze=False)[0]
    size = 14.0 if n < 500 else 6.0
    for s, ax in enumerate(axes):
        here = grp == s
        ax.scatter(pts[~here, 0], pts[~here, 1], s=size * 0.5, c=BACKGROUND, linewidths=0)
        ax.scatter(pts[here, 0], pts[here, 1], s=size, c=colors[lab[here]], linewidths=0)
        ax.set_title(f"{set_names[s]} (n={int(here.sum())})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    right = panels_width / (panels_width + legend_width)
    fig.suptitle(title or "t-SNE of CLIP video features: colour = class, grey = the other sets", fontsize=10)
    fig.tight_layout(rect=(0, 0, right, 1))
    if legend:
        handles = [Line2D([], [], marker="o", linestyle="", markersize=4, color=colors[k], label=name)
                   for k, name in enumerate(class_names)]
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(right, 0.5), fontsize=5.5,
                   frameon=False, ncol=1 if len(class_names) <= 15 else 2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
