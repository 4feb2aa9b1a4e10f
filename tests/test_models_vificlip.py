"""ViFi-CLIP on a tiny random CLIP built offline: HF equivalence, gradients, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ray_pipeline.models import ViFiCLIP, build_video_text_model, load_video_text_model
from ray_pipeline.tiny import save_tiny_clip

CLASSES = ["brush_hair", "ride bike", "ApplyEyeMakeup"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def _build(backbone: Path) -> ViFiCLIP:
    model = build_video_text_model("vificlip", str(backbone))
    assert isinstance(model, ViFiCLIP)
    return model


def _clips(b: int = 2, t: int = 3) -> torch.Tensor:
    return torch.randn(b, t, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_matches_hf_frame_mean_and_text_features(backbone: Path) -> None:
    model = _build(backbone)
    px = _clips()
    with torch.no_grad():
        video = model.encode_video(px)
        frames = model.clip.get_image_features(pixel_values=px.flatten(0, 1)).pooler_output
        assert torch.allclose(video.embedding, F.normalize(frames.view(2, 3, -1).mean(1), dim=-1), atol=1e-6)
        assert video.context is None
        text = model.encode_text(CLASSES)
        enc = model.tokenizer(
            ["a photo of a brush hair.", "a photo of a ride bike.", "a photo of a Apply Eye Makeup."],
            padding=True,
            return_tensors="pt",
        )
        hf = F.normalize(model.clip.get_text_features(**enc).pooler_output, dim=-1)
        assert torch.allclose(text, hf, atol=1e-6)
        logits = model(px, CLASSES)
    assert logits.shape == (2, 3)
    assert torch.allclose(logits, model.clip.logit_scale.exp() * video.embedding @ text.t(), atol=1e-5)


def test_full_fine_tuning_reaches_every_parameter(backbone: Path) -> None:
    model = _build(backbone)
    F.cross_entropy(model(_clips(), CLASSES), torch.tensor([0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0]
    # only token-embedding rows of unused words get zero gradient, never whole tensors
    assert missing == []
    groups = model.param_groups(2e-6)
    assert len(groups) == 1 and groups[0]["lr"] == 2e-6
    assert len(groups[0]["params"]) == len(list(model.parameters()))


def test_save_and_load_roundtrip(backbone: Path, tmp_path: Path) -> None:
    model = _build(backbone)
    with torch.no_grad():
        model.clip.logit_scale.fill_(3.0)
        before = model(_clips(), CLASSES)
    model.save(tmp_path)
    rebuilt = load_video_text_model(tmp_path)
    assert isinstance(rebuilt, ViFiCLIP)
    with torch.no_grad():
        assert torch.allclose(rebuilt(_clips(), CLASSES), before, atol=1e-6)
