"""Shipped class lists: sizes, names, tokens, the HMDB swap, and agreement with the public files."""

from __future__ import annotations

import csv
import re

import pytest

from ray_pipeline.prompts.classlists import (
    EXPECTED_SIZES,
    HMDB_SWAPPED_IDS,
    ClassListError,
    get_class_entries,
    get_class_names,
    hmdb_fix_swap,
    shipped_lists,
    split_camel,
)
from tests.helpers import shared_path

# The ViFi-CLIP split and label files, where a checkout has them next to the repository.
VIFI = shared_path("data", "vifi-clip-splits")
needs_vifi = pytest.mark.skipif(not VIFI.is_dir(), reason=f"{VIFI} not present")


def vifi_labels(name: str) -> list[str]:
    with open(VIFI / "labels" / name, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["id"]) for r in rows] == list(range(len(rows)))
    return [r["name"] for r in rows]


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_sizes_and_distinct_names(name):
    names = get_class_names(name)
    assert len(names) == EXPECTED_SIZES[name] and len(set(names)) == len(names)
    assert all(n == n.strip() and n for n in names)


def test_ucf101_names_are_split_and_tokens_kept():
    entries = get_class_entries("ucf101")
    assert entries[0].name == "Apply Eye Makeup" and entries[0].token == "ApplyEyeMakeup"
    assert entries[100].name == "Yo Yo" and entries[100].index == 100
    assert split_camel("HandstandPushups") == "Handstand Pushups"
    crime = get_class_entries("ucf_crime")
    assert [e.name for e in crime[:2]] == ["Normal", "Abuse"] and crime[8].name == "Road Accidents"
    assert crime[8].token == "RoadAccidents" and crime[13].name == "Vandalism"


def test_hmdb_swap_flag_alias_and_helper():
    plain = get_class_names("hmdb51")
    fixed = get_class_names("hmdb51", fix_hmdb_swap=True)
    assert plain[20:22] == ["kick ball", "kick"] and plain[44:46] == ["sword exercise", "sword"]
    assert fixed[20:22] == ["kick", "kick ball"] and fixed[44:46] == ["sword", "sword exercise"]
    assert get_class_names("hmdb51_fixed") == fixed == hmdb_fix_swap(plain)
    assert [i for i in range(51) if plain[i] != fixed[i]] == [i for p in HMDB_SWAPPED_IDS for i in p]
    # The corrected order is the sorted folder order the split files use.
    assert fixed == sorted(fixed)


def test_k600_splits_are_subsets_of_the_new_classes():
    new = get_class_names("k600_new")
    k400 = set(get_class_names("k400"))
    assert not set(new) & k400 and new == sorted(new)
    union = set()
    for i in (1, 2, 3):
        split = get_class_names(f"k600_zs_split{i}")
        assert set(split) <= set(new) and split == sorted(split)
        union |= set(split)
    assert len(union) > 160


def test_explicit_lists_aliases_and_errors():
    assert get_class_names(["wave", "run"]) == ["wave", "run"]
    assert get_class_names("HMDB") == get_class_names("hmdb51")
    assert get_class_names("k600") == get_class_names("k600_new")
    with pytest.raises(ClassListError, match="unknown class list 'hmdb52'.*shipped"):
        get_class_names("hmdb52")
    with pytest.raises(ClassListError, match="repeats"):
        get_class_names(["wave", "wave"])
    with pytest.raises(ClassListError, match="non-empty"):
        get_class_names(["wave", " "])
    assert "hmdb51_fixed" in shipped_lists()


def test_world_lists_come_from_the_world():
    vocab = pytest.importorskip("ray_pipeline.world.vocabulary")
    for name, classes in vocab.WORLD_CLASS_LISTS.items():
        assert get_class_names(name) == list(classes)
    with pytest.raises(ClassListError, match="unknown world class list"):
        get_class_names("world_nope")


@needs_vifi
@pytest.mark.parametrize("name,csv_name", [
    ("hmdb51", "hmdb_51_labels.csv"), ("k400", "kinetics_400_labels.csv"),
    ("k600_zs_split1", "ZS_split1_K600.csv"), ("k600_zs_split2", "ZS_split2_K600.csv"),
    ("k600_zs_split3", "ZS_split3_K600.csv"),
])
def test_lists_match_the_vifi_label_files(name, csv_name):
    assert get_class_names(name) == vifi_labels(csv_name)


@needs_vifi
def test_ucf101_tokens_match_the_vifi_label_file():
    assert [e.token for e in get_class_entries("ucf101")] == vifi_labels("ucf_101_labels.csv")


@needs_vifi
def test_k600_new_classes_against_kinetics600():
    k600 = set(vifi_labels("kinetics_600_labels.csv"))
    new = set(get_class_names("k600_new"))
    assert new <= k600
    # The rest of K600 is K400 under its K600 names (12 K400 classes were renamed).
    rest = k600 - new
    assert len(rest) == 380 and len(rest & set(get_class_names("k400"))) == 368


@needs_vifi
def test_hmdb_split_files_carry_the_swap():
    """Label 20 videos are `kick` clips, 21 `kick_ball`, 44 `sword`, 45 `sword_exercise`."""
    fixed = get_class_names("hmdb51", fix_hmdb_swap=True)
    plain = get_class_names("hmdb51")
    for line in (VIFI / "datasets_splits" / "hmdb_splits" / "val1.txt").read_text().splitlines():
        path, label = line.rsplit(" ", 1)
        folder_class = re.sub(r"_[a-z]_(cm|nm)_np\d.*$", "", path)  # ..._<class>_<camera...>.avi
        label = int(label)
        if label in (20, 21, 44, 45):
            assert folder_class.endswith("_" + fixed[label].replace(" ", "_"))
            assert not folder_class.endswith("_" + plain[label].replace(" ", "_"))
