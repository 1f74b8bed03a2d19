"""Classifier training at the measured isthmus with domain randomisation (issue 15).

Each training isthmus is measured once by c2net.measure (cached), the five slices are re-cut
around it every epoch - jittered by the measurement's error, optionally SynthSeg-randomised -
and the un-augmented cut is exactly the run-time input. Tiny networks, two small phantoms.

Research use only - not a medical device.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from c2net.classifier_view import aperture_radius_mm, own_side_view  # noqa: E402
from c2net.errors import InputError  # noqa: E402
from c2net.training import data as D  # noqa: E402
from c2net.training.randomise import DomainRandomisation, randomise_stack  # noqa: E402
from c2net.training.real_labels import write_manifest  # noqa: E402
from c2net.training.train import TrainConfig, checkpoint_from_onnx, train_cls  # noqa: E402

MANIFEST_COLUMNS = ("patient_id", "ct", "labels", "truth", "mpd_left_mm", "mpd_right_mm")

torch.set_num_threads(1)
TINY_C3D = (2, 4, 4, 8)
TINY_FC = (16, 8)
NO_AUG = dict(max_rotation_deg=0.0, flip=False, intensity_shift_hu=0.0,
              intensity_scale=(1.0, 1.0), max_noise_hu=0.0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Two 1 mm C1-C4 phantoms (one high-risk side each) and their CT manifest."""
    from c2net.phantom import make_phantom, write_phantom

    folder = tmp_path_factory.mktemp("clscohort")
    rows = []
    for i, (seed, ml, mr) in enumerate(((7, 6.0, 3.5), (8, 3.2, 6.4))):
        ph = make_phantom(seed=seed, spacing_mm=1.0, mpd_left_mm=ml, mpd_right_mm=mr,
                          direction="LPS", fov="c1_c4")
        write_phantom(ph, folder / f"case{i}")
        rows.append([f"P{i}", f"case{i}/ct.nii.gz", f"case{i}/labels.nii.gz",
                     f"case{i}/truth.json", ml, mr])
    path = folder / "manifest.csv"
    write_manifest([dict(zip(MANIFEST_COLUMNS, r)) for r in rows], path)
    return path


@pytest.fixture(scope="module")
def slabs(cohort, tmp_path_factory):
    return D.build_cls_slabs(cohort, tmp_path_factory.mktemp("slabcache"))


def test_slabs_are_measured_and_the_plain_cut_is_the_run_time_input(cohort, slabs):
    from c2net.measure import isthmus_slices, measure_pedicle

    assert slabs.hu.shape == (4, 5 + 2 * D.CLS_SLAB_HALO, 64, 64)
    assert slabs.measured.all()                      # the measurement, not the truth, placed them
    assert list(slabs.y) == [0, 1, 1, 0]
    err = slabs.centre_error()
    assert err.shape == (4, 3) and np.all(np.linalg.norm(err, axis=1) < 3.0)
    assert np.any(np.abs(err) > 1e-3)                # measured, so not exactly the truth
    case = D.read_ct_manifest(cohort)[1]
    ct = sitk.ReadImage(str(case.ct), sitk.sitkFloat32)
    lab = sitk.ReadImage(str(case.labels))
    for k, (side, value) in enumerate((("left", 2), ("right", 3))):
        mask = sitk.Cast(lab == value, sitk.sitkUInt8)
        m = measure_pedicle(ct, mask, side)
        hu = isthmus_slices(ct, m, mask).hu
        i = 2 + k
        np.testing.assert_allclose(slabs.centre[i], m.isthmus_center_lps_mm, atol=1e-6)
        want = D.window_unit(own_side_view(hu, aperture_radius_mm(slabs.centre[i],
                                                                  slabs.other_centre[i])))
        # stored as whole HU (int16): at most 0.5 HU = 0.00025 window units apart
        np.testing.assert_allclose(D.cut_cls_item(slabs, i), want, atol=2.6e-4)


