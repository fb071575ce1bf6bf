"""Checks the commands share, run before any work so that a mistake costs nothing and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

from posedistill.errors import UsageError
from posedistill.fileio import check_writable_output

# what makes a folder a posedistill checkpoint (posedistill.engine.checkpoint.META; not imported: it needs torch)
CHECKPOINT_META = "meta.json"


def check_checkpoint_output(path: str | Path, what: str = "OUT") -> Path:
    """A checkpoint folder about to be written (and replaced if it exists): it must be writable, and an existing
    folder must be a checkpoint already (an empty one is fine), so that a mistyped OUT never replaces a photo or a
    folder of other files."""
    p = check_writable_output(path, "dir", what)
    if p.is_dir() and any(p.iterdir()) and not (p / CHECKPOINT_META).is_file():
        raise UsageError(
            f"{what} {p}: is an existing folder that is not a posedistill checkpoint (no {CHECKPOINT_META}); "
            "expected a new folder name or a checkpoint to replace"
        )
    return p


def check_range(value: float | None, option: str, low: float, high: float | None = None) -> None:
    """``low <= value (<= high)``, else a UsageError naming the option (None passes: the option was not given)."""
    if value is None:
        return
    if value < low or (high is not None and value > high):
        expected = f"a value in [{low:g}, {high:g}]" if high is not None else f"a value >= {low:g}"
        raise UsageError(f"{option} {value:g}: expected {expected}")


def check_layout(name: str | None, option: str = "--layout") -> None:
    """A keypoint layout name given on the command line must exist (None passes: not given)."""
    if name is None:
        return
    from posedistill.layouts import get_layout

    try:
        get_layout(name)
    except KeyError as e:
        raise UsageError(f"{option} {name}: {e.args[0] if e.args else 'unknown keypoint layout'}") from None
