"""End-to-end cost of ``c2net assess``: time per stage and peak memory, per input size.

    .venv/bin/python benchmarks/bench_pipeline.py [--repeats 3] [--threads 2] [--real]

Cases (each run in its own child process, so ``ru_maxrss`` is that run's peak resident memory):

* ``phantom 0.4x0.4x0.625``: a clinical-resolution neck phantom padded with air to
  512 x 512 x 300 voxels (a typical cervical spine CT), written as NIfTI and assessed from
  the file;
* ``phantom 1 mm``: the same anatomy at 1 mm isotropic;
* ``--real``: the Visible Human Male head-and-neck DICOM series (512 x 512 x 245) from
  ``../shared/data/real`` when present, localised automatically.

Printed per case: the stage times reported by the pipeline (median over ``--repeats``; from
``timings_s``), the in-process :func:`c2net.assess.assess` wall time to a written report
(what Slicer calls), the ``c2net assess`` command's wall time as a user runs it (start-up,
every report file included; ``--quiet``) and the peak resident memory of each, for ONNX
Runtime (the product) and for the same pipeline with torch eager networks carrying the same
weights (the ratio of the network stages, and of the time inside the networks' calls alone:
"networks", without the finder, crops and softmax that share those stages), and, for the
first case, the same ORT pipeline without the finder's check of the U-Net masks (what the
check costs the wall time).
Machines here are shared; compare ratios, not absolute numbers. Research use only - not a
medical device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
STAGES = ("load", "locate", "segment", "finder", "segmentation_check", "measure", "classify",
          "explain", "report", "total")
#: "finder" is the part of "segment" the anatomical finder takes; "check" the compute of its
#: check of the U-Net masks (its measurement of each side's corridor), which runs beside the
#: measurement inside "measure"; its cost to the wall time is printed from a run without it.
SHORT = {"segmentation_check": "check", "finder": "(finder)"}


#: Child-process code that swaps the ONNX Runtime sessions of the (cached) models for torch
#: eager networks carrying the same weights, so the identical pipeline runs through torch.
TORCH_SWAP = """
import sys, types
sys.path.insert(0, {bench!r})
import numpy as np, torch
from bench_models import _torch_from_onnx
from c2net.models import load_model
torch.set_num_threads(a['threads'])

class TorchSession:
    def __init__(self, model):
        self.net = _torch_from_onnx(model.path, model.kind)[0]
        self.kind = model.kind
    def get_providers(self):
        return ['torch eager (benchmark)']
    def get_inputs(self):
        return [types.SimpleNamespace(name='input')]
    def run(self, names, feeds):
        t0 = time.perf_counter()
        x = torch.from_numpy(np.ascontiguousarray(next(iter(feeds.values()))))
        with torch.no_grad():
            if self.kind == 'segmentation':
                out = [self.net(x).numpy()]
            else:
                logits, cam = self.net.forward_with_cam(x)
                d = {{'logits': logits.numpy(), 'cam': cam.numpy()}}
                out = [d[n] for n in (names or ['logits', 'cam'])]
        NET[0] += time.perf_counter() - t0
        return out

for kind in ('segmentation', 'classifier'):
    m = load_model(kind, threads=a['threads'])
    m.session = TorchSession(m)