def test_cache_means_the_measurement_runs_once(cohort, tmp_path, monkeypatch):
    calls = []
    real = D._measured_centre
    monkeypatch.setattr(D, "_measured_centre", lambda *a: calls.append(1) or real(*a))
    a = D.build_cls_slabs(cohort, tmp_path)
    assert len(calls) == 4
    b = D.build_cls_slabs(cohort, tmp_path)
    assert len(calls) == 4 and np.array_equal(a.hu, b.hu) and np.allclose(a.centre, b.centre)


def test_centre_jitter_moves_the_cut_along_the_slab(slabs):
    plain = D.cut_cls_item(slabs, 0)
    aug = D.ClsAugment(centre_jitter_mm=(0.0, 0.0, 0.0), **NO_AUG)
    assert np.allclose(D.cut_cls_item(slabs, 0, np.random.default_rng(1), aug), plain, atol=1e-5)
    # z jitter: the five slices come from neighbouring slab positions (never beyond the halo)
    aug = D.ClsAugment(centre_jitter_mm=(0.0, 0.0, 3.0), **NO_AUG)
    radius = aperture_radius_mm(slabs.centre[0], slabs.other_centre[0])
    cuts = {}
    for jz in range(-D.CLS_Z_JITTER_MAX, D.CLS_Z_JITTER_MAX + 1):
        s = slabs.hu[0][np.arange(5) + D.CLS_SLAB_HALO + jz].astype(np.float32)
        for x in (s, s[::-1]):
            cuts[jz if x is s else (jz, "r")] = D.window_unit(own_side_view(x, radius))
    seen = set()
    for seed in range(30):
        x = D.cut_cls_item(slabs, 0, np.random.default_rng(seed), aug)
        hit = [k for k, c in cuts.items() if np.allclose(x, c, atol=1e-5)]
        assert hit, "a jittered cut must be five consecutive slab slices"
        seen.add(hit[0] if not isinstance(hit[0], tuple) else hit[0][0])
    assert len(seen) >= 3
    # in-plane jitter shifts the content under a fixed, centred aperture
    aug = D.ClsAugment(centre_jitter_mm=(2.0, 2.0, 0.0), **NO_AUG)
    x = D.cut_cls_item(slabs, 0, np.random.default_rng(3), aug)
    assert not np.allclose(x, plain, atol=1e-3)
    outside = own_side_view(np.full((5, 64, 64), 1000.0, np.float32), radius) <= -199.0
    assert np.all(x[outside] == 0.0) and np.all(plain[outside] == 0.0)


def test_randomised_cuts_vary_are_seeded_and_stay_in_the_window(slabs):
    aug = D.ClsAugment(centre_jitter_mm=(0.7, 0.7, 0.7), domain_randomisation=True)
    a = D.cut_cls_item(slabs, 1, np.random.default_rng(5), aug)
    b = D.cut_cls_item(slabs, 1, np.random.default_rng(5), aug)
    c = D.cut_cls_item(slabs, 1, np.random.default_rng(6), aug)
    assert a.shape == (5, 64, 64) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0
    # the bone's brightness really changes between draws (cortex 500-1800 HU)
    tops = [np.percentile(D.cut_cls_item(slabs, 1, np.random.default_rng(s), aug), 99.5)
            for s in range(12)]
    assert np.ptp(tops) > 0.15


def test_randomise_stack_draws_one_scan_for_all_slices():
    stack = np.zeros((5, 32, 32), np.float32)
    stack[:, :, 16:] = 1500.0
    cfg = DomainRandomisation(noise_hu=(0.0, 0.0))
    out = randomise_stack(stack, np.random.default_rng(0), (-90.0, 40.0, 300.0, 1500.0), cfg)
    assert out.shape == stack.shape
    assert np.allclose(out, out[:1], atol=1e-3)        # same look on every slice
    noisy = randomise_stack(stack, np.random.default_rng(0), (-90.0, 40.0, 300.0, 1500.0))
    assert not np.allclose(noisy[0], noisy[1])          # noise is drawn per voxel


