"""Video files: encoding with PyAV's bundled FFmpeg, decoding of sampled frames with decord.

Writes are atomic: a clip is encoded to a temporary name next to its destination and renamed
when complete, so a crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def readable(uri: str) -> Iterator[str]:
    """A local path for ``uri``: itself when it is one, else a temporary download. The run store
    (and pyarrow) is imported only for a URI, so decoding local clips needs neither (the GPU check
    decodes on a machine without them)."""
    if "://" not in str(uri):
        yield str(uri)
        return
    from ray_pipeline.runstore import local_copy

    with local_copy(uri) as local:
        yield local


def encode_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int = 8, crf: int = 18) -> None:
    """Encode uint8 frames (T, H, W, 3) as H.264 mp4 at ``path`` (a local file)."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        # yuv420p needs even sizes; pad by edge replication rather than silently resizing.
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        h, w = frames.shape[1:3]
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # No B-frames and one GOP per clip: frames decode in order and decord seeks exactly.
        stream.options = {"crf": str(crf), "preset": "veryfast", "bf": "0", "g": str(max(t, 1))}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_mp4(frames: np.ndarray, uri: str, fps: int = 8) -> int:
    """Atomically write a clip to ``uri`` (local path or any pyarrow.fs URI); returns its size."""
    from ray_pipeline.runstore import RunStore

    store, rel = RunStore.split(uri)
    with tempfile.TemporaryDirectory(prefix="ray_pipeline_enc_") as tmp:
        local = Path(tmp) / "clip.mp4"
        encode_mp4(frames, local, fps=fps)
        data = local.read_bytes()
    store.write_bytes(rel, data)
    return len(data)


def segment_indices(num_frames: int, num_segments: int, *, random: bool = False,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN sampling: split [0, num_frames) into equal segments and take one frame from each:
    the segment centre in test mode, a uniformly random frame in train mode."""
    if num_frames <= 0:
        raise ValueError("video has no frames")
    edges = np.linspace(0, num_frames, num_segments + 1)
    if random:
        rng = rng or np.random.default_rng()
        starts, ends = edges[:-1], edges[1:]
        idx = np.floor(starts + rng.random(num_segments) * (ends - starts))
    else:
        idx = np.floor((edges[:-1] + edges[1:]) / 2)
    return np.clip(idx.astype(np.int64), 0, num_frames - 1)


def read_frames(uri: str, indices: np.ndarray | None = None, num_segments: int | None = None,
                *, random: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """Decode only the requested frames of a clip with decord; uint8 (T, H, W, 3).

    Give explicit ``indices``, or ``num_segments`` for TSN sampling (centres, or random in train
    mode). Remote URIs are fetched to a temporary file first (decord reads local files)."""
    import decord

    with readable(uri) as local_path:
        reader = decord.VideoReader(local_path, ctx=decord.cpu(0), num_threads=1)
        n = len(reader)
        if indices is None:
            if num_segments is None:
                indices = np.arange(n)
            else:
                indices = segment_indices(n, num_segments, random=random, rng=rng)
        indices = [int(i) for i in indices]
        try:
            return reader.get_batch(indices).asnumpy()
        except decord.DECORDError:
            # decord 0.6 fails to copy frames of some small widths (e.g. 16 or 72 px) because
            # of a row-alignment mismatch; PyAV decodes those correctly.
            return _read_frames_pyav(local_path, indices)


def _read_frames_pyav(path: str, indices: list[int]) -> np.ndarray:
    import av

    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if len(frames) == len(wanted):
                break
    return np.stack([frames[i] for i in indices])


def count_frames(uri: str) -> int:
    import decord

    with readable(uri) as local_path:
        return len(decord.VideoReader(local_path, ctx=decord.cpu(0), num_threads=1))