"""


#: Child-process code (every child) that adds up the time spent inside the networks' calls
#: (ONNX Runtime's ``InferenceSession.run``; the torch stand-in adds its own), so the network
#: stages are compared without the finder, crops and softmax that share their stages.
NET_TIMER = """
import onnxruntime as _ort
NET = [0.0]
_ort_run = _ort.InferenceSession.run
def _timed_run(self, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _ort_run(self, *args, **kwargs)
    finally:
        NET[0] += time.perf_counter() - t0
_ort.InferenceSession.run = _timed_run
"""


#: Child-process code that leaves out the finder's check of the U-Net masks (each such side is
#: then flagged), so that the check's cost to the wall time is what the two runs differ by.
NO_CHECK = """
import c2net.segment as _segment
_segment.finder_corridor_measurement = lambda ct, outcome, side, *scanner: (None, 'left out (benchmark)')
"""


def _env(tree: Optional[Path]) -> Optional[dict]:
    """The environment of a child that imports c2net from another checkout's tree."""
    if tree is None:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(tree).resolve() / "C2NetPlanner")]
                                        + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _child(args: list[str], tree: Optional[Path] = None) -> dict:
    """Run one assessment in a child process; return its stage times, wall time, peak RSS."""
    backend = args[0].get("backend")
    swap = (TORCH_SWAP.format(bench=str(Path(__file__).resolve().parent)) if backend == "torch"
            else NO_CHECK if backend == "no-check" else "")
    code = (
        "import json, resource, sys, time\n"
        "from c2net.assess import assess\n"
        "a = json.loads(sys.argv[1])\n" + NET_TIMER + swap +
        "from c2net.errors import C2NetError\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    r = assess(a['input'], a['out'], overwrite=True, threads=a['threads'],"
        " seed_lps_mm=a.get('seed'))\n"
        "except C2NetError as exc:\n"
        "    r = exc.assessment\n"
        "    r.status = 'error: ' + exc.code\n"
        "wall = time.perf_counter() - t\n"
        "print(json.dumps({'status': r.status, 'wall_s': wall, 'timings_s': r.timings_s,"
        " 'net_s': NET[0],"
        " 'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args[0])],
                         capture_output=True, text=True, env=_env(tree))
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cli(path: Path, out: Path, threads: int, seed=None, tree: Optional[Path] = None) -> dict:
    """``c2net assess`` as a user runs it, in a child: wall time and the command's peak RSS."""
    exe = Path(sys.executable).with_name("c2net")
    cmd = ([str(exe)] if exe.exists() else [sys.executable, "-m", "c2net"]) + [
        "assess", str(path), "--out", str(out), "--overwrite", "--quiet", "--threads",
        str(threads)] + ([] if seed is None else ["--seed", *map(str, seed)])
    code = ("import json, resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "p = subprocess.run(json.loads(sys.argv[1]), capture_output=True)\n"
            "w = time.perf_counter() - t\n"
            "print(json.dumps({'rc': p.returncode, 'wall_s': w, 'peak_mb': "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}))\n")
    if tree is not None:    # the other tree's package, through the same interpreter
        cmd = [sys.executable, "-m", "c2net"] + cmd[cmd.index("assess"):]
    out_ = subprocess.run([sys.executable, "-c", code, json.dumps(cmd)], capture_output=True,
                          text=True, env=_env(tree))
    return json.loads(out_.stdout.strip().splitlines()[-1])


