"""Benchmark the shipped models: inference time (ONNX Runtime vs torch eager), file sizes,
peak memory. Research use only - not a medical device.

    .venv/bin/python benchmarks/bench_models.py [--model-dir models] [--threads 2]
        [--int8 models/extra/c2net-unet-int8.onnx]

Each measurement runs in its own child process so that its peak resident memory
(``ru_maxrss``) belongs to that measurement alone. Timings are medians over ``--repeats``
runs after one warm-up; the machines are shared, so compare ratios, not absolute numbers.
torch eager uses the same architecture (from the model metadata) with the ONNX weights.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(ts))


def _torch_from_onnx(path: Path, kind: str):
    """The torch network with the ONNX file's weights (fp16-stored weights cast back)."""
    import onnx
    import torch
    from onnx import numpy_helper

    sys.path.insert(0, str(REPO / "C2NetPlanner"))
    from c2net.training.nets import build_net

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    arch = json.loads(meta["c2net.architecture"])
    arch.pop("kind", None)
    net = build_net(kind, arch).eval()
    # the classifier is exported inside a wrapper (C3DWithCam), so its names start "net."
    inits = {i.name.replace("__fp16", "").removeprefix("net."):
             numpy_helper.to_array(i).astype(np.float32) for i in model.graph.initializer}
    sd = net.state_dict()
    loaded = 0
    for k in sd:
        w = inits.get(k)
        if w is not None and w.ndim == 2 and w.shape[::-1] == tuple(sd[k].shape):
            w = np.ascontiguousarray(w.T)   # a Gemm may store the weight transposed
        if w is not None and w.shape == tuple(sd[k].shape):
            sd[k] = torch.from_numpy(w)
            loaded += 1
    net.load_state_dict(sd)
    return net, loaded, len(sd)


def child(task: str, path: str, threads: int, repeats: int) -> dict:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    out = {"task": task}
    rng = np.random.default_rng(0)
    if task.startswith("seg"):
        x1 = rng.normal(size=(1, 3, 96, 96)).astype(np.float32)
        roi = rng.normal(size=(48, 3, 96, 96)).astype(np.float32)
    else:
        x1 = rng.normal(size=(1, 3, 5, 64, 64)).astype(np.float32)
    if task.endswith("ort"):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        t = time.perf_counter()
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        out["session_s"] = time.perf_counter() - t
        out["ms_per_item"] = _median_ms(lambda: s.run(None, {"input": x1}), repeats)
        if task.startswith("seg"):
            out["roi_48_slices_s"] = _median_ms(
                lambda: [s.run(None, {"input": roi[i:i + 4]}) for i in range(0, 48, 4)],
                max(1, repeats // 5)) / 1000.0
        else:
            out["outputs"] = [o.name for o in s.get_outputs()]
    else:
        import torch

        torch.set_num_threads(threads)
        kind = "segmentation" if task.startswith("seg") else "classifier"
        net, loaded, total = _torch_from_onnx(Path(path), kind)
        out["weights_loaded"] = f"{loaded}/{total}"
        xt = torch.from_numpy(x1)
        with torch.no_grad():
            out["ms_per_item"] = _median_ms(lambda: net(xt), repeats)
            if kind == "segmentation":
                rt = torch.from_numpy(roi)
                out["roi_48_slices_s"] = _median_ms(
                    lambda: [net(rt[i:i + 4]) for i in range(0, 48, 4)], max(1, repeats // 5)) / 1000.0
            else:
                out["ms_with_forward_cam"] = _median_ms(lambda: net.forward_with_cam(xt), repeats)
        if kind == "classifier":
            from c2net.training.nets import autograd_gradcam

            out["ms_with_autograd_cam_2_classes"] = _median_ms(
                lambda: [autograd_gradcam(net, xt, c) for c in (0, 1)], repeats)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=REPO / "models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--int8", type=Path, default=None, help="an int8 QDQ U-Net to compare")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--child", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.threads, a.repeats)))
        return 0
    index = json.loads((a.model_dir / "models.json").read_text())
    files = {e["kind"]: a.model_dir / e["file"] for e in index["models"] if e.get("default", True)}
    tasks = [("seg-ort", files["segmentation"]), ("seg-torch", files["segmentation"]),
             ("cls-ort", files["classifier"]), ("cls-torch", files["classifier"])]
    if a.int8:
        tasks.insert(1, ("seg-int8-ort", a.int8))
    results = []
    for task, path in tasks:
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        r = subprocess.run([sys.executable, __file__, "--child", task, str(path), "--threads",
                            str(a.threads), "--repeats", str(a.repeats)],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            print(f"{task}: failed: {r.stderr.strip().splitlines()[-1:]}")
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["file"] = Path(path).name
        res["file_mb"] = Path(path).stat().st_size / 1e6
        results.append(res)
    print(f"C2NetPlanner model benchmark ({a.threads} threads, median of {a.repeats}). "
          "Research use only - not a medical device.")
    print(f"{'task':14s} {'file':28s} {'MB':>6s} {'ms/item':>8s} {'ROI 48 sl (s)':>13s} "
          f"{'peak RSS MB':>11s}  notes")
    for r in results:
        notes = []
        for k in ("session_s", "ms_with_forward_cam", "ms_with_autograd_cam_2_classes",
                  "weights_loaded"):
            if k in r:
                notes.append(f"{k}={r[k]:.3g}" if isinstance(r[k], float) else f"{k}={r[k]}")
        roi = f"{r['roi_48_slices_s']:.2f}" if "roi_48_slices_s" in r else "-"
        print(f"{r['task']:14s} {r['file']:28s} {r['file_mb']:6.1f} {r['ms_per_item']:8.2f} "
              f"{roi:>13s} {r['peak_rss_mb']:11.0f}  {' '.join(notes)}")
    for e in index["models"]:
        if e.get("metrics", {}).get("int8_dice_change") is not None:
            print(f"int8 Dice change ({e['id']}): {e['metrics']['int8_dice_change']}")
    if a.json_out:
        a.json_out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
