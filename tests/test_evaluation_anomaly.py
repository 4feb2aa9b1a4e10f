"""UCF-Crime files, segment-to-frame scores and frame-level AUCs against sklearn and hand values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ray_pipeline.evaluation.anomaly import (
    AnnotationError,
    frame_auc,
    index_videos,
    parse_anomaly_train_list,
    parse_temporal_annotation_rows,
    parse_temporal_annotations,
    resolve_videos,
    segment_bounds,
    segment_to_frame_scores,
)

# Lines in the published format: two spaces between fields and two trailing, "-1" for none;
# plus a tab-separated line, a CRLF line end and a blank line, which other copies have.
ANNOTATION_TEXT = (
    "Abuse028_x264.mp4  Abuse  165  240  -1  -1  \n"
    "Arson011_x264.mp4  Arson  150  420  680  1267  \n"
    "\n"
    "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  \r\n"
    "Burglary035_x264.mp4\tBurglary\t1\t1740\t-1\t-1\n"
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_parses_published_annotation_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "Temporal_Anomaly_Annotation.txt", ANNOTATION_TEXT)
    assert parse_temporal_annotations(path) == {
        "Abuse028_x264.mp4": [(165, 240)],
        "Arson011_x264.mp4": [(150, 420), (680, 1267)],
        "Normal_Videos_003_x264.mp4": [],
        "Burglary035_x264.mp4": [(1, 1740)],
    }
    rows = parse_temporal_annotation_rows(path)
    assert [r.cls for r in rows] == ["Abuse", "Arson", "Normal", "Burglary"]
    assert [r.anomalous for r in rows] == [True, True, False, True]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Abuse028_x264.mp4  Abuse  165  240  -1\n", "pairs"),
        ("Abuse028_x264.mp4  Abuse  165  -1  -1  -1\n", "only one"),
        ("Abuse028_x264.mp4  Abuse  240  165  -1  -1\n", "starts after"),
        ("Abuse028_x264.mp4  Abuse  0  165  -1  -1\n", "1-based"),
        ("Abuse028_x264.mp4  Abuse  a  165\n", "integers"),
        ("Abuse028_x264.mp4  Abuse\n", "expected"),
    ],
)
def test_bad_annotation_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, "ann.txt", "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1\n" + line)
    with pytest.raises(AnnotationError, match=message) as err:
        parse_temporal_annotations(path)
    assert f"{path}:2" in str(err.value)


def test_duplicate_annotation_is_an_error(tmp_path: Path) -> None:
    text = "A001_x264.mp4  Abuse  1  2  -1  -1\nA001_x264.mp4  Abuse  3  4  -1  -1\n"
    path = _write(tmp_path, "ann.txt", text)
    with pytest.raises(AnnotationError, match="already annotated on line 1"):
        parse_temporal_annotations(path)


def test_parses_train_list_with_normal_folders(tmp_path: Path) -> None:
    path = _write(tmp_path, "Anomaly_Train.txt", (
        "Abuse/Abuse001_x264.mp4\n"
        "RoadAccidents/RoadAccidents003_x264.mp4\r\n"
        "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4\n"
        "Anomaly-Videos-Part-1/Arson/Arson001_x264.mp4\n"
        "Training-Normal-Videos-Part-1/Normal_Videos002_x264.mp4\n"))
    rows = parse_anomaly_train_list(path)
    assert [(r.video, r.cls, r.anomalous) for r in rows] == [
        ("Abuse001_x264.mp4", "Abuse", True),
        ("RoadAccidents003_x264.mp4", "RoadAccidents", True),
        ("Normal_Videos001_x264.mp4", "Normal", False),
        ("Arson001_x264.mp4", "Arson", True),
        ("Normal_Videos002_x264.mp4", "Normal", False),
    ]
    assert rows[0].path == "Abuse/Abuse001_x264.mp4"
    bad = _write(tmp_path, "bad.txt", "Abuse/Abuse001_x264.mp4\nBurglar/Burglary001_x264.mp4\n")
    with pytest.raises(AnnotationError, match=r"bad.txt:2: folder 'Burglar'"):
        parse_anomaly_train_list(bad)
    with pytest.raises(AnnotationError, match="expected"):
        parse_anomaly_train_list(_write(tmp_path, "flat.txt", "Abuse001_x264.mp4\n"))


def test_videos_are_found_by_name_under_any_nesting(tmp_path: Path) -> None:
    (tmp_path / "v" / "Part-1" / "Abuse").mkdir(parents=True)
    (tmp_path / "v" / "Testing_Normal_Videos").mkdir(parents=True)
    (tmp_path / "v" / "Part-1" / "Abuse" / "Abuse028_x264.mp4").write_bytes(b"")
    (tmp_path / "v" / "Testing_Normal_Videos" / "Normal_Videos_003_x264.mp4").write_bytes(b"")
    index = index_videos(tmp_path / "v")
    paths = resolve_videos(["Abuse028_x264.mp4", "Normal_Videos_003_x264.mp4"], index, "ann.txt")
    assert [p.name for p in paths] == ["Abuse028_x264.mp4", "Normal_Videos_003_x264.mp4"]
    with pytest.raises(AnnotationError, match=r"1 of the 2 videos in ann.txt.*Arson011"):
        resolve_videos(["Abuse028_x264.mp4", "Arson011_x264.mp4"], index, "ann.txt")


# --------------------------------------------------------------------------------------------
# Frame-level AUCs
# --------------------------------------------------------------------------------------------


def test_frame_auc_matches_sklearn_on_pooled_frames() -> None:
    rng = np.random.default_rng(0)
    scores = {
        "two_windows": rng.random(30),  # frames 3-6 and 20-24 (1-based) anomalous
        "clipped": rng.random(12),  # annotated 9-40 but only 12 frames scored: 9-12 anomalous
        "normal_a": rng.random(25),
        "normal_b": rng.random(8),
        "not_annotated": rng.random(5),  # ignored
    }
    annotations = {"two_windows": [(3, 6), (20, 24)], "clipped": [(9, 40)], "normal_a": [], "normal_b": []}
    labels = {
        "two_windows": np.r_[np.zeros(2), np.ones(4), np.zeros(13), np.ones(5), np.zeros(6)],
        "clipped": np.r_[np.zeros(8), np.ones(4)],
        "normal_a": np.zeros(25),
        "normal_b": np.zeros(8),
    }
    names = list(annotations)
    expected_auc = roc_auc_score(np.concatenate([labels[n] for n in names]),
                                 np.concatenate([scores[n] for n in names]))
    expected_auc_a = roc_auc_score(np.concatenate([labels[n] for n in names[:2]]),
                                   np.concatenate([scores[n] for n in names[:2]]))
    result = frame_auc(scores, annotations)
    assert result["auc"] == pytest.approx(expected_auc, abs=1e-12)
    assert result["auc_a"] == pytest.approx(expected_auc_a, abs=1e-12)
    assert 0.0 <= result["auc"] <= 1.0 and 0.0 <= result["auc_a"] <= 1.0


def test_frame_auc_hand_value() -> None:
    # anomalous video: frames 1-2 anomalous (0.9, 0.4), frame 3 normal (0.5); normal video (0.1, 0.3).
    # AUC = share of (anomalous, normal) frame pairs ranked right: 0.9 beats 3, 0.4 beats 2 -> 5/6.
    # AUC_A: only 0.5 is normal: 0.9 beats it, 0.4 does not -> 1/2.
    result = frame_auc({"a": [0.9, 0.4, 0.5], "n": [0.1, 0.3]}, {"a": [(1, 2)], "n": []})
    assert result == {"auc": pytest.approx(5 / 6), "auc_a": pytest.approx(0.5)}


def test_frame_auc_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"Abuse028_x264\.mp4"):
        frame_auc({"Abuse030_x264.mp4": [0.1, 0.2]}, {"Abuse028_x264.mp4": [(1, 2)], "Abuse030_x264.mp4": []})
    with pytest.raises(ValueError, match="every frame is normal"):
        frame_auc({"n": [0.1, 0.2]}, {"n": []})
    with pytest.raises(ValueError, match="1-D"):
        frame_auc({"a": [[0.1, 0.2]]}, {"a": [(1, 1)]})
    with pytest.raises(ValueError, match="finite"):
        frame_auc({"a": [0.1, float("nan")], "n": [0.2]}, {"a": [(1, 1)], "n": []})


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


def test_segment_bounds_use_matlab_rounding() -> None:
    # linspace(1, 3, 33) = 1 + k/16: k = 8 gives 1.5 -> 2 and k = 24 gives 2.5 -> 3 (numpy's
    # round-half-to-even would give 2), so the clips get 8, 16 and 8 of the 32 segments.
    bounds = segment_bounds(3)
    assert all(e - s == 1 for s, e in bounds)
    assert [sum(1 for s, _ in bounds if s == c) for c in range(3)] == [8, 16, 8]
    # 4 clips in 2 segments: boundaries round(1, 2.5, 4) = 1, 3, 4; the last segment runs to clip 4.
    assert segment_bounds(4, 2) == [(0, 2), (2, 4)]
    # 64 clips: every clip in exactly one segment, in order.
    b64 = segment_bounds(64)
    assert b64[0][0] == 0 and b64[-1][1] == 64
    assert all(b64[i][1] == b64[i + 1][0] for i in range(31))
    with pytest.raises(ValueError):
        segment_bounds(0)


def test_segment_to_frame_scores_follows_the_reference_rule() -> None:
    # 70 frames = 4 C3D clips of 16 + 6 frames; 2 segments: clips 1-2 and 3-4; the tail takes the last.
    out = segment_to_frame_scores([0.2, 0.7], 70, clip_len=16)
    assert out.shape == (70,)
    assert (out[:32] == 0.2).all() and (out[32:] == 0.7).all()
    # 3 one-frame clips in 32 segments: where segments share a clip the later one wins.
    assert segment_to_frame_scores(np.arange(32.0), 3, clip_len=1).tolist() == [7.0, 23.0, 31.0]
    # a video shorter than one clip is one clip: the last segment covering it wins.
    assert (segment_to_frame_scores(np.arange(32.0), 10, clip_len=16) == 31.0).all()
