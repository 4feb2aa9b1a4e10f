"""Free-text prompt -> (action, environment, character, lighting) of the procedural world.

The procedural generator reads prompts the way a text-to-video model "reads" them: it recognises
the phrases it knows (class names, synonyms, inflections, scene and people words) and ignores
everything else. Matching works on stemmed words with articles, possessives and colour words
removed, longest phrase first, so "kicking a red ball" is "kick ball" and "brushes her hair" is
"brush hair". When several actions are named, the one named most (counting the first sentence
twice, where prompt writers state the action) wins; generic words such as "standing" count half.

Character appearance is parsed twice: a preset look ("a businessman", "a hiker") and attribute
phrases that override it ("in a green shirt", "with short red hair", "tall", "elderly").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from ray_pipeline.world.vocabulary import (
    ACTIONS,
    CHARACTER_BY_NAME,
    CHARACTERS,
    CHILD_HEIGHT,
    COLOR_SYNONYMS,
    COLORS,
    ENVIRONMENTS,
    LIGHTING_PHRASES,
    Character,
)

STOPWORDS = frozenset("a an the his her their its my your our some this that these those very really".split())

_IRREGULAR = {
    "ran": "run", "threw": "throw", "thrown": "throw", "caught": "catch", "swam": "swim", "rode": "ride",
    "ridden": "ride", "fell": "fall", "fallen": "fall", "sat": "sit", "stood": "stand", "ate": "eat",
    "eaten": "eat", "drank": "drink", "drunk": "drink", "shot": "shoot", "men": "man", "women": "woman",
    "children": "child", "people": "person", "leapt": "leap", "flung": "fling", "clapped": "clap",
    "cacti": "cactus", "stairs": "stair", "got": "get", "rose": "rise", "risen": "rise",
}

_KEEP_DOUBLE = frozenset("lsz")


def stem(word: str) -> str:
    """A small suffix stripper: enough that "dancing", "dances", "danced" and "dance" agree."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    stripped = False
    if len(w) > 4 and w.endswith("ing"):
        w, stripped = w[:-3], True
    elif len(w) > 3 and w.endswith("ed"):
        w, stripped = w[:-2], True
    elif len(w) > 3 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and (w.endswith(("ches", "shes", "sses", "xes", "zes"))):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if stripped and len(w) > 2 and w[-1] == w[-2] and w[-1] not in "aeiou" and w[-1] not in _KEEP_DOUBLE:
        w = w[:-1]  # running -> runn -> run
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


_COLOR_WORDS = frozenset(COLORS) | frozenset(COLOR_SYNONYMS)
_TOKEN = re.compile(r"[a-z0-9]+|[.!?;]")


def tokenize(text: str) -> list[tuple[str, int]]:
    """Lowercased word tokens with the index of the sentence they are in."""
    out, sentence = [], 0
    for tok in _TOKEN.findall(text.lower().replace("'s ", " ").replace("-", " ")):
        if tok in ".!?;":
            sentence += 1
        else:
            out.append((tok, sentence))
    return out


def _key(phrase: str) -> tuple[str, ...]:
    """The matching key of a phrase: stems, stopwords and colour words removed."""
    return tuple(stem(w) for w, _ in tokenize(phrase) if w not in STOPWORDS and w not in _COLOR_WORDS)


@dataclass(frozen=True)
class _Entry:
    category: str  # action | environment | character | lighting
    name: str
    strength: float


