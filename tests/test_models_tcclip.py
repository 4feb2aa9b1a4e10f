"""TC-CLIP on tiny random CLIPs built offline: shapes, reductions to frame-wise CLIP, loop
references for the vectorised TC and VP paths, gradients, parameter groups and checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from ray_pipeline.models import TCCLIP, build_video_text_model, load_video_text_model
from ray_pipeline.models.base import clean_class_name
from ray_pipeline.models.tome import merge_tokens
from ray_pipeline.tiny import save_tiny_clip, tiny_clip_config, tiny_tokenizer

CLASSES = ["brush_hair", "ride bike", "ApplyEyeMakeup", "x"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 vision layers, so the local/global bias exists in two layers (2..L)
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"), vision_layers=3)


def _build(backbone: Path, **options: object) -> TCCLIP:
    torch.manual_seed(0)
    model = build_video_text_model("tcclip", str(backbone), **options)
    assert isinstance(model, TCCLIP)
    return model


def _clips(b: int = 2, t: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_video(clip: CLIPModel, pixel_values: torch.Tensor) -> torch.Tensor:
    b, t = pixel_values.shape[:2]
    frames = clip.get_image_features(pixel_values=pixel_values.flatten(0, 1)).pooler_output
    return F.normalize(frames.view(b, t, -1).mean(dim=1), dim=-1)


def _hf_text(model: TCCLIP, names: list[str]) -> torch.Tensor:
    prompts = [f"a photo of a {clean_class_name(n)}." for n in names]
    enc = model.tokenizer(prompts, padding=True, return_tensors="pt")
    feats = model.clip.get_text_features(**enc).pooler_output
    return F.normalize(feats, dim=-1)


# ----------------------------------------------------------------------------------------------
# Loop references, written independently of the vectorised code (one video, one frame at a time)
# ----------------------------------------------------------------------------------------------


def _reference_video(model: TCCLIP, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    clip, vm = model.clip, model.clip.vision_model
    layers = vm.encoder.layers
    embs, ctxs = [], []
    for video in pixel_values:
        xs = [vm.pre_layrnorm(vm.embeddings(frame[None]))[0] for frame in video]
        n, dim = xs[0].shape
        ctx = None
        for i, layer in enumerate(layers):
            attn = layer.self_attn
            heads, hd = attn.num_heads, attn.head_dim
            after_attn, cls_rows = [], []
            for x in xs:
                h = layer.layer_norm1(x)
                kv_in = h if ctx is None else torch.cat([h, layer.layer_norm1(ctx)])
                q = attn.q_proj(h).view(n, heads, hd).transpose(0, 1)
                k = attn.k_proj(kv_in).view(-1, heads, hd).transpose(0, 1)
                v = attn.v_proj(kv_in).view(-1, heads, hd).transpose(0, 1)
                s = q @ k.transpose(1, 2) * hd**-0.5  # [H, N, S]
                if ctx is not None and model.local_global_bias is not None:
                    bias = model.local_global_bias[i - 1]
                    local, glob = bias[:, 0, None, None], bias[:, 1, None, None]
                    s = torch.cat([s[..., :n] + local, s[..., n:] + glob], dim=-1)
                p = s.softmax(dim=-1)
                after_attn.append(x + attn.out_proj((p @ v).transpose(0, 1).reshape(n, dim)))
                cls_rows.append(p[:, 0, 1:n].mean(dim=0))
            if i < len(layers) - 1 or model.video_prompting:
                seeds = [
                    x[1:][torch.argsort(row, descending=True)[: model.seeds_per_frame]]
                    for x, row in zip(after_attn, cls_rows)
                ]
                merged, _ = merge_tokens(torch.cat(seeds)[None], model.context_tokens, model.merge_r)
                ctx = merged[0] + layer.mlp(layer.layer_norm2(merged[0]))
            xs = [x + layer.mlp(layer.layer_norm2(x)) for x in after_attn]
        cls = torch.stack([clip.visual_projection(vm.post_layernorm(x[0])) for x in xs])
        embs.append(F.normalize(cls.mean(dim=0), dim=-1))
        ctxs.append(clip.visual_projection(vm.post_layernorm(ctx)))
    return torch.stack(embs), torch.stack(ctxs)


def _reference_text(model: TCCLIP, names: list[str], context: torch.Tensor) -> torch.Tensor:
    """The original's per-video text pass, with HF's own encoder layers and a causal mask."""
    tm = model.clip.text_model
    batch = model.prompts(names)
    ids, eot = batch.input_ids, batch.eot_index
    num, seq = ids.shape
    n_ctx = model.n_ctx
    emb = tm.embeddings.token_embedding(ids).clone()
    emb[:, 1 : 1 + n_ctx] = model.prompt_learner.ctx
    causal = torch.full((seq, seq), float("-inf")).triu(1)[None, None]
    h = tm.embeddings(inputs_embeds=emb)
    for layer in tm.encoder.layers[:-1]:
        h = layer(h, causal)
    out = []
    for vid_ctx in context:
        new = model.prompt_generation(h[:, 1 : 1 + n_ctx], vid_ctx[None].expand(num, -1, -1))
        hb = tm.encoder.layers[-1](torch.cat([h[:, :1], new, h[:, 1 + n_ctx :]], dim=1), causal)
        pooled = tm.final_layer_norm(hb)[torch.arange(num), eot]
        out.append(F.normalize(model.clip.text_projection(pooled), dim=-1))
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------
# Token counts and prompts
# ----------------------------------------------------------------------------------------------


def test_token_counts_derive_from_the_vision_config() -> None:
    tok = tiny_tokenizer()

    def counts(image_size: int, patch: int, **options: object) -> tuple[int, int, int, int]:
        cfg = tiny_clip_config(
            len(tok), tok.bos_token_id, tok.eos_token_id,
            image_size=image_size, patch_size=patch, vision_layers=1,
        )
        m = TCCLIP(CLIPModel(cfg), tok, **options)
        return m.num_patches, m.seeds_per_frame, m.context_tokens, m.merge_r

    assert counts(224, 16) == (196, 58, 96, 100)  # TC-CLIP's ViT-B/16 values
    assert counts(64, 8) == (64, 19, 31, 33)  # the quickstart's scale
    assert counts(64, 8, context_tokens=20, merge_r=10, seed_ratio=0.5) == (64, 32, 20, 10)


def test_prompts_tokenised_with_context_words_and_eot(backbone: Path) -> None:
    model = _build(backbone)
    assert model.n_ctx == 4  # "a photo of a"
    batch = model.prompts(CLASSES + ["a very long class name " * 10])
    assert batch.input_ids.shape[1] == 30  # TC-CLIP's context length caps the long prompt
    ids = batch.input_ids
    assert (ids[:, 1:5] == torch.tensor(model._ctx_ids)).all()
    assert (ids[torch.arange(len(ids)), batch.eot_index] == model.tokenizer.eos_token_id).all()
    assert int(batch.eot_index[-1]) == 29
    assert clean_class_name("brush_hair") == "brush hair"
    assert clean_class_name("ApplyEyeMakeup") == "Apply Eye Makeup"
    assert clean_class_name("PlayingDaf") == "Playing Daf" and clean_class_name("YoYo") == "Yo Yo"
    token_embedding = model.clip.text_model.embeddings.token_embedding.weight
    assert torch.allclose(model.prompt_learner.ctx, token_embedding[ids[0, 1:5]])


# ----------------------------------------------------------------------------------------------
# Shapes and reductions to frame-wise CLIP
# ----------------------------------------------------------------------------------------------


def test_shapes(backbone: Path) -> None:
    model = _build(backbone)
    px = _clips(b=2, t=3)
    video = model.encode_video(px)
    assert video.embedding.shape == (2, 32)
    assert torch.allclose(video.embedding.norm(dim=-1), torch.ones(2))
    # 3 frames * 4 seeds = 12 seeds merged down to k = 8
    assert video.context is not None and video.context.shape == (2, 8, 32)
    text = model.encode_text(CLASSES, video)
    assert text.shape == (2, 4, 32)
    logits = model(px, CLASSES)
    assert logits.shape == (2, 4)
    expected = model.clip.logit_scale.exp() * torch.einsum("bd,bkd->bk", video.embedding, text)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_tc_and_vp_off_equals_frame_wise_clip(backbone: Path) -> None:
    model = _build(backbone, temporal_context=False, video_prompting=False)
    px = _clips()
    with torch.no_grad():
        video = model.encode_video(px)
        assert video.context is None
        assert torch.allclose(video.embedding, _hf_video(model.clip, px), atol=1e-5)
        # ctx vectors still at their "a photo of a" initialisation: exactly CLIP's text features
        text = model.encode_text(CLASSES)
        assert text.shape == (4, 32)
        assert torch.allclose(text, _hf_text(model, CLASSES), atol=1e-5)


@pytest.mark.parametrize("bias_mode", ["mask", "augment"])
def test_context_ignored_through_bias_equals_frame_wise_clip(backbone: Path, bias_mode: str) -> None:
    model = _build(backbone, bias_mode=bias_mode)
    px = _clips()
    with torch.no_grad():
        hf = _hf_video(model.clip, px)
        # with its default (small) bias the context changes the frames ...
        assert not torch.allclose(model.encode_video(px).embedding, hf, atol=1e-4)
        # ... and with a hugely negative global bias the frames ignore it: frame-wise CLIP
        model.local_global_bias[:, :, 1] = -1e4
        assert torch.allclose(model.encode_video(px).embedding, hf, atol=1e-5)


@pytest.mark.parametrize("bias_mode", ["mask", "augment"])
@pytest.mark.parametrize("frames", [1, 4])
def test_vision_matches_loop_reference(backbone: Path, bias_mode: str, frames: int) -> None:
    model = _build(backbone, bias_mode=bias_mode, context_tokens=5, merge_r=3)
    with torch.no_grad():
        model.local_global_bias.normal_(std=0.5)  # make the bias matter
        px = _clips(b=2, t=frames, seed=3)
        video = model.encode_video(px)
        emb, ctx = _reference_video(model, px)
    assert torch.allclose(video.embedding, emb, atol=1e-5)
    assert video.context.shape == ctx.shape == (2, min(5, 4 * frames), 32)
    assert torch.allclose(video.context, ctx, atol=1e-5)


def test_text_side_optimisation_matches_per_video_text_pass(backbone: Path) -> None:
    model = _build(backbone)
    with torch.no_grad():
        model.prompt_learner.ctx.normal_(std=0.5)  # away from the init, so ctx must be placed right
        video = model.encode_video(_clips(b=3, t=2))
        fast = model.encode_text(CLASSES, video)
        slow = _reference_text(model, CLASSES, video.context)
    assert fast.shape == slow.shape == (3, 4, 32)
    assert torch.allclose(fast, slow, atol=1e-5)
    # and the text really depends on the video
    assert not torch.allclose(fast[0], fast[1], atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------


def _grad_norm(model: TCCLIP, name: str) -> float:
    p = dict(model.named_parameters())[name]
    return 0.0 if p.grad is None else float(p.grad.norm())


def test_gradients_reach_the_intended_parameters(backbone: Path) -> None:
    model = _build(backbone)
    logits = model(_clips(), CLASSES)
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for name in [
        "prompt_learner.ctx",
        "local_global_bias",
        "clip.logit_scale",
        "clip.visual_projection.weight",
        "clip.text_projection.weight",
        "clip.vision_model.embeddings.patch_embedding.weight",
        "clip.vision_model.encoder.layers.0.self_attn.q_proj.weight",
        "clip.vision_model.encoder.layers.2.mlp.fc1.weight",
        "clip.text_model.encoder.layers.0.self_attn.k_proj.weight",
        "clip.text_model.encoder.layers.1.mlp.fc2.weight",
    ]:
        assert _grad_norm(model, name) > 0, name
    for name, p in model.prompt_generation.named_parameters():
        assert p.grad is not None and float(p.grad.norm()) > 0, f"prompt_generation.{name}"
    # both bias entries (layers 2 and 3), both heads' local and global parts
    assert (model.local_global_bias.grad.abs() > 0).all()
    # every parameter takes part, so DDP needs no find_unused_parameters
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("stop_grad", [True, False])
def test_stop_gradient_between_vp_and_vision(backbone: Path, stop_grad: bool) -> None:
    model = _build(backbone, stop_grad=stop_grad)
    video = model.encode_video(_clips())
    # a loss on the text side only: vision can get gradient only through VP's context input
    model.encode_text(CLASSES, video).square().sum().backward()
    assert _grad_norm(model, "prompt_generation.k_proj.weight") > 0
    vision_grads = [
        float(p.grad.abs().sum())
        for n, p in model.named_parameters()
        if n.startswith(("clip.vision_model.", "clip.visual_projection.")) and p.grad is not None
    ]
    if stop_grad:
        assert sum(vision_grads) == 0.0
    else:
        assert sum(vision_grads) > 0


def test_no_graph_for_detached_last_layer_context(backbone: Path) -> None:
    model = _build(backbone)
    video = model.encode_video(_clips())
    assert video.embedding.requires_grad
    assert not video.context.requires_grad  # built under no-grad: it only feeds the detached VP


def test_param_groups_give_prompt_parameters_10x(backbone: Path) -> None:
    model = _build(backbone)
    groups = model.param_groups(1e-3)
    assert [g["name"] for g in groups] == ["base", "prompt"]
    assert groups[0]["lr"] == 1e-3 and groups[1]["lr"] == pytest.approx(1e-2)
    fast = {id(p) for p in groups[1]["params"]}
    expected = {id(model.prompt_learner.ctx)} | {id(p) for p in model.prompt_generation.parameters()}
    assert fast == expected
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert id(model.local_global_bias) in {id(p) for p in groups[0]["params"]}
    torch.optim.AdamW(groups, betas=(0.9, 0.98), weight_decay=1e-3)  # accepted as is


def test_autocast_bfloat16_runs(backbone: Path) -> None:
    model = _build(backbone)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(_clips(), CLASSES)
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    logits.float().sum().backward()


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def test_save_and_load_roundtrip(backbone: Path, tmp_path: Path) -> None:
    model = _build(backbone, context_tokens=6, merge_r=2)
    with torch.no_grad():
        model.prompt_learner.ctx.add_(0.3)
        model.local_global_bias.add_(0.1)
    px = _clips()
    model.eval()
    with torch.no_grad():
        before = model(px, CLASSES)
    model.save(tmp_path / "ckpt")
    assert not any(p.suffix in {".bin", ".pt", ".pth", ".pkl"} for p in (tmp_path / "ckpt").iterdir())

    rebuilt = load_video_text_model(tmp_path / "ckpt").eval()
    assert isinstance(rebuilt, TCCLIP) and rebuilt.context_tokens == 6 and rebuilt.merge_r == 2
    fresh = _build(backbone, context_tokens=6, merge_r=2).eval()
    fresh.load(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.allclose(rebuilt(px, CLASSES), before, atol=1e-6)
        assert torch.allclose(fresh(px, CLASSES), before, atol=1e-6)

    other = build_video_text_model("vificlip", str(backbone))
    with pytest.raises(ValueError, match="tcclip"):
        other.load(tmp_path / "ckpt")


def test_registry_rejects_unknown_names(backbone: Path) -> None:
    with pytest.raises(ValueError, match="known"):
        build_video_text_model("no_such_model", str(backbone))
    with pytest.raises(ValueError):
        _build(backbone, video_prompting=True, prompt_template="{}")
    with pytest.raises(ValueError, match=">= 1"):
        _build(backbone, context_tokens=0)


def test_nonfinite_free_on_uniform_frames(backbone: Path) -> None:
    # constant frames give tied attention scores and identical seed tokens (zero-norm differences)
    model = _build(backbone)
    logits = model(torch.zeros(2, 4, 3, 32, 32), CLASSES)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_overfits_a_tiny_batch_with_ul_loss(backbone: Path) -> None:
    from ray_pipeline.training.losses import build_loss

    model = _build(backbone)
    opt = torch.optim.AdamW(model.param_groups(1e-3), betas=(0.9, 0.98), weight_decay=1e-3)
    loss_fn = build_loss("ul")
    px, labels, u = _clips(b=4, t=2, seed=5), torch.tensor([0, 1, 2, 3]), torch.tensor([0.0, 0.2, 0.5, 1.0])
    losses = []
    for _ in range(30):
        loss = loss_fn(model(px, CLASSES), labels, u)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert (model(px, CLASSES).argmax(dim=1) == labels).all()
