"""Step caches on the tiny pipelines: every cache a backend offers runs, skips work, stays close to
the uncached output and holds no state from one call to the next; MagCache's calibration matches
diffusers' own; unsupported caches are config errors naming the field."""

import contextlib
import io

import numpy as np
import pytest

from ray_pipeline.config import ConfigError, load_config, supported_caches
from ray_pipeline.generators.base import get_generator_class
from tests.helpers import tiny_video_config

STEPS = 8  # enough steps for every cache's warm-up and skip windows
PROMPTS = ["a person wave in a park", "a man run on the beach"]
SEEDS = [0, 1]
# A cache approximates steps, so its frames differ from the uncached ones; "close" is relative to
# how much two seeds' frames differ: mean |cached - uncached| <= 25 % of mean |seed a - seed b|.
# Measured on these tiny models: 0-10 % (FasterCache on CogVideoX the most; bench/
# bench_generation_cache.py prints each).
RELATIVE_TOL = 0.25

CASES = [(b, k) for b in ("cogvideox", "wan", "ltx") for k in supported_caches(b)]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, tiny_wan, one_torch_thread) -> dict[str, str]:
    """Two transformer blocks each: First Block Cache needs a block after the first."""
    from ray_pipeline.tiny import build_tiny_cogvideox, build_tiny_ltx

    tmp = tmp_path_factory.mktemp("tiny2")
    return {"cogvideox": str(build_tiny_cogvideox(tmp / "cogvideox", num_layers=2)), "wan": tiny_wan,
            "ltx": str(build_tiny_ltx(tmp / "ltx", num_layers=2))}


@pytest.fixture(scope="module")
def uncached(tiny_models) -> dict:
    """Per backend: the uncached generator, its float frames, attention calls and MagCache ratios."""
    out = {}
    for backend, model in tiny_models.items():
        gen = get_generator_class(backend)(tiny_video_config(backend, model, num_inference_steps=STEPS))
        frames, calls = render_counting_attention(gen)
        seed_diff = float(np.abs(frames - gen.render(PROMPTS, [s + 10 for s in SEEDS])).mean())
        out[backend] = {"frames": frames, "calls": calls, "seed_diff": seed_diff,
                        "mag_ratios": gen.mag_ratios(PROMPTS, SEEDS)}
    return out


def render_counting_attention(gen) -> tuple[np.ndarray, int]:
    """Float frames of one call, and how many attention query projections ran (skipped attention,
    skipped blocks and predicted modules never reach theirs)."""
    calls = [0]
    handles = [m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
               for name, m in gen.pipe.transformer.named_modules() if name.endswith(".to_q")]
    try:
        frames = gen.render(PROMPTS, SEEDS)
    finally:
        for h in handles:
            h.remove()
    return frames, calls[0]


@pytest.mark.parametrize("backend, kind", CASES)
def test_cache_runs_skips_work_and_stays_close(backend, kind, tiny_models, uncached):
    ref = uncached[backend]
    cache = {"kind": kind}
    if kind == "mag":
        cache["mag"] = {"mag_ratios": ref["mag_ratios"]}
    gen = get_generator_class(backend)(tiny_video_config(backend, tiny_models[backend], num_inference_steps=STEPS,
                                                         cache=cache))
    assert gen.pipe.transformer.is_cache_enabled
    frames, calls = render_counting_attention(gen)
    assert calls < ref["calls"], f"{backend}/{kind}: the cache skipped no attention ({calls} calls)"
    diff = float(np.abs(frames - ref["frames"]).mean())
    assert diff <= RELATIVE_TOL * ref["seed_diff"], (diff, ref["seed_diff"])
    # The pipeline resets the cache's state after each call: a second batch renders the same.
    again, _ = render_counting_attention(gen)
    np.testing.assert_array_equal(frames, again)


