"""X-CLIP on tiny random models built offline: HF equivalence, training groups, checkpoints, and
X-CLIP on a CLIP's weights (the tiny CLIP and the world's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel, XCLIPModel

from ray_pipeline.models import XCLIP, build_video_text_model, load_video_text_model
from ray_pipeline.models.xclip import xclip_from_clip
from ray_pipeline.tiny import save_tiny_clip, save_tiny_xclip

CLASSES = ["normal", "abnormal", "ride bike"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_xclip(tmp_path_factory.mktemp("tiny_xclip"), num_frames=4)


def _clips(b: int = 2, t: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randn(b, t, 3, size, size, generator=torch.Generator().manual_seed(0))


def _perturb_new_modules(model: XCLIP) -> None:
    # random init leaves alpha at 0.1 and MIT small; scale them so the check covers those paths
    with torch.no_grad():
        model.clip.prompts_generator.alpha.fill_(0.7)
        model.clip.mit.position_embedding.mul_(3.0)


def test_logits_match_xclipmodel(backbone: Path) -> None:
    model = build_video_text_model("xclip", str(backbone)).eval()
    assert isinstance(model, XCLIP)
    _perturb_new_modules(model)
    px = _clips()
    enc = model.tokenizer(CLASSES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = model(px, CLASSES)
        ref = model.clip(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px)
        video = model.encode_video(px)
        text = model.encode_text(CLASSES, video)
    assert ours.shape == (2, 3)
    assert torch.allclose(ours, ref.logits_per_video, atol=1e-5)
    assert torch.allclose(video.embedding, ref.video_embeds, atol=1e-6)
    assert torch.allclose(text, ref.text_embeds, atol=1e-6)
    assert text.shape == (2, 3, model.clip.config.projection_dim)


def test_frame_count_and_video_are_required(backbone: Path) -> None:
    model = build_video_text_model("xclip", str(backbone))
    with pytest.raises(ValueError, match="4 frames"):
        model.encode_video(_clips(t=3))
    with pytest.raises(ValueError, match="depend on the video"):
        model.encode_text(CLASSES)


def test_frozen_text_and_ten_x_groups(backbone: Path) -> None:
    model = build_video_text_model("xclip", str(backbone))
    F.cross_entropy(model(_clips(), CLASSES), torch.tensor([0, 1])).backward()
    text_params = [*model.clip.text_model.parameters(), *model.clip.text_projection.parameters()]
    assert all(not p.requires_grad and p.grad is None for p in text_params)
    names = {id(p): n for n, p in model.named_parameters()}
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    groups = {g["name"]: g for g in model.param_groups(8e-6)}
    assert groups["base"]["lr"] == 8e-6 and groups["new_modules"]["lr"] == pytest.approx(8e-5)
    new = {names[id(p)] for p in groups["new_modules"]["params"]}
    assert any(".message_attn." in n for n in new) and any(n.startswith("clip.mit.") for n in new)
    assert any(n.startswith("clip.prompts_generator.") for n in new)
    assert all(not n.startswith("clip.vision_model.embeddings") for n in new)
    assert len(groups["base"]["params"]) + len(groups["new_modules"]["params"]) == len(trained)

    unfrozen = build_video_text_model("xclip", str(backbone), freeze_text=False)
    assert all(p.requires_grad for p in unfrozen.clip.text_model.parameters())


def test_save_and_load_roundtrip(backbone: Path, tmp_path: Path) -> None:
    model = build_video_text_model("xclip", str(backbone), new_module_lr_multiplier=5.0).eval()
    _perturb_new_modules(model)
    px = _clips()
    with torch.no_grad():
        before = model(px, CLASSES)
    model.save(tmp_path / "ckpt")
    rebuilt = load_video_text_model(tmp_path / "ckpt").eval()
    assert isinstance(rebuilt, XCLIP) and rebuilt.new_module_lr_multiplier == 5.0
    with torch.no_grad():
        assert torch.allclose(rebuilt(px, CLASSES), before, atol=1e-6)
    other = build_video_text_model("vificlip", str(save_tiny_clip(tmp_path / "clip")))
    with pytest.raises(ValueError, match="xclip"):
        other.load(tmp_path / "ckpt")


def _check_built_on(clip: CLIPModel, xclip: XCLIPModel, px: torch.Tensor, tokenizer, min_cos: float) -> None:
    """X-CLIP on ``clip``: copied tensors equal, CLIP's text features, video close to CLIP's."""
    x_state = xclip.state_dict()
    for k, v in clip.state_dict().items():
        assert torch.equal(x_state[k.replace("pre_layrnorm", "pre_layernorm")], v), k
    assert torch.equal(xclip.prompts_visual_projection, clip.visual_projection.weight.t())
    b, t = px.shape[:2]
    enc = tokenizer(CLASSES, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(xclip.get_text_features(**enc).pooler_output,
                              clip.get_text_features(**enc).pooler_output, atol=1e-5)
        video = xclip.get_video_features(pixel_values=px).pooler_output
        frames = clip.get_image_features(pixel_values=px.flatten(0, 1)).pooler_output.view(b, t, -1).mean(1)
        cos = F.cosine_similarity(video, frames, dim=-1)
        assert float(cos.min()) > min_cos, cos


def test_xclip_on_a_clip_keeps_its_towers(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    clip_dir = save_tiny_clip(tmp_path / "clip")
    clip = CLIPModel.from_pretrained(str(clip_dir)).eval()
    xclip = xclip_from_clip(clip, num_frames=3, seed=1)
    assert xclip.config.vision_config.num_frames == 3
    _check_built_on(clip, xclip, _clips(t=3), AutoTokenizer.from_pretrained(str(clip_dir)), min_cos=0.9)
    # the new modules are seeded
    again = xclip_from_clip(clip, num_frames=3, seed=1)
    assert torch.equal(again.mit.position_embedding, xclip.mit.position_embedding)


def test_world_xclip_builds_loads_and_runs(tmp_path: Path) -> None:
    from ray_pipeline.training.data import Preprocess, clip_tensor
    from ray_pipeline.world.clip import ensure_world_clip
    from ray_pipeline.world.render import real_scene, render_clip
    from ray_pipeline.world.xclip import ensure_world_xclip

    path = ensure_world_xclip(tmp_path, num_frames=8)
    assert ensure_world_xclip(tmp_path, num_frames=8) == path  # cached
    assert not any(p.name.startswith(".tmp-") for p in path.parent.iterdir())
    model = build_video_text_model("xclip", str(path)).eval()
    pre = Preprocess.from_pretrained(str(path))
    assert pre.image_size == 64
    frames = [render_clip(real_scene(a, np.random.default_rng(i)), i, 8, 64)
              for i, a in enumerate(["walk", "punch", "fall floor"])]
    px = torch.stack([clip_tensor(f, pre, train=False) for f in frames])
    with torch.no_grad():
        logits = model(px, ["walking", "punching", "falling to the floor"])
    assert logits.shape == (3, 3) and torch.isfinite(logits).all()
    world_clip_dir = ensure_world_clip(tmp_path)
    clip = CLIPModel.from_pretrained(str(world_clip_dir)).eval()
    # Close to CLIP's frame mean at the start (random new modules would give ~0): 0.95-1.00 on the
    # shipped world CLIP of 2,000 steps (0.98+ on the earlier 600-step one).
    _check_built_on(clip, model.clip, px, model.tokenizer, min_cos=0.9)
