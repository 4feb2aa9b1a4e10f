from pathlib import Path

import pyarrow as pa
import pytest

from ray_pipeline.ids import row_id
from ray_pipeline.runstore import RunStore, join_uri, local_copy
from tests.helpers import S3_BUCKET


def test_row_id_is_content_derived_and_order_free():
    a = row_id("clip", prompt_id="p1", seed=3, model="m")
    assert a == row_id("clip", model="m", seed=3, prompt_id="p1")
    assert a != row_id("clip", prompt_id="p1", seed=4, model="m")
    assert a != row_id("score", prompt_id="p1", seed=3, model="m")
    assert len(a) == 16 and int(a, 16) >= 0


def test_atomic_write_leaves_no_temporaries(tmp_path):
    store = RunStore(tmp_path)
    store.write_text("a/b/c.txt", "hello")
    assert store.read_text("a/b/c.txt") == "hello"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["c.txt"]
    store.write_text("a/b/c.txt", "again")  # overwrite is a rename too
    assert store.read_text("a/b/c.txt") == "again"


def test_file_uri_and_split(tmp_path):
    store = RunStore(f"file://{tmp_path}")
    store.write_bytes("x.bin", b"\x00\x01")
    parent, name = RunStore.split(store.uri("x.bin"))
    assert name == "x.bin" and parent.read_bytes(name) == b"\x00\x01"


def test_manifest_parts_deduplicate_and_ignore_temporaries(tmp_path):
    store = RunStore(tmp_path)
    m = store.manifest("stage", "id")
    assert m.read() is None and m.done_ids() == set()
    m.write_part(pa.table({"id": ["a", "b"], "v": [1, 2]}))
    m.write_part(pa.table({"id": ["b", "c"], "v": [20, 3]}))
    # A part half-written by a crashed process is invisible and removable.
    (tmp_path / "stage" / "manifest" / "part-9.parquet.tmp-deadbeef").write_bytes(b"garbage")
    table = m.read()
    assert table.column("id").to_pylist() == ["a", "b", "c"]
    assert table.column("v").to_pylist() == [1, 2, 3]  # first occurrence wins
    assert m.done_ids() == {"a", "b", "c"}
    assert store.remove_temporaries("stage/manifest") == 1


def test_manifest_rejects_rows_without_id_and_names_corrupt_parts(tmp_path):
    store = RunStore(tmp_path)
    m = store.manifest("stage", "id")
    with pytest.raises(ValueError, match="id column"):
        m.write_part(pa.table({"x": [1]}))
    (tmp_path / "stage" / "manifest").mkdir(parents=True)
    (tmp_path / "stage" / "manifest" / "part-1.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="part-1.parquet"):
        m.read()


def test_folders_and_local_copies_of_a_local_store(tmp_path):
    store = RunStore(tmp_path)
    store.write_text("a/checkpoint_1/info.json", "{}")
    store.write_text("a/top.txt", "t")
    assert store.list_dirs("a") == ["a/checkpoint_1"] and store.list_dirs("missing") == []
    assert join_uri(store.uri("a"), "checkpoint_1", "info.json") == str(tmp_path / "a" / "checkpoint_1" / "info.json")
    with local_copy(store.uri("a/checkpoint_1")) as local:
        assert local == str(tmp_path / "a" / "checkpoint_1")  # the path itself, no copy
    assert (tmp_path / "a" / "checkpoint_1" / "info.json").exists()
    store.move_dir("a", "b")
    assert store.list_dirs("b") == ["b/checkpoint_1"] and not (tmp_path / "a").exists()


def test_s3_store_keeps_its_endpoint_options_in_every_uri(s3_endpoint):
    options = f"endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    store = RunStore(f"s3://{S3_BUCKET}/runs/x/?{options}")
    assert store.root == f"s3://{S3_BUCKET}/runs/x?{options}" and store.name == "x" and not store.is_local
    store.write_bytes("a/checkpoint_1/model/w.bin", b"\x00\x01")
    store.write_text("a/top.txt", "t")
    checkpoint = store.uri("a/checkpoint_1")
    assert checkpoint == f"s3://{S3_BUCKET}/runs/x/a/checkpoint_1?{options}"
    assert join_uri(checkpoint, "model", "w.bin") == store.uri("a/checkpoint_1/model/w.bin")
    # Another process reaches a file from its URI alone.
    parent, name = RunStore.split(store.uri("a/top.txt"))
    assert name == "top.txt" and parent.read_text(name) == "t"
    assert store.list_dirs("a") == ["a/checkpoint_1"] and store.list_dirs("missing") == []
    with local_copy(checkpoint) as local:
        assert Path(local).name == "checkpoint_1"
        assert (Path(local) / "model" / "w.bin").read_bytes() == b"\x00\x01"
    assert not Path(local).exists()  # the download is temporary
    with local_copy(store.uri("a/top.txt")) as local:
        assert Path(local).read_text() == "t"
    with pytest.raises(FileNotFoundError, match="a/missing"), local_copy(store.uri("a/missing")):
        pass
    # A folder moves as a whole (S3 itself renames single objects only).
    store.move_dir("a", "b")
    assert store.list_dirs("b") == ["b/checkpoint_1"] and store.read_text("b/top.txt") == "t"
    assert not store.exists("a")


def test_lock_makes_holders_take_turns_and_says_when_it_waits(tmp_path):
    import threading
    import time

    store = RunStore(tmp_path / "store")
    order, waited = [], []
    held = threading.Event()

    def first() -> None:
        with store.lock("train/ray/phase-1"):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(5)
    with store.lock("train/ray/phase-1", on_wait=lambda: waited.append(True)):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"] and waited == [True]
    with store.lock("train/ray/phase-1", on_wait=lambda: waited.append(True)):  # free now: no wait
        pass
    with store.lock("train/ray/phase-2"), store.lock("train/ray/phase-3"):  # locks are per name
        pass
    assert waited == [True]