@lru_cache(maxsize=1)
def _phrase_index() -> tuple[dict[tuple[str, ...], list[_Entry]], int]:
    index: dict[tuple[str, ...], list[_Entry]] = {}

    def add(phrase: str, entry: _Entry) -> None:
        key = _key(phrase)
        if key and entry not in index.setdefault(key, []):
            index[key].append(entry)

    for a in ACTIONS:
        add(a.name, _Entry("action", a.name, 2.0))
        for p in a.phrases:
            add(p, _Entry("action", a.name, 2.0))
        for p in a.weak:
            add(p, _Entry("action", a.name, 1.0))
    for e in ENVIRONMENTS:
        add(e.name, _Entry("environment", e.name, 1.0))
        for p in e.phrases:
            add(p, _Entry("environment", e.name, 1.0))
    for c in CHARACTERS:
        add(c.name, _Entry("character", c.name, 1.0))
        for p in c.phrases:
            add(p, _Entry("character", c.name, 1.0))
    for light, phrases in LIGHTING_PHRASES.items():
        for p in phrases:
            add(p, _Entry("lighting", light, 1.0))
    # A key that is an action's strong phrase and also a weak one elsewhere keeps the strong one.
    for key, entries in index.items():
        strong = {e.name for e in entries if e.category == "action" and e.strength == 2.0}
        index[key] = [e for e in entries if not (e.category == "action" and e.strength < 2.0 and e.name in strong)]
    return index, max(len(k) for k in index)


# --------------------------------------------------------------------------------------------
# Character attributes
# --------------------------------------------------------------------------------------------

TOPS = frozenset("shirt shirts tshirt tee top jacket hoodie sweater jersey blouse coat vest tank cardigan "
                 "sweatshirt jumper polo blazer tunic".split())
FULL_OUTFITS = frozenset("tracksuit uniform suit camouflage overalls gi outfit jumpsuit robe kimono".split())
BOTTOMS = frozenset("pants trousers jeans leggings tights slacks sweatpants joggers".split())
SHORTS = frozenset({"shorts"})
SKIRTS = frozenset({"skirt"})
DRESSES = frozenset("dress gown sundress".split())
HAIR_WORDS = frozenset("hair haired ponytail braid braids bun curls".split())
HEADWEAR = {"hat": "hat", "cap": "cap", "beanie": "cap", "headband": "headband", "bandana": "headband",
            "helmet": "helmet", "backpack": "backpack", "rucksack": "backpack", "scarf": "scarf"}
SKIN_WORDS = frozenset("skin skinned complexion".split())
PERSON_NOUNS = frozenset("man woman person boy girl child kid guy lady gentleman player athlete teenager teen "
                         "adult figure dancer runner someone student worker soldier chef hiker artist men "
                         "women people children kids guys ladies".split())
MODIFIERS = frozenset("and dark light bright pale deep striped plain colored coloured baggy tight loose long "
                      "short curly straight wavy messy neat old worn faded shiny sleeveless hooded".split())
FEMALE = frozenset("woman women lady girl female she mother grandmother grandma mom daughter sister "
                   "ladies girls businesswoman cowgirl".split())
MALE = frozenset("man men guy boy male he gentleman father grandfather grandpa dad son brother guys boys "
                 "businessman cowboy".split())
CHILD = frozenset("child children kid kids toddler boy girl schoolboy schoolgirl".split())
TEEN = frozenset("teenager teen teenage adolescent youth".split())
ELDERLY = frozenset("old elderly senior aged grandmother grandfather grandma grandpa retiree pensioner".split())
TALL = frozenset("tall towering lanky".split())
SMALL = frozenset("short small little petite tiny".split())
THIN = frozenset("thin slim skinny slender lean wiry".split())
HEAVY = frozenset("heavy heavyset stocky chubby fat large big burly muscular broad plump overweight "
                  "bulky".split())



def _color(word: str) -> str | None:
    if word in COLORS:
        return word
    c = COLOR_SYNONYMS.get(word)
    return c or None


