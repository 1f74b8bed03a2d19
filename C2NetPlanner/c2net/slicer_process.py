"""The child process behind Slicer's "Assess C2" button, without Slicer.

The Slicer module never runs the pipeline on its GUI thread. It starts
``PythonSlicer -m c2net assess INPUT --out DIR ... --progress-lines`` as a child process and
reads the child's stdout, which carries the line protocol of :mod:`c2net.progress`::

    C2NET-PROGRESS {"stage": "segment", "fraction": 0.42, "message": "slice 12/30"}
    C2NET-RESULT {"status": "ok", "report": "/tmp/.../report.json"}

mixed with ordinary log lines and, on a refusal, the CLI's ``error:`` / ``hint:`` lines.

This module holds everything about that exchange that does not need Slicer, so it is tested
with plain pytest:

* :func:`find_python_slicer`, :func:`build_assess_command`, :func:`child_environment`,
  :func:`popen_kwargs` - the command line and how to start it (its own process group, so
  that Cancel can stop the whole tree);
* :class:`ProgressReader` - an incremental parser: feed it text chunks as they arrive (partial
  lines, garbage, CRLF), it tracks each stage's state for the stage list and the overall
  fraction, and at the end tells a clean result from a refusal, a crash or a cancel;
* :class:`AssessmentProcess` - the running child: a thread reads its stdout into a queue and
  :meth:`AssessmentProcess.poll` drains the queue without ever blocking (the Slicer widget calls
  it from a ``qt.QTimer``; the Python console can call :meth:`AssessmentProcess.wait`);
* :func:`kill_process_tree` - Cancel.

Frames: the seed point handed to the child is LPS millimetres (``--seed-frame LPS``); convert
Slicer's RAS with :mod:`c2net.slicer_geometry` first.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from .progress import RESULT_PREFIX, STAGES, parse_line
from .verdict import DEFAULT_CUTOFF_MM, DEFAULT_SCREW_MM, DecisionSettings

# Stage states shown in the stage list.
PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"

_STATE_MARKS = {PENDING: "\u25cb", RUNNING: "\u25b6", DONE: "\u2713", FAILED: "\u2717", SKIPPED: "\u2013"}

# Outcome statuses.
OK = "ok"
ERROR = "error"          # the core refused the input with a message and a hint
CRASHED = "crashed"      # the child died without a result line (or printed a broken one)
CANCELLED = "cancelled"  # the user pressed Cancel

MAX_LOG_LINES = 400
MAX_PARTIAL_LINE_CHARS = 1_000_000  # a "line" longer than this is garbage, not protocol


# --------------------------------------------------------------------------- command line
def find_python_slicer(
    which: Callable[[str], Optional[str]] = shutil.which,
    executable: Optional[str] = None,
    is_windows: Optional[bool] = None,
) -> str:
    """The Python interpreter to run the core in.

    Inside Slicer that is ``PythonSlicer`` (on ``PATH`` in Slicer's environment, else beside
    ``sys.executable``). Outside Slicer (tests, plain Python) it is ``sys.executable``.
    """
    executable = sys.executable if executable is None else executable
    is_windows = (os.name == "nt") if is_windows is None else is_windows
    found = which("PythonSlicer")
    if found:
        return found
    if executable:
        beside = os.path.join(os.path.dirname(executable),
                              "PythonSlicer.exe" if is_windows else "PythonSlicer")
        if os.path.isfile(beside):
            return beside
        name = os.path.basename(executable).lower()
        if name.startswith("python"):
            return executable
    raise FileNotFoundError(
        "Cannot find the PythonSlicer executable to run the assessment. "
        "Start Slicer normally (not a bare Python) or reinstall the extension."
    )


def _num(x: float) -> str:
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {x!r}")
    return repr(value)


#: A trajectory shorter than this cannot define a pedicle axis (mm).
MIN_TRAJECTORY_MM = 5.0


def build_assess_command(
    python_executable: str,
    input_path: str,
    out_dir: str,
    *,
    seed_lps_mm: Optional[Sequence[float]] = None,
    vertebra_mask: Optional[str] = None,
    c2_label: Optional[int] = None,
    cutoff_mm: float = DEFAULT_CUTOFF_MM,
    screw_mm: float = DEFAULT_SCREW_MM,
    model_dir: Optional[str] = None,
    threads: Optional[int] = None,
    progress_lines: bool = True,
    trajectories_lps_mm: Optional[dict] = None,
) -> List[str]:
    """The argv list for ``python -m c2net assess`` (no shell, so no quoting issues).

    ``trajectories_lps_mm``: ``{"left"|"right": (entry, target)}`` LPS mm, a side measured along
    the surgeon's line instead of its segmented mask (``--trajectory-left/right``).

    ``seed_lps_mm`` is one LPS point in mm; ``vertebra_mask`` a label map file in which
    ``c2_label`` marks C2 (both or neither). ``cutoff_mm`` and ``screw_mm`` are checked with the
    core's own :class:`c2net.verdict.DecisionSettings`, so the module cannot start a run the
    core would refuse for its settings.
    """
    if not input_path:
        raise ValueError("no input volume file")
    if not out_dir:
        raise ValueError("no output folder")
    DecisionSettings(cutoff_mm=float(cutoff_mm), screw_mm=float(screw_mm))  # raises ValueError
    # Absolute paths: the child runs in the module's folder, not in the caller's.
    cmd = [python_executable, "-m", "c2net", "assess", os.path.abspath(str(input_path)),
           "--out", os.path.abspath(str(out_dir))]
    if seed_lps_mm is not None:
        seed = [float(v) for v in seed_lps_mm]
        if len(seed) != 3:
            raise ValueError(f"the seed point needs 3 coordinates, got {len(seed)}")
        cmd += ["--seed", *(_num(v) for v in seed), "--seed-frame", "LPS"]
    if (vertebra_mask is None) != (c2_label is None):
        raise ValueError("a vertebra mask needs the label value of C2 (and vice versa)")
    if vertebra_mask is not None:
        label = int(c2_label)  # type: ignore[arg-type]
        if label <= 0:
            raise ValueError(f"the C2 label must be a positive integer, got {c2_label!r}")
        cmd += ["--vertebra-mask", os.path.abspath(str(vertebra_mask)), "--c2-label", str(label)]
    for side, line in sorted((trajectories_lps_mm or {}).items()):
        if side not in ("left", "right"):
            raise ValueError(f"a trajectory side must be 'left' or 'right', got {side!r}")
        pts = [[float(v) for v in p] for p in line]
        if len(pts) != 2 or any(len(p) != 3 for p in pts):
            raise ValueError(f"the {side} trajectory needs an entry and a target point (3 coordinates each)")
        if math.dist(pts[0], pts[1]) < MIN_TRAJECTORY_MM:
            raise ValueError(f"the {side} trajectory is shorter than {MIN_TRAJECTORY_MM:g} mm: place "
                             "its entry near the lamina and its target in the vertebral body")
        cmd += [f"--trajectory-{side}", *(_num(v) for p in pts for v in p)]
    if trajectories_lps_mm and seed_lps_mm is None:
        cmd += ["--seed-frame", "LPS"]
    cmd += ["--cutoff-mm", _num(cutoff_mm), "--screw-mm", _num(screw_mm)]
    if model_dir:
        cmd += ["--model-dir", os.path.abspath(os.path.expanduser(str(model_dir)))]
    if threads is not None and int(threads) > 0:
        cmd += ["--threads", str(int(threads))]
    if progress_lines:
        cmd.append("--progress-lines")
    return cmd


def core_parent_dir() -> str:
    """The folder that contains the ``c2net`` package (the Slicer module's folder)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_environment(
    core_dir: Optional[str] = None,
    base_env: Optional[Mapping[str, str]] = None,
    threads: Optional[int] = None,
) -> Dict[str, str]:
    """Environment for the child: the core importable, unbuffered UTF-8 output, thread caps."""
    env = dict(os.environ if base_env is None else base_env)
    core_dir = core_parent_dir() if core_dir is None else core_dir
    parts = [core_dir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != core_dir]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if threads is not None and int(threads) > 0:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(int(threads))
    return env


