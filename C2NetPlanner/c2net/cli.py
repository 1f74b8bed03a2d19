"""``c2net`` command line: a thin dispatcher over the core modules.

Each sub-command lives in ``c2net.commands.<name>`` with ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when used, so ``c2net --help`` stays fast and a
missing optional dependency (torch for ``train``) only affects its own command.

Errors: a :class:`c2net.errors.C2NetError` prints ``error:`` and ``hint:`` lines on stderr and
exits with the error's code (2 for bad input). Anything unexpected prints one line naming the
failure and how to get the traceback (``--debug``), never a bare traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Optional, Sequence

from . import DISCLAIMER, __version__
from .errors import C2NetError

#: name -> (module, one-line help)
COMMANDS = {
    "assess": ("c2net.commands.assess", "assess C2 pedicle screw feasibility from a CT (the main job)"),
    "demo": ("c2net.commands.demo", "assess a built-in synthetic phantom (no input needed)"),
    "batch": ("c2net.commands.batch", "assess a cohort: one folder per case plus summary.csv"),
    "phantom": ("c2net.commands.phantom", "write synthetic cervical CT phantoms with exact C2 truth"),
    "info": ("c2net.commands.info", "load a CT and print its geometry (checks the input)"),
    "locate": ("c2net.commands.locate", "find the C2 vertebra and print its region of interest"),
    "measure": ("c2net.commands.measure", "measure both C2 pedicle isthmi (MPD) from pedicle masks"),
    "train": ("c2net.commands.train", "train the segmentation U-Net or the C3D classifier"),
    "export": ("c2net.commands.export", "export a trained checkpoint to ONNX with metadata"),
    "evaluate": ("c2net.commands.evaluate", "the paper's statistics from prediction/truth CSVs"),
    "models": ("c2net.commands.models", "list and verify the installed models"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="c2net",
        description="C2NetPlanner: C2 pedicle screw planning from cervical CT. " + DISCLAIMER,
    )
    parser.add_argument("--version", action="version", version=f"c2net {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    top = build_parser()
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv)  # prints help / version / an error for unknown commands
        top.print_help()
        return 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return _missing_dependency(name, exc)
    parser = argparse.ArgumentParser(prog=f"c2net {name}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except C2NetError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:   # an optional dependency imported when first needed
        return _missing_dependency(name, exc)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`
        return 0
    except Exception as exc:  # noqa: BLE001 - last line of defence for the user
        if debug:
            traceback.print_exc()
        print(f"error: unexpected failure in '{name}': {type(exc).__name__}: {exc}",
              file=sys.stderr)
        print("hint: rerun with 'c2net --debug ...' for the traceback and report it.",
              file=sys.stderr)
        return 1


#: top-level module -> the pip extra of c2netplanner that installs it
EXTRAS = {"sklearn": "eval", "scipy": "eval", "statsmodels": "eval", "matplotlib": "eval",
          "torch": "train", "onnxscript": "train", "dask": "batch", "distributed": "batch",
          "pytest": "test"}


def _missing_dependency(command: str, exc: ImportError) -> int:
    """A missing optional package: name it and the extra that installs it (exit 2)."""
    missing = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(missing)
    print(f"error: 'c2net {command}' needs the Python package '{missing or exc}', which is not "
          "installed.", file=sys.stderr)
    if extra:
        print(f"hint: install the '{extra}' extra: pip install 'c2netplanner[{extra}]' "
              f"(from a source checkout: pip install -e '.[{extra}]').", file=sys.stderr)
    else:
        print("hint: reinstall C2NetPlanner (pip install -e .) in this environment.", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
