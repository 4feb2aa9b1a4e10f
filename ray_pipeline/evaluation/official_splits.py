"""Readers of HMDB-51's and UCF-101's official split files, as their authors publish them.

ViFi-CLIP ships only the test lists (``val{1,2,3}.txt``) and few-shot subsets of split-1 train;
the long-tail protocol draws from the whole split-1 training list, which only the official files
hold:

- HMDB-51 (``testTrainMulti_7030_splits/``): one ``<class>_test_split<k>.txt`` per class and
  split, lines ``<video>.avi <mark>`` with mark 1 = train, 2 = test, 0 = unused. Class ids
  follow the sorted class folder names, as ViFi-CLIP's HMDB lists do; the names are the folders
  with ``_`` read as a space, which are the *correct* names for those ids (ViFi's
  ``hmdb_51_labels.csv`` swaps kick / kick ball and sword / sword exercise, evaluation-protocols.md §1.2).
- UCF-101 (``ucfTrainTestlist/``): ``classInd.txt`` (``<1-based id> <ClassName>``),
  ``trainlist0k.txt`` (``<Class>/<video>.avi <1-based id>``) and ``testlist0k.txt``
  (``<Class>/<video>.avi``, the class from the folder). Ids become 0-based, as in ViFi's
  ``ucf_101_labels.csv``.

Paths are ``<class folder>/<video>`` (the official archives' layout) or, with ``flat=True``, the
bare file name as ViFi-CLIP's lists write them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ray_pipeline.evaluation.datasets import DatasetError

Entry = tuple[str, int]
HMDB_MARKS = {"1": "train", "2": "test", "0": "unused"}


@dataclass(frozen=True)
class OfficialSplit:
    """One official split: class names by id, and its training and test rows."""

    class_names: list[str]
    train: list[Entry]
    test: list[Entry]


def read_hmdb_official_split(split_dir: str | os.PathLike, split: int = 1, *, flat: bool = False) -> OfficialSplit:
    """HMDB-51's split ``split`` from its ``<class>_test_split<k>.txt`` files.

    Args:
        split_dir: the folder holding the 51 × 3 files.
        split: 1, 2 or 3.
        flat: paths as bare file names (ViFi-CLIP's lists) instead of ``<class>/<video>``.

    Raises:
        DatasetError: no files for the split, a malformed line, a mark other than 0/1/2 or a video
            listed twice; the message names the file and line.
    """
    d = Path(split_dir)
    suffix = f"_test_split{split}.txt"
    files = sorted(p for p in d.glob(f"*{suffix}") if p.is_file())
    if not files:
        raise DatasetError(f"{d}: no HMDB-51 split files '*{suffix}'")
    folders = sorted(p.name[: -len(suffix)] for p in files)
    train, test, seen = [], [], {}
    for label, folder in enumerate(folders):
        path = d / f"{folder}{suffix}"
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or fields[1] not in HMDB_MARKS:
                raise DatasetError(f"{path}:{line_no}: expected '<video>.avi <0|1|2>', got {line!r}")
            video, mark = fields
            if video in seen:
                raise DatasetError(f"{path}:{line_no}: {video} is also listed in {seen[video]}")
            seen[video] = f"{path.name}:{line_no}"
            rel = video if flat else f"{folder}/{video}"
            if mark == "1":
                train.append((rel, label))
            elif mark == "2":
                test.append((rel, label))
    return OfficialSplit(class_names=[f.replace("_", " ") for f in folders], train=train, test=test)


def _ucf_classes(d: Path) -> list[str]:
    path = d / "classInd.txt"
    if not path.is_file():
        raise DatasetError(f"{path}: missing (UCF-101's '<1-based id> <ClassName>' list)")
    ids = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise DatasetError(f"{path}:{line_no}: expected '<1-based id> <ClassName>', got {line!r}")
        ids[int(fields[0])] = fields[1]
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise DatasetError(f"{path}: ids must be 1..{len(ids)} without gaps")
    return [ids[i] for i in range(1, len(ids) + 1)]


_UCF_PATH = re.compile(r"^(?P<folder>[^/\s]+)/(?P<video>\S+)$")


def read_ucf_official_split(split_dir: str | os.PathLike, split: int = 1, *, flat: bool = False) -> OfficialSplit:
    """UCF-101's split ``split`` from ``classInd.txt``, ``trainlist0k.txt`` and ``testlist0k.txt``.

    A video's class folder must be its label's class; folder names are compared ignoring case
    (the official files spell ``HandstandPushups`` folders with ``v_HandStandPushups`` videos).

    Args:
        split_dir: the folder holding the official lists.
        split: 1, 2 or 3.
        flat: paths as bare file names (ViFi-CLIP's lists) instead of ``<Class>/<video>``.

    Raises:
        DatasetError: a missing file, a malformed line, an unknown class, a label that disagrees
            with the folder, or a video listed twice; the message names the file and line.
    """
    d = Path(split_dir)
    names = _ucf_classes(d)
    by_folder = {n.lower(): i for i, n in enumerate(names)}
    rows: dict[str, list[Entry]] = {}
    seen: dict[str, str] = {}
    for kind in ("train", "test"):
        path = d / f"{kind}list0{split}.txt"
        if not path.is_file():
            raise DatasetError(f"{path}: missing")
        out = []
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            match = _UCF_PATH.match(fields[0])
            expected = "'<Class>/<video>.avi <1-based id>'" if kind == "train" else "'<Class>/<video>.avi'"
            if not match or len(fields) != (2 if kind == "train" else 1):
                raise DatasetError(f"{path}:{line_no}: expected {expected}, got {line!r}")
            folder = match["folder"]
            if folder.lower() not in by_folder:
                raise DatasetError(f"{path}:{line_no}: class folder {folder!r} is not in classInd.txt")
            label = by_folder[folder.lower()]
            if kind == "train":
                if not fields[1].isdigit() or not 1 <= int(fields[1]) <= len(names):
                    raise DatasetError(f"{path}:{line_no}: label {fields[1]!r} outside 1..{len(names)}")
                if int(fields[1]) - 1 != label:
                    raise DatasetError(f"{path}:{line_no}: label {fields[1]} is {names[int(fields[1]) - 1]!r}, "
                                       f"but the video is in folder {folder!r}")
            if fields[0] in seen:
                raise DatasetError(f"{path}:{line_no}: {fields[0]} is also listed in {seen[fields[0]]}")
            seen[fields[0]] = f"{path.name}:{line_no}"
            out.append((match["video"] if flat else fields[0], label))
        rows[kind] = out
    return OfficialSplit(class_names=names, train=rows["train"], test=rows["test"])