def popen_kwargs(cwd: Optional[str], env: Optional[Mapping[str, str]]) -> dict:
    """``subprocess.Popen`` keyword arguments: binary stdout+stderr pipe, own process group,
    no console window on Windows."""
    kwargs: dict = dict(
        cwd=cwd, env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
    )
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        info = subprocess.STARTUPINFO()
        info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
        info.wShowWindow = 0
        kwargs["startupinfo"] = info
        kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP
                                   | getattr(subprocess, "CREATE_NO_WINDOW", 0))
    else:
        kwargs["start_new_session"] = True
    return kwargs


# --------------------------------------------------------------------------- protocol reader
@dataclass
class StageStatus:
    """One row of the stage list."""

    name: str
    label: str
    state: str = PENDING
    fraction: float = 0.0
    message: str = ""

    def text(self) -> str:
        """The row as shown, e.g. ``"▶ Segment pedicles — 42 % slice 12/30"``."""
        mark = _STATE_MARKS.get(self.state, "?")
        out = f"{mark} {self.label}"
        if self.state == RUNNING:
            out += f" \u2014 {int(round(100 * self.fraction))} %"
        if self.message and self.state in (RUNNING, FAILED):
            out += f" {self.message}"
        return out


@dataclass
class ProgressEvent:
    """Something the widget may want to react to, produced by :meth:`ProgressReader.feed`."""

    kind: str                 # "progress", "result", "log", "malformed"
    line: str = ""
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    payload: Optional[dict] = None


