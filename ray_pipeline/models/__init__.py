"""Video-text models, one per file, behind one interface (``base.VideoTextModel``).

``build_video_text_model("tcclip" | "vificlip" | "xclip", backbone, **options)`` builds one on a
hub id or local directory (a CLIP's; an X-CLIP's for ``xclip``); ``load_video_text_model(dir)``
rebuilds one from a saved checkpoint.
"""

from ray_pipeline.models import tcclip, vificlip, xclip  # noqa: F401  (registers the models)
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
from ray_pipeline.models.xclip import XCLIP

__all__ = [
    "DEFAULT_BACKBONE",
    "TCCLIP",
    "XCLIP",
    "ViFiCLIP",
    "VideoFeatures",
    "VideoTextModel",
    "build_video_text_model",
    "load_video_text_model",
    "model_class",
]
