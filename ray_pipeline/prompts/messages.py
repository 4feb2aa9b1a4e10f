"""What the LLM is asked (system and user messages), the JSON shape it must answer in, and the
validation of its answers. docs/prompts.md shows these messages; a test keeps the two in sync.

The environment and character requests start with the paper's own wording (section 4.1); the rest
(output shape, the location-phrase and noun-phrase forms that let a template compose them, the
composition request) is ours, as the paper's exact prompts are not public.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

# Bump when any message text or schema changes: it is part of the writer identity, so prompts
# written with the old messages are never mixed with new ones.
PROMPTS_VERSION = "m1"

Kind = Literal["action", "environment", "character", "compose"]

SYSTEM_MESSAGE = (
    "You write text for a text-to-video model that generates training clips for human action "
    "recognition. Be concrete and visual: describe only what a camera would see. Use plain English, "
    "no names of real people or brands. Answer with a single JSON object in exactly the requested "
    "shape and nothing else."
)

ACTION_MESSAGE = (
    'Action class: "{c}".\n'
    "Describe, in one or two sentences, what it visually looks like when a person performs this "
    "action: the body movements, the objects involved and how they move over time, in the present "
    "tense. Do not describe the person's appearance or the location.\n"
    'Answer as JSON: {{"descriptions": [...]}} with exactly {n} description(s).'
)

ENVIRONMENT_MESSAGE = (
    "Given a phrase describing an action, generate {n} different scene appearance descriptions that "
    "are most suitable for performing the action.\n"
    'Action: "{c}".\n'
    "Write each as one location phrase that starts with a preposition, for example \"in a sunlit "
    'bathroom with white tiles and a large mirror", describing the place, its lighting and its '
    "background. Make the {n} scenes clearly different from each other. Do not mention people.\n"
    'Answer as JSON: {{"environments": [...]}} with exactly {n} strings.'
)

CHARACTER_MESSAGE = (
    "Given a phrase describing an action, generate {n} different descriptions of the physical "
    "features of a person who is suitable for that action.\n"
    'Action: "{c}".\n'
    "Write each as one noun phrase about visible appearance only, for example \"a tall elderly man "
    'with a grey beard, wearing a blue cardigan": age group, gender, build, skin tone, hair and '
    "clothing. Vary them widely; no two alike. Do not mention the action or the place.\n"
    'Answer as JSON: {{"characters": [...]}} with exactly {n} strings.'
)

COMPOSE_MESSAGE = (
    'Write one prompt for a text-to-video model showing {who} performing the action "{c}"{where}.\n'
    "Action details: {action}\n"
    "Requirements: 60 to 120 words; present tense; one continuous shot with no scene cuts and no "
    "on-screen text; the action stays clearly visible for the whole clip; mention the camera framing "
    "and the lighting.{keep}\n"
    'Answer as JSON: {{"prompt": "..."}}.'
)

# JSON key of each request kind's answer.
ANSWER_KEY: dict[Kind, str] = {
    "action": "descriptions",
    "environment": "environments",
    "character": "characters",
    "compose": "prompt",
}


@dataclass(frozen=True)
class Job:
    """One question to a writer about one class.

    ``kind`` action/environment/character asks for ``n`` descriptions; compose asks for the final
    prompt from (action, environment, character), any of the last two possibly empty.
    """

    kind: Kind
    class_name: str
    n: int = 1
    action: str = ""
    environment: str = ""
    character: str = ""

    def describe(self) -> str:
        what = {"action": "action description", "environment": "environments",
                "character": "characters", "compose": "prompt composition"}[self.kind]
        return f"class {self.class_name!r}: {what}"


class AnswerError(ValueError):
    """An LLM answer that does not have the required shape."""


def user_message(job: Job) -> str:
    """The user message of a job (the system message is :data:`SYSTEM_MESSAGE`)."""
    c = job.class_name
    if job.kind == "action":
        return ACTION_MESSAGE.format(c=c, n=job.n)
    if job.kind == "environment":
        return ENVIRONMENT_MESSAGE.format(c=c, n=job.n)
    if job.kind == "character":
        return CHARACTER_MESSAGE.format(c=c, n=job.n)
    keep = []
    if job.character:
        keep.append("describe the person exactly as given")
    if job.environment:
        keep.append("keep the setting exactly as given")
    return COMPOSE_MESSAGE.format(
        who=job.character.strip().rstrip(".") or "a person",
        c=c,
        where=f", {job.environment.strip().rstrip('.')}" if job.environment else "",
        action=job.action.strip(),
        keep=(" " + "; ".join(keep).capitalize() + ".") if keep else "",
    )


def messages(job: Job) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": user_message(job)}]


def json_schema(job: Job) -> dict[str, Any]:
    """The strict JSON schema of a job's answer (lists have exactly ``n`` items)."""
    key = ANSWER_KEY[job.kind]
    if job.kind == "compose":
        prop: dict[str, Any] = {"type": "string"}
    else:
        prop = {"type": "array", "items": {"type": "string"}, "minItems": job.n, "maxItems": job.n}
    return {"type": "object", "properties": {key: prop}, "required": [key], "additionalProperties": False}


def response_format(job: Job, mode: str) -> dict[str, Any] | None:
    """``response_format`` for the request: strict json_schema, plain json_object, or none."""
    if mode == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": f"{job.kind}_answer", "strict": True, "schema": json_schema(job)}}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def parse_answer(job: Job, content: str | None) -> list[str]:
    """Validate an answer: JSON object, the right key, exactly ``n`` distinct non-empty strings.

    Raises:
        AnswerError: saying what was wrong (malformed JSON, wrong count, duplicates, ...).
    """
    if not content or not content.strip():
        raise AnswerError("empty answer")
    m = _FENCE.match(content)  # servers without structured outputs like to fence their JSON
    text = m.group(1) if m else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"malformed JSON ({exc.msg} at char {exc.pos})") from None
    key = ANSWER_KEY[job.kind]
    if not isinstance(data, dict) or key not in data:
        raise AnswerError(f"expected a JSON object with key {key!r}")
    value = data[key]
    if job.kind == "compose":
        if not isinstance(value, str) or not value.strip():
            raise AnswerError("'prompt' must be a non-empty string")
        return [" ".join(value.split())]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AnswerError(f"{key!r} must be a list of strings")
    items = [" ".join(v.split()) for v in value]
    if any(not v for v in items):
        raise AnswerError(f"{key!r} holds an empty description")
    if len(items) != job.n:
        raise AnswerError(f"expected exactly {job.n} {key}, got {len(items)}")
    normed = [_norm(v) for v in items]
    if len(set(normed)) != len(normed):
        dupes = sorted({v for v, k in zip(items, normed) if normed.count(k) > 1})
        raise AnswerError(f"{key!r} are not distinct: {dupes[:3]}")
    return items
