"""The protocol between the Slicer module and its ``c2net assess`` child process.

No Slicer here: the command line, the incremental progress reader (partial lines, garbage,
crashes) and a real child process (progress, crash, cancel of a whole process tree).
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import sys
import textwrap
import time

import pytest
from c2net import slicer_process as sp
from c2net.progress import STAGE_NAMES, STAGES, format_progress, format_result

PY = sys.executable


# --------------------------------------------------------------------------- command line
def test_command_has_the_contracted_options():
    cmd = sp.build_assess_command(
        "/opt/Slicer/bin/PythonSlicer", "/tmp/in put.nrrd", "/tmp/out dir",
        seed_lps_mm=(-12.5, 30.0, -400.25), cutoff_mm=4.3, screw_mm=3.5,
        model_dir="/models", threads=2)
    assert cmd[:5] == ["/opt/Slicer/bin/PythonSlicer", "-m", "c2net", "assess", "/tmp/in put.nrrd"]
    assert cmd[cmd.index("--out") + 1] == "/tmp/out dir"
    i = cmd.index("--seed")
    assert [float(v) for v in cmd[i + 1:i + 4]] == [-12.5, 30.0, -400.25]
    assert cmd[cmd.index("--seed-frame") + 1] == "LPS"
    assert float(cmd[cmd.index("--cutoff-mm") + 1]) == 4.3
    assert float(cmd[cmd.index("--screw-mm") + 1]) == 3.5
    assert cmd[cmd.index("--model-dir") + 1] == "/models"
    assert cmd[cmd.index("--threads") + 1] == "2"
    assert cmd[-1] == "--progress-lines"
    assert "--vertebra-mask" not in cmd


def test_command_with_vertebra_mask_and_defaults():
    cmd = sp.build_assess_command("py", "in.nii.gz", "out", vertebra_mask="seg.nrrd", c2_label=3)
    # relative paths become absolute: the child runs in another working directory
    assert cmd[cmd.index("--vertebra-mask") + 1] == os.path.abspath("seg.nrrd")
    assert cmd[4] == os.path.abspath("in.nii.gz") and cmd[cmd.index("--out") + 1] == os.path.abspath("out")
    assert cmd[cmd.index("--c2-label") + 1] == "3"
    assert "--seed" not in cmd and "--model-dir" not in cmd and "--threads" not in cmd
    assert float(cmd[cmd.index("--cutoff-mm") + 1]) == 4.78


@pytest.mark.parametrize("kwargs, match", [
    (dict(vertebra_mask="seg.nrrd"), "label"),
    (dict(c2_label=2), "label"),
    (dict(vertebra_mask="seg.nrrd", c2_label=0), "positive"),
    (dict(seed_lps_mm=(1.0, 2.0)), "3 coordinates"),
    (dict(seed_lps_mm=(1.0, float("nan"), 2.0)), "finite"),
    (dict(cutoff_mm=0.1), "cutoff"),
    (dict(screw_mm=25.0), "screw"),
])
def test_command_refuses_what_the_core_would_refuse(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sp.build_assess_command("py", "in.nrrd", "out", **kwargs)


def test_command_parses_with_the_real_assess_parser():
    """When the core's ``assess`` command exists, its own parser must accept our argv."""
    try:
        mod = importlib.import_module("c2net.commands.assess")
    except ImportError:
        pytest.skip("c2net.commands.assess not available yet")
    parser = argparse.ArgumentParser()
    mod.add_arguments(parser)
    cmd = sp.build_assess_command("py", "in.nrrd", "out", seed_lps_mm=(-1.5, 2.0, -3.0),
                                  cutoff_mm=4.0, screw_mm=4.0, model_dir="m", threads=1)
    args = parser.parse_args(cmd[4:])
    assert [float(v) for v in args.seed] == [-1.5, 2.0, -3.0]
    assert float(args.cutoff_mm) == 4.0 and float(args.screw_mm) == 4.0
    assert args.progress_lines is True


