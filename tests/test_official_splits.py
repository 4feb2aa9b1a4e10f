"""Readers of HMDB-51's and UCF-101's official split files, on small files in those formats."""

from __future__ import annotations

import pytest

from ray_pipeline.evaluation.datasets import DatasetError, read_labels, read_split_list
from ray_pipeline.evaluation.official_splits import read_hmdb_official_split, read_ucf_official_split
from tests.helpers import shared_path

SPLITS = shared_path("data", "vifi-clip-splits")


def _hmdb(d, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


def test_hmdb_marks_ids_and_names(tmp_path):
    # The official lines end with a space; mark 1 = train, 2 = test, 0 = unused.
    _hmdb(tmp_path, {
        "kick_ball_test_split1.txt": "kb_a.avi 1 \nkb_b.avi 2 \nkb_c.avi 0 \n",
        "kick_test_split1.txt": "k_a.avi 2 \nk_b.avi 1 \n\n",
        "brush_hair_test_split1.txt": "bh_a.avi 1 \nbh_b.avi 1 \nbh_c.avi 2 \n",
        "brush_hair_test_split2.txt": "bh_a.avi 2 \nbh_b.avi 1 \nbh_c.avi 1 \n",
    })
    split = read_hmdb_official_split(tmp_path, 1)
    # Sorted folder order: brush_hair 0, kick 1, kick_ball 2 (as ViFi's lists number HMDB's classes).
    assert split.class_names == ["brush hair", "kick", "kick ball"]
    assert split.train == [("brush_hair/bh_a.avi", 0), ("brush_hair/bh_b.avi", 0), ("kick/k_b.avi", 1),
                           ("kick_ball/kb_a.avi", 2)]
    assert split.test == [("brush_hair/bh_c.avi", 0), ("kick/k_a.avi", 1), ("kick_ball/kb_b.avi", 2)]
    flat = read_hmdb_official_split(tmp_path, 1, flat=True)
    assert [p for p, _ in flat.test] == ["bh_c.avi", "k_a.avi", "kb_b.avi"]
    two = read_hmdb_official_split(tmp_path, 2)
    assert two.class_names == ["brush hair"] and two.test == [("brush_hair/bh_a.avi", 0)]


def test_hmdb_errors_name_file_and_line(tmp_path):
    _hmdb(tmp_path / "bad", {"run_test_split1.txt": "a.avi 1\nb.avi 3\n"})
    with pytest.raises(DatasetError, match=r"run_test_split1.txt:2: expected '<video>.avi <0\|1\|2>'"):
        read_hmdb_official_split(tmp_path / "bad")
    _hmdb(tmp_path / "dup", {"run_test_split1.txt": "a.avi 1\n", "walk_test_split1.txt": "a.avi 2\n"})
    with pytest.raises(DatasetError, match=r"walk_test_split1.txt:1: a.avi is also listed in run_test_split1.txt:1"):
        read_hmdb_official_split(tmp_path / "dup")
    with pytest.raises(DatasetError, match="no HMDB-51 split files"):
        read_hmdb_official_split(tmp_path / "bad", 3)


@pytest.mark.skipif(not SPLITS.is_dir(), reason="../shared/data/vifi-clip-splits not present")
def test_hmdb_folder_order_reproduces_vifis_ids(tmp_path):
    # One file per official class folder: the adapter's id for kick must be the id ViFi's val1.txt
    # gives kick videos (20), and its name the correct one (the CSV calls id 20 "kick ball").
    csv_names = read_labels(SPLITS / "labels" / "hmdb_51_labels.csv")
    _hmdb(tmp_path, {f"{n.replace(' ', '_')}_test_split1.txt": f"{n.replace(' ', '_')}_x.avi 2\n" for n in csv_names})
    split = read_hmdb_official_split(tmp_path)
    val1 = read_split_list(SPLITS / "datasets_splits" / "hmdb_splits" / "val1.txt", 51)
    kick = {y for p, y in val1 if "_kick_" in p and "kick_ball" not in p}
    sword = {y for p, y in val1 if "_sword_" in p and "sword_exercise" not in p and "draw_sword" not in p}
    assert kick == {split.class_names.index("kick")} == {20}
    assert sword == {split.class_names.index("sword")} == {44}
    assert csv_names[20] == "kick ball" and split.class_names[20] == "kick"


def _ucf(d, train: str, test: str, classes: str = "1 ApplyEyeMakeup\n2 HandstandPushups\n3 Typing\n") -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "classInd.txt").write_text(classes)
    (d / "trainlist01.txt").write_text(train)
    (d / "testlist01.txt").write_text(test)


def test_ucf_lists_zero_based_ids_from_class_ind(tmp_path):
    _ucf(tmp_path,
         "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\n"
         "Typing/v_Typing_g09_c02.avi 3\n",
         "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nHandstandPushups/v_HandStandPushups_g01_c03.avi\n")
    split = read_ucf_official_split(tmp_path)
    assert split.class_names == ["ApplyEyeMakeup", "HandstandPushups", "Typing"]
    assert split.train == [("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
                           ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 1), ("Typing/v_Typing_g09_c02.avi", 2)]
    assert split.test == [("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0),
                          ("HandstandPushups/v_HandStandPushups_g01_c03.avi", 1)]
    flat = read_ucf_official_split(tmp_path, flat=True)
    assert flat.test[1] == ("v_HandStandPushups_g01_c03.avi", 1)  # ViFi's val1.txt writes bare names


@pytest.mark.parametrize(("train", "test", "message"), [
    ("Typing/v_Typing_g08_c01.avi 1\n", "", r"trainlist01.txt:1: label 1 is 'ApplyEyeMakeup', but .* folder 'Typing'"),
    ("Typing/v_Typing_g08_c01.avi 4\n", "", r"trainlist01.txt:1: label '4' outside 1..3"),
    ("Typing/v_Typing_g08_c01.avi\n", "", r"trainlist01.txt:1: expected '<Class>/<video>.avi <1-based id>'"),
    ("", "Knitting/v_Knitting_g01_c01.avi\n", r"testlist01.txt:1: class folder 'Knitting' is not in classInd.txt"),
    ("Typing/v_Typing_g01_c01.avi 3\n", "Typing/v_Typing_g01_c01.avi\n",
     r"testlist01.txt:1: Typing/v_Typing_g01_c01.avi is also listed in trainlist01.txt:1"),
])
def test_ucf_errors_name_file_and_line(tmp_path, train, test, message):
    _ucf(tmp_path, train, test)
    with pytest.raises(DatasetError, match=message):
        read_ucf_official_split(tmp_path)


def test_ucf_class_ind_must_be_complete(tmp_path):
    _ucf(tmp_path, "", "", classes="1 ApplyEyeMakeup\n3 Typing\n")
    with pytest.raises(DatasetError, match=r"classInd.txt: ids must be 1..2 without gaps"):
        read_ucf_official_split(tmp_path)
    with pytest.raises(DatasetError, match=r"trainlist02.txt: missing"):
        _ucf(tmp_path, "", "")
        read_ucf_official_split(tmp_path, 2)
