"""The world's prompt parser: phrasings it must understand and words it must ignore."""

from __future__ import annotations

import numpy as np
import pytest

from ray_pipeline.world.parse import parse_prompt, resolve_character, stem
from ray_pipeline.world.vocabulary import (
    ACTIONS,
    CHARACTER_BY_NAME,
    CHARACTERS,
    ENVIRONMENTS,
    character_descriptions,
    environment_descriptions,
)

UNDERSTAND = [
    # (prompt, action, environment, lighting)
    ("A man kicks a red soccer ball across the field at sunset.", "kick ball", "park", "sunset"),
    ("Kicking high in the dojo, cinematic 4k, ultra detailed", "kick", "dojo", None),
    ("She brushes her long blonde hair in front of the bathroom mirror.", "brush hair", "bathroom", None),
    ("A woman in a green shirt waves hello on a busy street at night.", "wave", "city street", "night"),
    ("A man standing in the kitchen is drinking from a mug.", "drink", "kitchen", None),
    ("An elderly woman sits down on a wooden chair in her bedroom", "sit", "bedroom", None),
    ("a basketball player dribbling on a basketball court with a hoop", "dribble", "basketball court", None),
    ("a person swimming laps in the pool", "swim", "swimming pool", None),
    ("A swimmer is running along the beach", "run", "beach", None),
    ("Two fencers duel with swords on a stage", "sword", "stage", None),
    ("a monk practises sword forms with a katana in the snow", "sword exercise", "snowfield", None),
    ("An old man gets up from his chair in the office.", "stand", "office", None),
    ("A teenager does push-ups on the gym floor", "push up", "gym", None),
    ("A girl is hula hooping on the sandy beach", "hula hoop", "beach", None),
    ("a chef eating soup with a spoon in a kitchen", "eat", "kitchen", None),
    ("a cyclist riding a bicycle through the desert", "ride bike", "desert", None),
    ("an archer shoots an arrow in the woods", "shoot bow", "forest", None),
    ("a kid brushing his teeth", "brush teeth", None, None),
]

IGNORE = [
    "Photorealistic, masterpiece, trending on artstation, octane render, 8k",
    "A dog barks at the mailman",
    "The quick brown fox jumped over the lazy dog",  # "jumped" is an action word: see below
    "a bowl of fruit on a table",
]


@pytest.mark.parametrize("prompt,action,env,light", UNDERSTAND)
def test_understands(prompt, action, env, light):
    p = parse_prompt(prompt)
    assert (p.action, p.environment, p.lighting) == (action, env, light), p.matches


def test_ignores_unknown_words():
    p = parse_prompt(IGNORE[0])
    assert (p.action, p.environment, p.character, p.lighting, p.attributes) == (None, None, None, None, {})
    assert parse_prompt(IGNORE[1]).action is None
    # Known words are found wherever they are; the rest of the sentence is ignored.
    assert parse_prompt(IGNORE[2]).action == "jump"
    fruit = parse_prompt(IGNORE[3])
    assert fruit.environment is None and fruit.character is None
    # A colour alone describes nobody; "tall trees" is not a tall person.
    p = parse_prompt("a red car next to tall trees")
    assert "size" not in p.attributes and "top" not in p.attributes


def test_character_attributes():
    p = parse_prompt("a tall skinny man with short red hair wearing a purple hoodie and grey shorts "
                     "does jumping jacks")
    fallback = CHARACTER_BY_NAME["businessman in a black suit"].look
    ch = resolve_character(p, fallback)
    assert p.action == "jumping jack"
    assert (ch.top, ch.bottom, ch.bottom_kind, ch.hair, ch.hair_style, ch.build) == (
        "purple", "grey", "shorts", "red", "short", "thin")
    assert ch.height > 1.05
    boy = resolve_character(parse_prompt("a dark-skinned boy in a yellow cap rides a bicycle"), fallback)
    assert boy.child and boy.skin == "dark" and boy.accessory == "cap" and boy.accessory_color == "yellow"
    woman = resolve_character(parse_prompt("a woman waves"), fallback)  # the stereotype, made a woman
    assert woman.hair_style == "long" and woman.top == fallback.top


def test_stemming_agrees_across_inflections():
    for forms in (["dance", "dancing", "dances", "danced"], ["run", "running", "runs", "ran"],
                  ["swim", "swimming", "swims", "swam"], ["brush", "brushes", "brushing", "brushed"],
                  ["lunge", "lunges", "lunging"], ["clap", "clapping", "claps", "clapped"]):
        assert len({stem(f) for f in forms}) == 1, forms
    assert stem("dress") == "dress" and stem("glasses") == "glass" and stem("ball") == "ball"


def test_descriptions_read_back():
    """The texts the world offers prompt writers parse back to what they describe."""
    fallback = CHARACTERS[0].look
    for c in CHARACTERS:
        p = parse_prompt(c.description)
        assert p.character == c.name and resolve_character(p, fallback) == c.look, c.description
    for e in ENVIRONMENTS:
        assert parse_prompt(e.description).environment == e.name
    assert len(environment_descriptions("swim", 4)) == 4 and len(character_descriptions(16)) == 16


def test_ie_style_prompts_round_trip():
    """Composed prompts (character, action, environment, description) parse to all three."""
    rng = np.random.default_rng(0)
    fallback = CHARACTERS[0].look
    for _ in range(300):
        a = ACTIONS[rng.integers(len(ACTIONS))]
        c = CHARACTERS[rng.integers(len(CHARACTERS))]
        e = ENVIRONMENTS[rng.integers(len(ENVIRONMENTS))]
        text = f"{c.description.capitalize()} is {a.gerund} {e.description}. {a.description}."
        p = parse_prompt(text)
        assert (p.action, p.environment) == (a.name, e.name), text
        assert resolve_character(p, fallback) == c.look, text
    for a in ACTIONS:  # Basic prompts: the class name only
        assert parse_prompt(f"a person is {a.gerund}.").action == a.name
        assert parse_prompt(a.name).action == a.name
