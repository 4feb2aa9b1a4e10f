"""A CLIP model that scores clips against a fixed list of class prompts (the paper's eq. 3).

Per clip: the L2-normalised embeddings of its sampled frames are averaged and re-normalised, then
compared with each class prompt's embedding; the softmax of ``logit_scale * cosine`` gives the
class probabilities and their entropy H (nats) the clip's uncertainty.
"""

from __future__ import annotations

import numpy as np
import torch

from ray_pipeline.models.base import pooled


def load_image_processor(model: str, cache_dir: str | None = None):
    """CLIP's image processor without torchvision: the PIL implementation, the one transformers
    falls back to (with a warning from every actor) when torchvision is absent; same pixels."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil.from_pretrained(model, cache_dir=cache_dir)


class ClipScorer:
    """A CLIP model with its class-prompt text features computed once."""

    def __init__(self, model: str, class_names: list[str], template: str, num_frames: int,
                 device: str = "cpu", dtype: str = "float32", cache_dir: str | None = None) -> None:
        from transformers import AutoTokenizer, CLIPModel

        self.device, self.num_frames, self.class_names = device, num_frames, list(class_names)
        self.model = CLIPModel.from_pretrained(model, dtype=getattr(torch, dtype), cache_dir=cache_dir)
        self.model.to(device).eval()
        self.processor = load_image_processor(model, cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(model, cache_dir=cache_dir)
        prompts = [template.format(c) for c in self.class_names]
        tokens = tokenizer(prompts, padding=True, return_tensors="pt").to(device)
        with torch.inference_mode():
            text = pooled(self.model.get_text_features(**tokens)).float()
        self.text_features = torch.nn.functional.normalize(text, dim=-1)
        self.logit_scale = float(self.model.logit_scale.detach().exp())

    def video_features(self, clips: list[np.ndarray]) -> torch.Tensor:
        """Mean of per-frame normalised embeddings, re-normalised: (B, D)."""
        frames = [f for clip in clips for f in clip]
        pixels = self.processor(images=frames, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self.model.dtype)
        with torch.inference_mode():
            feats = pooled(self.model.get_image_features(pixel_values=pixels)).float()
        feats = torch.nn.functional.normalize(feats, dim=-1)
        lengths = [len(c) for c in clips]
        per_clip = [chunk.mean(0) for chunk in torch.split(feats, lengths)]
        return torch.nn.functional.normalize(torch.stack(per_clip), dim=-1)

    def score(self, clips: list[np.ndarray], intended: list[int]) -> dict[str, list]:
        """Similarities, probabilities, entropy, p(intended class) and the prediction per clip."""
        video = self.video_features(clips)
        similarity = video @ self.text_features.T  # cosine, (B, K)
        probs = torch.softmax(self.logit_scale * similarity, dim=-1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
        predicted = probs.argmax(-1)
        p_intended = probs[torch.arange(len(clips)), torch.as_tensor(intended)]
        return {
            "similarity": similarity.cpu().numpy().astype(np.float32).tolist(),
            "probs": probs.cpu().numpy().astype(np.float32).tolist(),
            "entropy": entropy.cpu().numpy().astype(np.float64).tolist(),
            "p_intended": p_intended.cpu().numpy().astype(np.float64).tolist(),
            "predicted_index": predicted.cpu().numpy().astype(np.int32).tolist(),
        }
