"""Text helpers: class name -> verb phrase, prompt composition, T5 token counting and truncation."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Protocol

# --------------------------------------------------------------------------------------------
# Class names as verb phrases ("brush hair" -> "brushing hair")
# --------------------------------------------------------------------------------------------

# Names that are nouns or whose first word would be mis-read as a verb ("push up" is not
# "pushing up"). Keys are lower-case names.
_PHRASES = {
    # HMDB-51
    "cartwheel": "doing a cartwheel",
    "fall floor": "falling to the floor",
    "flic flac": "doing a flic flac back handspring",
    "golf": "playing golf",
    "handstand": "doing a handstand",
    "pick": "picking something up",
    "pullup": "doing pull-ups",
    "pushup": "doing push-ups",
    "sit": "sitting down",
    "situp": "doing sit-ups",
    "somersault": "doing a somersault",
    "stand": "standing up",
    "swing baseball": "swinging a baseball bat",
    "sword": "sword fighting",
    "sword exercise": "practising sword exercises",
    "shoot ball": "shooting a ball at a basket",
    "shoot bow": "shooting a bow and arrow",
    "shoot gun": "shooting a gun",
    "ride bike": "riding a bike",
    "ride horse": "riding a horse",
    "draw sword": "drawing a sword",
    "kick ball": "kicking a ball",
    # UCF-101 (split into words, lower-cased)
    "baby crawling": "crawling on hands and knees",
    "balance beam": "performing on a balance beam",
    "band marching": "marching in a band",
    "baseball pitch": "pitching a baseball",
    "basketball": "playing basketball",
    "basketball dunk": "dunking a basketball",
    "bench press": "doing a bench press",
    "billiards": "playing billiards",
    "blow dry hair": "blow-drying hair",
    "blowing candles": "blowing out candles",
    "body weight squats": "doing body weight squats",
    "boxing punching bag": "punching a boxing bag",
    "boxing speed bag": "hitting a speed bag",
    "breast stroke": "swimming breaststroke",
    "clean and jerk": "lifting a barbell in a clean and jerk",
    "cricket shot": "playing a cricket shot",
    "field hockey penalty": "taking a field hockey penalty",
    "floor gymnastics": "doing floor gymnastics",
    "frisbee catch": "catching a frisbee",
    "front crawl": "swimming front crawl",
    "golf swing": "swinging a golf club",
    "haircut": "giving a haircut",
    "hammer throw": "doing the hammer throw",
    "handstand pushups": "doing handstand push-ups",
    "handstand walking": "walking on the hands",
    "head massage": "giving a head massage",
    "high jump": "doing the high jump",
    "horse race": "racing on a horse",
    "hula hoop": "spinning a hula hoop",
    "javelin throw": "throwing a javelin",
    "jumping jack": "doing jumping jacks",
    "long jump": "doing the long jump",
    "lunges": "doing lunges",
    "military parade": "marching in a military parade",
    "nunchucks": "swinging nunchucks",
    "parallel bars": "performing on the parallel bars",
    "pizza tossing": "tossing pizza dough",
    "pole vault": "pole vaulting",
    "pommel horse": "performing on a pommel horse",
    "pull ups": "doing pull-ups",
    "push ups": "doing push-ups",
    "rock climbing indoor": "rock climbing indoors",
    "rope climbing": "climbing a rope",
    "salsa spin": "doing a salsa spin",
    "shotput": "putting the shot",
    "skate boarding": "skateboarding",
    "skijet": "riding a jet ski",
    "sky diving": "skydiving",
    "soccer juggling": "juggling a soccer ball",
    "soccer penalty": "taking a soccer penalty kick",
    "still rings": "performing on the still rings",
    "swing": "swinging on a swing",
    "table tennis shot": "playing a table tennis shot",
    "tennis swing": "swinging a tennis racket",
    "trampoline jumping": "jumping on a trampoline",
    "uneven bars": "performing on the uneven bars",
    "volleyball spiking": "spiking a volleyball",
    "wall pushups": "doing wall push-ups",
    "writing on board": "writing on a board",
    "yo yo": "playing with a yo-yo",
    # Kinetics
    "push up": "doing push-ups",
    "shot put": "putting the shot",
    "side kick": "doing a side kick",
    "high kick": "doing a high kick",
    "drop kicking": "drop kicking a ball",
    "vault": "vaulting",
    "dodgeball": "playing dodgeball",
    "hopscotch": "playing hopscotch",
    "rock scissors paper": "playing rock paper scissors",
    "capoeira": "doing capoeira",
    "cumbia": "dancing cumbia",
    # UCF-Crime
    "normal": "going about ordinary everyday activity",
    "abuse": "mistreating another person",
    "arrest": "being arrested by police officers",
    "arson": "setting fire to a building",
    "assault": "attacking another person",
    "burglary": "breaking into a building",
    "explosion": "running from a sudden explosion",
    "road accidents": "being caught in a road accident",
    "robbery": "robbing a store clerk",
    "shooting": "shooting a gun",
    "vandalism": "vandalising property",
}

# Base-form verbs that start class names ("climb stairs"); others are taken as nouns.
_VERBS = set(
    """apply blow brush catch chew clap climb dive draw dribble drink eat fall hit hug jump kick kiss
    laugh pick pour punch push ride run shake shoot sit smile smoke stand swing talk throw turn walk
    wave mop cut write type wash comb cook squat lunge dance sing play read swim paint carve fold bake
    peel tie open pull lift spin skip jog sweep stir sew knit dig plant rake mow drive fly hold
    lie lay bend stretch crawl crack bounce slide sail row surf skate ski spray shave trim clean
    """.split()
)
# One-syllable verbs ending consonant-vowel-consonant double their last letter.
_DOUBLE = set("hit run sit swim cut shop stop drum grab chop dig jog pat rub skip slap snap spin step tap "
              "trim wrap drop flip clap bat pet set get put mop hop hug nap rip scrub ship shrug sip stir "
              "strum tip tug whip zip grip knit plan".split())
# Words ending in -ing that are not gerunds.
_NOT_GERUND = {"spring", "swing", "string", "ring", "king", "thing", "sing", "wing", "bring", "sling",
               "ceiling", "something", "clothing", "pudding", "ping", "sting", "evening", "morning"}


def ing(verb: str) -> str:
    """Present participle of an English verb: ride -> riding, hit -> hitting, tie -> tying."""
    v = verb.lower()
    if v in _DOUBLE:
        return v + v[-1] + "ing"
    if v.endswith("ie"):
        return v[:-2] + "ying"
    if v.endswith("e") and not v.endswith(("ee", "oe", "ye")) and len(v) > 2:
        return v[:-1] + "ing"
    return v + "ing"


def verb_phrase(class_name: str) -> str:
    """A class name as the verb phrase of "a person is ___" (lower case)."""
    name = re.sub(r"\s+", " ", class_name.strip().lower())
    if name in _PHRASES:
        return _PHRASES[name]
    words = name.split(" ")
    if any(w.endswith("ing") and len(w) > 4 and w not in _NOT_GERUND for w in words):
        return name  # "playing guitar", "arm wrestling"
    if words[0] in _VERBS:
        return " ".join([ing(words[0]), *words[1:]])
    return f"doing {name}"


# --------------------------------------------------------------------------------------------
# Template composition (the composer "template")
# --------------------------------------------------------------------------------------------

_PREPOSITIONS = {"in", "on", "at", "by", "beside", "inside", "outside", "near", "under", "across",
                 "along", "among", "around", "behind", "within", "atop", "through", "over", "amid"}


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def compose_template(class_name: str, action: str, environment: str = "", character: str = "",
                     phrase: str | None = None) -> str:
    """One video prompt from its parts: "<Character> is <verb phrase> <environment>. <action>".

    Environments are expected as location phrases ("in a sunlit gym ..."); one that does not
    start with a preposition is attached as its own sentence so the prompt stays grammatical.
    ``phrase`` overrides the verb phrase derived from the class name.
    """
    subject = character.strip().rstrip(".") or "a person"
    env = environment.strip().rstrip(".")
    first = f"{_capitalise(subject)} is {phrase or verb_phrase(class_name)}"
    tail = ""
    if env:
        if env.split(" ", 1)[0].lower() in _PREPOSITIONS:
            first += f" {env[0].lower()}{env[1:]}"
        else:
            tail = f" The scene: {_sentence(env[0].lower() + env[1:])}"
    return f"{first}.{tail} {_sentence(action)}".strip()


# --------------------------------------------------------------------------------------------
# Token counting (CogVideoX's T5 limit)
# --------------------------------------------------------------------------------------------

_PIECE = re.compile(r"[A-Za-z]+|[0-9]|[^\sA-Za-z0-9]")


def estimate_t5_tokens(text: str) -> int:
    """A conservative estimate of T5 (SentencePiece, 32k vocab) tokens, ``</s>`` included.

    Each run of letters counts one token per 4 letters started (common words of up to 4 letters
    are 1, 5-8 letters 2), each digit and each punctuation or other symbol 1, plus 1 for ``</s>``.
    T5 keeps most common English words whole, so prose is over-counted; rare long words can be
    split finer than this, which the over-count of ordinary words is meant to absorb.
    """
    n = 1
    for piece in _PIECE.findall(text):
        n += math.ceil(len(piece) / 4) if piece[0].isalpha() and piece.isascii() else 1
    return n


class TokenCounter(Protocol):
    """Counts tokens the way the text-to-video model's text encoder will see them."""

    name: str

    def count(self, text: str) -> int: ...


