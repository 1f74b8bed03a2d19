"""Progress reporting shared by the pipeline, the command line and the Slicer module.

Stages report through a callback ``progress(stage, fraction, message)``. When the command
line runs with ``--progress-lines`` (as the Slicer module's child process does) each call is
printed as one machine-readable line on stdout::

    C2NET-PROGRESS {"stage": "segment", "fraction": 0.42, "message": "slice 12/30"}

and the final result as::

    C2NET-RESULT {"status": "ok", "report": "/path/report.json"}

:func:`parse_line` turns such a line back into a dict (or None for ordinary output), so the
reader side is testable without Slicer.
"""

from __future__ import annotations

import json
import sys
from typing import Callable, Optional, TextIO

PROGRESS_PREFIX = "C2NET-PROGRESS "
RESULT_PREFIX = "C2NET-RESULT "

#: Pipeline stages in order, with the words the Slicer stage list shows.
STAGES = (
    ("load", "Load CT"),
    ("normalise", "Normalise geometry"),
    ("locate", "Locate C2"),
    ("segment", "Segment pedicles"),
    ("measure", "Measure isthmus"),
    ("classify", "Classify risk (C2-Net)"),
    ("explain", "Attention maps"),
    ("report", "Write report"),
)
STAGE_NAMES = tuple(name for name, _ in STAGES)

ProgressCallback = Callable[[str, float, str], None]


def null_progress(stage: str, fraction: float, message: str = "") -> None:
    """A progress callback that ignores everything."""


def format_progress(stage: str, fraction: float, message: str = "") -> str:
    frac = min(max(float(fraction), 0.0), 1.0)
    payload = {"stage": stage, "fraction": round(frac, 4), "message": str(message)}
    return PROGRESS_PREFIX + json.dumps(payload, sort_keys=True)


def format_result(payload: dict) -> str:
    return RESULT_PREFIX + json.dumps(payload, sort_keys=True)


def parse_line(line: str) -> Optional[dict]:
    """``{"kind": "progress"|"result", ...}`` for a protocol line, None for anything else."""
    line = line.rstrip("\r\n")
    for prefix, kind in ((PROGRESS_PREFIX, "progress"), (RESULT_PREFIX, "result")):
        if line.startswith(prefix):
            try:
                payload = json.loads(line[len(prefix):])
            except json.JSONDecodeError:
                return None
            if not isinstance(payload, dict):
                return None
            payload["kind"] = kind
            return payload
    return None


def line_printer(stream: TextIO = sys.stdout) -> ProgressCallback:
    """A callback that prints protocol lines (flushed at once, for a reading parent)."""

    def _emit(stage: str, fraction: float, message: str = "") -> None:
        stream.write(format_progress(stage, fraction, message) + "\n")
        stream.flush()

    return _emit


def overall_fraction(stage: str, fraction: float) -> float:
    """Map a stage's own fraction onto 0..1 for a single progress bar (equal stage weights)."""
    if stage not in STAGE_NAMES:
        return 0.0
    i = STAGE_NAMES.index(stage)
    return (i + min(max(fraction, 0.0), 1.0)) / len(STAGE_NAMES)


def stage_printer(stream: Optional[TextIO] = None, quiet: bool = False) -> ProgressCallback:
    """A callback that tells a person at a terminal which stage runs (``--quiet``: nothing).

    One line per stage on stderr when it starts (``[3/8] Locate C2 ...``) and its time when it
    ends, so a run that takes seconds never looks hung. Sub-stage fractions are not printed.
    """
    if quiet:
        return null_progress
    import time

    started: dict = {}
    labels = dict(STAGES)

    def _emit(stage: str, fraction: float, message: str = "") -> None:
        out = stream or sys.stderr
        if stage not in labels:
            return
        if fraction <= 0.0 and stage not in started:
            started[stage] = time.perf_counter()
            n = STAGE_NAMES.index(stage) + 1
            out.write(f"[{n}/{len(STAGES)}] {labels[stage]} ...")
            out.flush()
        elif fraction >= 1.0 and stage in started:
            out.write(f" {time.perf_counter() - started.pop(stage):.2f} s\n")
            out.flush()

    return _emit