def test_child_environment_puts_the_core_first_once(tmp_path):
    core = str(tmp_path / "module")
    env = sp.child_environment(core, base_env={"PYTHONPATH": os.pathsep.join(["/a", core]),
                                               "KEEP": "1"}, threads=2)
    assert env["PYTHONPATH"].split(os.pathsep) == [core, "/a"]
    assert env["KEEP"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["OMP_NUM_THREADS"] == "2" and env["PYTHONIOENCODING"] == "utf-8"
    assert "OMP_NUM_THREADS" not in sp.child_environment(core, base_env={})


def test_core_parent_dir_contains_the_package():
    assert os.path.isfile(os.path.join(sp.core_parent_dir(), "c2net", "progress.py"))


def test_find_python_slicer(tmp_path):
    assert sp.find_python_slicer(which=lambda name: "/x/PythonSlicer") == "/x/PythonSlicer"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "PythonSlicer").write_text("")
    assert sp.find_python_slicer(which=lambda n: None, executable=str(fake_bin / "SlicerApp-real"),
                                 is_windows=False) == str(fake_bin / "PythonSlicer")
    assert sp.find_python_slicer(which=lambda n: None, executable="/usr/bin/python3.11",
                                 is_windows=False) == "/usr/bin/python3.11"
    with pytest.raises(FileNotFoundError, match="PythonSlicer"):
        sp.find_python_slicer(which=lambda n: None, executable="/opt/Slicer/bin/SlicerApp-real",
                              is_windows=False)


# --------------------------------------------------------------------------- reader
def _recorded_stream() -> str:
    """What a real run prints: log lines, progress through every stage, garbage, result."""
    lines = ["c2net assess: Research use only \u2014 not a medical device.",
             "loading /data/ct.nrrd (512x512x245)"]
    for name in STAGE_NAMES:
        lines += [format_progress(name, 0.0, "start"), format_progress(name, 0.5, "half \u00b5m"),
                  format_progress(name, 1.0, "done")]
        if name == "segment":
            lines += ["C2NET-PROGRESS {not json", "\x1b[33mwarning: slice thickness 2.0 mm\x1b[0m",
                      "C2NET-PROGRESS [1, 2, 3]", ""]
    lines.append(format_result({"status": "ok", "report": "/tmp/out/report.json"}))
    return "\r\n".join(lines[:5]) + "\r\n" + "\n".join(lines[5:]) + "\n"


def _final_state(reader: sp.ProgressReader):
    return ([(s.name, s.state, s.fraction) for s in reader.stage_list()], reader.result,
            reader.malformed_lines, list(reader.log_lines))


def test_reader_on_a_recorded_stream():
    reader = sp.ProgressReader()
    events = reader.feed(_recorded_stream())
    kinds = [e.kind for e in events]
    assert kinds.count("progress") == 3 * len(STAGE_NAMES)
    assert kinds.count("result") == 1 and kinds.count("malformed") == 2
    outcome = reader.finish(0)
    assert outcome.ok and outcome.report_path == "/tmp/out/report.json"
    assert all(s.state == sp.DONE for s in reader.stage_list())
    assert reader.overall_fraction == pytest.approx(1.0)
    assert any("warning: slice thickness" in ln for ln in reader.log_lines)
    assert any(e.message == "half \u00b5m" for e in events)


@pytest.mark.parametrize("seed", range(4))
def test_reader_is_independent_of_chunking(seed):
    stream = _recorded_stream()
    whole = sp.ProgressReader()
    whole.feed(stream)
    whole.close()
    rng = random.Random(seed)
    pieces = sp.ProgressReader()
    i = 0
    n_events = 0
    while i < len(stream):
        step = 1 if seed == 0 else rng.randint(1, 40)
        n_events += len(pieces.feed(stream[i:i + step]))
        i += step
    n_events += len(pieces.close())
    assert _final_state(pieces) == _final_state(whole)
    assert n_events == len(stream.splitlines())


