"""Atomic file writes: a temp file in the same folder, fsync, then rename, so no reader ever sees half a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

from posedistill.errors import UsageError


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (0o666 minus the umask); mkstemp's is 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temp file next to ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, file_mode())
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent)


def atomic_write_with(path: str | Path, writer: Callable[[str], None]) -> None:
    """For libraries that insist on writing to a filename (cv2.imwrite, safetensors.save_file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, file_mode())  # after: some writers (safetensors) create the file anew, with mode 0o600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _unwritable_reason(folder: Path) -> str | None:
    """Why nothing can be created in the existing folder ``folder``, or None when it can."""
    if os.access(folder, os.W_OK | os.X_OK):  # root passes on permissions, not on a read-only file system
        return None
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "the file system is read-only"
    except OSError:
        pass
    return "permission denied"


def check_writable_output(path: str | Path, kind: Literal["file", "dir"] = "file", what: str | None = None) -> Path:
    """Check, before any work is done, that ``path`` can be written as a ``kind`` (a file, or a folder that is
    created or written into); raise :class:`UsageError` naming ``what`` (e.g. ``"--json"``) and the path otherwise.

    Nothing is created. Caught: an existing folder where a file is expected and the reverse, a missing parent
    that cannot be created because a file is in the way (``out.txt/sub/x.json``), and a folder the user cannot
    write into (read-only file system, permissions). A command that calls this for every output first never
    leaves half its outputs behind on such a mistake.
    """
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if p.is_dir() and kind == "file":
        raise UsageError(f"{label}: is an existing folder; expected a file name")
    if p.exists() and not p.is_dir() and kind == "dir":
        raise UsageError(f"{label}: is an existing file; expected a folder")
    folder = p if kind == "dir" and p.is_dir() else p.parent
    while not folder.exists() and folder != folder.parent:  # the nearest existing ancestor is where mkdir starts
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{label}: cannot be created: {folder} is a file, not a folder")
    reason = _unwritable_reason(folder)
    if reason:
        raise UsageError(f"{label}: cannot write in {folder}: {reason}")
    return p
