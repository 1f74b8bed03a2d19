"""Export a trained checkpoint to ONNX with everything the run-time needs in its metadata.

The run-time (:mod:`c2net.models`, ONNX Runtime only) reads from ``metadata_props``:

=====================  ====================================================================
key                    value (JSON unless noted)
=====================  ====================================================================
``c2net.kind``         ``segmentation`` or ``classifier`` (plain string)
``c2net.id``           model id (plain string), ``c2net.version`` version (plain string)
``c2net.input``        name, shape, spacing, orientation, ROI / slice layout
``c2net.window``       ``{"level_hu": 800, "width_hu": 2000}`` (HU -200..1800 -> 0..1)
``c2net.normalisation`` ``{"mean", "std", "channels": 3}`` of the windowed training data
``c2net.labels``       class index -> meaning
``c2net.outputs``      output names, shapes and meanings
``c2net.temperature``  calibration temperature (classifier; 1.0 for the U-Net)
``c2net.training_data`` plain-words statement of what the model was trained on
``c2net.precision``    ``fp32``, ``fp16`` (weights stored fp16, computed fp32) or ``int8-qdq``
=====================  ====================================================================

The classifier graph has two outputs: ``logits`` (B, 2) and ``cam`` (B, 2, 5, H, W), the
Grad-CAM of both classes computed with forward operations (:meth:`C3D.forward_with_cam`).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .. import DISCLAIMER, __version__
from .nets import C3DWithCam, build_net

OPSET = 17


def load_checkpoint(path: Path) -> dict:
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def build_from_checkpoint(ck: dict) -> torch.nn.Module:
    net = build_net(ck["kind"], ck["arch"])
    net.load_state_dict(ck["state_dict"])
    return net.eval()


def metadata_for(ck: dict, model_id: str, version: str, precision: str) -> dict:
    """The ``metadata_props`` of an exported checkpoint (all values are strings)."""
    kind = ck["kind"]
    norm = {"mean": float(ck["normalisation"]["mean"]), "std": float(ck["normalisation"]["std"]),
            "channels": 3, "note": "window -> (x - mean) / std -> three identical channels"}
    if kind == "segmentation":
        inp = {"name": "input", "shape": ["batch", 3, "height", "width"], "dtype": "float32",
               "spacing_mm": 1.0, "multiple_of": 16,
               "layout": "axial slices of the canonical LPS frame: rows anterior->posterior, "
                         "columns patient right->left",
               "roi_mm": {"x_left": ck["roi_mm"][0], "y_posterior": ck["roi_mm"][1],
                          "z_superior": ck["roi_mm"][2]},
               "roi_centre": "C2 centre (c2net.locate)", "outside_scan_hu": -1024}
        outputs = [{"name": "logits", "shape": ["batch", 3, "height", "width"],
                    "meaning": "class logits per pixel; argmax -> label"}]
        labels = {str(i): c for i, c in enumerate(ck["classes"])}
        temperature = 1.0
    else:
        d, h, w = ck["arch"]["input_shape"]
        inp = {"name": "input", "shape": ["batch", 3, d, h, w], "dtype": "float32",
               "spacing_mm": 1.0,
               "layout": "five consecutive 1 mm axial isthmus slices ordered wide->narrow "
                         "(c2net.results.IsthmusSlices.hu); rows posterior, columns patient left",
               "view": ck.get("view", "full_crop")}
        if inp["view"] == "own_side_aperture":
            inp["aperture"] = ("circular, radius min(12 mm, half the distance to the other "
                               "isthmus), 2 mm taper, -200 HU outside (c2net.classifier_view)")
        outputs = [{"name": "logits", "shape": ["batch", 2], "meaning": "raw logits (low, high "
                    "risk); divide by c2net.temperature before the softmax"},
                   {"name": "cam", "shape": ["batch", 2, d, h, w],
                    "meaning": "Grad-CAM 0..1 of each class's logit on the post-ReLU last conv "
                               "block (128 ch), trilinearly upsampled"}]
        labels = {str(i): c for i, c in enumerate(ck["classes"])}
        temperature = float(ck.get("temperature", 1.0))
    meta = {
        "c2net.kind": kind, "c2net.id": model_id, "c2net.version": version,
        "c2net.input": inp, "c2net.window": ck["window"], "c2net.normalisation": norm,
        "c2net.labels": labels, "c2net.outputs": outputs, "c2net.temperature": temperature,
        "c2net.training_data": ck["training_data"], "c2net.precision": precision,
        "c2net.architecture": {"kind": kind, **ck["arch"]},
        "c2net.trained": {"epoch": ck.get("epoch"), "val_loss": ck.get("val_loss"),
                          "val_metrics": ck.get("val_metrics"), "split": ck["split"]["index"],
                          "c2net_version": ck.get("c2net_version", __version__)},
        "c2net.disclaimer": DISCLAIMER,
    }
    if kind == "classifier":
        meta["c2net.cutoff_mm"] = float(ck.get("cutoff_mm", 4.78))
    return {k: (v if isinstance(v, str) else json.dumps(v, default=float)) for k, v in meta.items()}


def _torch_export(ck: dict, path: Path) -> None:
    """TorchScript-based export (``dynamo=False``, opset 17): ~1 s, dynamic batch/H/W."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _torch_export_inner(ck, path)


