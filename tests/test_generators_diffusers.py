"""The diffusers backends (cogvideox, wan, ltx) on their tiny offline pipelines, on CPU.

Each backend generates uint8 clips of the configured shape, deterministically per seed; settings
that the clip id leaves out (prompts per call, VAE slicing, compile) leave every pixel unchanged,
and settings that change pixels change the clip id.
"""

import json

import numpy as np
import pytest

from ray_pipeline.generators.base import get_generator_class
from ray_pipeline.ids import row_id
from tests.helpers import TINY_VIDEO_SIZES, tiny_video_config

BACKENDS = ["cogvideox", "wan", "ltx"]
PROMPTS = ["a person wave in a park", "a man run on the beach", "a child jump"]


@pytest.fixture(scope="module")
def tiny_models(tiny_cogvideox, tiny_wan, tiny_ltx, one_torch_thread) -> dict[str, str]:
    return {"cogvideox": tiny_cogvideox, "wan": tiny_wan, "ltx": tiny_ltx}


def generator(backend: str, models: dict[str, str], **overrides):
    return get_generator_class(backend)(tiny_video_config(backend, models[backend], **overrides))


def clip_id(backend: str, config) -> str:
    # As stages/generate.py:clip_rows builds it.
    cls = get_generator_class(backend)
    identity = json.dumps(cls.identity(config), sort_keys=True)
    return row_id("clip", prompt_id="p0", prompt=PROMPTS[0], seed=0, backend=cls.name, generator=identity)


@pytest.mark.parametrize("backend", BACKENDS)
def test_generates_uint8_clips_deterministic_per_seed(backend, tiny_models):
    gen = generator(backend, tiny_models)
    size, frames = TINY_VIDEO_SIZES[backend]
    clips = gen.generate(PROMPTS[:2] + PROMPTS[:1], [0, 1, 1])
    assert len(clips) == 3
    for clip in clips:
        assert clip.shape == (frames, size, size, 3) and clip.dtype == np.uint8
        assert clip.std() > 0  # not a constant frame
    again = gen.generate(PROMPTS[:1], [0])
    np.testing.assert_array_equal(again[0], clips[0])  # same prompt and seed, same pixels
    assert not np.array_equal(clips[0], clips[2])  # same prompt, another seed
    assert not np.array_equal(clips[1], clips[2])  # same seed, another prompt
    assert gen.fps == gen.config.fps


# "Leaves the pixels" means float arithmetic reassociated, nothing more: float frames (in [0, 1])
# within 1e-5 (measured: <= 2e-6), so a uint8 value moves by at most one level, and only where it
# sits on a rounding boundary (measured: 1 value in 6912 on tiny Wan with prompts_per_call 2). GPU
# kernels differ by as much between GPU models and library versions, which no id records either;
# a step cache (>= 1e-2) or VAE tiling (>= 0.1, most pixels) is a different computation.
FLOAT_TOL, UINT8_FRACTION = 1e-5, 1e-3


