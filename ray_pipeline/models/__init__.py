"""Video-text models, one per file, behind one interface (``base.VideoTextModel``).

``build_video_text_model("tcclip" | "vificlip", backbone, **options)`` builds one on a CLIP hub
id or local directory; ``load_video_text_model(dir)`` rebuilds one from a saved checkpoint.
"""

from ray_pipeline.models import tcclip, vificlip  # noqa: F401  (registers the models)
from ray_pipeline.models.base import (
    DEFAULT_BACKBONE,
    VideoFeatures,
    VideoTextModel,
    build_video_text_model,
    load_video_text_model,
    model_class,
)
from ray_pipeline.models.tcclip import TCCLIP
from ray_pipeline.models.vificlip import ViFiCLIP

__all__ = [
    "DEFAULT_BACKBONE",
    "TCCLIP",
    "VideoFeatures",
    "VideoTextModel",
    "ViFiCLIP",
    "build_video_text_model",
    "load_video_text_model",
    "model_class",
]
