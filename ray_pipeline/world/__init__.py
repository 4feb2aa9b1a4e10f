"""The procedural action world: a controlled simulation of the paper's setting (docs/world.md).

- ``vocabulary``: actions, environments, character looks, class lists of the world's datasets;
- ``render``: the articulated-figure renderer (deterministic per seed);
- ``parse``: prompt text -> action, environment, character;
- ``datasets``: the "real" datasets on disk (source and two targets, real-dataset layout);
- ``clip``: the world's small pretrained video-text model (CLIP's role).
"""

# Bump when the renderer or the parser changes what a (scene or prompt, seed) renders; generator
# identities and dataset cache keys include it, so stale clips are never reused.
WORLD_VERSION = 1