@dataclass
class AssessmentOutcome:
    """How a child run ended."""

    status: str                          # OK, ERROR, CRASHED, CANCELLED
    report_path: Optional[str] = None    # report.json (status OK)
    message: str = ""
    hint: str = ""
    code: str = ""
    returncode: Optional[int] = None
    result: Optional[dict] = None        # the C2NET-RESULT payload, if any
    log_tail: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def user_message(self) -> str:
        """The two lines the widget shows (same wording as the CLI's error/hint)."""
        text = self.message or self.status
        if self.hint:
            text += f"\n{self.hint}"
        return text


class ProgressReader:
    """Incremental parser of the child's output stream.

    Feed it text as it arrives (any chunking); it keeps an unfinished last line until its end
    arrives. Protocol lines update the stage states; everything else is kept (bounded) as log.
    """

    def __init__(self, stages: Sequence[tuple] = STAGES, max_log_lines: int = MAX_LOG_LINES):
        self.stages: Dict[str, StageStatus] = {
            name: StageStatus(name, label) for name, label in stages
        }
        self._order = [name for name, _ in stages]
        self._buffer = ""
        self._max_log = int(max_log_lines)
        self.log_lines: List[str] = []
        self.malformed_lines = 0
        self.result: Optional[dict] = None
        self.error_message = ""
        self.error_hint = ""
        self.current_stage: Optional[str] = None
        self._closed = False

    # -- feeding ---------------------------------------------------------------
    def feed(self, text: str) -> List[ProgressEvent]:
        """Consume a chunk of output; return the events of the lines it completed."""
        if self._closed:
            raise RuntimeError("feed() after close()")
        self._buffer += text
        events: List[ProgressEvent] = []
        while True:
            cut = self._buffer.find("\n")
            if cut < 0:
                break
            line, self._buffer = self._buffer[:cut], self._buffer[cut + 1:]
            events.append(self._handle_line(line))
        if len(self._buffer) > MAX_PARTIAL_LINE_CHARS:  # runaway output without newlines
            events.append(self._handle_line(self._buffer[:200] + " ...[truncated]"))
            self._buffer = ""
        return events

    def close(self) -> List[ProgressEvent]:
        """End of stream: an unterminated last line still counts."""
        events: List[ProgressEvent] = []
        if self._buffer:
            events.append(self._handle_line(self._buffer))
            self._buffer = ""
        self._closed = True
        return events

    def _log(self, line: str) -> None:
        self.log_lines.append(line)
        if len(self.log_lines) > self._max_log:
            del self.log_lines[: len(self.log_lines) - self._max_log]

    def _handle_line(self, raw: str) -> ProgressEvent:
        line = raw.rstrip("\r\n").replace("\x00", "")
        parsed = parse_line(line)
        if parsed is None:
            if line.startswith(("C2NET-PROGRESS", "C2NET-RESULT")):
                self.malformed_lines += 1
                self._log(line)
                return ProgressEvent("malformed", line=line)
            self._log(line)
            stripped = line.strip()
            if stripped.startswith("error:"):
                self.error_message = stripped[len("error:"):].strip()
            elif stripped.startswith("hint:"):
                self.error_hint = stripped[len("hint:"):].strip()
            return ProgressEvent("log", line=line)
        if parsed["kind"] == "result":
            self.result = parsed
            return ProgressEvent("result", line=line, payload=parsed)
        stage = str(parsed.get("stage", ""))
        try:
            fraction = min(max(float(parsed.get("fraction", 0.0)), 0.0), 1.0)
        except (TypeError, ValueError):
            self.malformed_lines += 1
            return ProgressEvent("malformed", line=line)
        message = str(parsed.get("message", ""))
        if stage not in self.stages:
            # A stage this module does not know (newer core): log it, keep the list intact.
            self._log(line)
            return ProgressEvent("progress", line=line, stage=stage, fraction=fraction,
                                 message=message, payload=parsed)
        self._advance_to(stage, fraction, message)
        return ProgressEvent("progress", line=line, stage=stage, fraction=fraction,
                             message=message, payload=parsed)

    def _advance_to(self, stage: str, fraction: float, message: str) -> None:
        index = self._order.index(stage)
        for earlier in self._order[:index]:
            st = self.stages[earlier]
            if st.state == RUNNING:
                st.state, st.fraction = DONE, 1.0
            elif st.state == PENDING:
                st.state = SKIPPED
        st = self.stages[stage]
        st.fraction = fraction
        st.message = message
        st.state = DONE if fraction >= 1.0 else RUNNING
        self.current_stage = stage

    # -- state -------------------------------------------------------------------
    @property
    def overall_fraction(self) -> float:
        """0..1 for a single progress bar (equal stage weights, skipped stages count as done)."""
        total = 0.0
        for st in self.stages.values():
            if st.state in (DONE, SKIPPED):
                total += 1.0
            elif st.state in (RUNNING, FAILED):
                total += st.fraction
        return total / max(len(self.stages), 1)

    def stage_list(self) -> List[StageStatus]:
        return [self.stages[name] for name in self._order]

    def finish(self, returncode: Optional[int], cancelled: bool = False) -> AssessmentOutcome:
        """Close the stream and decide how the run ended."""
        if not self._closed:
            self.close()
        tail = self.log_lines[-30:]
        result = self.result
        if cancelled:
            self._fail_running(SKIPPED)
            return AssessmentOutcome(CANCELLED, message="Assessment cancelled.",
                                     returncode=returncode, result=result, log_tail=tail)
        if result is not None:
            status = str(result.get("status", ""))
            report = result.get("report")
            if status == OK and report:
                for st in self.stages.values():
                    if st.state == RUNNING:
                        st.state, st.fraction = DONE, 1.0
                    elif st.state == PENDING:
                        st.state = SKIPPED
                return AssessmentOutcome(OK, report_path=str(report), returncode=returncode,
                                         result=result, log_tail=tail)
            err = result.get("error") if isinstance(result.get("error"), dict) else {}
            self._fail_running(FAILED)
            message = str(err.get("message") or self.error_message
                          or result.get("message") or f"The assessment ended with status {status!r}.")
            return AssessmentOutcome(
                ERROR if status == ERROR else CRASHED,
                report_path=str(report) if report else None,
                message=message, hint=str(err.get("hint") or self.error_hint),
                code=str(err.get("code", "")), returncode=returncode, result=result, log_tail=tail)
        self._fail_running(FAILED)
        if self.error_message and returncode is not None and returncode > 0:
            # The CLI exits 2/3 for a refusal (C2NetError) and 1 for an unexpected failure.
            return AssessmentOutcome(CRASHED if returncode == 1 else ERROR,
                                     message=self.error_message, hint=self.error_hint,
                                     returncode=returncode, log_tail=tail)
        if returncode is not None and returncode < 0:
            why = f"The assessment process was killed by signal {-returncode}"
            why += " (out of memory?)." if -returncode == getattr(signal, "SIGKILL", 9) else "."
        elif returncode == 0:
            why = "The assessment process ended without reporting a result."
        else:
            why = f"The assessment process failed (exit code {returncode})."
        last = next((ln for ln in reversed(tail) if ln.strip()), "")
        if last:
            why += f" Last output: {last.strip()[:300]}"
        return AssessmentOutcome(
            CRASHED, message=why,
            hint="See the Python console / application log for the full output; rerun "
                 "'c2net --debug assess ...' from a terminal to get the traceback.",
            returncode=returncode, log_tail=tail)

    def _fail_running(self, state: str) -> None:
        for st in self.stages.values():
            if st.state == RUNNING:
                st.state = state