def assert_same_computation(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.shape == b.shape, what
    if a.dtype == np.uint8:
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() <= UINT8_FRACTION, f"{what}: {diff.max()}, {(diff > 0).mean()}"
    else:
        assert np.abs(a - b).max() <= FLOAT_TOL, f"{what}: {np.abs(a - b).max()}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_settings_left_out_of_the_id_leave_the_pixels(backend, tiny_models):
    seeds = [3, 4, 5]
    reference_gen = generator(backend, tiny_models)
    reference = reference_gen.generate(PROMPTS, seeds)
    reference_float = np.concatenate([reference_gen.render([p], [s]) for p, s in zip(PROMPTS, seeds)])
    variants = {"prompts_per_call": {"prompts_per_call": 3},
                "compile": {"compile": {"enabled": True, "backend": "aot_eager"}}}
    if backend != "ltx":  # slicing is refused for LTX (broken in diffusers 0.42.1)
        variants["vae_slicing"] = {"vae_slicing": True, "prompts_per_call": 3}
    base_id = clip_id(backend, reference_gen.config)
    for name, overrides in variants.items():
        gen = generator(backend, tiny_models, **overrides)
        if name == "compile":
            assert gen.pipe.transformer._compiled_call_impl is not None
        assert_same_computation(reference_float, gen.render(PROMPTS, seeds) if name != "compile" else
                                np.concatenate([gen.render([p], [s]) for p, s in zip(PROMPTS, seeds)]),
                                f"{backend}: {name} (float)")
        for a, b in zip(reference, gen.generate(PROMPTS, seeds)):
            assert_same_computation(a, b, f"{backend}: {name} (uint8)")
        assert clip_id(backend, gen.config) == base_id, f"{backend}: {name} changed the clip id"
    for key, value in {"cpu_offload": "model", "fps": 30}.items():
        assert clip_id(backend, reference_gen.config.model_copy(update={key: value})) == base_id, key


# Settings that change pixels, per backend: each must change the clip id.
PIXEL_SETTINGS = {
    "shared": {"model": "other/model", "dtype": "bfloat16", "num_inference_steps": 3, "num_frames": 17,
               "height": 96, "width": 64, "guidance_scale": 1.5, "negative_prompt": "blurry",
               "max_sequence_length": 8, "vae_tiling": True, "cache": {"kind": "first_block"}},
    "cogvideox": {"scheduler": "dpm", "use_dynamic_cfg": True},
    "wan": {"vae_dtype": "bfloat16", "flow_shift": 5.0},
    "ltx": {"guidance_rescale": 0.7, "frame_rate": 24, "decode_timestep": 0.05, "decode_noise_scale": 0.0},
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_pixel_changing_settings_change_the_clip_id(backend):
    base = tiny_video_config(backend, "tiny")
    ids = {clip_id(backend, base)}
    settings = {**PIXEL_SETTINGS["shared"], **PIXEL_SETTINGS[backend]}
    for key, value in settings.items():
        changed = type(base).model_validate({**base.model_dump(), key: value})
        ids.add(clip_id(backend, changed))
    assert len(ids) == len(settings) + 1
    # A cache's own settings are in the id too, but only the chosen cache's.
    def with_cache(**cache):
        return type(base).model_validate({**base.model_dump(), "cache": cache})

    fbc = with_cache(kind="first_block")
    assert clip_id(backend, fbc) != clip_id(backend, with_cache(kind="first_block", first_block={"threshold": 0.1}))
    assert clip_id(backend, with_cache(kind="none", first_block={"threshold": 0.1})) == clip_id(backend, base)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vae_tiling_changes_pixels(backend, tiny_models):
    """Why vae_tiling is in the id: tiles decoded apart and blended differ from one decode. The
    tiny VAEs' default tiles exceed their frames, so tiles of 32 px on 64 px frames show it."""
    gen = generator(backend, tiny_models, height=64, width=64)
    whole = gen.generate(PROMPTS[:1], [0])[0]
    tiles = {"tile_sample_min_height": 32, "tile_sample_min_width": 32}
    if backend == "cogvideox":
        tiles |= {"tile_overlap_factor_height": 0.5, "tile_overlap_factor_width": 0.5}
    else:
        tiles |= {"tile_sample_stride_height": 16, "tile_sample_stride_width": 16}
    gen.pipe.vae.enable_tiling(**tiles)
    tiled = gen.generate(PROMPTS[:1], [0])[0]
    assert (tiled != whole).mean() > 0.1


def test_wan_loads_the_vae_in_its_own_dtype(tiny_models):
    import torch

    gen = generator("wan", tiny_models, dtype="bfloat16", vae_dtype="float32")
    assert gen.pipe.transformer.dtype == torch.bfloat16
    assert gen.pipe.vae.dtype == torch.float32
    assert gen.pipe.scheduler.config.flow_shift == 3.0
    clip = gen.generate(PROMPTS[:1], [0])[0]
    assert clip.dtype == np.uint8 and clip.std() > 0


def test_ltx_decode_settings_reach_the_pipeline(tiny_models):
    """decode_timestep/decode_noise_scale act on the timestep-conditioned VAE (as LTX-Video 0.9.1+)."""
    a = generator("ltx", tiny_models).generate(PROMPTS[:1], [0])[0]
    b = generator("ltx", tiny_models, decode_timestep=0.5, decode_noise_scale=0.5).generate(PROMPTS[:1], [0])[0]
    c = generator("ltx", tiny_models, frame_rate=8).generate(PROMPTS[:1], [0])[0]
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_backends_are_registered():
    from ray_pipeline.config import GenerateConfig

    for backend in BACKENDS:
        assert get_generator_class(backend).name == backend
        assert type(GenerateConfig(backend=backend).backend_config()).__name__.lower().startswith(backend[:3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_prompt_tokens_are_counted_with_the_backends_tokenizer(backend, tiny_models):
    from ray_pipeline.prompts.text import make_token_counter

    logs: list[str] = []
    counter = make_token_counter(backend, tiny_models[backend], None, logs.append)
    assert counter.name == f"tokenizer:{tiny_models[backend]}" and not logs
    assert counter.count("a person wave") == 4  # 3 whole-word pieces + </s>
