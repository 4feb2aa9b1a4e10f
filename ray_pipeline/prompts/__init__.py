"""Class lists, prompt writers (``template``, ``openai``), the LLM response cache and composition.

The ``prompts`` stage (:mod:`ray_pipeline.stages.prompts`) turns a class list into one video
prompt per clip to generate; see docs/prompts.md.
"""

from ray_pipeline.prompts.classlists import ClassEntry, get_class_entries, get_class_names

__all__ = ["ClassEntry", "get_class_entries", "get_class_names"]
