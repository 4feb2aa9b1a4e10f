"""The data-quality report of a generated set: one static HTML file with its images beside it.

What a researcher opens first after generating: per class, how many clips, how many failed (when
the backend knows, like the procedural world's ``failure_of``), how uncertain CLIP is about them,
how diverse they are, and frame strips of the most and least uncertain clips; overall, the
uncertainty distribution, how well uncertainty detects failures (ROC, AUROC) and the analysis
metrics (Table 8's layout).

The page needs no server: ``quality.html`` references only relative paths under ``quality/``
(``<img src="quality/...png">``), written beside it. Every file goes through a
:class:`~ray_pipeline.runstore.RunStore`, so it is written atomically and works in a bucket too.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from ray_pipeline.analysis.metrics import failure_auroc, within_class_diversity
from ray_pipeline.analysis.report import paper_table8_rows, table8_rows
from ray_pipeline.runstore import RunStore
from ray_pipeline.video_io import read_frames

QUALITY_HTML = "quality.html"
_GAP = 2  # pixels between frames and rows of a strip
_STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.25em .6em;"
    "text-align:right}th:first-child,td:first-child{text-align:left}thead{background:#eee}"
    "section.cls{border-top:1px solid #ccc;margin-top:1.5em}figure{margin:.5em 0}"
    "figcaption{font-size:.85em;color:#555;max-width:40em}img{max-width:100%}"
    ".grid{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}"
)


@dataclass(frozen=True)
class ClipRecord:
    """One generated clip as the report sees it.

    Attributes:
        clip_id: the clip's row id.
        class_name: the class it was generated for.
        uncertainty: CLIP's uncertainty about it (the score stage's entropy, nats).
        failed: whether the generator failed on it; None when the backend cannot tell.
        video_uri: where its mp4 is (local path or URI).
    """

    clip_id: str
    class_name: str
    uncertainty: float
    failed: bool | None
    video_uri: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "class"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def uncertainty_histogram_png(values: np.ndarray, failed: np.ndarray | None, bins: np.ndarray,
                              xlabel: str, title: str, *, small: bool = False) -> bytes:
    """A histogram of uncertainties, stacked good / failed when failures are known.

    Args:
        values: the uncertainties.
        failed: booleans aligned with ``values``, or None when failures are unknown.
        bins: bin edges (shared across classes so their histograms compare).
        xlabel: the x axis label.
        title: the plot title.
        small: a thumbnail for a class section instead of the overall plot.
    """
    fig = _figure(3.4, 1.9) if small else _figure(6.4, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    if failed is None:
        ax.hist(values, bins=bins, color="#4c72b0")
    else:
        ax.hist([values[~failed], values[failed]], bins=bins, stacked=True, color=["#4c72b0", "#dd8452"],
                label=[f"good ({int((~failed).sum())})", f"failed ({int(failed.sum())})"])
        ax.legend(fontsize=6 if small else 8)
    ax.set_xlabel(xlabel, fontsize=7 if small else 9)
    ax.set_ylabel("clips", fontsize=7 if small else 9)
    ax.set_title(title, fontsize=8 if small else 10)
    ax.tick_params(labelsize=6 if small else 8)
    fig.tight_layout()
    return _png(fig)


def roc_png(uncertainty: np.ndarray, failed: np.ndarray, auroc: float) -> bytes:
    """The ROC curve of detecting failed clips by thresholding uncertainty."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(failed, uncertainty)
    fig = _figure(4.2, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, color="#c44e52", label=f"uncertainty (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate (good clips flagged)")
    ax.set_ylabel("true positive rate (failed clips flagged)")
    ax.set_title("Failure detection by uncertainty", fontsize=10)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def frame_strip_png(clips: Sequence[np.ndarray], height: int) -> bytes:
    """Clips as rows of frames (uint8 T×H×W×3 each), every frame scaled to ``height`` pixels."""
    from PIL import Image

    rows = []
    for frames in clips:
        scaled = []
        for frame in frames:
            h, w = frame.shape[:2]
            width = max(1, round(w * height / h))
            scaled.append(np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR)))
        rows.append(scaled)
    width = max(sum(f.shape[1] for f in row) + _GAP * (len(row) - 1) for row in rows)
    canvas = np.full((len(rows) * height + _GAP * (len(rows) - 1), width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        x = 0
        for f in row:
            canvas[r * (height + _GAP):r * (height + _GAP) + height, x:x + f.shape[1]] = f
            x += f.shape[1] + _GAP
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG")
    return buf.getvalue()


def _decode(record: ClipRecord, frames: int) -> np.ndarray:
    try:
        return read_frames(record.video_uri, num_segments=frames)
    except Exception as exc:  # decord and PyAV raise their own types; name the clip either way
        raise ValueError(f"clip {record.clip_id}: cannot decode {record.video_uri}: {exc}") from exc


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


class _Page:
    """The HTML body, built block by block (text escaped here, never by callers)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[str]], links: list[str | None] | None = None) -> None:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = []
        for i, row in enumerate(rows):
            cells = [html.escape(c) for c in row]
            if links and links[i]:
                cells[0] = f'<a href="#{html.escape(links[i])}">{cells[0]}</a>'
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def figure(self, src: str, caption: str, alt: str) -> None:
        self.parts.append(f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}" loading="lazy">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def document(self, title: str) -> str:
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
                f"</title><style>{_STYLE}</style></head><body>\n" + "\n".join(self.parts) + "\n</body></html>\n")


def write_quality_report(store: RunStore, clips: Sequence[ClipRecord], *, features: np.ndarray | None = None,
                         metrics: dict[str, Any] | None = None,
                         extra_images: Sequence[tuple[str, str]] = (),
                         class_names: Sequence[str] | None = None, html_path: str = QUALITY_HTML,
                         frames_per_strip: int = 6, clips_per_strip: int = 3, strip_height: int = 72,
                         uncertainty_label: str = "entropy (nats)", title: str | None = None) -> list[str]:
    """Write the data-quality report and its images into ``store``; returns the written paths.

    Images go into a folder named after the page (``quality.html`` -> ``quality/``) beside it, and
    the page refers to them relatively, so the folder can be copied or opened anywhere.

    Args:
        store: where to write (a run directory, local or remote).
        clips: one record per generated clip.
        features: (n, d) CLIP video features aligned with ``clips``, for within-class diversity
            (mean pairwise cosine distance); None leaves diversity out.
        metrics: ``analysis/metrics.json`` (``compare_sets`` or ``aggregate_over_seeds`` output),
            shown in Table 8's layout; None leaves it out.
        extra_images: (path relative to the page's folder, caption) of images already in the store,
            e.g. the analysis' t-SNE picture; each must exist.
        class_names: the classes in display order (default: order of first appearance); every
            record's class must be among them, and classes without clips are listed with 0.
        html_path: the page's path in the store.
        frames_per_strip: frames decoded (TSN segment centres) per clip in a strip.
        clips_per_strip: clips in each of the most / least uncertain strips of a class.
        strip_height: pixel height of one frame in a strip.
        uncertainty_label: what the uncertainty is, for axis labels.
        title: the page title.
    """
    if not clips:
        raise ValueError("the quality report needs at least one clip")
    if frames_per_strip < 1 or clips_per_strip < 1 or strip_height < 8:
        raise ValueError("frames_per_strip and clips_per_strip must be >= 1 and strip_height >= 8, got "
                         f"{frames_per_strip}, {clips_per_strip}, {strip_height}")
    uncertainty = np.array([c.uncertainty for c in clips], dtype=np.float64)
    if not np.isfinite(uncertainty).all():
        bad = clips[int(np.flatnonzero(~np.isfinite(uncertainty))[0])]
        raise ValueError(f"clip {bad.clip_id}: uncertainty {bad.uncertainty!r} is not a finite number")
    order = list(dict.fromkeys(class_names if class_names is not None else [c.class_name for c in clips]))
    unknown = sorted({c.class_name for c in clips} - set(order))
    if unknown:
        raise ValueError(f"clips of classes not in class_names: {unknown}")
    if features is not None and np.asarray(features).shape[0] != len(clips):
        raise ValueError(f"features has {np.asarray(features).shape[0]} rows but there are {len(clips)} clips")
    for rel, _ in extra_images:
        if not store.exists(str(PurePosixPath(html_path).parent / rel)):
            raise FileNotFoundError(f"extra image {rel!r} not found beside {html_path} in {store.root}")

    page_dir = PurePosixPath(html_path).parent
    image_dir = PurePosixPath(html_path).stem
    written: list[str] = []

    def save(name: str, data: bytes) -> str:
        rel = f"{image_dir}/{name}"
        path = str(page_dir / rel)
        store.write_bytes(path, data)
        written.append(path)
        return rel

    names = np.array([c.class_name for c in clips])
    known = np.array([c.failed is not None for c in clips])
    failed_known = np.array([bool(c.failed) for c in clips])
    diversity = within_class_diversity(features, names) if features is not None else {}
    lo, hi = float(uncertainty.min()), float(uncertainty.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 21)
    auroc = failure_auroc(uncertainty[known], failed_known[known]) if known.any() else None

    page = _Page()
    title = title or f"Data quality: {store.name}"
    page.h(1, title)
    n_known, n_failed = int(known.sum()), int(failed_known[known].sum())
    failures_text = (f"{n_failed} failed of {n_known} with a known outcome ({100.0 * n_failed / n_known:.1f} %)"
                     if n_known else "failures unknown (the backend does not report them)")
    page.p(f"{len(clips)} generated clips in {len(order)} classes; {failures_text}. Uncertainty: CLIP's "
           f"{uncertainty_label}, mean {uncertainty.mean():.3f}, range {lo:.3f}–{hi:.3f}.")

    # ---- overall
    page.h(2, "Overall", "overall")
    all_failed = failed_known if n_known == len(clips) else None
    rel = save("uncertainty.png", uncertainty_histogram_png(
        uncertainty, all_failed, bins, uncertainty_label, "Uncertainty of all generated clips"))
    page.figure(rel, "Uncertainty of every clip" + (", stacked good / failed." if all_failed is not None else "."),
                "uncertainty histogram")
    if auroc is not None:
        rel = save("failure_roc.png", roc_png(uncertainty[known], failed_known[known], auroc))
        page.figure(rel, f"Failure detection: AUROC {auroc:.3f} over {n_known} clips "
                    "(0.5 = chance; failed clips as positives, uncertainty as the score).", "failure ROC curve")
    elif n_known:
        page.p("Failure AUROC: undefined (only one outcome among the clips).")
    if diversity:
        values = [v for v in diversity.values() if v is not None]
        if values:
            page.p(f"Within-class diversity (mean pairwise cosine distance of CLIP features): mean over classes "
                   f"{np.mean(values):.3f}, range {min(values):.3f}–{max(values):.3f}.")
    if metrics is not None:
        page.h(2, "Analysis metrics (Table 8 layout)", "analysis")
        header, rows = table8_rows(metrics)
        page.table(header, rows)
        statistic = str(metrics.get("statistic", "MMD^2")).replace("^2", "²")
        page.p(f"{statistic} ({metrics.get('estimator', 'biased')} estimator) of "
               f"{metrics.get('features', 'CLIP features')} against {metrics['reference']}; DB = Davies-Bouldin "
               "(higher: classes overlap more, as in real data). The paper's Table 8, for comparison "
               "(real HMDB-51 as the reference; it does not say whether it reports MMD or MMD²):")
        header, rows = paper_table8_rows()
        page.table(header, rows)
    for rel, caption in extra_images:
        page.figure(rel, caption, caption)

    # ---- per class: summary table, then one section each
    page.h(2, "Classes", "classes")
    summary_rows, anchors, sections = [], [], []
    for index, name in enumerate(order):
        members = [i for i, c in enumerate(clips) if c.class_name == name]
        anchor = f"class-{index:03d}-{_slug(name)}"
        anchors.append(anchor)
        k_known = int(known[members].sum()) if members else 0
        k_failed = int(failed_known[members][known[members]].sum()) if members else 0
        fail_text = f"{k_failed} / {k_known}" if k_known else "–"
        mean_u = float(uncertainty[members].mean()) if members else None
        summary_rows.append([name, str(len(members)), fail_text, _fmt(mean_u), _fmt(diversity.get(name))])
        sections.append((index, name, anchor, members, fail_text, mean_u))
    page.table(["class", "clips", "failed / known", f"mean {uncertainty_label}", "diversity"], summary_rows,
               anchors)
    for index, name, anchor, members, fail_text, mean_u in sections:
        page.raw('<section class="cls">')
        page.h(3, name, anchor)
        page.p(f"{len(members)} clips; failed / known: {fail_text}; mean {uncertainty_label}: {_fmt(mean_u)}; "
               f"diversity: {_fmt(diversity.get(name))}.")
        if not members:
            page.raw("</section>")
            continue
        base = f"class-{index:03d}-{_slug(name)}"
        sub_failed = failed_known[members] if known[members].all() else None
        page.raw('<div class="grid">')
        rel = save(f"{base}-uncertainty.png", uncertainty_histogram_png(
            uncertainty[members], sub_failed, bins, uncertainty_label, name, small=True))
        page.figure(rel, "uncertainty (same bins for every class)", f"{name}: uncertainty histogram")
        ranked = sorted(members, key=lambda i: (-uncertainty[i], clips[i].clip_id))
        most = ranked[:clips_per_strip]
        least = [i for i in reversed(ranked) if i not in most][:clips_per_strip]
        for label, picked in (("most uncertain", most), ("least uncertain", least)):
            if not picked:
                continue
            strip = frame_strip_png([_decode(clips[i], frames_per_strip) for i in picked], strip_height)
            rel = save(f"{base}-{_slug(label)}.png", strip)
            rows_text = "; ".join(
                f"{clips[i].clip_id} ({uncertainty[i]:.3f}"
                + ("" if clips[i].failed is None else (", failed" if clips[i].failed else ", good")) + ")"
                for i in picked)
            page.figure(rel, f"{label}, one row per clip, {frames_per_strip} frames each: {rows_text}",
                        f"{name}: frames of the {label} clips")
        page.raw("</div></section>")

    store.write_text(html_path, page.document(title))
    written.append(html_path)
    return written
