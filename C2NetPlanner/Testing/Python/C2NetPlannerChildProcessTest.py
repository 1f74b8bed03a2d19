"""Runs inside Slicer (ctest): the core as a child ``PythonSlicer`` process, end to end.

Checks what only a real Slicer installation can show: that ``PythonSlicer`` is found from
Slicer's environment, that ``import c2net`` works in the child with the module's folder on
its path, and that ``c2net assess --progress-lines`` on a synthetic phantom (offline) streams
progress for the pipeline's stages and ends with an OK result line whose report exists.
Exits non-zero on failure (Slicer --testing turns an exception into a failed test).
"""

import os
import tempfile

import slicer
from c2net import slicer_process
from c2net.phantom import make_phantom, write_phantom
from c2net.progress import STAGE_NAMES

moduleDir = os.path.dirname(slicer.modules.c2netplanner.path)
missing = slicer_process.missing_requirements(slicer_process.parse_requirements(
    open(os.path.join(moduleDir, "Resources", "requirements.txt"), encoding="utf-8").read()))
if missing:
    raise RuntimeError(f"Python packages missing in this Slicer: {missing}")

workDir = tempfile.mkdtemp(dir=slicer.app.temporaryPath)
files = write_phantom(make_phantom(seed=3, spacing_mm=1.0, fov="c1_c4", direction=None),
                      os.path.join(workDir, "phantom"))
command = slicer_process.build_assess_command(
    slicer_process.find_python_slicer(), str(files["ct"]), os.path.join(workDir, "result"), threads=2)
process = slicer_process.AssessmentProcess(
    command, cwd=moduleDir, env=slicer_process.child_environment(moduleDir, threads=2))
outcome = process.wait(timeout_s=600)
print("\n".join(outcome.log_tail))
if not outcome.ok:
    raise RuntimeError(f"c2net assess failed in PythonSlicer: {outcome.user_message()}")
if not os.path.isfile(outcome.report_path):
    raise RuntimeError(f"the result line names a missing report: {outcome.report_path}")
seen = [name for name in STAGE_NAMES if process.reader.stages[name].state == slicer_process.DONE]
if len(seen) < len(STAGE_NAMES) - 1:
    raise RuntimeError(f"too few stages reported done: {seen}")
print(f"C2NetPlannerChildProcessTest passed in {process.elapsed_s:.1f} s")
