"""The run directory: a local path or any URI ``pyarrow.fs`` understands (s3://, gs://, hdfs://).

A URI may carry pyarrow's filesystem options as a query, e.g.
``s3://bucket/runs/x?endpoint_override=minio:9000&scheme=http``: the query belongs to the store, so
the URIs it hands out for files inside it (``uri``) keep it after their path.

Every write is atomic (temporary name, then rename), and every stage's manifest is a folder of
Parquet parts, one per finished batch. Readers concatenate the parts and keep the first row of each
id, so a crash loses at most the batches in flight and a rerun never duplicates rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

TMP_MARK = ".tmp-"


def _is_uri(path: str) -> bool:
    return "://" in path


def _split_query(uri: str) -> tuple[str, str]:
    """(path part, "?query" or "") of a URI; local paths never have a query."""
    if not _is_uri(uri):
        return uri, ""
    path, sep, query = uri.partition("?")
    return path, sep + query


def join_uri(uri: str, *parts: str) -> str:
    """``uri``/``parts``, keeping a URI's query (its filesystem options) at the end."""
    path, query = _split_query(str(uri))
    return "/".join([path.rstrip("/"), *(p.strip("/") for p in parts)]) + query


class RunStore:
    """Files under one root, addressed by '/'-separated paths relative to it."""

    def __init__(self, root: str | os.PathLike) -> None:
        root = str(root)
        if _is_uri(root) and not root.startswith("file://"):
            self.fs, self.base = pafs.FileSystem.from_uri(root)
            path, self._query = _split_query(root)
            self._path_uri = path.rstrip("/")
            # What reconstructs this store in another process: the query (endpoint, scheme) included.
            self.root = self._path_uri + self._query
            self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        else:
            local = Path(root.removeprefix("file://")).expanduser().resolve()
            self.fs, self.base, self.root, self.is_local = pafs.LocalFileSystem(), str(local), str(local), True
            self._path_uri, self._query = self.root, ""
        self.base = self.base.rstrip("/")

    @classmethod
    def split(cls, uri: str) -> tuple[RunStore, str]:
        """A store rooted at the parent of ``uri`` and the file name within it."""
        path, query = _split_query(str(uri))
        parent, _, name = path.rstrip("/").rpartition("/")
        return cls((parent or ".") + query), name

    # ---------------------------------------------------------------- paths
    def _full(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def uri(self, rel: str) -> str:
        """What other processes (actors on other nodes) use to reach ``rel``."""
        return f"{self._path_uri}/{rel}{self._query}" if rel else self.root

    def fs_path(self, rel: str) -> str:
        """``rel`` as a path on ``self.fs``, for APIs that take a filesystem and a path (Ray Train)."""
        return self._full(rel)

    @property
    def name(self) -> str:
        """The last component of the root (a run's name), without any URI query."""
        return self._path_uri.rstrip("/").rpartition("/")[2]

    def local_path(self, rel: str) -> Path | None:
        return Path(self._full(rel)) if self.is_local else None

    # ---------------------------------------------------------------- files
    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._full(rel)).type != pafs.FileType.NotFound

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.fs.create_dir(str(PurePosixPath(self._full(rel)).parent), recursive=True)
        tmp = f"{rel}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(self._full(tmp)) as out:
            out.write(data)
        # On local disks and HDFS this is an atomic rename; object stores publish whole objects.
        self.fs.move(self._full(tmp), self._full(rel))

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self._full(rel)) as f:
            return f.read()

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def list_files(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Finished files (temporaries skipped) directly under ``rel_dir``, sorted, as relative paths."""
        selector = pafs.FileSelector(self._full(rel_dir), allow_not_found=True)
        names = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and TMP_MARK not in info.base_name:
                if info.base_name.endswith(suffix):
                    names.append(f"{rel_dir}/{info.base_name}")
        return sorted(names)

    def list_dirs(self, rel_dir: str) -> list[str]:
        """Folders directly under ``rel_dir`` (none if it does not exist), sorted, as relative paths.

        On object stores a folder is a key prefix; listing finds it all the same."""
        selector = pafs.FileSelector(self._full(rel_dir), allow_not_found=True)
        return sorted(f"{rel_dir}/{info.base_name}" for info in self.fs.get_file_info(selector)
                      if info.type == pafs.FileType.Directory)

    def download(self, rel: str, local: str | os.PathLike) -> Path:
        """Copy the file or folder ``rel`` to the local path ``local``; returns it."""
        info = self.fs.get_file_info(self._full(rel))
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{self.uri(rel)} does not exist")
        local = Path(local)
        if info.type == pafs.FileType.File:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(self.read_bytes(rel))
        else:
            local.mkdir(parents=True, exist_ok=True)
            pafs.copy_files(self._full(rel), str(local), source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())
        return local

    def move_dir(self, rel_src: str, rel_dst: str) -> None:
        """Rename the folder ``rel_src`` to ``rel_dst`` (not atomic on object stores)."""
        if self.is_local:
            self.fs.move(self._full(rel_src), self._full(rel_dst))
            return
        # S3 and GCS rename single objects only: copy every object under the prefix, then delete.
        pafs.copy_files(self._full(rel_src), self._full(rel_dst), source_filesystem=self.fs,
                        destination_filesystem=self.fs)
        self.fs.delete_dir(self._full(rel_src))

    def remove_temporaries(self, rel_dir: str) -> int:
        """Delete files left half-written by a crash; returns how many."""
        selector = pafs.FileSelector(self._full(rel_dir), allow_not_found=True)
        stale = [i.path for i in self.fs.get_file_info(selector) if TMP_MARK in i.base_name]
        for path in stale:
            self.fs.delete_file(path)
        return len(stale)

    @contextlib.contextmanager
    def lock(self, rel: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the exclusive lock ``rel`` (the file ``rel + '.lock'``) while the block runs, so that
        processes sharing a local store (two sweeps on one data store) take turns; ``on_wait`` is
        called once if another process holds it. The OS drops the lock of a process that dies.
        Object stores have no lock: there the block runs at once (one driver per data store)."""
        if not self.is_local:
            yield
            return
        path = Path(self._full(f"{rel}.lock"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---------------------------------------------------------------- manifests
    def manifest(self, stage: str, id_column: str) -> Manifest:
        return Manifest(self, f"{stage}/manifest", id_column)


class Manifest:
    """A stage's table of finished rows, stored as Parquet parts."""

    def __init__(self, store: RunStore, folder: str, id_column: str) -> None:
        self.store, self.folder, self.id_column = store, folder, id_column

    def parts(self) -> list[str]:
        return self.store.list_files(self.folder, ".parquet")

    def write_part(self, table: pa.Table) -> str | None:
        """Append finished rows atomically; returns the part's path (None for an empty table)."""
        if table.num_rows == 0:
            return None
        if self.id_column not in table.column_names:
            raise ValueError(f"{self.folder}: rows lack the id column {self.id_column!r}")
        buf = io.BytesIO()
        pq.write_table(table, buf)
        name = f"{self.folder}/part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        self.store.write_bytes(name, buf.getvalue())
        return name

    def read(self) -> pa.Table | None:
        """All finished rows, first occurrence of each id kept; None if nothing was written."""
        tables = []
        for part in self.parts():
            try:
                # Parts are small; single-threaded reads also avoid an abort in arrow's thread
                # pool at interpreter exit seen in short-lived processes.
                tables.append(pq.read_table(io.BytesIO(self.store.read_bytes(part)), use_threads=False))
            except (pa.ArrowInvalid, OSError) as exc:
                raise ValueError(f"corrupt manifest part {self.store.uri(part)}: {exc}") from exc
        if not tables:
            return None
        table = pa.concat_tables(tables, promote_options="permissive")
        seen: set[str] = set()
        keep = []
        for i, row_id in enumerate(table.column(self.id_column).to_pylist()):
            if row_id not in seen:
                seen.add(row_id)
                keep.append(i)
        return table if len(keep) == table.num_rows else table.take(pa.array(keep, pa.int64()))

    def rows_with_ids(self, wanted: pa.Array | pa.ChunkedArray) -> pa.Table:
        """The finished rows whose id is in ``wanted``, sorted by id.

        Sorted because parts are in the order batches finished, which differs from run to run:
        rows handed on in that order would make training depend on actor timing.
        """
        import pyarrow.compute as pc

        table = self.read()
        if table is None:
            return pa.table({self.id_column: pa.array([], pa.string())})
        if isinstance(wanted, pa.ChunkedArray):
            wanted = wanted.combine_chunks()
        mine = table.filter(pc.is_in(table.column(self.id_column), value_set=wanted.cast(pa.string())))
        return mine.sort_by(self.id_column)

    def done_ids(self) -> set[str]:
        table = self.read()
        return set() if table is None else set(table.column(self.id_column).to_pylist())


@contextlib.contextmanager
def local_copy(uri: str | os.PathLike) -> Iterator[str]:
    """A local path with the contents of the file or folder ``uri``: the path itself when it is
    local, else a temporary download, deleted on exit. For readers that only take local paths
    (decord, ``from_pretrained``, ``torch.load``)."""
    store, name = RunStore.split(str(uri))
    local = store.local_path(name)
    if local is not None:
        yield str(local)
        return
    with tempfile.TemporaryDirectory(prefix="ray_pipeline_fetch_") as tmp:
        # The same base name: some readers look at the extension (.mp4) or the folder's name.
        yield str(store.download(name, Path(tmp) / name))


def data_store(data_dir: str | None, run_store: RunStore) -> RunStore:
    """The store holding the data stages' rows (prompts, generate, score): ``data_dir`` when set
    (shared by the trials of a sweep), else the run directory itself."""
    return RunStore(data_dir) if data_dir else run_store