def _torch_export_inner(ck: dict, path: Path) -> None:
    net = build_from_checkpoint(ck)
    if ck["kind"] == "segmentation":
        x = torch.zeros(1, 3, 96, 96)
        torch.onnx.export(net, (x,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=OPSET, dynamo=False)
    else:
        x = torch.zeros(1, 3, *ck["arch"]["input_shape"])
        torch.onnx.export(C3DWithCam(net).eval(), (x,), str(path), input_names=["input"],
                          output_names=["logits", "cam"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"},
                                        "cam": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)


def weights_to_fp16(model: onnx.ModelProto, min_elements: int = 256) -> onnx.ModelProto:
    """Store large float32 initializers as float16 followed by a Cast back to float32.

    Halves the file; ONNX Runtime folds the casts at session creation, so the computation and
    speed stay fp32 (the weights lose precision beyond fp16's ~3 significant digits).
    """
    g = model.graph
    casts = []
    for init in list(g.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < min_elements:
            continue
        name16 = init.name + "__fp16"
        g.initializer.remove(init)
        g.initializer.append(numpy_helper.from_array(arr.astype(np.float16), name16))
        casts.append(helper.make_node("Cast", [name16], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    for node in reversed(casts):
        g.node.insert(0, node)
    return model


def quantize_int8(fp32_path: Path, out_path: Path, calibration: Iterable[np.ndarray]) -> None:
    """Static per-channel int8 QDQ quantisation calibrated on representative inputs."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self, items):
            self.it = iter([{"input": np.asarray(a, np.float32)} for a in items])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(fp32_path), str(out_path), _Reader(calibration),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def export_onnx(checkpoint: Path, out_path: Path, model_id: Optional[str] = None,
                version: str = "1.0.0", precision: str = "fp16",
                calibration: Optional[Iterable[np.ndarray]] = None) -> dict:
    """Export ``checkpoint`` (a ``best.pt``) to ``out_path``; returns the metadata written.

    ``precision``: ``fp32``, ``fp16`` (weights stored as fp16) or ``int8`` (static QDQ, needs
    ``calibration``: an iterable of standardised input batches).
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError("precision must be fp32, fp16 or int8")
    ck = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model_id = model_id or f"c2net-{'unet' if ck['kind'] == 'segmentation' else 'c3d'}"
    with tempfile.TemporaryDirectory() as td:
        raw = Path(td) / "raw.onnx"
        _torch_export(ck, raw)
        if precision == "int8":
            if calibration is None:
                raise ValueError("int8 export needs calibration inputs")
            q = Path(td) / "q.onnx"
            quantize_int8(raw, q, calibration)
            model = onnx.load(str(q))
        else:
            model = onnx.load(str(raw))
            if precision == "fp16":
                model = weights_to_fp16(model)
        meta = metadata_for(ck, model_id, version, "int8-qdq" if precision == "int8" else precision)
        del model.metadata_props[:]
        for k, v in meta.items():
            model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
        model.producer_name = "c2netplanner"
        model.producer_version = __version__
        model.doc_string = f"C2NetPlanner {ck['kind']} model {model_id} {version}. {DISCLAIMER}"
        onnx.checker.check_model(model)
        tmp = out_path.with_suffix(".onnx.tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, out_path)
    return meta