def _cfg(tmp, **kw):
    base = dict(epochs=1, widths=TINY_C3D, fc=TINY_FC, threads=1, val_fraction=0.5,
                cache_dir=str(tmp / "cache"), quiet=True)
    base.update(kw)
    return TrainConfig(**base)


def test_train_cls_randomised_at_the_measured_isthmus_and_warm_start_from_onnx(cohort, tmp_path):
    from c2net.training.export import export_onnx

    s = train_cls(cohort, tmp_path / "a", _cfg(tmp_path, domain_randomisation=True,
                                               p_randomise=0.8))
    assert s["n_measured_sides"] == 4
    assert len(s["centre_jitter_mm"]) == 3 and min(s["centre_jitter_mm"]) >= 0.5
    assert "measured by c2net.measure" in s["training_data"]
    assert "domain randomisation of 80 %" in s["training_data"]
    assert "val_auc_randomised" in s["history"][0]
    ck = torch.load(tmp_path / "a" / "best.pt", weights_only=False)
    assert ck["val_calibration"]["sets"] == ["clean", "randomised"]
    assert ck["view"] == D.CLS_VIEW and ck["centre_jitter_mm"] == s["centre_jitter_mm"]
    log = (tmp_path / "a" / "train_log.csv").read_text().splitlines()[0]
    assert "val_auc_randomised" in log
    # a shipped .onnx is a warm start too: lr 0 keeps the (fp32-exported) weights exactly
    onnx_path = tmp_path / "m" / "c3d.onnx"
    export_onnx(tmp_path / "a" / "best.pt", onnx_path, precision="fp32")
    back = checkpoint_from_onnx(str(onnx_path), "classifier")
    assert back["arch"]["widths"] == list(TINY_C3D) and back["arch"]["fc"] == list(TINY_FC)
    train_cls(cohort, tmp_path / "b", _cfg(tmp_path, widths=None, fc=None, lr=0.0,
                                           init_from=str(onnx_path), centre_jitter_mm=0.0))
    ck2 = torch.load(tmp_path / "b" / "best.pt", weights_only=False)
    assert all(torch.allclose(ck["state_dict"][k], ck2["state_dict"][k]) for k in ck["state_dict"])
    assert ck2["normalisation"] == pytest.approx(ck["normalisation"])
    assert ck2["centre_jitter_mm"] == [0.0, 0.0, 0.0]
    assert ck2["warm_start"]["warm_start"]["onnx"] == str(onnx_path)
    with pytest.raises(InputError, match="not a c2net segmentation model"):
        checkpoint_from_onnx(str(onnx_path), "segmentation")


def test_randomisation_needs_the_measured_path(cohort, tmp_path):
    with pytest.raises(InputError, match="measured isthmus"):
        train_cls(cohort, tmp_path / "x", _cfg(tmp_path, domain_randomisation=True,
                                               use_measure=False))


def test_cli_passes_the_new_options(monkeypatch, tmp_path):
    import argparse

    from c2net.commands import train as cmd

    seen = {}
    monkeypatch.setattr("c2net.training.train.train_cls",
                        lambda m, o, cfg: seen.update(cfg=cfg) or {
                            "best_epoch": 1, "best_val_loss": 0.1, "stop_reason": "x"})
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    a = p.parse_args(["cls", "--manifest", "m.csv", "--out", str(tmp_path), "--domain-randomisation",
                      "--p-randomise", "0.6", "--centre-jitter-mm", "0.8", "--init-from",
                      "models/c2net-c3d-v2.onnx"])
    assert cmd.run(a) == 0
    cfg = seen["cfg"]
    assert cfg.domain_randomisation and cfg.p_randomise == 0.6 and cfg.centre_jitter_mm == 0.8
    assert cfg.init_from.endswith(".onnx") and cfg.use_measure
