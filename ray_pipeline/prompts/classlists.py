"""Class-name lists shipped with the package, and the world's lists.

Every list is a text file under ``ray_pipeline/prompts/data/`` (``#`` lines are provenance
comments), one class per line in label-id order, so ``get_class_names(name)[i]`` is the name of
label ``i``. UCF-101 and UCF-Crime are stored as their CamelCase tokens and split into words here
(TC-CLIP's ``parse_ucf101`` convention); :func:`get_class_entries` keeps the token alongside.

HMDB-51 label swap: the split files of X-CLIP / ViFi-CLIP / TC-CLIP label ``kick`` videos 20 and
``kick_ball`` videos 21 (``sword`` 44, ``sword_exercise`` 45), while their label list, shipped here
unchanged, names 20 "kick ball" and 21 "kick" (44 "sword exercise", 45 "sword"). Published numbers
were produced with the swap, so it is the default; ``fix_hmdb_swap=True`` (or the list name
``hmdb51_fixed``) gives the names that match the videos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Lists stored as CamelCase tokens whose display names are split into words.
_CAMEL_LISTS = {"ucf101", "ucf_crime"}
_FILES = {
    "hmdb51": "hmdb51.txt",
    "ucf101": "ucf101.txt",
    "k400": "k400.txt",
    "k600_new": "k600_new.txt",
    "k600_zs_split1": "k600_zs_split1.txt",
    "k600_zs_split2": "k600_zs_split2.txt",
    "k600_zs_split3": "k600_zs_split3.txt",
    "ucf_crime": "ucf_crime.txt",
}
_ALIASES = {
    "hmdb": "hmdb51",
    "hmdb_51": "hmdb51",
    "ucf": "ucf101",
    "ucf_101": "ucf101",
    "kinetics400": "k400",
    "kinetics_400": "k400",
    "k600": "k600_new",
    "ucfcrime": "ucf_crime",
}
EXPECTED_SIZES = {
    "hmdb51": 51,
    "ucf101": 101,
    "k400": 400,
    "k600_new": 220,
    "k600_zs_split1": 160,
    "k600_zs_split2": 160,
    "k600_zs_split3": 160,
    "ucf_crime": 14,
}
# (label id, label id) pairs whose names the shipped HMDB-51 list has the wrong way round
# relative to the videos in the split files: kick ball/kick and sword exercise/sword.
HMDB_SWAPPED_IDS: tuple[tuple[int, int], ...] = ((20, 21), (44, 45))


class ClassListError(KeyError):
    """An unknown class-list name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class ClassEntry:
    """One class: label id, display name (words) and the list's original token."""

    index: int
    name: str
    token: str


def split_camel(token: str) -> str:
    """``ApplyEyeMakeup`` -> ``Apply Eye Makeup`` (a space before every inner capital)."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", token).strip()


@cache
def _read_tokens(name: str) -> tuple[str, ...]:
    text = resources.files("ray_pipeline.prompts").joinpath("data").joinpath(_FILES[name]).read_text("utf-8")
    tokens = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    expected = EXPECTED_SIZES[name]
    if len(tokens) != expected:  # a damaged install, not a user error
        raise RuntimeError(f"class list {name!r}: expected {expected} names, found {len(tokens)}")
    return tokens


def hmdb_fix_swap(names: list[str]) -> list[str]:
    """The HMDB-51 names with the kick/kick ball and sword/sword exercise ids swapped back."""
    out = list(names)
    for a, b in HMDB_SWAPPED_IDS:
        out[a], out[b] = out[b], out[a]
    return out


def shipped_lists() -> list[str]:
    """Names of the lists shipped as package data (``world_*`` lists come from the world)."""
    return sorted(_FILES) + ["hmdb51_fixed"]


def _world_list(name: str) -> list[str]:
    # Imported lazily: the world package is heavier and optional for real-data runs.
    try:
        from ray_pipeline.world.vocabulary import WORLD_CLASS_LISTS
    except ImportError as exc:
        raise ClassListError(f"class list {name!r}: the world vocabulary is unavailable ({exc})") from exc
    if name not in WORLD_CLASS_LISTS:
        raise ClassListError(f"unknown world class list {name!r}; known: {sorted(WORLD_CLASS_LISTS)}")
    return list(WORLD_CLASS_LISTS[name])


def get_class_entries(name_or_list: str | list[str], *, fix_hmdb_swap: bool = False) -> list[ClassEntry]:
    """The classes of a shipped list, a ``world_*`` list or an explicit list of names.

    Args:
        name_or_list: ``hmdb51``, ``hmdb51_fixed``, ``ucf101``, ``k400``, ``k600_new``,
            ``k600_zs_split{1,2,3}``, ``ucf_crime``, ``world_*``, an alias, or a list of names.
        fix_hmdb_swap: for HMDB-51, name ids 20/21 and 44/45 as the split files' videos are.
    """
    if not isinstance(name_or_list, str):
        names = [str(n).strip() for n in name_or_list]
        if not names or any(not n for n in names):
            raise ClassListError("an explicit class list must hold non-empty names")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ClassListError(f"an explicit class list repeats names: {dupes}")
        return [ClassEntry(i, n, n) for i, n in enumerate(names)]
    key = name_or_list.strip().lower()
    if key.startswith("world_"):
        return [ClassEntry(i, n, n) for i, n in enumerate(_world_list(name_or_list.strip()))]
    if key == "hmdb51_fixed":
        key, fix_hmdb_swap = "hmdb51", True
    key = _ALIASES.get(key, key)
    if key not in _FILES:
        raise ClassListError(
            f"unknown class list {name_or_list!r}; shipped: {shipped_lists()}, or world_* lists, "
            "or give the class names as a YAML list"
        )
    tokens = list(_read_tokens(key))
    if key == "hmdb51" and fix_hmdb_swap:
        tokens = hmdb_fix_swap(tokens)
    if key in _CAMEL_LISTS:
        return [ClassEntry(i, split_camel(t), t) for i, t in enumerate(tokens)]
    return [ClassEntry(i, t, t) for i, t in enumerate(tokens)]


def get_class_names(name_or_list: str | list[str], *, fix_hmdb_swap: bool = False) -> list[str]:
    """Display names in label order (UCF-101: "Apply Eye Makeup"); see :func:`get_class_entries`."""
    return [e.name for e in get_class_entries(name_or_list, fix_hmdb_swap=fix_hmdb_swap)]


def list_label(name_or_list: str | list[str]) -> str:
    """A short label for manifests: the list's name, or ``custom:<n>`` for explicit names."""
    return name_or_list.strip() if isinstance(name_or_list, str) else f"custom:{len(name_or_list)}"
