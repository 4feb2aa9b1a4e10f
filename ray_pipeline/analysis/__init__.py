"""What the generated data looks like: Davies-Bouldin, MMD², t-SNE (Table 8, Figure 1) and the
data-quality report. Building blocks with plain inputs (numpy arrays, records, a RunStore):

- ``metrics``: ``davies_bouldin``, ``mmd2``, ``within_class_diversity``, ``failure_auroc``;
- ``compare``: Table 8's numbers for a list of feature sets (``compare_sets``, ``aggregate_over_seeds``);
- ``tsne``: ``tsne_embedding`` and Figure 1's picture (``tsne_png``);
- ``report``: Table 8's layout (``table8_rows``);
- ``quality_report``: the static HTML data-quality report (``write_quality_report``).
"""

from ray_pipeline.analysis.metrics import davies_bouldin, failure_auroc, mmd2, within_class_diversity

__all__ = ["davies_bouldin", "failure_auroc", "mmd2", "within_class_diversity"]
