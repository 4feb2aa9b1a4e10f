"""The procedural world's vocabulary and renderer: sizes, determinism, camera, failure modes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ray_pipeline.world.render import (
    FAILURE_MODES,
    MOTIONS,
    CameraSpec,
    RealStyle,
    real_scene,
    render_clip,
    stereotype_scene,
)
from ray_pipeline.world.vocabulary import (
    ACTION_BY_NAME,
    ACTIONS,
    CHARACTER_BY_NAME,
    CHARACTERS,
    ENVIRONMENT_BY_NAME,
    ENVIRONMENTS,
    SOURCE_DATASET,
    TARGET_DATASETS,
    WORLD_CLASS_LISTS,
    target_only_classes,
)


def test_vocabulary_sizes_and_consistency():
    assert len(ACTIONS) >= 24 and len(ENVIRONMENTS) >= 12 and len(CHARACTERS) >= 16
    for a in ACTIONS:
        assert a.name in MOTIONS, f"{a.name} has no motion"
        assert a.name == a.name.lower() and a.phrases
        assert a.stereotype_env in ENVIRONMENT_BY_NAME and a.stereotype_character in CHARACTER_BY_NAME
        assert len(a.typical_envs) >= 4 and all(e in ENVIRONMENT_BY_NAME for e in a.typical_envs)
        if a.hard_pair is not None:
            assert a.hard_pair in ACTION_BY_NAME
    # The hard pairs that HMDB has are in the world's HMDB.
    hmdb = set(WORLD_CLASS_LISTS["world_hmdb"])
    assert {"kick", "kick ball", "sword", "sword exercise", "sit", "stand"} <= hmdb


def test_class_lists_overlap_like_the_real_datasets():
    assert set(WORLD_CLASS_LISTS) == {SOURCE_DATASET, *TARGET_DATASETS}
    source = set(WORLD_CLASS_LISTS[SOURCE_DATASET])
    for name in TARGET_DATASETS:
        classes = WORLD_CLASS_LISTS[name]
        assert len(classes) == len(set(classes)) and all(c in ACTION_BY_NAME for c in classes)
        only = target_only_classes(name)
        assert 0 < len(only) < len(classes) / 2  # partly overlapping the source, as HMDB/UCF and K400
        assert len(source & set(classes)) >= len(classes) / 2


@pytest.mark.parametrize("kind", ["stereotype", "real", *FAILURE_MODES])
def test_same_seed_same_bytes(kind):
    if kind == "stereotype":
        scene = stereotype_scene("brush hair")
    elif kind == "real":
        scene = real_scene("kick ball", np.random.default_rng(3))
    else:
        scene = replace(stereotype_scene("wave"), failure=kind)
    a = render_clip(scene, seed=1234)
    b = render_clip(scene, seed=1234)
    assert a.dtype == np.uint8 and a.shape == (16, 64, 64, 3)
    assert a.tobytes() == b.tobytes()
    assert render_clip(scene, seed=1235).tobytes() != a.tobytes()


def test_sizes_and_frame_subsets():
    scene = real_scene("jumping jack", np.random.default_rng(0))
    full = render_clip(scene, 7, num_frames=12, size=48)
    assert full.shape == (12, 48, 48, 3)
    part = render_clip(scene, 7, num_frames=12, size=48, frames=[0, 5, 11])
    # Rendering a subset gives the full clip's frames (up to float rounding in the drawing).
    assert np.abs(part.astype(int) - full[[0, 5, 11]].astype(int)).max() <= 2


def test_every_action_moves_and_classes_differ():
    firsts = {}
    for a in ACTIONS:
        clip = render_clip(stereotype_scene(a.name), 0).astype(np.float32)
        motion = np.abs(np.diff(clip, axis=0)).mean()
        assert motion > 0.05, f"{a.name} does not move"
        firsts[a.name] = clip
    # Hard pairs look alike but are not the same clip.
    assert np.abs(firsts["kick"] - firsts["kick ball"]).mean() > 1.0


def test_mirror_is_a_horizontal_flip():
    base = replace(stereotype_scene("throw"), camera=CameraSpec())
    flipped = replace(base, camera=CameraSpec(mirror=True))
    a, b = render_clip(base, 5), render_clip(flipped, 5)
    assert np.abs(a[:, :, ::-1].astype(int) - b.astype(int)).max() <= 1


def test_camera_and_noise_parameters_change_the_image():
    base = stereotype_scene("walk")
    clean = render_clip(base, 2).astype(np.float32)
    noisy = render_clip(replace(base, camera=CameraSpec(noise=0.05)), 2).astype(np.float32)
    zoomed = render_clip(replace(base, camera=CameraSpec(zoom=1.4)), 2).astype(np.float32)
    shaky = render_clip(replace(base, camera=CameraSpec(jitter=0.02)), 2).astype(np.float32)
    assert 8 < np.abs(noisy - clean).mean() < 20  # ~N(0, 0.05) * 255 * sqrt(2/pi)
    assert np.abs(zoomed - clean).mean() > 5
    assert np.abs(shaky - clean).mean() > 2


def test_frozen_failure_holds_still_and_garbled_differs():
    scene = replace(stereotype_scene("clap"), failure="frozen")
    frozen = render_clip(scene, 9).astype(np.float32)
    assert np.abs(np.diff(frozen, axis=0)).max() == 0
    good = render_clip(stereotype_scene("clap"), 9).astype(np.float32)
    garbled = render_clip(replace(stereotype_scene("clap"), failure="garbled"), 9).astype(np.float32)
    assert np.abs(garbled - good).mean() > 10


def test_real_scenes_vary_and_use_typical_places_more_often():
    rng = np.random.default_rng(0)
    scenes = [real_scene("swim", rng, RealStyle(context_bias=0.5)) for _ in range(400)]
    envs = [s.environment for s in scenes]
    typical = set(ACTION_BY_NAME["swim"].typical_envs)
    frac = np.mean([e in typical for e in envs])
    assert 0.55 < frac < 0.8  # 0.5 + 0.5 * 4/16
    assert len(set(envs)) == len(ENVIRONMENTS)
    assert len({s.character for s in scenes}) > len(CHARACTERS)  # attribute changes on top of looks
    assert len({s.camera.mirror for s in scenes}) == 2
