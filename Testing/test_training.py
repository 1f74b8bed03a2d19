"""Training, export and Grad-CAM with tiny networks on tiny synthetic CTs (needs torch)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from c2net import models as M  # noqa: E402
from c2net.training import data as D  # noqa: E402
from c2net.training.export import export_onnx, weights_to_fp16  # noqa: E402
from c2net.training.nets import C3D, UNet2D, autograd_gradcam  # noqa: E402
from c2net.training.real_labels import write_manifest  # noqa: E402

MANIFEST_COLUMNS = ("patient_id", "ct", "labels", "truth", "mpd_left_mm", "mpd_right_mm")
from c2net.training.train import TrainConfig, train_cls, train_seg  # noqa: E402

torch.set_num_threads(1)
TINY_UNET = (4, 4, 8, 8, 8)
TINY_C3D = (2, 4, 4, 8)
TINY_FC = (16, 8)


def _write_case(folder, pid, mpd_left, mpd_right, shift_mm, direction):
    """A 48x48x24 CT (0.9 x 0.9 x 1.2 mm) with a body and two pedicle bars; LPS (0,0,0) near
    the middle. Labels: 1 body, 2 left pedicle (+x), 3 right pedicle (-x)."""
    size = (48, 48, 24)
    img = sitk.Image(size, sitk.sitkFloat32)
    img.SetSpacing((0.9, 0.9, 1.2))
    img.SetDirection(direction)
    d = np.asarray(direction, float).reshape(3, 3) @ np.diag(img.GetSpacing())
    img.SetOrigin(tuple(-(d @ (np.asarray(size) / 2.0)) + np.asarray(shift_mm)))
    kk, jj, ii = np.mgrid[0:size[2], 0:size[1], 0:size[0]]
    p = np.stack([ii, jj, kk], -1) @ d.T + np.asarray(img.GetOrigin())
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    hu = np.full(x.shape, 20.0, np.float32)
    lab = np.zeros(x.shape, np.uint8)
    body = ((x**2 + (y + 8) ** 2) < 64) & (np.abs(z) < 8)
    hu[body], lab[body] = 400.0, 1
    for sign, mpd, value in ((1, mpd_left, 2), (-1, mpd_right, 3)):
        bar = (np.abs(x - sign * 9) < mpd / 2) & (y > -1) & (y < 10) & (np.abs(z) < 3)
        hu[bar], lab[bar] = 900.0, value
    ct = sitk.GetImageFromArray(hu)
    ct.CopyInformation(img)
    lb = sitk.GetImageFromArray(lab)
    lb.CopyInformation(img)
    case = folder / pid
    case.mkdir()
    sitk.WriteImage(ct, str(case / "ct.nii.gz"))
    sitk.WriteImage(lb, str(case / "labels.nii.gz"))
    truth = {"c2_center_lps_mm": [0.0, 0.0, 0.0],
             "sides": {s: {"mpd_mm": m, "isthmus_center_lps_mm": [sg * 9.0, 4.0, 0.0]}
                       for s, m, sg in (("left", mpd_left, 1), ("right", mpd_right, -1))}}
    (case / "truth.json").write_text(json.dumps(truth))
    return [pid, f"{pid}/ct.nii.gz", f"{pid}/labels.nii.gz", f"{pid}/truth.json", mpd_left, mpd_right]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    dirs = [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)]
    rows = [_write_case(folder, f"p{i}", 3.0 + i, 6.5 - i, (i * 0.5, 0, 0), dirs[i % 2])
            for i in range(4)]
    path = folder / "manifest.csv"
    write_manifest([dict(zip(MANIFEST_COLUMNS, r)) for r in rows], path)
    return path


def _cfg(tmp, **kw):
    base = dict(epochs=1, steps_per_epoch=2, widths=TINY_UNET, patch=32, val_slices=8, threads=1,
                val_fraction=0.5, cache_dir=str(tmp / "cache"), quiet=True, use_measure=False)
    base.update(kw)
    return TrainConfig(**base)


def test_net_shapes():
    u = UNet2D(widths=TINY_UNET)
    assert u(torch.zeros(2, 3, 32, 48)).shape == (2, 3, 32, 48)
    c = C3D(widths=TINY_C3D, fc=TINY_FC).eval()
    assert c.cam_shape == (1, 8, 8) and c.pooled_shape == (1, 4, 4)
    z, cam = c.forward_with_cam(torch.zeros(3, 3, 5, 64, 64))
    assert z.shape == (3, 2) and cam.shape == (3, 2, 5, 64, 64)
    with pytest.raises(ValueError):
        UNet2D(widths=(4, 8))


def test_seg_preprocessing_keeps_patient_sides(manifest, tmp_path):
    for case in D.read_ct_manifest(manifest)[:2]:   # LPS and RAS-stored
        v = D.preprocess_seg_case(case, cache_dir=tmp_path)
        assert v["hu"].shape == (48 + 12, 96 + 12, 96 + 12)
        cols_left = np.nonzero(v["target"] == 1)[2]
        cols_right = np.nonzero(v["target"] == 2)[2]
        mid = (v["hu"].shape[2] - 1) / 2
        assert cols_left.min() > mid and cols_right.max() < mid   # column axis runs R -> L
        again = D.preprocess_seg_case(case, cache_dir=tmp_path)   # from the cache
        assert np.array_equal(again["target"], v["target"])
        assert np.array_equal(again["fraction"], v["fraction"])


def test_seg_targets_are_partial_volume_shares(manifest, tmp_path):
    """The 1 mm targets carry the share of each voxel the pedicle covers: the bars' widths
    (3.0 and 6.5 mm on a 0.9 mm grid) come back as summed shares, not as whole voxels."""
    case = D.read_ct_manifest(manifest)[0]            # mpd left 3.0, right 6.5; bar 11 x 6 mm
    v = D.preprocess_seg_case(case, cache_dir=tmp_path)
    frac = v["fraction"].astype(float) / 255.0
    # voxel count of each 0.9 x 0.9 x 1.2 mm label bar, in mm^3, against the summed 1 mm shares
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(case.labels)))
    for side, value in ((0, 2), (1, 3)):
        volume = (lab == value).sum() * 0.9 * 0.9 * 1.2
        assert frac[side].sum() == pytest.approx(volume, rel=0.03)
        assert 0 < np.mean((frac[side] > 0.02) & (frac[side] < 0.98)) # partial voxels exist
    hard = D.hard_target(v["fraction"])
    assert np.array_equal(hard, v["target"])
    assert set(np.unique(hard)) == {0, 1, 2}
    shares = D.soft_target(v["fraction"])
    assert shares.shape == (3,) + v["target"].shape
    assert np.allclose(shares.sum(axis=0), 1.0) and shares.min() >= 0.0
    x, y = D.SegSampler([v], patch=32).sample(np.random.default_rng(0), 3)
    assert x.shape == (3, 1, 32, 32) and y.shape == (3, 3, 32, 32)
    assert np.allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_soft_loss_equals_cross_entropy_on_whole_voxels():
    from c2net.training.train import hard_labels, seg_loss, soft_dice_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    lab = torch.randint(0, 3, (2, 8, 8), generator=g)
    onehot = torch.nn.functional.one_hot(lab, 3).permute(0, 3, 1, 2).float()
    ce = torch.nn.functional.cross_entropy(logits, lab)
    assert float(seg_loss(logits, onehot)) == pytest.approx(
        float(ce + soft_dice_loss(logits, onehot)), rel=1e-6)
    half = onehot * 0.4 + 0.2     # shares (0.2 / 0.6) -> only > 0.5 counts as that side
    assert np.array_equal(hard_labels(half.numpy()), np.where(lab.numpy() == 0, 0, lab.numpy()))


def test_warm_start_continues_from_a_checkpoint(manifest, tmp_path):
    from c2net.errors import InputError

    train_seg(manifest, tmp_path / "a", _cfg(tmp_path))
    ck = torch.load(tmp_path / "a" / "best.pt", weights_only=False)
    # lr 0: the warm-started run keeps the earlier weights and normalisation exactly
    s = train_seg(manifest, tmp_path / "b", _cfg(tmp_path, lr=0.0, widths=None,
                                                 init_from=str(tmp_path / "a" / "best.pt")))
    ck2 = torch.load(tmp_path / "b" / "best.pt", weights_only=False)
    assert all(torch.equal(ck["state_dict"][k], ck2["state_dict"][k]) for k in ck["state_dict"])
    assert ck2["normalisation"] == ck["normalisation"] and ck2["arch"] == ck["arch"]
    assert ck2["warm_start"]["checkpoint"].endswith("best.pt") and s["epochs_run"] == 1
    with pytest.raises(InputError, match="architecture"):
        train_seg(manifest, tmp_path / "c", _cfg(tmp_path, widths=(4, 4, 8, 8, 16),
                                                 init_from=str(tmp_path / "a" / "best.pt")))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="warm-start"):
        train_seg(manifest, tmp_path / "d", _cfg(tmp_path, init_from=str(tmp_path / "junk.pt")))


def test_training_is_deterministic_and_writes_its_outputs(manifest, tmp_path):
    s1 = train_seg(manifest, tmp_path / "a", _cfg(tmp_path, checkpoint_every=1))
    s2 = train_seg(manifest, tmp_path / "b", _cfg(tmp_path, checkpoint_every=1))
    w1 = torch.load(tmp_path / "a" / "best.pt", weights_only=False)["state_dict"]
    w2 = torch.load(tmp_path / "b" / "best.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    s3 = train_seg(manifest, tmp_path / "c", _cfg(tmp_path, seed=1))
    w3 = torch.load(tmp_path / "c" / "best.pt", weights_only=False)["state_dict"]
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)
    for f in ("train_log.csv", "loss_curve.png", "summary.json", "checkpoints/epoch_001.pt"):
        assert (tmp_path / "a" / f).is_file(), f
    assert s1["epochs_run"] == 1 and s1["best_val_loss"] == s2["best_val_loss"]
    assert s3["n_train"] == 2 and s3["n_val"] == 2
    rows = list(csv.DictReader(open(tmp_path / "a" / "train_log.csv")))
    assert {"train_loss", "val_loss", "val_dice_left", "val_dice_right"} <= set(rows[0])


def test_early_stopping_and_budget(manifest, tmp_path):
    s = train_seg(manifest, tmp_path / "es", _cfg(tmp_path, epochs=50, patience=1, lr=0.0))
    assert s["epochs_run"] == 2 and "early stopping" in s["stop_reason"]
    s = train_seg(manifest, tmp_path / "bud", _cfg(tmp_path, epochs=50, max_minutes=0.0))
    assert s["epochs_run"] == 1 and "budget" in s["stop_reason"]


def test_classifier_training_calibrates_and_exports_with_cam(manifest, tmp_path):
    cfg = _cfg(tmp_path, widths=TINY_C3D, fc=TINY_FC, steps_per_epoch=None)
    s = train_cls(manifest, tmp_path / "cls", cfg)
    assert s["class_balance"] == {"high_risk": 4, "low_risk": 4}
    assert 0.05 <= s["temperature"] <= 20.0
    ck = torch.load(tmp_path / "cls" / "best.pt", weights_only=False)
    assert ck["temperature"] == pytest.approx(s["temperature"])
    out = tmp_path / "m" / "c3d.onnx"
    export_onnx(tmp_path / "cls" / "best.pt", out, precision="fp32")
    M.register_model(out.parent, out, {"metrics": {"test": True}})
    m = M.load_model("classifier", model_dir=out.parent, threads=1)
    assert m.temperature == pytest.approx(s["temperature"])
    assert m.metadata["input"]["shape"] == ["batch", 3, 5, 64, 64]
    assert "manifest.csv" in m.metadata["training_data"]
    # trained on CT cases: the model sees only its own pedicle's neighbourhood, and says so
    assert m.metadata["input"]["view"] == "own_side_aperture" and "aperture" in m.metadata["input"]
    # warm start (continuing a run that hit its time budget): lr 0 keeps weights exactly
    train_cls(manifest, tmp_path / "cls2", _cfg(tmp_path, widths=TINY_C3D, fc=TINY_FC, lr=0.0,
                                                steps_per_epoch=None,
                                                init_from=str(tmp_path / "cls" / "best.pt")))
    ck2 = torch.load(tmp_path / "cls2" / "best.pt", weights_only=False)
    assert all(torch.equal(ck["state_dict"][k], ck2["state_dict"][k]) for k in ck["state_dict"])
    assert ck2["normalisation"] == ck["normalisation"] and ck2["warm_start"]["epoch"] == ck["epoch"]


def _tiny_c3d(seed):
    torch.manual_seed(seed)
    net = C3D(widths=(4, 8, 8, 16), fc=(32, 16)).eval()
    return net


def _cls_checkpoint(net):
    return {"kind": "classifier", "state_dict": net.state_dict(),
            "arch": {"widths": list(net.widths), "fc": list(net.fc_sizes),
                     "input_shape": [5, 64, 64], "dropout": 0.5},
            "normalisation": {"mean": 0.0, "std": 1.0},
            "window": {"level_hu": 800.0, "width_hu": 2000.0},
            "classes": ["low", "high"], "split": {"index": 0}, "training_data": "test",
            "temperature": 1.0}


def _ort(path, x, outputs=None):
    M.clear_cache()
    m = M.load_model("classifier" if x.ndim == 5 else "segmentation", path=path, threads=1)
    return m.session.run(outputs, {"input": x})


def test_onnx_matches_torch_and_autograd_gradcam(tmp_path):
    net = _tiny_c3d(0)
    x = torch.randn(2, 3, 5, 64, 64, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "c3d.onnx"
    export_onnx(_cls_checkpoint(net), path, precision="fp32")
    logits, cam = _ort(path, x.numpy())
    with torch.no_grad():
        z, cam_t = net.forward_with_cam(x)
    assert np.allclose(logits, z.numpy(), atol=1e-4)
    for c in (0, 1):
        ref = autograd_gradcam(net, x, c).numpy()
        assert np.allclose(cam[:, c], ref, atol=1e-4)
        assert np.allclose(cam_t[:, c].numpy(), ref, atol=1e-5)
    assert cam.max() == pytest.approx(1.0, abs=1e-5) and cam.min() >= 0.0


def test_gradcam_changes_when_weights_are_randomised(tmp_path):
    """Adebayo et al. sanity check: re-initialising the head and last conv changes the map."""
    net = _tiny_c3d(0)
    x = torch.randn(1, 3, 5, 64, 64, generator=torch.Generator().manual_seed(2))
    export_onnx(_cls_checkpoint(net), tmp_path / "a.onnx", precision="fp32")
    torch.manual_seed(123)
    for layer in (net.fc1, net.fc2, net.fc3, net.convs[-1]):
        layer.reset_parameters()
    export_onnx(_cls_checkpoint(net), tmp_path / "b.onnx", precision="fp32")
    cam_a = _ort(tmp_path / "a.onnx", x.numpy())[1][0, 1]
    cam_b = _ort(tmp_path / "b.onnx", x.numpy())[1][0, 1]
    assert cam_a.max() > 0.99 and cam_b.max() > 0.99
    corr = np.corrcoef(cam_a.ravel(), cam_b.ravel())[0, 1]
    assert np.mean(np.abs(cam_a - cam_b)) > 0.05 and corr < 0.9


def test_unet_export_fp32_fp16_agree_with_torch(tmp_path):
    torch.manual_seed(0)
    net = UNet2D(widths=TINY_UNET).eval()
    ck = {"kind": "segmentation", "state_dict": net.state_dict(),
          "arch": {"in_channels": 3, "n_classes": 3, "widths": list(TINY_UNET)},
          "normalisation": {"mean": 0.3, "std": 0.2}, "window": {"level_hu": 800.0, "width_hu": 2000.0},
          "roi_mm": [96, 96, 48], "classes": ["bg", "L", "R"], "split": {"index": 0},
          "training_data": "test"}
    x = torch.randn(3, 3, 64, 80, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = net(x).numpy()
    export_onnx(ck, tmp_path / "u32.onnx", precision="fp32")
    export_onnx(ck, tmp_path / "u16.onnx", precision="fp16")
    out32 = _ort(tmp_path / "u32.onnx", x.numpy())[0]
    out16 = _ort(tmp_path / "u16.onnx", x.numpy())[0]
    assert out32.shape == ref.shape and np.allclose(out32, ref, atol=1e-4)
    assert np.allclose(out16, ref, atol=5e-3 * (1 + np.abs(ref).max()))
    assert (tmp_path / "u16.onnx").stat().st_size < 0.8 * (tmp_path / "u32.onnx").stat().st_size
    meta = M.load_model("segmentation", path=tmp_path / "u16.onnx").metadata
    assert meta["precision"] == "fp16" and meta["normalisation"]["mean"] == pytest.approx(0.3)
    assert meta["input"]["roi_mm"] == {"x_left": 96, "y_posterior": 96, "z_superior": 48}


def test_fp16_conversion_keeps_small_tensors():
    from onnx import TensorProto, helper, numpy_helper

    big = numpy_helper.from_array(np.ones((32, 32), np.float32), "big")
    small = numpy_helper.from_array(np.ones(3, np.float32), "small")
    g = helper.make_graph([helper.make_node("Identity", ["big"], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [32, 32])],
                          [big, small])
    m = weights_to_fp16(helper.make_model(g))
    kinds = {i.name: i.data_type for i in m.graph.initializer}
    assert kinds == {"big__fp16": TensorProto.FLOAT16, "small": TensorProto.FLOAT}
    assert m.graph.node[0].op_type == "Cast"


def test_core_slab_follows_the_true_axis_on_any_grid():
    """The held-out 'core Dice' slab: voxels within 5 mm of the isthmus along the true axis,
    checked against explicit physical points on a flipped, anisotropic grid."""
    from c2net.training.heldout import core_slab

    img = sitk.Image([20, 16, 12], sitk.sitkUInt8)
    img.SetSpacing((0.7, 0.9, 1.3))
    img.SetDirection((-1, 0, 0, 0, 0, 1, 0, -1, 0))
    img.SetOrigin((4.0, -3.0, 6.0))
    axis = np.array([0.3, 0.8, -0.52])
    truth = {"isthmus_center_lps_mm": [-2.0, 1.0, -1.0], "axis_lps": axis.tolist()}
    slab = core_slab(img, truth, 3.0)
    kk, jj, ii = np.mgrid[0:12, 0:16, 0:20]
    pts = np.array([img.TransformIndexToPhysicalPoint([int(a), int(b), int(c)])
                    for a, b, c in zip(ii.ravel(), jj.ravel(), kk.ravel())])
    t = (pts - truth["isthmus_center_lps_mm"]) @ (axis / np.linalg.norm(axis))
    assert np.array_equal(slab.ravel(), np.abs(t) <= 3.0)
    assert 0 < slab.mean() < 1
    assert core_slab(img, {"mpd_mm": 4.0}) is None
