"""Publishing Parquet files whole: hidden staged files, the per-document lock, the write id check.

A reader never sees a half-written file, concurrent writers of one document never leave a words
file beside another write's pages file unnoticed, and temporaries that killed writers left are
cleaned up. On local disk (and filesystems like it) a file is staged under a hidden name and
renamed into place; on object stores (S3, GCS, Azure) the final key is written directly, as one
PUT or a multipart upload completed on success and aborted on failure, so no temporary object is
ever listed. No Airflow import; ``parquet`` decides what goes into the files, this module how they
get into place. The guarantees are described in ``docs/parquet.md``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.asyn import AsyncFileSystem
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

from upstage_provider.exceptions import ParquetPairMismatchError, ParquetWriteError

try:
    import fcntl
except ImportError:  # not POSIX: no per-document lock, the write id check still guards the pair
    fcntl = None  # type: ignore[assignment]

# These lines are the Parquet writer's: they keep its logger, so logging set up for it covers them.
log = logging.getLogger("upstage_provider.parquet")

#: Namespace of the keys this provider puts into Parquet metadata.
METADATA_PREFIX = "upstage."

#: Footer key naming the write a file came from; the words and pages files of one write share it.
WRITE_ID_KEY = METADATA_PREFIX + "write_id"

#: A hidden temporary file of the same target untouched for this long was left by a writer that
#: was killed (SIGKILL, OOM, a lost node): no ``finally`` ran for it. Younger ones may belong to a
#: run still writing the same document, so they are left alone.
STALE_TEMP_SECONDS = 300.0

#: Part size of an object store upload. A file under it is one PUT; a larger one a multipart
#: upload of parts this size (S3's minimum is 5 MiB). Each open file buffers up to one part and a
#: write holds two files open, so this, not s3fs's 50 MiB default, bounds a task's upload memory.
UPLOAD_PART_BYTES = 8 * 2**20


# --- paths --------------------------------------------------------------------------------------


def is_local(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def writes_in_place(fs: AbstractFileSystem) -> bool:
    """Object stores (fsspec's async filesystems: s3fs, gcsfs, adlfs) write the final key directly.

    Their write handles buffer and upload, and nothing is listed until the upload is completed,
    so a hidden temporary would only add an object that a killed writer leaves behind and a
    copy (``mv`` is copy + delete there). Other filesystems stage and rename, and so does a
    ``DirFileSystem`` over one of them (it is async whatever it wraps).
    """
    while isinstance(fs, DirFileSystem):
        fs = fs.fs
    return isinstance(fs, AsyncFileSystem) and not is_local(fs)


def display_uri(fs: AbstractFileSystem, path: str) -> str:
    """Local files as absolute paths, everything else with its scheme (``s3://...``)."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def join_path(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *(part.strip("/") for part in parts[1:])])


# --- one file, staged under a hidden name -------------------------------------------------------


class StagedFile:
    """A Parquet file that appears whole on ``publish`` or not at all.

    Staged (local disk): written under a hidden temporary name and renamed into place. Readers
    never see it half-written: the ``.`` prefix hides it from pyarrow.dataset and Spark, and the
    ``.tmp-<uuid>`` suffix from ``*.parquet`` globs; the uuid keeps concurrent runs apart.

    In place (object stores, ``writes_in_place``): the final key's upload is open from ``open``
    to ``publish``, which completes it (one PUT, or the multipart upload's completion); ``discard``
    aborts it and marks it closed, so neither closing the Parquet writer nor the handle's
    ``__del__`` can complete it afterwards.
    """

    def __init__(
        self, fs: AbstractFileSystem, folder: str, name: str, schema: pa.Schema, *, compression: str
    ) -> None:
        self.fs = fs
        self.folder = folder
        self.final = join_path(folder, name)
        self.in_place = writes_in_place(fs)
        self.temp = self.final if self.in_place else join_path(folder, f".{name}.tmp-{uuid.uuid4().hex}")
        self.target = display_uri(fs, self.final)
        self.schema = schema
        self.compression = compression
        self._handle: IO[bytes] | None = None
        self._writer: pq.ParquetWriter | None = None

    def open(self, metadata: dict[str, str]) -> None:
        with as_write_error(self.target):
            self.fs.makedirs(self.folder, exist_ok=True)
            if self.in_place:
                self._handle = self.fs.open(self.final, "wb", block_size=UPLOAD_PART_BYTES)
            else:
                self._handle = self.fs.open(self.temp, "wb")
            self._writer = pq.ParquetWriter(
                self._handle, self.schema.with_metadata(metadata), compression=self.compression
            )

    def write(self, batch: pa.RecordBatch) -> None:
        """One call, one row group; empty batches are skipped (they would be empty row groups)."""
        if batch.num_rows == 0:
            return
        assert self._writer is not None, "open() first"
        with as_write_error(self.target):
            self._writer.write_batch(batch)

    def finish(self, late_metadata: dict[str, str]) -> None:
        """Write the footer; the file stays hidden (staged, or an open upload) until ``publish``."""
        assert self._writer is not None, "open() first"
        assert self._handle is not None, "open() first"
        with as_write_error(self.target):
            self._writer.add_key_value_metadata(late_metadata)
            self._writer.close()
            self._writer = None
            if not self.in_place:
                self._handle.close()
                self._handle = None

    def publish(self) -> None:
        """Rename over any earlier file (one atomic step on local disk), or complete the upload.

        An object store replaces the key's earlier object in the same step: readers see the old
        file or the new one.
        """
        assert self._writer is None, "finish() first"
        with as_write_error(self.target):
            if self.in_place:
                assert self._handle is not None, "open() first"
                handle, self._handle = self._handle, None
                try:
                    handle.close()  # the single PUT, or the multipart upload's completion
                except BaseException:
                    _abort_upload(handle)
                    raise
            elif is_local(self.fs):
                assert self._handle is None, "finish() first"
                os.replace(self.temp, self.final)
            else:
                assert self._handle is None, "finish() first"
                self.fs.mv(self.temp, self.final)

    def remove_stale_temps(self) -> None:
        name = self.final.rsplit("/", 1)[-1]
        remove_stale_temps(self.fs, self.folder, name)
        if self.in_place:
            abort_stale_uploads(self.fs, self.final)

    def discard(self) -> None:
        """Best effort: the error that brought us here matters more than one from cleaning up."""
        if self.in_place:
            self._discard_upload()
            return
        if self._writer is not None:
            with suppress(Exception):
                self._writer.close()
        if self._handle is not None:
            with suppress(Exception):
                self._handle.close()
        self._writer = self._handle = None
        with suppress(Exception):
            if self.fs.exists(self.temp):
                self.fs.rm(self.temp)

    def _discard_upload(self) -> None:
        """Abort the upload first: the Parquet writer's footer must not reach it any more."""
        if self._handle is not None:
            _abort_upload(self._handle)
        if self._writer is not None:
            with suppress(Exception):
                self._writer.close()
        self._writer = self._handle = None


def _abort_upload(handle: Any) -> None:
    """Abort an unfinished upload (s3fs: ``AbortMultipartUpload``) and keep it from committing later.

    fsspec's buffered files complete the upload in ``close``, which ``__exit__`` and ``__del__``
    call even after an exception; marked closed, they do not.
    """
    with suppress(Exception):
        discard = getattr(handle, "discard", None)
        if callable(discard):
            discard()
    with suppress(Exception):
        handle.closed = True


def abort_stale_uploads(fs: AbstractFileSystem, path: str) -> int:
    """Abort the multipart uploads of ``path`` that killed writers left; returns how many.

    A SIGKILLed writer cannot abort its upload: its parts stay, unlisted but stored (and billed),
    until a bucket lifecycle rule or this removes them. Only uploads of this very key untouched
    (started, or last given a part) for ``STALE_TEMP_SECONDS`` go, so a concurrent writer's is
    left alone. s3fs only; best effort, like ``remove_stale_temps``.
    """
    call = getattr(fs, "call_s3", None)
    split = getattr(fs, "split_path", None)
    if not callable(call) or not callable(split):
        return 0
    aborted = 0
    try:
        bucket, key, _ = split(path)
        uploads = call("list_multipart_uploads", Bucket=bucket, Prefix=key).get("Uploads") or []
        now = datetime.now(timezone.utc)
        for upload in uploads:
            if upload.get("Key") != key:
                continue
            upload_id = upload["UploadId"]
            touched = [upload["Initiated"]]
            parts = call("list_parts", Bucket=bucket, Key=key, UploadId=upload_id).get("Parts") or []
            touched += [part["LastModified"] for part in parts]
            if (now - max(touched)).total_seconds() < STALE_TEMP_SECONDS:
                continue
            call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
            aborted += 1
    except Exception as exc:
        log.debug("could not clean up stale multipart uploads of %s: %s", path, exc)
    if aborted:
        log.info("aborted %d stale multipart upload(s) of %s left by killed writers", aborted, path)
    return aborted


def remove_stale_temps(fs: AbstractFileSystem, folder: str, name: str) -> int:
    """Delete the hidden temporaries of ``name`` that killed writers left; returns how many.

    Only this target's own ``.<name>.tmp-<uuid hex>`` files older than ``STALE_TEMP_SECONDS`` go:
    other documents' files and a concurrent run's fresh ones are never touched. Best effort: a
    failure here must not fail a write that has already been published.
    """
    pattern = re.compile(re.escape(f".{name}.tmp-") + r"[0-9a-f]{32}")
    removed = 0
    try:
        entries = fs.ls(folder, detail=True)
    except Exception as exc:
        log.debug("could not list %s for stale temporary files: %s", folder, exc)
        return 0
    now = time.time()
    for entry in entries:
        path = str(entry.get("name", ""))
        if not pattern.fullmatch(path.rsplit("/", 1)[-1]):
            continue
        try:
            modified = fs.modified(path).timestamp()
            if now - modified < STALE_TEMP_SECONDS:
                continue
            fs.rm(path)
            removed += 1
        except Exception as exc:
            log.debug("could not remove stale temporary file %s: %s", path, exc)
    if removed:
        log.info(
            "removed %d stale temporary file(s) of %s left by killed writers",
            removed,
            join_path(folder, name),
        )
    return removed


@contextmanager
def as_write_error(target: str) -> Iterator[None]:
    """Turns any failure while writing into a ParquetWriteError naming the target file."""
    try:
        yield
    except ParquetWriteError:
        raise
    except Exception as exc:
        raise ParquetWriteError(target, exc) from exc


# --- one document's pair, published together ---------------------------------------------------

#: ``flock`` errors that mean "this filesystem has no locks" rather than "something is wrong".
_NO_LOCK_ERRNOS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL})


