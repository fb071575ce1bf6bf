"""Errors that name the file, the record and what was expected."""

from __future__ import annotations

from pathlib import Path


class PoseDataError(ValueError):
    """Bad input data. The message always names the file, and the record and field when there is one.

    >>> raise PoseDataError("ann.json", "expected 51 numbers, got 50", record="annotation id=7", field="keypoints")
    """

    def __init__(
        self, path: str | Path | None, problem: str, *, record: str | None = None, field: str | None = None
    ) -> None:
        self.path = None if path is None else str(path)
        self.record = record
        self.field = field
        self.problem = problem
        where = [p for p in (self.path, record, f"field {field!r}" if field else None) if p]
        super().__init__(f"{': '.join(where)}: {problem}" if where else problem)


class UsageError(ValueError):
    """A bad command-line value or output path, found before any work is done. The message names the option or
    the file and what was expected; ``posedistill`` prints it as one line and exits with status 2.

    >>> raise UsageError("--kpt-thr 5: expected a score threshold in [0, 1]")
    """
