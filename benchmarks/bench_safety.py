"""Replay every defect of issue 12 as a new user would, through the command line; print PASS/FAIL.

    python benchmarks/bench_safety.py [--keep DIR]

Each case runs ``c2net`` in a child process on a small phantom (or a crafted bad input) in a
scratch folder, then checks exit code, message and what happened to the user's files. The
script exits 1 when any case fails. Research use only - not a medical device.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

RESULTS = []


def c2net(*args, env=None, timeout=600):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "c2net", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def case(name: str, ok: bool, detail: str = "") -> None:
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""), flush=True)


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="c2net-safety-"))
    work.mkdir(parents=True, exist_ok=True)
    from c2net.phantom import make_phantom, write_phantom

    scans = work / "scans"
    ph = make_phantom(seed=11, spacing_mm=(0.8, 0.8, 1.0), mpd_left_mm=6.2, mpd_right_mm=3.4,
                      fov="c1_c4", direction="RAI")
    write_phantom(ph, scans, overwrite=True)
    ct = scans / "ct.nii.gz"

    # 1 assess --overwrite keeps unrelated files
    out = work / "report"
    out.mkdir(exist_ok=True)
    (out / "my_notes.txt").write_text("surgeon's notes")
    rc, so, se, dt = c2net("assess", ct, "--out", out, "--overwrite")
    case("assess --overwrite replaces only its own files",
         rc == 0 and (out / "my_notes.txt").read_text() == "surgeon's notes"
         and (out / "report.json").is_file(), f"rc {rc}, {dt:.1f} s")
    case("assess shows the stages as they run; --quiet silences them",
         "[3/8] Locate C2" in se and "[8/8] Write report" in se)

    # 2 output folder that is or holds the input
    before = tree(scans)
    rc, _, se, dt = c2net("assess", ct, "--out", scans, "--overwrite")
    case("assess --out = the input's own folder is refused, input intact",
         rc == 2 and "contains the input" in se and tree(scans) == before, f"rc {rc}, {dt:.1f} s")
    rc, _, se, _ = c2net("assess", ct, "--out", work, "--overwrite")
    case("assess --out = a parent of the input is refused, input intact",
         rc == 2 and "contains the input" in se and tree(scans) == before, f"rc {rc}")
    dicom = work / "dicom"
    dicom.mkdir(exist_ok=True)
    (dicom / "IM0001.dcm").write_bytes(b"\0" * 200)
    rc, _, se, _ = c2net("assess", dicom, "--out", dicom / "report")
    case("assess --out inside a DICOM input folder is refused",
         rc == 2 and "inside the input folder" in se and [p.name for p in dicom.iterdir()] == ["IM0001.dcm"])

    # 3 batch reruns
    cohort = work / "cohort"
    shutil.rmtree(cohort, ignore_errors=True)
    later = work / "later.nii.gz"
    later.write_bytes(b"not an image yet")
    manifest = work / "m.csv"
    manifest.write_text(f"case_id,input\na,{ct}\nb,{later}\n")
    rc, so, se, _ = c2net("batch", "--manifest", manifest, "--out", cohort, "--quiet")
    mode = stat.S_IMODE((cohort / "summary.csv").stat().st_mode) if (cohort / "summary.csv").exists() else 0
    umask = os.umask(0)
    os.umask(umask)
    case("batch exits non-zero (4) when a case failed", rc == 4 and "failures.csv" in so, f"rc {rc}")
    case("summary.csv / failures.csv have the user's normal permissions",
         mode == 0o666 & ~umask, f"mode {oct(mode)}")
    (cohort / "a" / "notes.txt").write_text("keep me")
    before = tree(cohort)
    rc, _, se, _ = c2net("batch", "--manifest", manifest, "--out", cohort, "--quiet")
    case("batch into the same folder without --resume/--overwrite is refused, nothing lost",
         rc == 2 and "--resume" in se and "--overwrite" in se and tree(cohort) == before, f"rc {rc}")
    sitk.WriteImage(sitk.ReadImage(str(ct)), str(later))
    rc, so, se, _ = c2net("batch", "--manifest", manifest, "--out", cohort, "--resume")
    rows = [json.loads((cohort / c / "report.json").read_text(encoding="utf-8"))["status"] for c in ("a", "b")]
    case("batch --resume re-runs the failed (now fixed) case and keeps the finished one",
         rc == 0 and rows == ["ok", "ok"] and (cohort / "a" / "notes.txt").read_text() == "keep me",
         f"rc {rc}, statuses {rows}")
    other = work / "m2.csv"
    other.write_text(f"case_id,input\nc,{work / 'missing.nrrd'}\n")
    rc, _, _, _ = c2net("batch", "--manifest", other, "--out", cohort, "--resume", "--quiet")
    ids = [ln.split(",")[0] for ln in (cohort / "summary.csv").read_text().splitlines()[1:]]
    case("a later batch run keeps the earlier cases' rows in summary.csv",
         ids == ["a", "a", "b", "b", "c"], f"case ids {ids}")
    rc, _, _, _ = c2net("batch", "--manifest", manifest, "--out", cohort, "--overwrite", "--quiet")
    case("batch --overwrite keeps the user's files in case folders",
         rc == 0 and (cohort / "a" / "notes.txt").read_text() == "keep me", f"rc {rc}")

    # 4 unwritable --out, found before any work
    locked = Path("/sys/kernel") if os.geteuid() == 0 else work / "locked"   # root writes anywhere else
    if locked.parent == work:
        locked.mkdir(exist_ok=True)
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    rc, _, se, dt = c2net("assess", ct, "--out", locked)
    case("an unwritable --out exits 2 naming the folder, before any work",
         rc == 2 and "cannot be written" in se.replace("cannot be created", "cannot be written")
         and "Traceback" not in se and "[1/8]" not in se, f"rc {rc}, {dt:.1f} s")

    # 5 sheared grids
    img = sitk.Cast(ph.ct, sitk.sitkInt16)
    d = np.asarray(img.GetDirection()).reshape(3, 3).copy()
    d[:, 2] = d[:, 2] + np.tan(np.radians(10)) * d[:, 0]
    img.SetDirection(tuple((d / np.linalg.norm(d, axis=0)).flatten()))
    sheared = work / "sheared.nrrd"
    sitk.WriteImage(img, str(sheared))
    rc, _, se, _ = c2net("assess", sheared, "--out", work / "sheared_out", "--overwrite")
    case("a sheared NRRD is refused with the fix, no raw ITK warning",
         rc == 2 and "sheared voxel grid" in se and "WARNING" not in se, f"rc {rc}")
    nii = work / "sheared.nii"
    sitk.WriteImage(sitk.Cast(ph.ct, sitk.sitkInt16), str(nii))
    raw = bytearray(nii.read_bytes())
    rows_ = np.array(struct.unpack("<12f", raw[280:328])).reshape(3, 4)
    rows_[0, 2] += 0.18 * rows_[2, 2]
    raw[280:328] = struct.pack("<12f", *rows_.flatten())
    (work / "sheared.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    rc, _, se, _ = c2net("assess", work / "sheared.nii.gz", "--out", work / "sheared_out2")
    case("a NIfTI with a sheared sform is refused, no raw ITK warning",
         rc == 2 and "sheared voxel grid" in se and "WARNING" not in se, f"rc {rc}")

    # 6 honest settings
    rc, so, _, _ = c2net("assess", ct, "--out", work / "screw", "--screw-mm", "6.5", "--quiet")
    rep = json.loads((work / "screw" / "report.json").read_text(encoding="utf-8")) if rc == 0 else {}
    fits = [(rep.get("sides") or {}).get(s, {}).get("screw_fit", {}).get("fit") for s in ("left", "right")]
    case("--screw-mm 6.5 is checked against each MPD (no 6.5 mm screw fits a 6.2 mm pedicle)",
         rc == 0 and fits == ["does_not_fit", "does_not_fit"] and "6.5 mm screw" in so, f"fit {fits}")
    seg_ok = []
    for name in ("segmentation.nii.gz", "segmentation.seg.nrrd"):
        rc, so, se, _ = c2net("measure", ct, "--pedicles", out / name, "--out", work / f"m_{name}.json")
        got = json.loads((work / f"m_{name}.json").read_text(encoding="utf-8")) if rc == 0 else {}
        seg_ok.append(rc == 0 and all((got.get("sides") or got).get(s) for s in ("left", "right")))
    case("c2net measure reads the tool's own segmentation.nii.gz and .seg.nrrd", all(seg_ok),
         f"{seg_ok}")
    rc, so, _, _ = c2net("demo", "--help")
    case("demo's phantom seed is --phantom-seed (assess --seed is a point)",
         "--phantom-seed" in so and "--seed " not in so)
    rc, so, _, _ = c2net("assess", "--help")
    case("the model options the hints name exist", "--seg-model" in so and "--cls-model" in so)
    env = dict(os.environ, PYTHONPATH=str(work / "nosk") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    (work / "nosk" / "sklearn").mkdir(parents=True, exist_ok=True)
    (work / "nosk" / "sklearn" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'sklearn'\", name='sklearn')\n")
    rc, _, se, _ = c2net("evaluate", "--predictions", work / "p.csv", "--truth", work / "t.csv",
                         "--out", work / "ev", env=env)
    case("evaluate without the [eval] extra exits 2 and names it",
         rc == 2 and "c2netplanner[eval]" in se, f"rc {rc}")

    # messages that said untrue things
    from c2net.errors import GeometryError
    from c2net.locate.volume import check_resolution
    coarse = sitk.Image(32, 32, 32, sitk.sitkInt16)
    coarse.SetSpacing((5.078, 5.078, 2.5))
    try:
        check_resolution(coarse)
        msg = ""
    except GeometryError as exc:
        msg = exc.message
    case("an OpenKBP-like 5.08 x 5.08 x 2.5 mm scan is described by its true slice spacing",
         "5.08 x 5.08 x 2.50 mm" in msg and "5.08 mm between slices" not in msg)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
    from c2net.load import load_ct
    from test_load import write_dicom_series  # the test suite's DICOM writer
    z = [0.0, 0.625, 1.25, 1.875, 3.125, 3.75, 4.375, 5.0]
    write_dicom_series(work / "gap", [np.array([-20.0, -18.0, 5.0 + v]) for v in z])
    text = " ".join(load_ct(work / "gap").warnings)
    case("a missing DICOM slice is called a missing slice", "1 slice(s) missing" in text
         and "non-uniform" not in text)
    ipps = [np.array([-20.0, -18.0, 5.0 + 2.0 * k]) for k in range(6)]
    write_dicom_series(work / "two", ipps, series_uid="1.2.3.1", prefix="A")
    write_dicom_series(work / "two", ipps, series_uid="1.2.3.2", prefix="B")
    text = " ".join(load_ct(work / "two").warnings)
    case("two series with the same slice count are called a tie", "tie at 6 slices" in text
         and "most slices" not in text)

    # 7 the report says what it rests on
    html = (out / "report.html").read_text(encoding="utf-8")
    case("the report states the model basis, MPD, the angles, RAS and what borderline asks",
         all(t in html for t in ("Not validated on patients", "MPD (minimum pediculoisthmic",
                                 "Medial angle: in the axial plane", "RAS mm",
                                 "Borderline means")) and "0.000" not in html and "1.000" not in html)

    # 8 attention on the right pedicle
    rc, so, se, _ = subprocess.run([sys.executable, "-m", "pytest", "-q",
                                    str(Path(__file__).resolve().parents[1] / "Testing" / "test_attention_side.py")],
                                   capture_output=True, text=True).returncode, "", "", 0
    case("attention: occlusion and Grad-CAM peak on the measured pedicle (held-out phantoms)", rc == 0)

    n_ok = sum(RESULTS)
    print(f"\n{n_ok}/{len(RESULTS)} cases PASS; work folder {work}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if n_ok == len(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
