"""The world's UCF-Crime: long clips of ordinary activity, some with an abnormal action in them.

UCF-Crime (Sultani et al., 2018) is long surveillance footage with video-level labels for
training and frame intervals for testing. Here a video is one person in one place, filmed the
way the world's "real" datasets are (``render.RealStyle``), doing ordinary things for
``min_frames..max_frames`` frames; an anomalous video has one (sometimes two) windows in which
the person does the action that plays its UCF-Crime class instead. Every UCF-Crime class is
played by one world action (:data:`UCF_CRIME_WORLD_ACTIONS`); normal activity is walking,
standing, waving and clapping.

The files are in UCF-Crime's published formats, so the real adapter reads them
(``evaluation/anomaly.py``)::

    ROOT/world_ucf_crime/Anomaly_Train.txt                 <Class>/<video>.mp4, normal ones in
                                                           Training_Normal_Videos_Anomaly/
    ROOT/world_ucf_crime/Anomaly_Test.txt                  the same for the test videos
    ROOT/world_ucf_crime/Temporal_Anomaly_Annotation.txt   <video>  <Class>  s1  e1  s2  e2 (-1: none)
    ROOT/world_ucf_crime/videos/<Class>/<Class>NNN_x264.mp4
    ROOT/world_ucf_crime/videos/Training_Normal_Videos_Anomaly/Normal_VideosNNN_x264.mp4
    ROOT/world_ucf_crime/videos/Testing_Normal_Videos_Anomaly/Normal_Videos_NNN_x264.mp4
    ROOT/world_ucf_crime/info.json                         class mapping, counts, every video's timeline
    ROOT/world_anomaly.json                                sizes, build time

A video's timeline is rendered segment by segment with ``render.render_clip`` (same scene and
seed, the action changing), so there is a cut wherever the activity changes, in normal videos
as in anomalous ones: a cut is not itself a sign of an anomaly.

What a frame model can see. A person's pose is a thin figure on a 64-pixel frame, and frame
features mostly show the place (same-video segments of version 1 had cosine 0.989, and MIL on
frozen world-CLIP features was at chance). So the footage carries what surveillance footage of
an incident carries besides the offender's motion (:data:`EVENTS`):

* the **operator zooms in** (``zoom_in``) on the incident, and also, now and then, on ordinary
  activity (each normal-activity segment with probability ``benign_zoom_p``, normal videos and
  anomalous ones alike), so a zoom alone does not give an anomaly away;
* events with **light** show it: firelight (Arson), a flash and smoke (Explosion), police lights
  (Arrest), muzzle flashes (Shooting);
* **impacts shake** the camera (Abuse, Assault, Explosion, Fighting, RoadAccidents, Vandalism).

``events=False`` renders the windows as version 1 did (the action only). ``ensure_world_anomaly``
builds the set once into a folder named by the hash of every setting, via a temporary folder and
an atomic rename, only when asked for; the other world datasets are untouched.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from ray_pipeline.evaluation.anomaly import ANOMALY_CLASSES, NORMAL_CLASS
from ray_pipeline.ids import row_id
from ray_pipeline.world import WORLD_VERSION
from ray_pipeline.world.render import RealStyle, Scene, real_scene, render_clip

# Bump when what a given setting writes changes (timelines, layout, sampling, events).
ANOMALY_VERSION = 2
DATASET_NAME = "world_ucf_crime"

# The world action that plays each UCF-Crime class. The world has one person per clip, so
# crimes against others become the offender's motion.
UCF_CRIME_WORLD_ACTIONS: dict[str, str] = {
    "Abuse": "kick",  # kicking at someone on the ground
    "Arrest": "push up",  # pinned face down on the floor
    "Arson": "throw",  # throwing a burning object
    "Assault": "punch",
    "Burglary": "climb",  # climbing a wall to get in
    "Explosion": "run",  # people running from a blast
    "Fighting": "sword",  # an armed lunge
    "RoadAccidents": "fall floor",  # knocked to the ground
    "Robbery": "catch",  # grabbing something that comes at them
    "Shooting": "shoot bow",  # aiming and loosing a weapon
    "Shoplifting": "drink",  # bringing an item to the body, out of sight
    "Stealing": "ride bike",  # riding off on a bike
    "Vandalism": "kick ball",  # kicks at a prop
}
# Ordinary activity between and around the anomalies ("idle": standing, shifting weight).
NORMAL_ACTIONS: tuple[str, ...] = ("walk", "idle", "wave", "clap")
# The world action that generated "Normal" clips show (a prompt names one activity).
NORMAL_WORLD_ACTION = "walk"
# What else the footage of each incident shows (see the module docstring): a light event
# (``fire``, ``flash``, ``police``, ``muzzle``, or None) and whether impacts shake the camera.
EVENTS: dict[str, tuple[str | None, bool]] = {
    "Abuse": (None, True), "Arrest": ("police", False), "Arson": ("fire", False), "Assault": (None, True),
    "Burglary": (None, False), "Explosion": ("flash", True), "Fighting": (None, True),
    "RoadAccidents": (None, True), "Robbery": (None, False), "Shooting": ("muzzle", False),
    "Shoplifting": (None, False), "Stealing": (None, False), "Vandalism": (None, True),
}
SHAKE_PIXELS = 1 / 16  # largest shake offset, as a fraction of the frame
TRAIN_NORMAL_FOLDER = "Training_Normal_Videos_Anomaly"
TEST_NORMAL_FOLDER = "Testing_Normal_Videos_Anomaly"
MIN_NORMAL_RUN = 4  # shortest stretch of ordinary activity before, between or after windows


def world_action(ucf_class: str) -> str:
    """The world action that plays a UCF-Crime class (``Normal`` -> walking)."""
    if ucf_class == NORMAL_CLASS:
        return NORMAL_WORLD_ACTION
    if ucf_class not in UCF_CRIME_WORLD_ACTIONS:
        raise ValueError(f"unknown UCF-Crime class {ucf_class!r}; known: {[NORMAL_CLASS, *ANOMALY_CLASSES]}")
    return UCF_CRIME_WORLD_ACTIONS[ucf_class]


@dataclass(frozen=True)
class WorldAnomalySizes:
    """How big the world's UCF-Crime is; every field goes into the cache key.

    Attributes:
        train_anomalous_per_class: training videos per anomaly class (13 classes).
        train_normal: normal training videos.
        test_anomalous_per_class: test videos per anomaly class.
        test_normal: normal test videos.
        min_frames: shortest video.
        max_frames: longest video.
        min_window: shortest anomalous window, in frames.
        max_window: longest anomalous window.
        two_window_p: probability that an anomalous video has two windows (UCF-Crime has some).
        size: frame height and width.
        fps: the mp4 frame rate.
        seed: another seed, another dataset.
        events: windows show their incident's events (:data:`EVENTS`, the operator's zoom);
            False: the action only (version 1's windows).
        zoom_in: how much closer the operator's zoom films (render's camera zoom).
        benign_zoom_p: probability that a normal-activity segment is filmed zoomed in.
    """

    train_anomalous_per_class: int = 4
    train_normal: int = 52
    test_anomalous_per_class: int = 2
    test_normal: int = 26
    min_frames: int = 64
    max_frames: int = 128
    min_window: int = 16
    max_window: int = 32
    two_window_p: float = 0.25
    size: int = 64
    fps: int = 8
    seed: int = 0
    events: bool = True
    zoom_in: float = 1.8
    benign_zoom_p: float = 0.1

    @classmethod
    def from_settings(cls, **settings: float) -> WorldAnomalySizes:
        """Sizes from config values (YAML numbers), each cast to its field's type; unknown names
        and values that are not whole numbers where counts are expected are errors."""
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(settings) - set(types))
        if unknown:
            raise ValueError(f"unknown world anomaly size(s) {unknown}; known: {sorted(types)}")
        values: dict[str, object] = {}
        for name, value in settings.items():
            kind = types[name]
            if kind in ("int", int):
                if float(value) != int(value):
                    raise ValueError(f"world anomaly size {name} must be a whole number, got {value}")
                values[name] = int(value)
            elif kind in ("bool", bool):
                values[name] = bool(value)
            else:
                values[name] = float(value)
        return cls(**values)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.min_frames > self.max_frames or self.min_window > self.max_window:
            raise ValueError("min_frames/min_window must not exceed max_frames/max_window")
        if self.min_window < 1 or self.max_window + 2 * MIN_NORMAL_RUN > self.min_frames:
            raise ValueError(f"windows of {self.min_window}..{self.max_window} frames do not fit with "
                             f"{MIN_NORMAL_RUN} normal frames on each side into {self.min_frames}-frame "
                             "videos")
        counts = (self.train_anomalous_per_class, self.train_normal, self.test_anomalous_per_class,
                  self.test_normal)
        if min(counts) < 0 or self.test_anomalous_per_class < 1 or self.test_normal < 1:
            raise ValueError("video counts must be >= 0, with at least one anomalous and one normal "
                             "test video")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"size must be an even number >= 16, got {self.size}")
        if self.zoom_in < 1 or not 0 <= self.benign_zoom_p <= 1:
            raise ValueError(f"zoom_in must be >= 1 and benign_zoom_p in [0, 1], got {self.zoom_in}, "
                             f"{self.benign_zoom_p}")


@dataclass(frozen=True)
class WorldAnomalyVideo:
    """One video to render: its place in the layout, scene, seed and timeline.

    Attributes:
        rel: path under ``videos/``.
        split: ``train`` or ``test``.
        cls: UCF-Crime class (``Normal`` for normal videos).
        scene: the person, place and camera (its action is replaced segment by segment).
        seed: the render seed, shared by every segment.
        timeline: (world action, frames) segments in order.
        windows: anomalous windows as 0-based half-open frame ranges.
        zoomed: per timeline segment, whether the operator films it zoomed in.
        events: whether the windows show their incident's events (:data:`EVENTS`).
    """

    rel: str
    split: str
    cls: str
    scene: Scene
    seed: int
    timeline: tuple[tuple[str, int], ...]
    windows: tuple[tuple[int, int], ...]
    zoomed: tuple[bool, ...] = ()
    events: bool = False

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    @property
    def num_frames(self) -> int:
        return sum(n for _, n in self.timeline)

    def intervals(self) -> list[tuple[int, int]]:
        """The windows as UCF-Crime writes them: 1-based inclusive (start, end) frames."""
        return [(s + 1, e) for s, e in self.windows]


def _seed(*parts: object) -> int:
    return int(row_id("world_anomaly_video", parts=[str(p) for p in parts]), 16) & ((1 << 62) - 1)


def _split_run(rng: np.random.Generator, length: int, max_pieces: int) -> list[int]:
    """Cut ``length`` frames of ordinary activity into 1..max_pieces pieces of >= MIN_NORMAL_RUN."""
    pieces = int(rng.integers(1, max_pieces + 1))
    pieces = max(1, min(pieces, length // (2 * MIN_NORMAL_RUN)))
    if pieces == 1:
        return [length]
    # cut points on multiples of MIN_NORMAL_RUN, so no piece is shorter
    slots = np.arange(1, length // MIN_NORMAL_RUN)
    cuts = np.sort(rng.choice(slots, pieces - 1, replace=False)) * MIN_NORMAL_RUN
    edges = [0, *cuts.tolist(), length]
    return [b - a for a, b in itertools.pairwise(edges) if b > a]


def _normal_segments(rng: np.random.Generator, length: int, max_pieces: int = 2) -> list[tuple[str, int]]:
    return [(NORMAL_ACTIONS[int(rng.integers(len(NORMAL_ACTIONS)))], n)
            for n in _split_run(rng, length, max_pieces)]


def _timeline(rng: np.random.Generator, sizes: WorldAnomalySizes, anomaly: str | None
              ) -> tuple[list[tuple[str, int]], list[tuple[int, int]]]:
    """Segments and windows of one video: ordinary activity, with ``anomaly`` windows if given."""
    total = int(rng.integers(sizes.min_frames, sizes.max_frames + 1))
    if anomaly is None:
        return _normal_segments(rng, total, max_pieces=3), []
    n_windows = 2 if rng.random() < sizes.two_window_p else 1
    lengths = [int(rng.integers(sizes.min_window, sizes.max_window + 1)) for _ in range(n_windows)]
    if sum(lengths) + (n_windows + 1) * MIN_NORMAL_RUN > total:
        n_windows, lengths = 1, lengths[:1]
    # The normal frames split into n_windows + 1 runs of at least MIN_NORMAL_RUN each.
    spare = total - sum(lengths) - (n_windows + 1) * MIN_NORMAL_RUN
    shares = rng.multinomial(spare, np.full(n_windows + 1, 1.0 / (n_windows + 1)))
    runs = [MIN_NORMAL_RUN + int(s) for s in shares]
    segments: list[tuple[str, int]] = []
    windows: list[tuple[int, int]] = []
    t = 0
    for i, run in enumerate(runs):
        segments += _normal_segments(rng, run)
        t += run
        if i < n_windows:
            segments.append((anomaly, lengths[i]))
            windows.append((t, t + lengths[i]))
            t += lengths[i]
    return segments, windows


def plan_world_anomaly(sizes: WorldAnomalySizes | None = None,
                       style: RealStyle | None = None) -> list[WorldAnomalyVideo]:
    """Every video of the dataset, train then test, without rendering anything."""
    sizes, style = sizes or WorldAnomalySizes(), style or RealStyle()
    videos = []
    for split, per_class, n_normal in (("train", sizes.train_anomalous_per_class, sizes.train_normal),
                                       ("test", sizes.test_anomalous_per_class, sizes.test_normal)):
        offset = 0 if split == "train" else sizes.train_anomalous_per_class
        for cls in ANOMALY_CLASSES:
            for i in range(per_class):
                rel = f"{cls}/{cls}{offset + i + 1:03d}_x264.mp4"
                videos.append(_plan_one(split, cls, rel, sizes, style))
        for i in range(n_normal):
            if split == "train":
                rel = f"{TRAIN_NORMAL_FOLDER}/Normal_Videos{i + 1:03d}_x264.mp4"
            else:
                rel = f"{TEST_NORMAL_FOLDER}/Normal_Videos_{sizes.train_normal + i + 1:03d}_x264.mp4"
            videos.append(_plan_one(split, NORMAL_CLASS, rel, sizes, style))
    return videos


def _plan_one(split: str, cls: str, rel: str, sizes: WorldAnomalySizes,
              style: RealStyle) -> WorldAnomalyVideo:
    seed = _seed(sizes.seed, rel)
    rng = np.random.default_rng(seed)
    # The person and place come from ordinary activity, so they say nothing about the class.
    scene = real_scene(NORMAL_WORLD_ACTION, rng, style)
    anomaly = None if cls == NORMAL_CLASS else UCF_CRIME_WORLD_ACTIONS[cls]
    timeline, windows = _timeline(rng, sizes, anomaly)
    zoomed = []
    t = 0
    for _, n in timeline:
        in_window = any(s <= t < e for s, e in windows)
        # Drawn for every segment, so a video's zooms do not depend on the events setting.
        benign = bool(rng.random() < sizes.benign_zoom_p)
        zoomed.append(sizes.events and (in_window or benign))
        t += n
    return WorldAnomalyVideo(rel, split, cls, scene, seed, tuple(timeline), tuple(windows), tuple(zoomed),
                             sizes.events)


def _light_gain(kind: str | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) per-frame RGB gains of a light event (ones for None)."""
    t = np.arange(n)
    if kind is None:
        return np.ones((n, 3), np.float32)
    if kind == "fire":  # orange, flickering
        return np.array([1.25, 0.85, 0.5], np.float32) * (1 + 0.12 * rng.standard_normal(n))[:, None]
    if kind == "flash":  # a blinding flash, then smoke
        return np.repeat(np.where(t < max(2, n // 6), 1.8, 0.6)[:, None], 3, 1).astype(np.float32)
    if kind == "police":  # red and blue lights, alternating every two frames
        red, blue = np.array([1.3, 0.6, 0.6], np.float32), np.array([0.6, 0.7, 1.4], np.float32)
        return np.where((t // 2 % 2 == 0)[:, None], red, blue)
    if kind == "muzzle":  # bright frames at random
        return np.repeat(np.where(rng.random(n) < 0.3, 1.7, 1.0)[:, None], 3, 1).astype(np.float32)
    raise ValueError(f"unknown light event {kind!r}")


def _shake(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each frame shifted by a random offset of up to ``SHAKE_PIXELS`` of the frame, edges repeated."""
    n, h, w, _ = frames.shape
    m = max(1, int(round(h * SHAKE_PIXELS)))
    padded = np.pad(frames, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
    out = np.empty_like(frames)
    for i, (dy, dx) in enumerate(rng.integers(-m, m + 1, (n, 2))):
        out[i] = padded[i, m + dy:m + dy + h, m + dx:m + dx + w]
    return out


def _incident(frames: np.ndarray, cls: str, rng: np.random.Generator) -> np.ndarray:
    """A window's frames with its incident's light event and shake (:data:`EVENTS`)."""
    light, shake = EVENTS[cls]
    out = frames
    if light is not None:
        gain = _light_gain(light, len(frames), rng)
        out = np.clip(frames.astype(np.float32) * gain[:, None, None, :] + 0.5, 0, 255).astype(np.uint8)
    return _shake(out, rng) if shake else out


def render_world_anomaly_video(video: WorldAnomalyVideo, size: int, zoom_in: float = 1.8) -> np.ndarray:
    """uint8 (T, size, size, 3): the timeline's segments rendered in turn and concatenated, zoomed
    segments filmed ``zoom_in`` closer, windows with their incident's events."""
    parts = []
    t = 0
    zoomed = video.zoomed or (False,) * len(video.timeline)
    for i, ((action, n), zoom) in enumerate(zip(video.timeline, zoomed, strict=True)):
        scene = replace(video.scene, action=action)
        if zoom:
            scene = replace(scene, camera=replace(scene.camera, zoom=scene.camera.zoom * zoom_in))
        frames = render_clip(scene, video.seed, n, size)
        if video.events and any(s <= t < e for s, e in video.windows):
            frames = _incident(frames, video.cls, np.random.default_rng([video.seed, i]))
        parts.append(frames)
        t += n
    return np.concatenate(parts)


def _render_and_write(args: tuple[WorldAnomalyVideo, str, int, int, float]) -> str:
    video, root, size, fps, zoom_in = args
    from ray_pipeline.video_io import write_mp4

    path = Path(root) / DATASET_NAME / "videos" / video.rel
    write_mp4(render_world_anomaly_video(video, size, zoom_in), str(path), fps=fps)
    return video.rel


def _annotation_line(video: WorldAnomalyVideo) -> str:
    fields_ = [video.name, video.cls]
    intervals = video.intervals()
    for s, e in intervals + [(-1, -1)] * max(0, 2 - len(intervals)):
        fields_ += [str(s), str(e)]
    return "  ".join(fields_) + "  \n"  # the published file's double spaces and trailing blanks


def _write_tables(out: Path, videos: list[WorldAnomalyVideo], sizes: WorldAnomalySizes) -> None:
    d = out / DATASET_NAME
    d.mkdir(parents=True, exist_ok=True)
    train = [v for v in videos if v.split == "train"]
    test = [v for v in videos if v.split == "test"]
    (d / "Anomaly_Train.txt").write_text("".join(f"{v.rel}\n" for v in train))
    (d / "Anomaly_Test.txt").write_text("".join(f"{v.rel}\n" for v in test))
    (d / "Temporal_Anomaly_Annotation.txt").write_text("".join(_annotation_line(v) for v in test))
    info = {
        "name": DATASET_NAME, "role": "UCF-Crime's (weakly supervised anomaly detection)",
        "video_root": "videos", "classes": [NORMAL_CLASS, *ANOMALY_CLASSES],
        "world_actions": {NORMAL_CLASS: list(NORMAL_ACTIONS), **UCF_CRIME_WORLD_ACTIONS},
        "events": {c: {"light": light, "shake": shake} for c, (light, shake) in EVENTS.items()} if sizes.events
        else {},
        "counts": {split: {"anomalous": sum(v.cls != NORMAL_CLASS for v in vs),
                           "normal": sum(v.cls == NORMAL_CLASS for v in vs)}
                   for split, vs in (("train", train), ("test", test))},
        "fps": sizes.fps, "size": sizes.size,
        # Ground truth of every video, training ones included (diagnostics only: training
        # sees the video-level labels of Anomaly_Train.txt).
        "videos": {v.name: {"split": v.split, "class": v.cls, "frames": v.num_frames,
                            "timeline": [list(s) for s in v.timeline], "zoomed": list(v.zoomed),
                            "intervals": v.intervals()}
                   for v in videos},
    }
    (d / "info.json").write_text(json.dumps(info, indent=1) + "\n")


def anomaly_dataset_key(sizes: WorldAnomalySizes, style: RealStyle) -> str:
    """The cache key: every setting that changes a byte of the dataset."""
    return row_id("world_anomaly", version=ANOMALY_VERSION, world=WORLD_VERSION, sizes=asdict(sizes),
                  style=asdict(style), actions=UCF_CRIME_WORLD_ACTIONS, normal=list(NORMAL_ACTIONS),
                  events={c: list(e) for c, e in EVENTS.items()})


def build_world_anomaly(out: str | os.PathLike, sizes: WorldAnomalySizes | None = None,
                        style: RealStyle | None = None, workers: int | None = None) -> Path:
    """Write the dataset under ``out`` (which should not exist yet); returns ``out``."""
    out = Path(out)
    sizes, style = sizes or WorldAnomalySizes(), style or RealStyle()
    videos = plan_world_anomaly(sizes, style)
    _write_tables(out, videos, sizes)
    args = [(v, str(out), sizes.size, sizes.fps, sizes.zoom_in) for v in videos]
    workers = workers or min(2, os.cpu_count() or 1)
    t0 = time.time()
    if workers > 1:
        # fork is safe here (no threads yet in this helper's callers) and skips re-importing torch.
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_and_write, args, chunksize=2):
                pass
    else:
        for a in args:
            _render_and_write(a)
    meta = {"sizes": asdict(sizes), "style": asdict(style), "anomaly_version": ANOMALY_VERSION,
            "videos": len(videos), "frames": sum(v.num_frames for v in videos),
            "build_seconds": round(time.time() - t0, 2), "workers": workers}
    (out / "world_anomaly.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def ensure_world_anomaly(cache_dir: str | os.PathLike, *, style: RealStyle | None = None,
                         workers: int | None = None, **sizes: float) -> Path:
    """The world's UCF-Crime for these settings, built on first use; returns the folder holding
    ``world_ucf_crime/``.

    Built into ``cache_dir/world_anomaly/<key>`` through a temporary folder and a rename, so a
    crash never leaves a half-written dataset under the final name and concurrent callers agree.

    Args:
        cache_dir: where built datasets are kept.
        style: how the footage is filmed (the world datasets' ``RealStyle`` by default).
        workers: rendering processes (default: up to 2).
        sizes: :class:`WorldAnomalySizes` fields (``train_normal=52``, ...).
    """
    sizes_ = WorldAnomalySizes.from_settings(**sizes)
    style = style or RealStyle()
    base = Path(os.path.expanduser(str(cache_dir))) / "world_anomaly"
    final = base / anomaly_dataset_key(sizes_, style)
    if (final / "world_anomaly.json").is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        build_world_anomaly(tmp, sizes_, style, workers)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "world_anomaly.json").is_file():  # not a concurrent builder's finished copy
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
