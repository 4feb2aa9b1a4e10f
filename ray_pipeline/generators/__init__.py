"""Text-to-video backends; importing this package registers them (see base.py)."""

from ray_pipeline.generators import cogvideox, ltx, procedural, wan  # noqa: F401
