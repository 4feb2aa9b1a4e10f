"""The data-quality report, tested as a browser would: every image it references exists and
decodes, every in-page link has a target, the HTML parses, and headless Chromium renders it
(where a Chromium is on PATH; `apt-get install chromium` provides one)."""

from __future__ import annotations

import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ray_pipeline.analysis.compare import FeatureSet, compare_sets
from ray_pipeline.analysis.metrics import failure_auroc
from ray_pipeline.analysis.quality_report import ClipRecord, frame_strip_png, write_quality_report
from ray_pipeline.analysis.tsne import tsne_png
from ray_pipeline.runstore import RunStore
from ray_pipeline.video_io import write_mp4

CLASSES = ["brush hair", "wave", "run/jump"]  # a slash: file names must not follow class names blindly
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 230)]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.open: list[str] = []
        self.void = {"img", "meta", "br", "hr", "link", "input"}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag not in self.void:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


def _clip(class_index: int, clip_index: int, frames: int = 12, size: int = 32) -> np.ndarray:
    clip = np.full((frames, size, size, 3), 30, np.uint8)
    for t in range(frames):
        x = (2 * t + clip_index) % (size - 6)
        clip[t, 8:24, x:x + 6] = COLOURS[class_index]
    return clip


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> tuple[Path, list[ClipRecord], np.ndarray]:
    """Four mp4 clips per class (the last class has one), with uncertainties and failure flags."""
    root = tmp_path_factory.mktemp("quality_run")
    rng = np.random.default_rng(0)
    records = []
    for k, name in enumerate(CLASSES):
        for i in range(4 if k < 2 else 1):
            uri = str(root / "generate" / "videos" / f"clip{k}{i}.mp4")
            write_mp4(_clip(k, i), uri)
            failed = bool(i == 3)
            records.append(ClipRecord(f"clip{k}{i}", name, float(0.5 + rng.random() + 0.8 * failed), failed, uri))
    features = rng.normal(size=(len(records), 8))
    return root, records, features


def _check_page(root: Path, html_path: str) -> _Collector:
    page = root / html_path
    parser = _Collector()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    assert parser.open == [], f"unclosed tags {parser.open}"
    assert parser.images, "no images"
    for src in parser.images:
        assert "://" not in src and not src.startswith("/"), f"{src} is not relative"
        target = page.parent / src
        assert target.is_file(), f"{src} referenced but missing"
        with Image.open(target) as image:
            image.verify()
    for href in parser.links:
        assert href.startswith("#") and href[1:] in parser.ids, f"link {href} has no target"
    assert not list(root.rglob("*.tmp-*")), "temporary files left behind"
    return parser


def test_report_with_failures_metrics_and_extra_image(synthetic_run, tmp_path):
    _, records, features = synthetic_run
    store = RunStore(tmp_path / "run")
    labels = np.array([CLASSES.index(r.class_name) for r in records])
    metrics = compare_sets([FeatureSet("world_hmdb", "real", features + 0.1, labels),
                            FeatureSet("IE", "generated", features, labels)], "world_hmdb")
    store.write_bytes("analysis/tsne.png", tsne_png(np.random.default_rng(1).normal(size=(len(records), 2)),
                                                    labels, np.zeros(len(records), int), CLASSES, ["IE"]))
    written = write_quality_report(store, records, features=features, metrics=metrics,
                                   extra_images=[("analysis/tsne.png", "t-SNE")], frames_per_strip=4,
                                   clips_per_strip=2)
    assert written[-1] == "quality.html"
    assert all((tmp_path / "run" / p).is_file() for p in written)
    parser = _check_page(tmp_path / "run", "quality.html")
    assert "quality/failure_roc.png" in parser.images and "analysis/tsne.png" in parser.images
    text = (tmp_path / "run" / "quality.html").read_text()
    auroc = failure_auroc([r.uncertainty for r in records], [r.failed for r in records])
    assert f"AUROC {auroc:.3f}" in text
    assert "2 failed of 9 with a known outcome (22.2 %)" in text
    assert "Table 8 layout" in text and "MMD² rbf vs world_hmdb" in text
    # Per class: a histogram and two strips, except the one-clip class (no "least uncertain" left).
    strips = [s for s in parser.images if "uncertain.png" in s]
    assert len(strips) == 2 + 2 + 1
    assert len([s for s in parser.images if s.endswith("-uncertainty.png")]) == 3
    # The most uncertain strip of class 0 holds its 2 most uncertain clips, 4 frames each, in order.
    most = next(s for s in strips if s.startswith("quality/class-000") and "most" in s)
    with Image.open(tmp_path / "run" / most) as image:
        strip = np.asarray(image.convert("RGB"))
    assert strip.shape == (2 * 72 + 2, 4 * 72 + 3 * 2, 3)
    ranked = sorted([r for r in records if r.class_name == "brush hair"], key=lambda r: -r.uncertainty)
    positions = [text.index(f"{r.clip_id} (") for r in ranked[:2]]
    assert positions == sorted(positions)
    # Class colour visible in the strip: red bars for "brush hair".
    assert (strip[..., 0] > 150).any() and (strip[..., 2] < 100).any()


