"""
A results file that survives being killed and being shared: rows are appended one job at a time, every write is
atomic, and concurrent writers (two audits into one folder) merge their rows under a lock instead of overwriting
each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import pandas as pd

MIN_FREE_BYTES = 20 * 2**20  # results, report and perturbations of an audit need a few MB


class ResultsWriteError(OSError):
    """Writing the results file failed (full disk, no permission); the file on disk is the last complete one."""


def file_mode() -> int:
    """Permissions a new file gets from the process umask (``0o666 & ~umask``), as ``open()`` would give it."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_output_folder(folder: str | os.PathLike, name: str = "out", min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """
    Fail before any work on an output folder the run could not write to: create it when missing, then check that
    it is a folder, that a file can be created in it, and that it has ``min_free_bytes`` free.

    :param folder: The output folder.
    :param name: The user's name of the parameter (``"--out"`` on the command line), used in the messages.
    :param min_free_bytes: Free space required.
    :raises ValueError: the folder cannot be used (the message says why and names ``name``).
    """
    path = Path(folder).expanduser()
    for ancestor in (path, *path.parents):  # the first part of the path that exists must be a folder
        if ancestor.exists():
            if not ancestor.is_dir():
                where = "" if ancestor == path else f" ('{ancestor}' is a file)"
                raise ValueError(f"{name} '{path}' is a file, not a folder{where}: pass a folder for the results.")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{name} '{path}' is not writable: {err.strerror or err}.") from err
    free = shutil.disk_usage(path).free
    if free < min_free_bytes:
        raise ValueError(
            f"{name} '{path}' has {free / 2**20:.1f} MiB free; an audit needs at least "
            f"{min_free_bytes / 2**20:.0f} MiB."
        )
    return path


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive ``fcntl.flock`` on the folder of the results file ``path`` (the folder itself, so no lock file
    is left behind); other processes block until it is released (held for one read-merge-write, milliseconds)."""
    fd = os.open(Path(path).parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class ResultStore:
    """
    A CSV of finished grid cells keyed by ``key`` columns. :meth:`append` takes a lock on the folder, reads the file
    again (another process may have added rows since), adds the new rows whose key is not there yet (the first
    writer of a cell wins, so two runs never duplicate a cell; a row whose ``status`` starts with ``error`` does not
    count as finished and is replaced by a new row of its cell), and replaces the file through a temporary file and
    ``os.replace`` (atomic on POSIX): a crash or a full disk in the middle of a write leaves the previous complete
    file, never a truncated one. A restarted run asks :meth:`has` and skips what is done. Files follow the umask.

    :param path: The CSV file (created with its folder when missing).
    :param key: Columns that identify a cell.
    :param legacy_columns: When the file lacks ``key`` but has these columns, it is a results file of an older
                           layout: its rows are kept, with an empty key, and never count as done.
    """

    def __init__(self, path: str | os.PathLike, key: Sequence[str], legacy_columns: Sequence[str] = ()) -> None:
        self.path, self.key, self.legacy_columns = Path(path), tuple(key), tuple(legacy_columns)
        self.frame = self._read()
        self._done = self._keys(self.frame)

    def _read(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame(columns=list(self.key))
        if self.path.is_dir():
            raise ValueError(f"Results file '{self.path}' is a folder.")
        try:
            frame = pd.read_csv(self.path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise ValueError(
                f"Results file '{self.path}' is not a readable CSV ({err}); move it away or pass another output folder."
            ) from err
        missing = [k for k in self.key if k not in frame.columns]
        if missing and self.legacy_columns and all(c in frame.columns for c in self.legacy_columns):
            for k in missing:
                frame[k] = ""
        elif missing:
            raise ValueError(
                f"Results file '{self.path}' lacks the key columns {missing}: it is not a results file of this grid."
            )
        return frame

    def _keys(self, frame: pd.DataFrame) -> set[tuple[str, ...]]:
        """Keys of the finished rows: a row whose ``status`` starts with ``error`` (a failure, perhaps transient)
        is not finished, so a rerun computes it again and its new row replaces it."""
        failed = self._failed(frame)
        rows = frame[list(self.key)].to_dict("records")
        return {k for k, bad in zip((self.key_of(r) for r in rows), failed, strict=True) if any(k) and not bad}

    @staticmethod
    def _failed(frame: pd.DataFrame) -> list[bool]:
        if "status" not in frame.columns:
            return [False] * len(frame)
        return frame["status"].astype(str).str.startswith("error").tolist()

    def key_of(self, row: dict) -> tuple[str, ...]:
        """The canonical key of a row (key values as text)."""
        return tuple(_canonical(row.get(k)) for k in self.key)

    def has(self, **values) -> bool:
        """Whether a row with these key values is in the file (as last read or written by this store)."""
        return self.key_of(values) in self._done

    def refresh(self) -> None:
        """Read the file again, to see the rows another process has added."""
        self.frame = self._read()
        self._done = self._keys(self.frame)

    def append(self, rows: Sequence[dict]) -> None:
        """Add ``rows`` (those whose key is not in the file yet) and write the file atomically, under the folder
        lock. :raises ResultsWriteError: the write failed (the file on disk is unchanged)."""
        if not rows:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = folder_lock(self.path)
            lock.__enter__()
        except OSError as err:
            raise ResultsWriteError(err.errno, f"Cannot write results next to '{self.path}': {err.strerror}") from err
        try:
            current = self._read()
            done = self._keys(current)
            new = [r for r in rows if self.key_of(r) not in done]
            if new:  # failed rows of these cells give way to the new ones
                replaced = {self.key_of(r) for r in new}
                keep = [
                    not (bad and self.key_of(r) in replaced)
                    for r, bad in zip(current[list(self.key)].to_dict("records"), self._failed(current), strict=True)
                ]
                current = current[keep].reset_index(drop=True)
                frame = (
                    pd.DataFrame(new) if current.empty else pd.concat([current, pd.DataFrame(new)], ignore_index=True)
                )
                self._write(frame)
            else:
                frame = current
        finally:
            lock.__exit__(None, None, None)
        self.frame = frame
        self._done = self._keys(frame)

    def _write(self, frame: pd.DataFrame) -> None:
        replace_atomically(
            self.path,
            lambda f: frame.to_csv(f, index=False),
            "Could not write '{path}': {reason}. The file keeps its last complete version and a restarted run "
            "resumes from it.",
        )


def replace_atomically(
    path: str | os.PathLike, write: Callable[[IO], None], message: str, binary: bool = False
) -> None:
    """
    Write ``path`` through a unique temporary file in its folder (``write(file)``, then flushed and fsynced), with
    the permissions of the umask, and ``os.replace`` it into place (atomic on POSIX): a crash or a full disk leaves
    the previous complete file, never a truncated one.

    :param path: The file.
    :param write: Writes the contents into the open file.
    :param message: The error's text, with ``{path}`` and ``{reason}`` ("the disk is full", ...) filled in.
    :param binary: Open the temporary file in binary mode.
    :raises ResultsWriteError: the write failed; the temporary file is removed and ``path`` is unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; a results file is as readable as any other
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise ResultsWriteError(err.errno, message.format(path=path, reason=reason)) from err


def _canonical(value) -> str:
    """Key values compare as text, numbers written the same way whether read back from the CSV or not."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return str(value)
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)