# --------------------------------------------------------------------------- process tree
def kill_process_tree(proc: subprocess.Popen, timeout_s: float = 3.0) -> None:
    """Stop ``proc`` and every process it started (Cancel).

    POSIX: the child was started in its own session (:func:`popen_kwargs`), so its process
    group holds the whole tree (PythonSlicer's launcher, the real interpreter, any worker):
    SIGTERM to the group, then SIGKILL after ``timeout_s``. Windows: ``taskkill /T /F``.
    """
    if proc.poll() is not None and os.name != "nt":
        # Already gone, but grandchildren in its group may live on.
        _signal_group(proc.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        return
    if os.name == "nt":  # pragma: no cover - Windows only
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, creationflags=flags)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state)
        pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        pgid = os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        pgid = None
    try:
        if pgid is not None and pgid == pid and pgid != os.getpgrp():
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- running child
_EOF = object()


class AssessmentProcess:
    """A running ``c2net assess`` child whose output is read on a thread.

    ``poll()`` never blocks: it drains whatever the reader thread queued, feeds it to the
    :class:`ProgressReader` and returns the events. The Slicer widget calls it from a
    ``qt.QTimer``; scripts call :meth:`wait`.
    """

    def __init__(self, command: Sequence[str], cwd: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None,
                 reader: Optional[ProgressReader] = None):
        self.command = list(command)
        self.cwd = cwd
        self.env = env
        self.reader = reader if reader is not None else ProgressReader()
        self.proc: Optional[subprocess.Popen] = None
        self.outcome: Optional[AssessmentOutcome] = None
        self.started_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._cancelled = False
        self._returncode: Optional[int] = None
        self._eof = False

    def start(self) -> AssessmentProcess:
        if self.proc is not None:
            raise RuntimeError("already started")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.command, **popen_kwargs(self.cwd, self.env))
        self._thread = threading.Thread(target=self._read_output, name="c2net-assess-reader",
                                        daemon=True)
        self._thread.start()
        return self

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stream = self.proc.stdout
        while True:
            try:
                chunk = stream.read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            text = decoder.decode(chunk)
            if text:
                self._queue.put(text)
        tail = decoder.decode(b"", final=True)
        if tail:
            self._queue.put(tail)
        returncode = self.proc.wait()
        self._queue.put((_EOF, returncode))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.outcome is None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def pid(self) -> Optional[int]:
        return None if self.proc is None else self.proc.pid

    def poll(self) -> List[ProgressEvent]:
        """Drain queued output (non-blocking); sets :attr:`outcome` once the child ended."""
        events: List[ProgressEvent] = []
        if self.proc is None or self.outcome is not None:
            return events
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple) and item and item[0] is _EOF:
                self._eof = True
                self._returncode = item[1]
                break
            events.extend(self.reader.feed(item))
        if self._eof:
            events.extend(self.reader.close())
            self.outcome = self.reader.finish(self._returncode, cancelled=self._cancelled)
            self.ended_at = time.monotonic()
            if self._thread is not None:
                self._thread.join(timeout=1.0)
        return events

    def cancel(self, timeout_s: float = 3.0) -> None:
        """Stop the child and its whole process tree; :meth:`poll` then reports CANCELLED."""
        if self.proc is None or self.outcome is not None:
            return
        self._cancelled = True
        kill_process_tree(self.proc, timeout_s)

    def wait(self, timeout_s: Optional[float] = None, interval_s: float = 0.05,
             on_events: Optional[Callable[[List[ProgressEvent]], None]] = None,
             ) -> AssessmentOutcome:
        """Block until the child ends (console / tests); cancels it after ``timeout_s``."""
        if self.proc is None:
            self.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.outcome is None:
            events = self.poll()
            if events and on_events is not None:
                on_events(events)
            if self.outcome is not None:
                break
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                deadline = None
            time.sleep(interval_s)
        return self.outcome

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.started_at


