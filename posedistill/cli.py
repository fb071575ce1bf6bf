"""The ``posedistill`` command line.

Each subcommand lives in its own module under ``posedistill/commands/`` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so ``posedistill infer`` never
imports torch and ``posedistill --help`` starts instantly.

Errors the user can fix (bad input data, a bad option value, an output path that cannot be written, a config or
checkpoint problem) end here: :func:`main` prints them as one line, ``posedistill <command>: error: ...``, and
returns 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> module under posedistill.commands
COMMANDS: dict[str, str] = {
    "synth": "synth",
    "coco-eval": "coco_eval",
    "train": "train",
    "eval": "evaluate",
    "distill": "distill",
    "strip": "strip",
    "deploy": "deploy",
    "export": "export",
    "infer": "infer",
    "predict": "predict",
    "label": "label",
    "bench": "bench",
    "demo": "demo",
}


def _load(name: str):
    return importlib.import_module(f"posedistill.commands.{COMMANDS[name]}")


def _available() -> dict[str, str]:
    """Commands whose module exists, with their one-line help."""
    out = {}
    for name in COMMANDS:
        try:
            out[name] = _load(name).HELP
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("posedistill.commands."):
                continue
            raise
    return out


# exception classes of modules that may not be imported (they pull in torch / yaml): checked only when loaded
_LAZY_ERRORS = (
    ("posedistill.engine.config", "ConfigError"),
    ("posedistill.engine.checkpoint", "CheckpointError"),
)


def error_message(e: BaseException) -> str | None:
    """The one-line message of an error the user can fix, or None for anything else (a bug)."""
    from posedistill.errors import PoseDataError, UsageError

    known: list[type] = [PoseDataError, UsageError]
    for module, name in _LAZY_ERRORS:
        if module in sys.modules:  # an exception of a class never imported cannot have been raised
            known.append(getattr(sys.modules[module], name))
    if isinstance(e, tuple(known)):
        text = str(e)
    elif isinstance(e, OSError) and e.filename is not None:
        # e.g. a folder that turned read-only or a disk that filled up after the early checks
        target = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else str(e.filename)
        text = f"{target}: {e.strerror or e}"
    else:
        return None
    return " ".join(line.strip() for line in text.splitlines() if line.strip())  # one line (YAML errors have more)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posedistill",
        description="Pose estimation made small and fast through knowledge distillation.",
    )
    from posedistill import __version__

    parser.add_argument("--version", action="version", version=f"posedistill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_ in _available().items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            _load(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not logging.getLogger().handlers:  # warnings (skipped images, ...) as one line each, named like errors
        logging.basicConfig(level=logging.WARNING, format=f"posedistill {args.command}: warning: %(message)s")
    try:
        return int(_load(args.command).run(args) or 0)
    except Exception as e:
        message = error_message(e)
        if message is None:
            raise
        print(f"posedistill {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