def _parse_attributes(tokens: list[tuple[str, int]]) -> dict[str, Any]:
    """Appearance attributes stated in the text (only what is stated)."""
    attrs: dict[str, Any] = {}
    words = [w for w, _ in tokens]
    n = len(words)

    def near_person(i: int) -> bool:
        # "tall" describes a person only if a person noun follows in the same sentence.
        return any(w in PERSON_NOUNS and s == tokens[i][1] for w, s in tokens[i + 1: i + 4])

    for i, w in enumerate(words):
        col = _color(w)
        if col is not None:
            # A colour describes the first garment/hair/skin noun within the next few words.
            for k in range(i + 1, min(n, i + 5)):
                target = words[k]
                if target in TOPS:
                    attrs.setdefault("top", col)
                elif target in FULL_OUTFITS:
                    attrs.setdefault("top", col)
                    attrs.setdefault("bottom", col)
                elif target in BOTTOMS | SHORTS | SKIRTS:
                    attrs.setdefault("bottom", col)
                elif target in DRESSES:
                    attrs.setdefault("top", col)
                    attrs.setdefault("bottom", col)
                elif target in HAIR_WORDS:
                    attrs.setdefault("hair", "grey" if col == "white" else col)
                elif target in SKIN_WORDS:
                    attrs.setdefault("skin", {"white": "light", "blonde": "light", "khaki": "tan",
                                              "olive": "tan", "black": "dark", "brown": "brown"}.get(col, "tan"))
                elif target in HEADWEAR:
                    attrs.setdefault("accessory_color", col)
                elif target == "chef" and k + 1 < n and words[k + 1] == "hat":
                    attrs.setdefault("accessory_color", col)
                elif target in MODIFIERS or _color(target) is not None:
                    continue
                else:
                    break
                break
        if w in ("pale", "fair", "light", "dark", "tanned", "olive") and i + 1 < n and words[i + 1] in SKIN_WORDS:
            attrs["skin"] = {"pale": "light", "fair": "light", "light": "light", "dark": "dark",
                             "tanned": "tan", "olive": "tan"}[w]
        if w in SHORTS:
            attrs["bottom_kind"] = "shorts"
        elif w in BOTTOMS and "bottom_kind" not in attrs:
            attrs["bottom_kind"] = "pants"
            if w == "jeans":
                attrs.setdefault("bottom", "blue")
        elif w in DRESSES | SKIRTS:
            attrs["bottom_kind"] = "dress"
        if w in HAIR_WORDS:
            before = words[max(0, i - 3): i]
            if "long" in before or w in ("braid", "braids"):
                attrs["hair_style"] = "long"
            elif "short" in before or "cropped" in before or "buzz" in before:
                attrs["hair_style"] = "short"
            if w == "ponytail":
                attrs["hair_style"] = "ponytail"
        if w in ("bald", "shaved") and (w == "bald" or (i + 1 < n and words[i + 1] == "head")):
            attrs["hair_style"] = "bald"
        if w == "chef" and i + 1 < n and words[i + 1] == "hat":
            attrs["accessory"] = "chef hat"
        elif w in HEADWEAR and not (w == "hat" and i > 0 and words[i - 1] == "chef"):
            attrs["accessory"] = HEADWEAR[w]
        if w in CHILD and w not in ("boy", "girl") or (w in ("boy", "girl") and not
                                                        (i > 0 and words[i - 1] in ("teenage", "teen"))):
            attrs["child"] = True
        if w in TEEN:
            attrs["teen"] = True
        if w in ELDERLY and (w != "old" or (i + 1 < n and words[i + 1] in PERSON_NOUNS)):
            attrs["elderly"] = True
        if w in TALL and near_person(i):
            attrs["size"] = "tall"
        if w in SMALL and near_person(i):
            attrs["size"] = "small"
        if w in THIN and near_person(i):
            attrs["build"] = "thin"
        if (w in HEAVY and near_person(i)) or (w == "heavy" and i + 1 < n and words[i + 1] == "set"):
            attrs["build"] = "heavy"
        if w in FEMALE:
            attrs.setdefault("gender", "f")
        elif w in MALE:
            attrs.setdefault("gender", "m")
    return attrs