def test_report_without_failures_or_features(synthetic_run, tmp_path):
    _, records, _ = synthetic_run
    unknown = [ClipRecord(r.clip_id, r.class_name, r.uncertainty, None, r.video_uri) for r in records]
    store = RunStore(tmp_path / "run")
    written = write_quality_report(store, unknown, class_names=CLASSES + ["sit"],
                                   html_path="analysis/quality.html")
    assert "analysis/quality.html" in written
    parser = _check_page(tmp_path / "run", "analysis/quality.html")
    assert not any("roc" in s for s in parser.images)
    text = (tmp_path / "run" / "analysis" / "quality.html").read_text()
    assert "failures unknown" in text and "Table 8" not in text
    assert ">sit</a></td><td>0</td>" in text  # a class without clips is listed, with 0


def test_report_into_a_bucket(synthetic_run, s3_endpoint):
    from tests.helpers import S3_BUCKET

    _, records, features = synthetic_run
    store = RunStore(f"s3://{S3_BUCKET}/runs/q?endpoint_override={s3_endpoint}&scheme=http")
    written = write_quality_report(store, records[:4], features=features[:4])
    assert all(store.exists(p) for p in written)
    assert store.read_text("quality.html").count("<img") == len(written) - 1


def test_report_rejects_bad_input(synthetic_run, tmp_path):
    _, records, features = synthetic_run
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="at least one clip"):
        write_quality_report(store, [])
    with pytest.raises(ValueError, match="features has 3 rows"):
        write_quality_report(store, records, features=features[:3])
    with pytest.raises(ValueError, match="not in class_names"):
        write_quality_report(store, records, class_names=["wave"])
    with pytest.raises(FileNotFoundError, match="extra image 'nope.png'"):
        write_quality_report(store, records, extra_images=[("nope.png", "missing")])
    bad = [ClipRecord("gone", "wave", 1.0, None, str(tmp_path / "gone.mp4"))]
    with pytest.raises(ValueError, match="clip gone: cannot decode"):
        write_quality_report(store, bad)
    nan = [ClipRecord("x", "wave", float("nan"), None, records[0].video_uri)]
    with pytest.raises(ValueError, match="clip x: uncertainty nan"):
        write_quality_report(store, nan)


def test_frame_strip_tiles_rows_and_scales():
    a = np.zeros((3, 10, 20, 3), np.uint8)
    b = np.full((2, 10, 20, 3), 200, np.uint8)
    strip = np.asarray(Image.open(io.BytesIO(frame_strip_png([a, b], height=20))))
    assert strip.shape == (20 + 2 + 20, 3 * 40 + 2 * 2, 3)
    assert (strip[:20, :40] == 0).all() and (strip[22:, :40] == 200).all()
    assert (strip[22:, 2 * 40 + 2 * 2:] == 255).all()  # the shorter row is padded white


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium/chromium-browser/google-chrome on PATH")
def test_report_renders_in_headless_chromium(synthetic_run, tmp_path):
    _, records, features = synthetic_run
    store = RunStore(tmp_path / "run")
    write_quality_report(store, records, features=features)
    shot = tmp_path / "shot.png"
    page = (tmp_path / "run" / "quality.html").resolve()
    # --no-sandbox: CI and this machine run as root, where Chromium's sandbox refuses to start.
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[:2] == (2400, 1200)
    # Rendered, not blank: text and plots put many colours on the page, and the histograms' blue.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    blue = np.array([0x4C, 0x72, 0xB0])
    assert (np.abs(pixels.astype(int) - blue).sum(-1) < 10).sum() > 500
