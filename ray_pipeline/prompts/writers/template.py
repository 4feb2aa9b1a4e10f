"""The offline, deterministic ``template`` writer: answers from the built-in lexicon, or from the
procedural world's vocabulary for the world's classes."""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from ray_pipeline.prompts import lexicon
from ray_pipeline.prompts.messages import Job
from ray_pipeline.prompts.text import compose_template, verb_phrase
from ray_pipeline.prompts.writers.base import JobResult, PromptWriter, WriterStats, register_writer

# Bump when the lexicon or the template writer's choices change (it is in the writer identity).
TEMPLATE_VERSION = "t1"


def _rng(*parts: str) -> random.Random:
    """A generator seeded by text, identical on every machine and Python (no hash randomisation)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z]+", name.lower())


def match_scenes(class_name: str) -> list[lexicon.Scene]:
    """Scenes whose keywords the class name contains, best first (most keyword letters matched)."""
    words = _words(class_name)
    text = " ".join(words)
    scored = []
    for order, scene in enumerate(lexicon.SCENES):
        score = 0
        for kw in scene.keywords:
            if " " in kw:
                hit = kw in text
            elif kw.endswith("$"):
                hit = kw[:-1] in words
            else:
                hit = any(w.startswith(kw) for w in words)
            if hit:
                score += len(kw.rstrip("$"))
        if score:
            scored.append((-score, order, scene))
    return [s for _, _, s in sorted(scored, key=lambda t: (t[0], t[1]))] or [lexicon.GENERIC]


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


_LIGHT_VARIANTS = ("at dawn", "at dusk", "at night under artificial light", "on a rainy day",
                   "in soft overcast light", "in strong afternoon sun")


def template_environments(class_name: str, n: int) -> list[str]:
    """``n`` distinct location phrases for a class, from its best scene first."""
    scenes = match_scenes(class_name)
    rng = _rng(TEMPLATE_VERSION, "env", class_name)
    primary = list(scenes[0].environments)
    rng.shuffle(primary)
    pool = primary + [e for s in scenes[1:] + [lexicon.GENERIC] for e in s.environments]
    out = list(dict.fromkeys(pool))[:n]
    i = 0
    while len(out) < n:  # more asked for than the lexicon has: vary the light of the best ones
        base = primary[i % len(primary)]
        variant = f"{base}, {_LIGHT_VARIANTS[(i // len(primary)) % len(_LIGHT_VARIANTS)]}"
        if variant not in out:
            out.append(variant)
        i += 1
        if i > 10 * n + 100:
            raise ValueError(f"class {class_name!r}: cannot make {n} distinct environments")
    return out


def _person(rng: random.Random, scene: lexicon.Scene, age: str, female: bool) -> str:
    noun = lexicon.AGE_NOUNS[age][1 if female else 0]
    hair = rng.choice(lexicon.HAIR_OLD if age == "elderly" else lexicon.HAIR_YOUNG)
    if not female and rng.random() < 0.3 and age != "teenage":
        beard = rng.choice(("short", "full", "trimmed", "grey" if age == "elderly" else "dark"))
        hair = f"{hair} and a {beard} beard"
    builds = [b for b in lexicon.BUILDS if not (b == "petite" and not female)]
    outfits = [o for o in (scene.outfits or lexicon.GENERIC.outfits) if not o.startswith("fm"[female] + ":")]
    outfit = rng.choice(outfits).split(":", 1)[-1].format(color=rng.choice(lexicon.COLORS))
    outfit = re.sub(r"\ba (?=[aeiou])", "an ", outfit)
    return (f"{_article(rng.choice(builds) + ' ' + noun)} with {hair} and {rng.choice(lexicon.SKINS)}, "
            f"wearing {outfit}")


def template_characters(class_name: str, n: int) -> list[str]:
    """``n`` distinct people for a class: alternating gender presentation, ages from its scene."""
    scene = match_scenes(class_name)[0]
    rng = _rng(TEMPLATE_VERSION, "char", class_name)
    out: list[str] = []
    if scene.people:
        people = list(scene.people)
        rng.shuffle(people)
        out = people[:n]
    ages = list(scene.ages)
    rng.shuffle(ages)
    i, tries = 0, 0
    while len(out) < n:
        person = _person(rng, scene if not scene.people else lexicon.GENERIC, ages[i % len(ages)], i % 2 == 1)
        if person not in out:
            out.append(person)
            i += 1
        tries += 1
        if tries > 50 * n + 100:
            raise ValueError(f"class {class_name!r}: cannot make {n} distinct characters")
    return out


_TEMPO = ("", " The pace is slow and deliberate.", " The pace is quick and energetic.",
          " It is repeated several times.", " The movement is large and expressive.",
          " The movement is small and precise.")


def template_action(class_name: str, n: int) -> list[str]:
    """``n`` action descriptions: the best scene's motion sentence (and tempo variants)."""
    motion = match_scenes(class_name)[0].motion
    if n > len(_TEMPO):
        raise ValueError(f"the template writer has at most {len(_TEMPO)} action descriptions per class")
    return [motion + t for t in _TEMPO[:n]]


