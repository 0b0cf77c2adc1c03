"""The ``vision-qc`` command line (DESIGN §3). Argument parsing only; each command's work
lives in a shell module, imported when the command runs.

Exit status: 0 all parts OK (or the command succeeded), 1 at least one NG or unreadable input,
2 usage or recipe error (message on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# command -> (module in vision_qc.shell, one-line help)
COMMANDS = {
    "generate": ("generate", "write synthetic windshield images, their ground truth and a recipe"),
    "inspect": ("inspect_cmd", "check image files, folders or globs against a recipe"),
    "teach": ("teach", "build a recipe from one or more good parts"),
    "live": ("live", "live inspection of a camera, video or synthetic clip, verdict on the picture"),
    "eval": ("evaluate", "score inspection results against ground truth"),
    "bench": ("bench", "run the benchmark suite and write a benchmark report"),
}


class UsageError(Exception):
    """A command-line mistake found after parsing; reported on stderr with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vision-qc",
        description="Glue-bead inspection in mm against ground truth: generate scenes, inspect "
                    "images, teach recipes, watch a camera, score accuracy, benchmark speed.")
    parser.add_argument("--version", action="version", version=f"vision-qc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(f"vision_qc.shell.{module}")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._module.run(args) or 0)
    except UsageError as exc:
        print(f"vision-qc {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vision-qc {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`| head`): nothing more to say to it
        sys.stdout = None
        return 0