class EstimateCounter:
    """The tokenizer-free fallback (see :func:`estimate_t5_tokens`)."""

    name = "estimate"

    def count(self, text: str) -> int:
        return estimate_t5_tokens(text)


class HFTokenCounter:
    """A Hugging Face tokenizer (CogVideoX's T5); counts include the special tokens it adds."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self.tokenizer, self.name = tokenizer, name

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])


def truncate_to_tokens(text: str, limit: int, count: Callable[[str], int]) -> tuple[str, int, bool]:
    """Cut ``text`` at a word boundary so that ``count(text) <= limit``.

    Prefers ending at a sentence end when that keeps at least 3/4 of the words that fit.
    Returns (text, token count, truncated?).
    """
    n = count(text)
    if n <= limit:
        return text, n, False
    words = text.split()
    lo, hi = 0, len(words)  # invariant: words[:lo] fits, words[:hi+1] does not (or hi = len)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    keep = lo
    for k in range(keep, max(0, (3 * keep) // 4) - 1, -1):
        if k and words[k - 1][-1] in ".!?":
            keep = k
            break
    out = " ".join(words[:keep])
    return out, count(out), True


def make_token_counter(
    backend: str, model: str | None, cache_dir: str | None, log: Callable[[str], None]
) -> TokenCounter:
    """The text-to-video model's own tokenizer (T5 for cogvideox and ltx, UMT5 for wan) if it is on
    disk, else the estimate."""
    if backend in ("cogvideox", "wan", "ltx") and model:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(
                model, subfolder="tokenizer", local_files_only=True, cache_dir=cache_dir
            )
            return HFTokenCounter(tok, f"tokenizer:{model}")
        except Exception as exc:  # not downloaded, no sentencepiece, ...: fall back, loudly
            log(f"prompts: {backend} tokenizer of {model!r} not loadable locally "
                f"({type(exc).__name__}); counting tokens with the conservative estimate")
    return EstimateCounter()