def _world_action(class_name: str) -> Any | None:
    try:
        from ray_pipeline.world import vocabulary
    except ImportError:
        return None
    return vocabulary.ACTION_BY_NAME.get(class_name)


def world_phrase(class_name: str) -> str | None:
    """The world's own verb phrase for one of its actions ("doing sit ups"), else None."""
    action = _world_action(class_name)
    return action.gerund if action is not None and action.gerund else None


@register_writer("template")
class TemplateWriter(PromptWriter):
    """Offline and deterministic: answers come from the built-in lexicon (or the world's).

    With ``world=True``, classes that are actions of the procedural world get the world's
    descriptions, its environments (typical places first) and its character looks, in words its
    prompt parser understands; other classes use the lexicon.
    """

    name = "template"

    def __init__(self, world: bool = False) -> None:
        self.world = world
        self.stats = WriterStats()

    @classmethod
    def identity_of(cls, world: bool) -> dict[str, Any]:
        ident: dict[str, Any] = {"writer": "template", "version": TEMPLATE_VERSION}
        if world:
            ident["world"] = True
        return ident

    def identity(self) -> dict[str, Any]:
        return self.identity_of(self.world)

    def _world_values(self, job: Job) -> list[str] | None:
        action = _world_action(job.class_name) if self.world else None
        if action is None:
            return None
        from ray_pipeline.world import vocabulary

        if job.kind == "action":
            desc = action.description.strip()
            return [desc[:1].upper() + desc[1:].rstrip(".") + "."] if job.n == 1 else None
        if job.kind == "environment":
            envs = vocabulary.environment_descriptions(job.class_name, job.n)
            if len(envs) < job.n:
                raise ValueError(f"the world has only {len(envs)} environments, {job.n} asked for")
            return envs
        if job.kind == "character":
            looks = vocabulary.character_descriptions(len(vocabulary.CHARACTERS))
            if job.n > len(looks):
                raise ValueError(f"the world has only {len(looks)} character looks, {job.n} asked for")
            # Each class starts at its own look, so the classes do not all share the same 16.
            start = _rng(TEMPLATE_VERSION, "world-char", job.class_name).randrange(len(looks))
            return [looks[(start + i) % len(looks)] for i in range(job.n)]
        return None

    def _values(self, job: Job) -> list[str]:
        world = self._world_values(job)
        if world is not None:
            return world
        if job.kind == "action":
            return template_action(job.class_name, job.n)
        if job.kind == "environment":
            return template_environments(job.class_name, job.n)
        if job.kind == "character":
            return template_characters(job.class_name, job.n)
        phrase = (world_phrase(job.class_name) if self.world else None) or verb_phrase(job.class_name)
        return [compose_template(job.class_name, job.action, job.environment, job.character, phrase=phrase)]

    def answer(self, jobs: list[Job]) -> list[JobResult]:
        out = []
        for job in jobs:
            try:
                out.append(JobResult(job, self._values(job)))
            except ValueError as exc:
                out.append(JobResult(job, None, f"{job.describe()}: {exc}"))
        return out
