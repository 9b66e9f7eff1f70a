"""A results file that survives being killed: rows are appended one by one, and every write is atomic."""
from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


class ResultsWriteError(OSError):
    """Writing the results file failed (full disk, no permission); the file on disk is the last complete one."""


class ResultStore:
    """
    A CSV of finished grid cells keyed by ``key`` columns. :meth:`append` rewrites the file through a temporary file
    in the same folder and ``os.replace`` (atomic on POSIX): a crash or a full disk in the middle of a write leaves
    the previous complete file, never a truncated one. A restarted run asks :meth:`has` and skips what is done.

    :param path: The CSV file (created with its folder when missing).
    :param key: Columns that identify a cell.
    """

    def __init__(self, path: str | os.PathLike, key: Sequence[str]) -> None:
        self.path, self.key = Path(path), tuple(key)
        if self.path.exists():
            try:
                self.frame = pd.read_csv(self.path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
                raise ValueError(f"Results file '{self.path}' is not a readable CSV ({err}); move it away or pass "
                                 "another output folder.") from err  # fmt: skip
            missing = [k for k in self.key if k not in self.frame.columns]
            if missing:
                raise ValueError(f"Results file '{self.path}' lacks the key columns {missing}: it is not a results "
                                 "file of this grid.")  # fmt: skip
        else:
            self.frame = pd.DataFrame(columns=list(self.key))
        self._done = {self.key_of(row) for row in self.frame[list(self.key)].to_dict("records")}

    def key_of(self, row: dict) -> tuple[str, ...]:
        """The canonical key of a row (key values as text)."""
        return tuple(_canonical(row.get(k)) for k in self.key)

    def has(self, **values) -> bool:
        """Whether a row with these key values is in the file."""
        return self.key_of(values) in self._done

    def append(self, rows: Sequence[dict]) -> None:
        """Add ``rows`` and write the file atomically. :raises ResultsWriteError: the write failed (the file on
        disk is unchanged, the rows stay in memory for the next successful write)."""
        if not rows:
            return
        new = pd.DataFrame(list(rows))
        frame = new if self.frame.empty else pd.concat([self.frame, new], ignore_index=True)
        self._write(frame)
        self.frame = frame
        self._done |= {self.key_of(r) for r in rows}

    def _write(self, frame: pd.DataFrame) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as err:
            raise ResultsWriteError(err.errno, f"Cannot write results next to '{self.path}': {err.strerror}") from err
        try:
            with os.fdopen(fd, "w", newline="") as f:
                frame.to_csv(f, index=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            Path(tmp).unlink(missing_ok=True)
            reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
            raise ResultsWriteError(
                err.errno, f"Could not write '{self.path}': {reason}. The file keeps its last complete version "
                "and a restarted run resumes from it."
            ) from err


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
