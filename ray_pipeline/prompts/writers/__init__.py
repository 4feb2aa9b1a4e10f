"""Prompt writers: the interface (:mod:`.base`), the offline ``template`` writer and the ``openai``
writer (GPT-4o or any OpenAI-compatible server). Importing the package registers both."""

from ray_pipeline.prompts.writers import openai_writer, template  # noqa: F401  (registers the writers)
from ray_pipeline.prompts.writers.base import (
    JobResult,
    PromptWriter,
    WriterError,
    WriterStats,
    get_writer_class,
    register_writer,
)

__all__ = ["JobResult", "PromptWriter", "WriterError", "WriterStats", "get_writer_class", "register_writer"]