# --------------------------------------------------------------------------------------------
# The parse
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedPrompt:
    """What the world understood of a prompt; None where the prompt did not say."""

    action: str | None
    environment: str | None
    character: str | None  # a preset look's name
    lighting: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    matches: tuple[tuple[str, str, str], ...] = ()  # (category, name, matched text), for debugging


def _winner(scores: dict[str, float], first: dict[str, int]) -> str | None:
    if not scores:
        return None
    return min(scores, key=lambda name: (-scores[name], first[name]))


def parse_prompt(text: str) -> ParsedPrompt:
    """Find the action, environment, character look and lighting a prompt names."""
    index, max_len = _phrase_index()
    toks = [(w, s) for w, s in tokenize(text) if w not in STOPWORDS]
    keyed = [(stem(w), s, w) for w, s in toks if w not in _COLOR_WORDS]
    scores: dict[str, dict[str, float]] = {c: {} for c in ("action", "environment", "character", "lighting")}
    first: dict[str, dict[str, int]] = {c: {} for c in scores}
    matches = []
    i = 0
    while i < len(keyed):
        for length in range(min(max_len, len(keyed) - i), 0, -1):
            key = tuple(k for k, _, _ in keyed[i: i + length])
            entries = index.get(key)
            if entries:
                sentence = keyed[i][1]
                for e in entries:
                    weight = e.strength * (2.0 if sentence == 0 else 1.0)
                    scores[e.category][e.name] = scores[e.category].get(e.name, 0.0) + weight
                    first[e.category].setdefault(e.name, i)
                    matches.append((e.category, e.name, " ".join(w for _, _, w in keyed[i: i + length])))
                i += length
                break
        else:
            i += 1
    attrs = _parse_attributes(tokenize(text))
    return ParsedPrompt(
        action=_winner(scores["action"], first["action"]),
        environment=_winner(scores["environment"], first["environment"]),
        character=_winner(scores["character"], first["character"]),
        lighting=_winner(scores["lighting"], first["lighting"]),
        attributes=attrs,
        matches=tuple(matches),
    )


def resolve_character(parsed: ParsedPrompt, fallback: Character) -> Character:
    """The look to render: the named preset (else ``fallback``, the generator's stereotype) with
    every stated attribute applied on top."""
    a = parsed.attributes
    base = CHARACTER_BY_NAME[parsed.character].look if parsed.character else fallback
    ch = base
    changes: dict[str, Any] = {k: a[k] for k in ("top", "bottom", "bottom_kind", "hair", "hair_style", "skin",
                                                 "accessory", "accessory_color", "build") if k in a}
    if "gender" in a and "hair_style" not in a:
        # A stated gender that the base look contradicts: hair length is the renderer's cue.
        if a["gender"] == "f" and base.hair_style in ("short", "bald"):
            changes["hair_style"] = "long"
        elif a["gender"] == "m" and base.hair_style in ("long", "ponytail"):
            changes["hair_style"] = "short"
        if a["gender"] == "m" and base.bottom_kind == "dress" and "bottom_kind" not in a:
            changes["bottom_kind"] = "pants"
    if a.get("child"):
        changes.update(child=True, height=CHILD_HEIGHT, elderly=False)
    elif a.get("teen"):
        changes.update(child=False, height=0.92, elderly=False)
    elif a.get("elderly"):
        changes.update(elderly=True, child=False)
        if "hair" not in a:
            changes["hair"] = "grey"
    if "size" in a:
        if changes.get("child") or (ch.child and "child" not in changes):
            if a["size"] == "tall":  # children are small anyway; only "tall" changes them
                changes["height"] = 0.8
        else:
            changes["height"] = 1.12 if a["size"] == "tall" else 0.88
    if "accessory" in a and "accessory_color" not in a and a["accessory"] != base.accessory:
        changes["accessory_color"] = {"chef hat": "white", "helmet": "grey"}.get(a["accessory"], "black")
    if changes.get("child") and not base.child and "height" not in changes:
        changes["height"] = CHILD_HEIGHT
    return replace(ch, **changes) if changes else ch
