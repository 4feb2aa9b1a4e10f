"""Text-to-video backends; importing this package registers them."""

from ray_pipeline.generators import cogvideox  # noqa: F401