@contextmanager
def document_lock(fs: AbstractFileSystem, root: str, name: str) -> Iterator[None]:
    """Keep other writers of the same document out while this one publishes its pair.

    Local disk only: an exclusive ``flock`` on the hidden ``<root>/.<name>.lock``, which readers
    skip like the temporaries. Elsewhere (object stores have no locks) and where ``flock`` is not
    supported it does nothing, and the write id check is the guard. The lock file is removed
    before the lock is released; one left by a killed writer is simply taken over.
    """
    if fcntl is None or not is_local(fs):
        yield
        return
    path = join_path(root, f".{name}.lock")
    with as_write_error(path):
        fd = _lock_file(path)
    if fd is None:
        yield
        return
    try:
        yield
    finally:
        with suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _lock_file(path: str) -> int | None:
    """A descriptor holding the lock on the file now at ``path``; None if locks are not supported.

    A writer that waited may get the lock on a file the previous holder has just removed; it then
    tries again on the file at ``path``, so two writers never hold locks on different files.
    """
    assert fcntl is not None
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_LOCK_ERRNOS:
                with suppress(OSError):
                    os.unlink(path)
                log.warning("no file locks on %s (%s): relying on the write id check", path, exc)
                return None
            raise
        except BaseException:
            os.close(fd)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)