def read_report(report_path: str) -> dict:
    """Load ``report.json`` written by the core and check the fields the module displays."""
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    if not isinstance(report, dict) or report.get("schema") != "c2netplanner-report":
        raise ValueError(f"{report_path} is not a C2NetPlanner report")
    if not isinstance(report.get("sides"), dict):
        raise ValueError(f"{report_path} has no per-side results")
    return report



# --------------------------------------------------------------------------- dependencies
def parse_requirements(text: str) -> List[str]:
    """Requirement specifiers of a ``requirements.txt`` (comments, blanks and pip options dropped)."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(line)
    return out


def missing_requirements(
    requirements: Sequence[str],
    version_of: Optional[Callable[[str], str]] = None,
) -> List[str]:
    """The specifiers in ``requirements`` that the running Python does not satisfy.

    Checks installed distribution metadata only (nothing is imported, nothing installed), so the
    Slicer module can ask for consent before anything changes. Environment markers that do not
    apply here count as satisfied.
    """
    from packaging.requirements import Requirement

    if version_of is None:
        from importlib.metadata import version as version_of  # type: ignore[no-redef]
    missing = []
    for spec in requirements:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = version_of(req.name)
        except Exception:  # PackageNotFoundError, or a broken installation
            missing.append(spec)
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            missing.append(spec)
    return missing

__all__ = [
    "AssessmentOutcome", "AssessmentProcess", "ProgressEvent", "ProgressReader", "StageStatus",
    "build_assess_command", "child_environment", "core_parent_dir", "find_python_slicer",
    "kill_process_tree", "missing_requirements", "parse_requirements", "popen_kwargs",
    "read_report",
    "PENDING", "RUNNING", "DONE", "FAILED", "SKIPPED", "OK", "ERROR", "CRASHED", "CANCELLED",
    "RESULT_PREFIX",
]
