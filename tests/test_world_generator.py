"""The ``procedural`` text-to-video backend behind the generator interface."""

from __future__ import annotations

import numpy as np

from ray_pipeline.config import ExperimentConfig, ProceduralConfig, load_config
from ray_pipeline.generators.base import VideoGenerator, get_generator_class
from ray_pipeline.generators.procedural import ProceduralGenerator
from ray_pipeline.world.vocabulary import ACTION_BY_NAME, CHARACTER_BY_NAME, character_descriptions

BASIC = "A person is brushing hair."
IE = ("An old man with grey hair in a brown cardigan is brushing hair in a green forest among tall trees. "
      "One hand moves a hairbrush down along the hair, again and again.")


def test_registered_and_built_from_config():
    cls = get_generator_class("procedural")
    assert cls is ProceduralGenerator and issubclass(cls, VideoGenerator)
    cfg = load_config(None, ["generate.procedural.size=32", "generate.procedural.num_frames=8"])
    assert isinstance(cfg, ExperimentConfig)
    gen = cls(cfg.generate.backend_config(), device="cpu")
    clips = gen.generate([BASIC, IE, "a dog barks"], [1, 2, 3])
    assert len(clips) == 3
    for clip in clips:
        assert clip.dtype == np.uint8 and clip.shape == (8, 32, 32, 3)
    assert gen.fps == 8


def test_deterministic_per_prompt_and_seed():
    gen = ProceduralGenerator(ProceduralConfig(failure_rate=0.3))
    prompts = [BASIC, IE, BASIC, IE]
    seeds = [10, 11, 12, 13]
    a = gen.generate(prompts, seeds)
    b = ProceduralGenerator(ProceduralConfig(failure_rate=0.3)).generate(prompts[::-1], seeds[::-1])[::-1]
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))  # batch order does not matter
    assert a[0].tobytes() != a[2].tobytes()  # another seed, another clip


def test_failures_are_deterministic_by_seed_and_monotone_in_rate():
    low, high = ProceduralGenerator(ProceduralConfig(failure_rate=0.1)), ProceduralGenerator(
        ProceduralConfig(failure_rate=0.4))
    seeds = range(3000)
    f_low = [low.failure_of(s) for s in seeds]
    f_high = [high.failure_of(s) for s in seeds]
    assert abs(np.mean([f is not None for f in f_low]) - 0.1) < 0.02
    assert abs(np.mean([f is not None for f in f_high]) - 0.4) < 0.03
    assert all(h is not None for lo, h in zip(f_low, f_high) if lo is not None)
    assert {f for f in f_high if f} == {"frozen", "wrong", "garbled"}
    assert f_low == [ProceduralGenerator(ProceduralConfig(failure_rate=0.1)).failure_of(s) for s in seeds]
    only_frozen = ProceduralGenerator(ProceduralConfig(failure_rate=1.0, failure_modes=["frozen"]))
    assert {only_frozen.failure_of(s) for s in range(50)} == {"frozen"}
    # A failed seed renders differently from the same prompt and seed without failures.
    seed = next(s for s in seeds if f_high[s] == "garbled")
    bad = high.generate([IE], [seed])[0].astype(np.float32)
    good = ProceduralGenerator(ProceduralConfig(failure_rate=0.0)).generate([IE], [seed])[0].astype(np.float32)
    assert np.abs(bad - good).mean() > 5


def test_unspecified_context_falls_back_to_the_stereotype():
    gen = ProceduralGenerator(ProceduralConfig(failure_rate=0.0))
    spec = ACTION_BY_NAME["brush hair"]
    basic = gen.scene(BASIC, 0)
    assert basic.environment == spec.stereotype_env
    assert basic.character == CHARACTER_BY_NAME[spec.stereotype_character].look
    ie = gen.scene(IE, 0)
    assert ie.environment == "forest" and ie.character == CHARACTER_BY_NAME["old man with grey hair"].look
    # Only the environment named: the character stays the stereotype, and vice versa.
    env_only = gen.scene("A person is brushing hair on a snowy field in winter.", 0)
    assert env_only.environment == "snowfield" and env_only.character == basic.character
    cha_only = gen.scene(f"{character_descriptions(4)[3]} is brushing hair.", 0)
    assert cha_only.environment == spec.stereotype_env and cha_only.character != basic.character
    # With stereotype_p < 1 the open slots are sometimes filled at random.
    loose = ProceduralGenerator(ProceduralConfig(stereotype_p=0.0))
    assert len({loose.scene(BASIC, s).environment for s in range(40)}) > 5


def test_generated_clips_are_clean_and_centred():
    gen = ProceduralGenerator(ProceduralConfig(failure_rate=0.0))
    scene = gen.scene(IE, 3)
    assert scene.camera.noise == 0 and scene.camera.jitter == 0 and not scene.camera.mirror
    assert scene.camera.offset_x == 0 and scene.camera.zoom == 1


def test_identity_tracks_output_changing_settings():
    base = ProceduralGenerator.identity(ProceduralConfig())  # a classmethod: no generator needed
    assert base["backend"] == "procedural" and "world_version" in base
    for change in ({"size": 32}, {"num_frames": 8}, {"failure_rate": 0.2}, {"stereotype_p": 0.5},
                   {"failure_modes": ["frozen"]}):
        assert ProceduralGenerator.identity(ProceduralConfig(**change)) != base