def _phantom(tmp: Path, spacing, name: str, size=None) -> Path:
    """A neck phantom; with ``size`` its grid is padded with air to that many voxels (a
    scanner's reconstruction field of view is wider than the neck)."""
    import SimpleITK as sitk
    from c2net.phantom import make_phantom, write_phantom

    ph = make_phantom(seed=7, spacing_mm=spacing, mpd_left_mm=5.6, mpd_right_mm=3.9,
                      fov="c1_c7")
    write_phantom(ph, tmp / name, overwrite=True)
    path = tmp / name / "ct.nii.gz"
    if size is not None:
        img = sitk.ReadImage(str(path))
        extra = [max(0, int(w) - int(h)) for w, h in zip(size, img.GetSize())]
        lo = [e // 2 for e in extra]
        hi = [e - e // 2 for e in extra]
        sitk.WriteImage(sitk.ConstantPad(img, lo, hi, -1000), str(path), True)
    return path


def _real(tmp: Path) -> Path | None:
    tgz = REAL / "vhm_head_dicom.tgz"
    if not tgz.exists():
        return None
    dest = tmp / "vhm"
    with tarfile.open(tgz) as tf:
        tf.extractall(dest)  # noqa: S202 - the project's own test data
    return dest


def _size(path: Path) -> str:
    from c2net.load import load_ct

    img = load_ct(path).image
    sz = "x".join(str(v) for v in img.GetSize())
    sp = "x".join(f"{v:.3g}" for v in img.GetSpacing())
    return f"{sz} @ {sp} mm"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--real", action="store_true", help="also the Visible Human Male scan")
    ap.add_argument("--before", type=Path, default=None, metavar="TREE",
                    help="also time another checkout (e.g. a git worktree of the commit before a "
                         "change) on the first case: its runs alternate with this tree's, so a "
                         "busy machine's load falls on both alike; prints before -> now")
    ap.add_argument("--before-only", action="store_true",
                    help="with --before: only that comparison (no per-case table)")
    ap.add_argument("--no-torch", action="store_true",
                    help="skip the torch eager comparison (it needs the [train] extra)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        cases = [("phantom 0.4x0.4x0.625",
                  _phantom(tmp, (0.4, 0.4, 0.625), "fine", (512, 512, 300)), None)]
        if args.before is not None and args.before_only:
            _before_now(cases[0], tmp, args)
            return 0
        cases.append(("phantom 1 mm", _phantom(tmp, (1.0, 1.0, 1.0), "iso1"), None))
        if args.real:
            vhm = _real(tmp)
            if vhm is not None:
                cases.append(("VHM DICOM", vhm, None))
        print(f"c2net assess, ONNX Runtime CPU, {args.threads} threads, median of "
              f"{args.repeats} runs (seconds; peak = resident memory of the whole run)")
        head = f"{'case':<24}{'input':<34}" + "".join(
            f"{SHORT.get(s, s):>9}" for s in STAGES) + f"{'assess()':>9}{'peak MB':>9}"
        print(head)
        backends = ["onnxruntime"] + ([] if args.no_torch else ["torch"])
        for i, (name, path, seed) in enumerate(cases):
            size = _size(path)
            inference, walls, net = {}, {}, {}
            for backend in backends + (["no-check"] if i == 0 else []):
                runs = [_child([{"input": str(path), "out": str(tmp / "out"), "seed": seed,
                                 "threads": args.threads, "backend": backend}])
                        for _ in range(args.repeats)]
                ok = [r for r in runs if "error" not in r]
                label = f"{name} [{ {'onnxruntime': 'ORT', 'no-check': 'ORT, no check'}.get(backend, backend)}]"
                if not ok:
                    print(f"{label:<24}{size:<34} failed: {runs[0]['error']}")
                    continue
                med = {s: float(np.median([r["timings_s"].get(s, np.nan) for r in ok]))
                       for s in STAGES}
                inference[backend] = med["segment"] + med["classify"] + med["explain"]
                net[backend] = float(np.median([r.get("net_s", np.nan) for r in ok]))
                wall = walls[backend] = float(np.median([r["wall_s"] for r in ok]))
                peak = float(np.max([r["peak_mb"] for r in ok]))
                print(f"{label:<24}{size:<34}" + "".join(f"{med[s]:>9.2f}" for s in STAGES)
                      + f"{wall:>9.2f}{peak:>9.0f}   networks {net[backend]:.2f} s, status "
                      f"{ok[0]['status']}")
            cli = [_cli(path, tmp / "out_cli", args.threads, seed) for _ in range(args.repeats)]
            ok = [r for r in cli if r["rc"] == 0]
            if ok:
                print(f"{name + ' [c2net assess]':<24}{size:<34}"
                      f"command wall {float(np.median([r['wall_s'] for r in ok])):.2f} s "
                      f"(median of {len(ok)}), peak {max(r['peak_mb'] for r in ok):.0f} MB")
            else:
                print(f"{name + ' [c2net assess]':<24}{size:<34}failed: exit {cli[0]['rc']}")
            if "no-check" in walls and "onnxruntime" in walls:
                print(f"{'':<24}the finder's check costs the assessment "
                      f"{walls['onnxruntime'] - walls['no-check']:+.2f} s of wall time "
                      "(assess() with it - without it)")
            if "torch" in inference and "onnxruntime" in inference:
                print(f"{'':<24}network stages (segment+classify+explain): torch eager / ORT = "
                      f"{inference['torch'] / inference['onnxruntime']:.2f}x; the networks' "
                      f"calls alone: {net['torch']:.2f} / {net['onnxruntime']:.2f} s = "
                      f"{net['torch'] / net['onnxruntime']:.2f}x")
        if args.before is not None:
            _before_now(cases[0], tmp, args)
    return 0


def _before_now(case, tmp: Path, args) -> None:
    """The first case in this tree and in ``args.before``, alternating run by run: assess()
    (stage times, networks) and the command's wall time, medians, before -> now."""
    name, path, seed = case
    runs = {"before": [], "now": []}
    cli = {"before": [], "now": []}
    for _ in range(args.repeats):
        for label, tree in (("before", args.before), ("now", REPO)):
            runs[label].append(_child([{"input": str(path), "out": str(tmp / f"ab_{label}"),
                                        "seed": seed, "threads": args.threads,
                                        "backend": "onnxruntime"}], tree))
            cli[label].append(_cli(path, tmp / f"ab_cli_{label}", args.threads, seed, tree))
    print(f"\n{name}: {args.before} (before) and this tree (now), alternating, median of "
          f"{args.repeats}")
    med = {}
    for label in runs:
        ok = [r for r in runs[label] if "error" not in r]
        okc = [r for r in cli[label] if r.get("rc") == 0]
        if not ok or not okc:
            print(f"{label}: failed ({(runs[label][0].get('error') or 'command exit')})")
            return
        med[label] = {s: float(np.median([r["timings_s"].get(s, np.nan) for r in ok]))
                      for s in STAGES}
        med[label]["assess()"] = float(np.median([r["wall_s"] for r in ok]))
        med[label]["networks"] = float(np.median([r.get("net_s", np.nan) for r in ok]))
        med[label]["command"] = float(np.median([r["wall_s"] for r in okc]))
        med[label]["peak MB"] = float(max(r["peak_mb"] for r in ok + okc))
    cols = list(STAGES) + ["assess()", "networks", "command", "peak MB"]
    print(f"{'':<8}" + "".join(f"{SHORT.get(c, c):>10}" for c in cols))
    for label in ("before", "now"):
        print(f"{label:<8}" + "".join(f"{med[label][c]:>10.2f}" for c in cols))
    print(f"{'now/bef':<8}" + "".join(f"{med['now'][c] / med['before'][c]:>10.2f}"
                                      if med["before"][c] else f"{'-':>10}" for c in cols))


if __name__ == "__main__":
    sys.exit(main())