def test_partial_line_is_held_until_its_end_arrives():
    reader = sp.ProgressReader()
    line = format_progress("locate", 0.25, "searching")
    assert reader.feed(line[:17]) == []
    assert reader.stages["locate"].state == sp.PENDING
    (event,) = reader.feed(line[17:] + "\n")
    assert event.kind == "progress" and event.stage == "locate" and event.fraction == 0.25
    assert reader.stages["locate"].state == sp.RUNNING
    # earlier stages never reported are shown as skipped, not as pending forever
    assert reader.stages["load"].state == sp.SKIPPED


def test_unterminated_result_line_still_counts_at_end_of_stream():
    reader = sp.ProgressReader()
    reader.feed(format_progress("load", 1.0) + "\n" + format_result({"status": "ok", "report": "r.json"}))
    assert reader.result is None
    outcome = reader.finish(0)
    assert outcome.ok and outcome.report_path == "r.json"


def test_crash_without_result_line_fails_the_running_stage():
    reader = sp.ProgressReader()
    reader.feed(format_progress("load", 1.0) + "\n" + format_progress("segment", 0.3, "slice 3") + "\n"
                + "Traceback (most recent call last):\n  File \"x.py\", line 1\nMemoryError\n")
    outcome = reader.finish(1)
    assert outcome.status == sp.CRASHED and not outcome.ok
    assert "exit code 1" in outcome.message and "MemoryError" in outcome.message
    assert reader.stages["segment"].state == sp.FAILED
    assert reader.stages["load"].state == sp.DONE
    assert reader.stages["report"].state == sp.PENDING
    assert "--debug" in outcome.hint


def test_killed_by_signal_and_silent_exit_are_crashes():
    r = sp.ProgressReader()
    r.feed(format_progress("classify", 0.1) + "\n")
    out = r.finish(-9)
    assert out.status == sp.CRASHED and "signal 9" in out.message
    r2 = sp.ProgressReader()
    out2 = r2.finish(0)
    assert out2.status == sp.CRASHED and "without reporting a result" in out2.message


def test_core_refusal_carries_message_and_hint():
    reader = sp.ProgressReader()
    reader.feed(format_progress("locate", 0.5) + "\n"
                + "error: C2 is not in the field of view (lowest slice is above C1).\n"
                + "hint: Check that the scan covers C2 completely, or give a seed point.\n")
    outcome = reader.finish(2)
    assert outcome.status == sp.ERROR
    assert outcome.message.startswith("C2 is not in the field of view")
    assert outcome.hint.startswith("Check that the scan covers C2")
    assert outcome.user_message().count("\n") == 1
    assert reader.stages["locate"].state == sp.FAILED


def test_unexpected_failure_printed_by_the_cli_is_a_crash_with_its_message():
    reader = sp.ProgressReader()
    reader.feed(format_progress("locate", 1.0) + "\n"
                + "error: unexpected failure in 'assess': ModuleNotFoundError: No module named 'x'\n"
                + "hint: rerun with 'c2net --debug ...' for the traceback and report it.\n")
    outcome = reader.finish(1)
    assert outcome.status == sp.CRASHED
    assert "ModuleNotFoundError" in outcome.message and "--debug" in outcome.hint


def test_result_line_with_error_status():
    reader = sp.ProgressReader()
    reader.feed(format_result({"status": "error", "report": "out/report.json",
                               "error": {"code": "not_ct", "message": "This is an MR image.",
                                         "hint": "Load a CT."}}) + "\n")
    outcome = reader.finish(2)
    assert outcome.status == sp.ERROR and outcome.code == "not_ct"
    assert outcome.message == "This is an MR image." and outcome.hint == "Load a CT."


