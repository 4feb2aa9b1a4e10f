"""ray_pipeline: generated video data for data-limited action understanding, on Ray."""

__version__ = "0.1.0"