def check_same_write(pages: StagedFile, words: StagedFile, write_id: str) -> None:
    """Raise if this write's words file now stands beside another write's pages file.

    Run after both renames (pages first). The writer whose words rename comes last always finds
    its own words file, and finds another write's pages file exactly when the pair is mixed, so a
    mixed pair always fails at least one run. A writer whose words file was already replaced
    again has been superseded: the later writer checks the pair.
    """
    try:
        theirs = _published_write_id(pages)
        if theirs == write_id:
            return
        superseding = _published_write_id(words)
    except Exception as exc:
        raise ParquetPairMismatchError(
            words.target, pages.target, write_id, f"reading them back failed ({exc})", footer_key=WRITE_ID_KEY
        ) from exc
    if superseding != write_id:
        log.warning(
            "%s and %s were replaced by a concurrent write (%s %s) right after this one (%s)",
            words.target,
            pages.target,
            WRITE_ID_KEY,
            superseding,
            write_id,
        )
        return
    raise ParquetPairMismatchError(
        words.target,
        pages.target,
        write_id,
        f"{pages.target} has {WRITE_ID_KEY} {theirs or 'none'}, this run wrote {write_id}",
        footer_key=WRITE_ID_KEY,
    )


def _published_write_id(file: StagedFile) -> str | None:
    with file.fs.open(file.final, "rb") as handle:
        found = (pq.read_metadata(handle).metadata or {}).get(WRITE_ID_KEY.encode())
    return found.decode(errors="replace") if found is not None else None