def test_unknown_stage_and_bad_fraction_do_not_break_the_list():
    reader = sp.ProgressReader()
    ev = reader.feed('C2NET-PROGRESS {"stage": "future-stage", "fraction": 0.5, "message": ""}\n'
                     'C2NET-PROGRESS {"stage": "load", "fraction": "lots", "message": ""}\n'
                     'C2NET-PROGRESS {"stage": "load", "fraction": 7, "message": "clamped"}\n')
    assert [e.kind for e in ev] == ["progress", "malformed", "progress"]
    assert reader.stages["load"].state == sp.DONE and reader.stages["load"].fraction == 1.0
    assert len(reader.stage_list()) == len(STAGES)


def test_cancel_outcome_and_log_is_bounded():
    reader = sp.ProgressReader(max_log_lines=10)
    reader.feed("".join(f"line {i}\n" for i in range(100)) + format_progress("segment", 0.2) + "\n")
    assert len(reader.log_lines) == 10 and reader.log_lines[-1] == "line 99"
    outcome = reader.finish(-15, cancelled=True)
    assert outcome.status == sp.CANCELLED
    assert reader.stages["segment"].state == sp.SKIPPED


def test_stage_text():
    st = sp.StageStatus("segment", "Segment pedicles", sp.RUNNING, 0.42, "slice 12/30")
    assert st.text() == "\u25b6 Segment pedicles \u2014 42 % slice 12/30"
    assert sp.StageStatus("load", "Load CT", sp.DONE, 1.0, "x").text() == "\u2713 Load CT"


def test_read_report(tmp_path):
    good = tmp_path / "report.json"
    good.write_text('{"schema": "c2netplanner-report", "sides": {"left": {}}}')
    assert sp.read_report(str(good))["sides"] == {"left": {}}
    bad = tmp_path / "other.json"
    bad.write_text('{"schema": "something"}')
    with pytest.raises(ValueError, match="not a C2NetPlanner report"):
        sp.read_report(str(bad))


# --------------------------------------------------------------------------- real child process
def _child(code: str) -> list:
    return [PY, "-c", textwrap.dedent(code)]