def test_supported_caches_per_backend():
    assert supported_caches("cogvideox") == ("pab", "faster_cache", "first_block", "taylorseer", "mag")
    assert supported_caches("wan") == ("first_block", "taylorseer", "mag")
    assert supported_caches("ltx") == ("pab", "first_block", "taylorseer", "mag")


@pytest.mark.parametrize("backend", ["cogvideox", "wan", "ltx"])
def test_mag_calibration_matches_diffusers(backend, tiny_models, uncached):
    """Our hooks measure the ratios diffusers' calibration mode prints (for Wan, whose
    unconditional pass is a separate call, those of the conditional pass: the first printed)."""
    from diffusers import MagCacheConfig

    gen = get_generator_class(backend)(tiny_video_config(backend, tiny_models[backend], num_inference_steps=STEPS))
    gen.pipe.transformer.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=STEPS))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        gen.render(PROMPTS, SEEDS)
    lists = [line for line in printed.getvalue().splitlines() if line.startswith("[1.0")]
    assert lists, printed.getvalue()
    theirs = [float(x) for x in lists[0].strip("[]").split(",")]
    np.testing.assert_allclose(uncached[backend]["mag_ratios"], theirs, rtol=1e-5)
    assert len(theirs) == STEPS


def test_first_block_cache_needs_two_blocks(tiny_cogvideox, one_torch_thread):
    cfg = tiny_video_config("cogvideox", tiny_cogvideox, cache={"kind": "first_block"})  # a 1-block model
    with pytest.raises(ValueError, match="at least 2 transformer blocks"):
        get_generator_class("cogvideox")(cfg)


def test_mag_calibration_needs_the_cache_off(tiny_models, uncached):
    cfg = tiny_video_config("cogvideox", tiny_models["cogvideox"], num_inference_steps=STEPS,
                            cache={"kind": "mag", "mag": {"mag_ratios": uncached["cogvideox"]["mag_ratios"]}})
    with pytest.raises(ValueError, match="cache.kind: none"):
        get_generator_class("cogvideox")(cfg).mag_ratios(PROMPTS, SEEDS)


@pytest.mark.parametrize("yaml_text, field, words", [
    ("generate: {wan: {cache: {kind: pab}}}\n", "generate.wan.cache.kind", "per cache context"),
    ("generate: {wan: {cache: {kind: faster_cache}}}\n", "generate.wan.cache.kind", "separate calls"),
    ("generate: {ltx: {cache: {kind: faster_cache}}}\n", "generate.ltx.cache.kind", "(batch, tokens, channels)"),
    ("generate: {ltx: {cache: {kind: tea}}}\n", "generate.ltx.cache.kind", "'first_block'"),
    ("generate: {cogvideox: {cache: {kind: mag}}}\n", "generate.cogvideox.cache.mag", "mag_ratios"),
    ("generate: {cogvideox: {cache: {kind: first_block}, prompts_per_call: 2}}\n", "generate.cogvideox",
     "prompts_per_call: 1"),
    ("generate: {wan: {cache: {kind: taylorseer}, compile: {enabled: true, fullgraph: true}}}\n", "generate.wan",
     "compile.fullgraph"),
    ("generate: {wan: {num_frames: 80}}\n", "generate.wan.num_frames", "4N+1"),
    ("generate: {ltx: {num_frames: 85}}\n", "generate.ltx.num_frames", "8N+1"),
    ("generate: {ltx: {height: 496}}\n", "generate.ltx.height", "multiple of 32"),
    ("generate: {wan: {width: 840}}\n", "generate.wan.width", "multiple of 16"),
    ("generate: {ltx: {vae_slicing: true}}\n", "generate.ltx.vae_slicing", "pairs the slices wrongly"),
    ("generate: {cogvideox: {cache: {pab: {spatial_attention_block_skip_range: 1}}}}\n",
     "generate.cogvideox.cache.pab.spatial_attention_block_skip_range", "greater than or equal to 2"),
])
def test_config_errors_name_the_field(tmp_path, yaml_text, field, words):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: {field}:" in str(err.value)
    assert words in str(err.value)
