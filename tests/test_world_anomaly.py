"""The world's UCF-Crime: published formats read back by the real parsers, windows, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ray_pipeline.evaluation.anomaly import (
    ANOMALY_CLASSES,
    index_videos,
    parse_anomaly_train_list,
    parse_temporal_annotation_rows,
    parse_temporal_annotations,
    resolve_videos,
)
from ray_pipeline.video_io import count_frames
from ray_pipeline.world.anomaly import (
    DATASET_NAME,
    NORMAL_ACTIONS,
    UCF_CRIME_WORLD_ACTIONS,
    WorldAnomalySizes,
    ensure_world_anomaly,
    plan_world_anomaly,
    render_world_anomaly_video,
    world_action,
)
from ray_pipeline.world.vocabulary import ACTION_BY_NAME

SIZES = {"train_anomalous_per_class": 1, "train_normal": 3, "test_anomalous_per_class": 2,
         "test_normal": 3, "min_frames": 24, "max_frames": 36, "min_window": 6, "max_window": 10,
         "two_window_p": 0.5, "size": 32}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_world_anomaly(tmp_path_factory.mktemp("cache"), **SIZES) / DATASET_NAME


def test_every_class_is_played_by_a_world_action() -> None:
    assert set(UCF_CRIME_WORLD_ACTIONS) == set(ANOMALY_CLASSES)
    actions = list(UCF_CRIME_WORLD_ACTIONS.values())
    assert len(set(actions)) == len(actions) and all(a in ACTION_BY_NAME for a in actions)
    assert not set(actions) & set(NORMAL_ACTIONS)
    assert world_action("Normal") == "walk" and world_action("Abuse") == "kick"
    with pytest.raises(ValueError, match="unknown UCF-Crime class"):
        world_action("Jaywalking")


def test_lists_parse_and_resolve_with_the_real_adapter(root: Path) -> None:
    train = parse_anomaly_train_list(root / "Anomaly_Train.txt")
    assert sum(v.anomalous for v in train) == 13 and sum(not v.anomalous for v in train) == 3
    assert {v.cls for v in train if v.anomalous} == set(ANOMALY_CLASSES)
    test = parse_anomaly_train_list(root / "Anomaly_Test.txt")
    rows = parse_temporal_annotation_rows(root / "Temporal_Anomaly_Annotation.txt")
    assert [r.video for r in rows] == [v.video for v in test]
    assert {r.cls for r in rows} == {*ANOMALY_CLASSES, "Normal"}
    index = index_videos(root / "videos")
    assert len(index) == len(train) + len(test)
    resolve_videos([v.video for v in train], index, "Anomaly_Train.txt")
    resolve_videos([r.video for r in rows], index, "Temporal_Anomaly_Annotation.txt")
    # the layout of the published download: class folders and the two normal folders
    assert index["Normal_Videos001_x264.mp4"].parent.name == "Training_Normal_Videos_Anomaly"
    assert index["Normal_Videos_004_x264.mp4"].parent.name == "Testing_Normal_Videos_Anomaly"
    assert not {v.video for v in train} & {r.video for r in rows}
    line = (root / "Temporal_Anomaly_Annotation.txt").read_text().splitlines()[0]
    assert "  " in line and line.endswith("  ")  # the published spacing


def test_windows_lie_inside_the_clips(root: Path) -> None:
    annotations = parse_temporal_annotations(root / "Temporal_Anomaly_Annotation.txt")
    info = json.loads((root / "info.json").read_text())
    index = index_videos(root / "videos")
    two = 0
    for name, intervals in annotations.items():
        n = count_frames(str(index[name]))
        meta = info["videos"][name]
        assert meta["frames"] == n and SIZES["min_frames"] <= n <= SIZES["max_frames"]
        assert [tuple(i) for i in meta["intervals"]] == intervals
        if meta["class"] == "Normal":
            assert intervals == []
            assert {a for a, _ in meta["timeline"]} <= set(NORMAL_ACTIONS)
            continue
        assert 1 <= len(intervals) <= 2
        two += len(intervals) == 2
        for s, e in intervals:
            assert 1 < s <= e < n  # ordinary activity before and after every window
            assert SIZES["min_window"] <= e - s + 1 <= SIZES["max_window"]
        # the timeline has the class's action exactly in the windows
        frames = np.concatenate([[a] * k for a, k in meta["timeline"]])
        expected = np.zeros(n, dtype=bool)
        for s, e in intervals:
            expected[s - 1:e] = True
        assert ((frames == UCF_CRIME_WORLD_ACTIONS[meta["class"]]) == expected).all()
    assert two > 0


def test_rendering_is_deterministic_and_sized() -> None:
    sizes = WorldAnomalySizes(**SIZES)
    plan = plan_world_anomaly(sizes)
    assert plan == plan_world_anomaly(sizes)
    video = next(v for v in plan if v.windows)
    clip = render_world_anomaly_video(video, sizes.size)
    assert clip.shape == (video.num_frames, 32, 32, 3) and clip.dtype == np.uint8
    assert np.array_equal(clip, render_world_anomaly_video(video, sizes.size))
    other = plan_world_anomaly(WorldAnomalySizes(**{**SIZES, "seed": 1}))
    assert [v.timeline for v in other] != [v.timeline for v in plan]


def test_cache_and_bad_sizes(root: Path, tmp_path: Path) -> None:
    cache = root.parent.parent.parent
    assert ensure_world_anomaly(cache, **SIZES) / DATASET_NAME == root  # built once
    assert not any(p.name.startswith(".tmp-") for p in root.parent.parent.iterdir())
    with pytest.raises(ValueError, match="unknown world anomaly size"):
        ensure_world_anomaly(tmp_path, test_videos=3)
    with pytest.raises(ValueError, match="do not fit"):
        ensure_world_anomaly(tmp_path, min_frames=20, max_window=20)