def test_child_process_streams_progress_without_blocking(tmp_path):
    code = f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(sp.__file__)[:-len('/c2net')]!r})
        from c2net.progress import format_progress, format_result
        out = sys.stdout
        out.write("starting\\n"); out.flush()
        line = format_progress("load", 0.5, "reading")
        out.write(line[:10]); out.flush(); time.sleep(0.3)
        out.write(line[10:] + "\\n"); out.flush()
        time.sleep(0.3)
        out.write(format_progress("load", 1.0) + "\\n")
        out.write(format_result({{"status": "ok", "report": {str(tmp_path / 'report.json')!r}}}) + "\\n")
    """
    proc = sp.AssessmentProcess(_child(code)).start()
    t0 = time.monotonic()
    proc.poll()
    assert time.monotonic() - t0 < 0.1  # poll never waits for the child
    seen = []
    outcome = proc.wait(timeout_s=30, on_events=seen.extend)
    assert outcome.ok and outcome.report_path == str(tmp_path / "report.json")
    assert outcome.returncode == 0
    assert [e.fraction for e in seen if e.kind == "progress"] == [0.5, 1.0]
    assert proc.reader.stages["load"].state == sp.DONE


def test_child_crash_is_reported(tmp_path):
    proc = sp.AssessmentProcess(_child("""
        import sys
        print('C2NET-PROGRESS {"stage": "segment", "fraction": 0.1, "message": ""}', flush=True)
        raise SystemExit("onnxruntime: cannot allocate memory")
    """))
    outcome = proc.wait(timeout_s=30)
    assert outcome.status == sp.CRASHED and outcome.returncode == 1
    assert "cannot allocate memory" in outcome.message


@pytest.mark.skipif(os.name == "nt", reason="process-group check is POSIX-specific")
def test_cancel_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = f"""
        import subprocess, sys, time
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(g.pid))
        print('C2NET-PROGRESS {{"stage": "segment", "fraction": 0.2, "message": ""}}', flush=True)
        time.sleep(120)
    """
    proc = sp.AssessmentProcess(_child(code)).start()
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        proc.poll()
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    t0 = time.monotonic()
    proc.cancel(timeout_s=3)
    outcome = proc.wait(timeout_s=10)
    assert time.monotonic() - t0 < 8
    assert outcome.status == sp.CANCELLED
    # the grandchild is gone too (reaped by init or a zombie at worst: check /proc state)
    time.sleep(0.2)
    alive = True
    try:
        os.kill(grandchild, 0)
        stat = open(f"/proc/{grandchild}/stat").read() if os.path.exists(f"/proc/{grandchild}/stat") else ""
        alive = bool(stat) and stat.split(")")[-1].split()[0] != "Z"
    except ProcessLookupError:
        alive = False
    assert not alive, "grandchild survived Cancel"


# --------------------------------------------------------------------------- the real core
@pytest.mark.slow
def test_real_assess_child_on_a_phantom(tmp_path):
    """The exact path the module takes: phantom file -> build_assess_command -> child process."""
    try:
        from c2net.phantom import make_phantom, write_phantom
        for name in ("c2net.assess", "c2net.locate", "c2net.segment", "c2net.measure", "c2net.classify"):
            importlib.import_module(name)
        from c2net.models import default_model_dir, read_index
        read_index(default_model_dir())
    except Exception as exc:  # the core or its models are not complete in this checkout
        pytest.skip(f"core pipeline not available: {exc}")
    files = write_phantom(make_phantom(seed=3, spacing_mm=1.0, fov="c1_c4", direction=None),
                          tmp_path / "phantom")
    cmd = sp.build_assess_command(sp.find_python_slicer(), files["ct"], tmp_path / "out", threads=1)
    proc = sp.AssessmentProcess(cmd, cwd=sp.core_parent_dir(), env=sp.child_environment(threads=1))
    outcome = proc.wait(timeout_s=300)
    assert outcome.ok, outcome.user_message() + "\n" + "\n".join(outcome.log_tail)
    report = sp.read_report(outcome.report_path)
    out = os.path.dirname(outcome.report_path)
    for name in ("segmentation.seg.nrrd", "attention.nrrd"):
        assert os.path.isfile(os.path.join(out, name)), name
    import numpy as np
    for side in ("left", "right"):
        info = report["sides"][side]
        a, b = (np.asarray(p, dtype=float) for p in info["mpd_endpoints_lps_mm"])
        # the markups line the module draws has exactly the reported MPD as its length
        assert abs(np.linalg.norm(b - a) - info["mpd_mm"]) < 0.01
    assert all(s.state in (sp.DONE, sp.SKIPPED) for s in proc.reader.stage_list())


def test_trajectories_reach_the_child_as_lps_lines_the_cli_accepts():
    """"Measure along my trajectory": the module's lines become --trajectory-* in LPS, which
    the command line parses back to the same points."""
    import argparse

    import numpy as np
    from c2net.commands import assess as assess_cmd
    from c2net.commands.measure import trajectories_from_args
    from c2net.slicer_process import build_assess_command

    lines = {"left": [(20.0, -15.0, 40.0), (8.0, -40.0, 45.0)],
             "right": [(-20.0, -15.0, 40.0), (-8.0, -40.0, 45.0)]}
    cmd = build_assess_command("python", "in.nrrd", "out", trajectories_lps_mm=lines)
    parser = argparse.ArgumentParser()
    assess_cmd.add_arguments(parser)
    args = parser.parse_args(cmd[4:])
    got = trajectories_from_args(args)
    assert set(got) == {"left", "right"}
    for side in lines:
        np.testing.assert_allclose(np.asarray(got[side]), np.asarray(lines[side]))
    with pytest.raises(ValueError, match="shorter than"):
        build_assess_command("python", "in.nrrd", "out",
                             trajectories_lps_mm={"left": [(0, 0, 0), (1, 1, 1)]})
    with pytest.raises(ValueError, match="left' or 'right"):
        build_assess_command("python", "in.nrrd", "out",
                             trajectories_lps_mm={"middle": lines["left"]})
