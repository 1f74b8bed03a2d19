"""Run-time model loading, segmentation and classification with hand-built ONNX models.

No torch needed: the ONNX graphs are built with onnx.helper so that their outputs are known
exactly (a bright-pixel detector whose class depends on the image half; a classifier whose
logit is the mean intensity).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

onnx = pytest.importorskip("onnx")
from c2net import models as M  # noqa: E402
from c2net.classify import predict_risk  # noqa: E402
from c2net.errors import InputError, ModelError, SegmentationError  # noqa: E402
from c2net.results import IsthmusSlices  # noqa: E402
from c2net.segment import segment_pedicles  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _meta(kind, extra):
    base = {"c2net.kind": kind, "c2net.id": f"test-{kind}", "c2net.version": "0.0.1",
            "c2net.window": json.dumps({"level_hu": 800.0, "width_hu": 2000.0}),
            "c2net.normalisation": json.dumps({"mean": 0.0, "std": 1.0, "channels": 3}),
            "c2net.temperature": "1.0", "c2net.precision": "fp32",
            "c2net.training_data": "hand-built test graph"}
    base.update({k: json.dumps(v) for k, v in extra.items()})
    return base


def _save(graph, path, meta):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_seg_onnx(path, size=32, depth=16):
    """Bright pixels (window unit > 0.5) -> class 1 in the image's left half (columns run
    patient right -> left), class 2 in the right half; fixed size x size input."""
    w = np.zeros((3, 3, 1, 1), np.float32)
    w[1, 0] = w[2, 0] = 20.0
    b = np.array([0.0, -10.0, -10.0], np.float32)
    pos = np.zeros((1, 3, size, size), np.float32)
    pos[0, 1, :, : size // 2] = -100.0   # class 1 (left) only in columns >= size/2
    pos[0, 2, :, size // 2:] = -100.0    # class 2 (right) only in columns < size/2
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["c"]),
             helper.make_node("Add", ["c", "P"], ["logits"])]
    g = helper.make_graph(
        nodes, "seg", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3, size, size])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"),
         numpy_helper.from_array(pos, "P")])
    return _save(g, path, _meta("segmentation", {
        "c2net.input": {"name": "input", "shape": ["batch", 3, size, size],
                        "roi_mm": {"x_left": size, "y_posterior": size, "z_superior": depth}},
        "c2net.labels": {"0": "background", "1": "C2 pedicle left", "2": "C2 pedicle right"}}))


def make_cls_onnx(path, temperature=2.0, k=8.0):
    """logits = (0, k * (mean window unit - 0.3)); cam = sigmoid of input channels 0..1."""
    n = 3 * 5 * 64 * 64
    w = np.zeros((n, 2), np.float32)
    w[:, 1] = k / n
    b = np.array([0.0, -0.3 * k], np.float32)
    nodes = [helper.make_node("Flatten", ["input"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "W"], ["m"]),
             helper.make_node("Add", ["m", "B"], ["logits"]),
             helper.make_node("Slice", ["input", "s0", "s1", "ax"], ["two"]),
             helper.make_node("Sigmoid", ["two"], ["cam"])]
    g = helper.make_graph(
        nodes, "cls", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 3, 5, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 2]),
         helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["b", 2, 5, 64, 64])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"),
         numpy_helper.from_array(np.array([0], np.int64), "s0"),
         numpy_helper.from_array(np.array([2], np.int64), "s1"),
         numpy_helper.from_array(np.array([1], np.int64), "ax")])
    meta = _meta("classifier", {"c2net.input": {"name": "input", "shape": ["batch", 3, 5, 64, 64]},
                                "c2net.labels": {"0": "low risk", "1": "high risk"}})
    meta["c2net.temperature"] = str(temperature)
    return _save(g, path, meta)


@pytest.fixture()
def model_dir(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    make_seg_onnx(d / "seg.onnx")
    make_cls_onnx(d / "cls.onnx")
    M.register_model(d, d / "seg.onnx", {"metrics": {"note": "test"}})
    M.register_model(d, d / "cls.onnx")
    M.clear_cache()
    yield d
    M.clear_cache()


def test_index_written_and_models_load_verified(model_dir):
    index = json.loads((model_dir / "models.json").read_text())
    kinds = {e["kind"]: e for e in index["models"]}
    assert set(kinds) == {"segmentation", "classifier"}
    assert kinds["segmentation"]["sha256"] == M.sha256_file(model_dir / "seg.onnx")
    assert kinds["segmentation"]["size_bytes"] == (model_dir / "seg.onnx").stat().st_size
    assert kinds["classifier"]["temperature"] == pytest.approx(2.0)
    m = M.load_model("segmentation", model_dir=model_dir, threads=1)
    assert m.verified and m.kind == "segmentation" and m.id == "test-segmentation"
    assert m.mean_std == (0.0, 1.0) and m.window == (800.0, 2000.0)
    assert m.describe()["sha256"] == kinds["segmentation"]["sha256"]


def test_sha256_mismatch_is_a_clear_model_error(model_dir):
    index = json.loads((model_dir / "models.json").read_text())
    for e in index["models"]:
        if e["kind"] == "classifier":
            e["sha256"] = "0" * 64
    (model_dir / "models.json").write_text(json.dumps(index))
    with pytest.raises(ModelError) as ei:
        M.load_model("classifier", model_dir=model_dir, threads=1)
    assert "sha256" in ei.value.message and "Restore" in ei.value.hint
    # the segmentation entry is still fine
    assert M.load_model("segmentation", model_dir=model_dir, threads=1).verified


def test_modified_file_is_detected(model_dir):
    with open(model_dir / "seg.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        M.load_model("segmentation", model_dir=model_dir, threads=1)


def test_user_given_file_and_folder_are_accepted(tmp_path, model_dir):
    own = make_cls_onnx(tmp_path / "my_retrained.onnx", temperature=1.5)
    m = M.load_model("classifier", path=own, threads=1)
    assert not m.verified and m.temperature == pytest.approx(1.5)
    assert m.sha256 == M.sha256_file(own)
    # a file inside an indexed folder is verified against its entry
    assert M.load_model("classifier", path=model_dir / "cls.onnx", threads=1).verified
    assert M.load_model("classifier", path=model_dir, threads=1).verified


def test_wrong_kind_missing_index_and_garbage_file(tmp_path, model_dir):
    with pytest.raises(ModelError, match="not a classifier"):
        M.load_model("classifier", path=model_dir / "seg.onnx", threads=1)
    with pytest.raises(ModelError, match="models.json"):
        M.load_model("segmentation", model_dir=tmp_path / "nowhere")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot open"):
        M.load_model("segmentation", path=bad)


def test_default_model_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("C2NET_MODEL_DIR", str(tmp_path))
    assert M.default_model_dir() == tmp_path
    monkeypatch.delenv("C2NET_MODEL_DIR")
    assert M.default_model_dir().name in ("models", "_models")


def _ct_with_blobs(direction, left=True, right=True, size=40):
    """A CT whose bright blobs sit at LPS x = +8 (patient left) and x = -8 (patient right)."""
    img = sitk.Image([size, size, 24], sitk.sitkFloat32)
    img.SetSpacing((0.8, 0.8, 1.0))
    img.SetDirection(direction)
    img.SetOrigin((0.0, 0.0, 0.0))
    centre_idx = np.array([size / 2, size / 2, 12.0])
    d = np.asarray(direction, float).reshape(3, 3) @ np.diag(img.GetSpacing())
    img.SetOrigin(tuple(-(d @ centre_idx)))  # LPS (0, 0, 0) at the volume centre
    arr = np.zeros((24, size, size), np.float32)
    kk, jj, ii = np.mgrid[0:24, 0:size, 0:size]
    pts = np.stack([ii, jj, kk], -1).reshape(-1, 3) @ d.T + np.asarray(img.GetOrigin())
    pts = pts.reshape(24, size, size, 3)
    for x0, on in ((8.0, left), (-8.0, right)):
        if on:
            r = np.linalg.norm(pts - np.array([x0, 0.0, 0.0]), axis=-1)
            arr[r < 3.0] = 1500.0
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out, pts


@pytest.mark.parametrize("direction", [
    (1, 0, 0, 0, 1, 0, 0, 0, 1),          # LPS
    (-1, 0, 0, 0, -1, 0, 0, 0, 1),        # RAS-stored
    (1, 0, 0, 0, 0, -1, 0, 1, 0),         # coronal-like permutation
])
def test_segment_keeps_patient_sides_on_the_input_grid(model_dir, direction):
    ct, pts = _ct_with_blobs(direction)
    seg = segment_pedicles(ct, (0.0, 0.0, 0.0), model_dir=model_dir, threads=1)
    assert seg.GetSize() == ct.GetSize() and seg.GetPixelID() == sitk.sitkUInt8
    assert np.allclose(seg.GetDirection(), ct.GetDirection())
    assert np.allclose(seg.GetOrigin(), ct.GetOrigin())
    a = sitk.GetArrayFromImage(seg)
    assert set(np.unique(a)) == {0, 1, 2}
    assert np.all(pts[a == 1][:, 0] > 3.0), "label 1 must lie on patient left (+x LPS)"
    assert np.all(pts[a == 2][:, 0] < -3.0), "label 2 must lie on patient right (-x LPS)"
    blob_l = np.linalg.norm(pts - np.array([8.0, 0, 0]), axis=-1) < 2.0
    assert np.mean(a[blob_l] == 1) > 0.95


def test_segment_progress_and_one_sided_result(model_dir):
    ct, pts = _ct_with_blobs((1, 0, 0, 0, 1, 0, 0, 0, 1), right=False)
    calls = []
    seg = segment_pedicles(ct, (0.0, 0.0, 0.0), model_dir=model_dir, threads=1,
                           progress=lambda s, f, m: calls.append((s, f)))
    a = sitk.GetArrayFromImage(seg)
    assert (a == 1).any() and not (a == 2).any()
    assert calls[0] == ("segment", 0.0) and calls[-1] == ("segment", 1.0)


def test_segment_refuses_empty_or_outside(model_dir):
    ct, _ = _ct_with_blobs((1, 0, 0, 0, 1, 0, 0, 0, 1), left=False, right=False)
    with pytest.raises(SegmentationError):
        segment_pedicles(ct, (0.0, 0.0, 0.0), model_dir=model_dir, threads=1)
    with pytest.raises(SegmentationError, match="outside"):
        segment_pedicles(ct, (500.0, 0.0, 0.0), model_dir=model_dir, threads=1)
    with pytest.raises(InputError):
        segment_pedicles(ct, (np.nan, 0.0, 0.0), model_dir=model_dir, threads=1)


def test_predict_risk_temperature_and_cam(model_dir):
    rng = np.random.default_rng(0)
    hu = rng.uniform(-200, 1800, size=(5, 64, 64)).astype(np.float32)
    pred = predict_risk(IsthmusSlices("left", hu, [(0, 0, k) for k in range(5)]),
                        model_dir=model_dir, threads=1)
    x = np.clip((hu + 200) / 2000, 0, 1)
    z1 = 8.0 * (x.mean() - 0.3)
    assert pred.logits[0] == pytest.approx(0.0, abs=1e-5)
    assert pred.logits[1] == pytest.approx(z1, rel=1e-4)
    assert pred.temperature == pytest.approx(2.0)
    assert pred.p_high_risk == pytest.approx(1.0 / (1.0 + np.exp(-z1 / 2.0)), rel=1e-4)
    assert pred.cam_high_risk.shape == (5, 64, 64)
    assert np.allclose(pred.cam_high_risk, 1 / (1 + np.exp(-x)), atol=1e-5)
    assert pred.side == "left" and pred.model_id.startswith("test-classifier")


def test_predict_risk_rejects_bad_slices(model_dir):
    with pytest.raises(InputError, match="expects"):
        predict_risk(IsthmusSlices("left", np.zeros((5, 32, 32), np.float32), []),
                     model_dir=model_dir, threads=1)
    with pytest.raises(InputError):
        predict_risk(IsthmusSlices("middle", np.zeros((5, 64, 64), np.float32), []),
                     model_dir=model_dir, threads=1)


def test_labels_reach_the_fine_grid_through_the_probabilities():
    """5 mm round bars whose 1 mm 'probability' is their covered share: mapped onto a 0.4 mm
    grid through the probabilities, the surface lands between the 1 mm voxels (Dice > 0.95
    against the exact bars, area within 4 %), clearly better than nearest-neighbour labels."""
    from c2net.geometry import canonical_reference, to_input_grid
    from c2net.segment import LEFT, RIGHT, labels_on_input_grid

    def bar_share(image, centre_x, radius=2.5, sub=5):
        """Covered share of each voxel of ``image`` by a bar along z (supersampled)."""
        sp = np.asarray(image.GetSpacing())
        nx, ny, nz = image.GetSize()
        o = np.asarray(image.GetOrigin())
        off = (np.arange(sub) + 0.5) / sub - 0.5
        x = o[0] + (np.arange(nx)[:, None] + off[None]).ravel() * sp[0]
        y = o[1] + (np.arange(ny)[:, None] + off[None]).ravel() * sp[1]
        inside = ((x[None, :] - centre_x) ** 2 + y[:, None] ** 2) <= radius ** 2
        share = inside.reshape(ny, sub, nx, sub).mean(axis=(1, 3))
        return np.repeat(share[None], nz, axis=0).astype(np.float32)

    roi = canonical_reference(sitk.Image(1, 1, 1, sitk.sitkUInt8), 1.0,
                              ((-16.0, -16.0, -4.0), (16.0, 16.0, 4.0)))
    fine = sitk.Image([80, 80, 20], sitk.sitkUInt8)
    fine.SetSpacing((0.4, 0.4, 0.4))
    fine.SetOrigin((-15.8 + 0.17, -15.8 + 0.23, -3.8))
    prob = np.zeros((roi.GetSize()[2], 3, roi.GetSize()[1], roi.GetSize()[0]), np.float32)
    prob[:, LEFT] = bar_share(roi, 7.3)
    prob[:, RIGHT] = bar_share(roi, -6.6)
    prob[:, 0] = 1.0 - prob[:, LEFT] - prob[:, RIGHT]
    clean = np.argmax(prob, axis=1).astype(np.uint8)
    out = sitk.GetArrayFromImage(labels_on_input_grid(prob, clean, roi, fine))
    near = sitk.GetImageFromArray(clean)
    near.CopyInformation(roi)
    nn = sitk.GetArrayFromImage(to_input_grid(near, fine, "nearest"))
    for cls, x in ((LEFT, 7.3), (RIGHT, -6.6)):
        truth = bar_share(fine, x, sub=1) > 0.5
        d_soft = 2 * np.sum((out == cls) & truth) / (np.sum(out == cls) + truth.sum())
        d_nn = 2 * np.sum((nn == cls) & truth) / (np.sum(nn == cls) + truth.sum())
        assert d_soft > 0.95 and d_soft > d_nn + 0.05, (cls, d_soft, d_nn)
        assert np.sum(out == cls) == pytest.approx(truth.sum(), rel=0.04)
