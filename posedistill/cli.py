"""The ``posedistill`` command line.

Each subcommand lives in its own module under ``posedistill/commands/`` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so ``posedistill infer`` never
imports torch and ``posedistill --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import importlib
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
    return int(_load(args.command).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
