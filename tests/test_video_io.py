import numpy as np
import pytest

from ray_pipeline.video_io import count_frames, read_frames, segment_indices, write_mp4


@pytest.mark.parametrize("shape", [(16, 64, 64), (9, 16, 16), (49, 48, 72), (5, 30, 40)])
def test_decord_reads_back_frame_exact_count_and_shape(tmp_path, shape):
    t, h, w = shape
    rng = np.random.default_rng(0)
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):  # smooth content so the codec error stays small
        ramp = np.linspace(0, 240, w)[None, :, None] + 5 * i + rng.integers(0, 3, (h, w, 3))
        frames[i] = np.clip(ramp, 0, 255).astype(np.uint8)
    uri = str(tmp_path / "sub" / "clip.mp4")
    write_mp4(frames, uri, fps=8)
    assert count_frames(uri) == t
    decoded = read_frames(uri)
    assert decoded.shape == (t, h, w, 3) and decoded.dtype == np.uint8
    # Lossy codec: content must still match closely, frame by frame (order preserved).
    err = np.abs(decoded.astype(int) - frames.astype(int)).mean(axis=(1, 2, 3))
    assert err.max() < 6.0
    assert not list(tmp_path.glob("sub/*.tmp-*"))


def test_read_frames_decodes_only_sampled_indices(tmp_path):
    frames = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(16)])
    uri = str(tmp_path / "c.mp4")
    write_mp4(frames, uri)
    got = read_frames(uri, num_segments=4)
    assert got.shape == (4, 16, 16, 3)
    # Segment centres of 16 frames in 4 segments: 2, 6, 10, 14.
    assert np.allclose(got[:, 8, 8, 0], [20, 60, 100, 140], atol=4)


def test_segment_indices():
    assert segment_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert segment_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    rng = np.random.default_rng(0)
    idx = segment_indices(100, 10, random=True, rng=rng)
    assert all(10 * i <= j < 10 * (i + 1) for i, j in enumerate(idx))
    with pytest.raises(ValueError):
        segment_indices(0, 4)


def test_rejects_wrong_dtype(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((2, 8, 8, 3), np.float32), str(tmp_path / "x.mp4"))
