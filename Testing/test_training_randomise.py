"""Domain-randomised U-Net training patches (c2net.training.randomise; off by default).

Research use only - not a medical device.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from c2net.training import data as D
from c2net.training.randomise import DomainRandomisation, randomise_patch, source_levels

LEVELS = (-90.0, 40.0, 300.0, 1500.0)          # a phantom's fat, soft tissue, cancellous, cortex


def _tissue_patch():
    img = np.full((40, 40), -1000.0, np.float32)      # air
    img[:, 8:16] = LEVELS[0]
    img[:, 16:24] = LEVELS[1]
    img[:, 24:32] = LEVELS[2]
    img[:, 32:] = LEVELS[3]
    return img


def test_tissues_get_new_levels_in_their_ranges_and_keep_their_order():
    cfg = DomainRandomisation(bias_hu=0.0, gain=(1.0, 1.0), max_blur_px=0.0, noise_hu=(0.0, 0.0),
                              gamma=(1.0, 1.0))
    looks = []
    for seed in range(20):
        out = randomise_patch(_tissue_patch(), np.random.default_rng(seed), LEVELS, cfg)
        fat, soft, canc, cortex = (float(out[0, c]) for c in (10, 20, 28, 36))
        assert cfg.fat_hu[0] - 1 <= fat <= cfg.fat_hu[1] + 1
        assert cfg.soft_hu[0] - 1 <= soft <= cfg.soft_hu[1] + 1
        assert cfg.cancellous_hu[0] - 1 <= canc <= cfg.cancellous_hu[1] + 11
        assert cfg.cortex_hu[0] - 1 <= cortex <= cfg.cortex_hu[1] + 1
        assert fat < soft < canc < cortex
        assert out[0, 0] <= -990.0                                # air stays air
        looks.append(cortex)
    assert np.ptp(looks) > 400.0                                 # the cortex really varies


def test_full_randomisation_is_seeded_and_varies():
    img = _tissue_patch()
    a = randomise_patch(img, np.random.default_rng(3), LEVELS)
    b = randomise_patch(img, np.random.default_rng(3), LEVELS)
    c = randomise_patch(img, np.random.default_rng(4), LEVELS)
    assert a.shape == img.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_source_levels_of_a_volume():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(-90, 10, 5000), rng.normal(40, 10, 40000),
                           rng.normal(300, 30, 8000), rng.normal(1500, 50, 3000)])
    fat, soft, canc, cortex = source_levels(vals)
    assert fat == pytest.approx(-90, abs=25) and soft == pytest.approx(40, abs=15)
    assert 200 < canc < 700 and cortex == pytest.approx(1500, rel=0.1)


def _volume():
    s, p, w = 48 + 12, 96 + 12, 96 + 12
    hu = np.full((s, p, w), 40.0, np.float32)
    target = np.zeros((s, p, w), np.uint8)
    hu[20:40, 40:60, 60:70] = 1500.0
    hu[22:38, 42:58, 62:68] = 300.0
    target[22:38, 42:58, 62:68] = 1
    frac = np.zeros((2, s, p, w), np.uint8)           # shares of the left / right pedicle
    frac[0][target == 1] = 255
    return {"hu": hu, "target": target, "fraction": frac}


def test_sampler_option_is_off_by_default_and_changes_the_image_not_the_label_meaning():
    v = _volume()
    assert D.SegAugment().domain_randomisation is False
    plain = D.SegSampler([v], patch=32)
    rand = D.SegSampler([v], patch=32, augment=D.SegAugment(domain_randomisation=True))
    x0, y0 = plain.sample(np.random.default_rng(0), 16)
    x1, y1 = rand.sample(np.random.default_rng(0), 16)
    assert x1.shape == x0.shape == (16, 1, 32, 32) and y1.shape == y0.shape == (16, 3, 32, 32)
    assert not np.allclose(x0, x1)                    # another look
    assert np.allclose(y1.sum(axis=1), 1.0, atol=1e-5) and y1.min() >= 0.0
    # the label still sits on the (cancellous) bone it marks: deformed with the image
    inside, outside = y1[:, 1] > 0.9, y1.sum(axis=1) - y1[:, 0] < 0.01
    assert inside.sum() > 50
    assert x1[:, 0][inside].mean() > x1[:, 0][outside & (x1[:, 0] > 0.05)].mean() - 0.05


def test_elastic_warp_matches_the_affine_path_and_moves_with_the_displacement():
    from c2net.training.randomise import elastic_field

    rng = np.random.default_rng(1)
    img = ndimage_smooth(rng.normal(size=(60, 60)))
    c, out = (30.0, 30.0), (32, 32)
    plain = D._affine_2d(img, c, out, 12.0, 1.05, 1, 0.0)
    zero = D._affine_2d(img, c, out, 12.0, 1.05, 1, 0.0, np.zeros((2,) + out))
    assert np.allclose(plain, zero, atol=1e-5)
    shift = np.zeros((2,) + out)
    shift[1] = 3.0                                     # three output pixels along columns
    moved = D._affine_2d(img, c, out, 0.0, 1.0, 1, 0.0, shift)
    assert np.allclose(moved, D._affine_2d(img, (30.0, 33.0), out, 0.0, 1.0, 1, 0.0), atol=1e-5)
    cfg = DomainRandomisation()
    f1 = elastic_field(np.random.default_rng(5), (64, 64), cfg)
    f2 = elastic_field(np.random.default_rng(5), (64, 64), cfg)
    assert f1.shape == (2, 64, 64) and np.array_equal(f1, f2)
    assert 0.2 < np.abs(f1).max() < 8 * cfg.elastic_mm
    assert np.abs(np.diff(f1, axis=2)).max() < 1.0     # smooth: < 1 px change per pixel


def ndimage_smooth(a):
    from scipy import ndimage

    return ndimage.gaussian_filter(a, 2.0)


def test_scanner_resolution_model():
    from c2net.training.randomise import draw_scanner, inplane_sigma_px, slab_weights

    assert np.array_equal(slab_weights(1.0), [0, 0, 1, 0, 0])   # the grid's own 1 mm slice
    w3 = slab_weights(3.0)
    assert w3.sum() == pytest.approx(1.0) and np.allclose(w3, w3[::-1]) and w3[0] > 0.01
    assert slab_weights(2.0)[2] > w3[2]                        # thicker slices spread more
    assert inplane_sigma_px(0.4, 1.5) == 0.0                   # finer than the 1 mm grid
    assert 0.0 < inplane_sigma_px(1.0, 2.0) < inplane_sigma_px(1.0, 3.0)
    cfg = DomainRandomisation()
    for seed in range(20):
        s = draw_scanner(np.random.default_rng(seed), cfg)
        assert 0.4 <= s["pixel_mm"] <= 1.0 and 0.6 <= s["slice_mm"] <= 3.0


def test_sampler_weights_choose_the_volumes():
    a, b = _volume(), _volume()
    b = dict(b, hu=b["hu"] + 500.0)                   # tell them apart by their soft tissue
    smp = D.SegSampler([a, b], patch=32, weights=[0.0, 1.0])
    x, _ = smp.sample(np.random.default_rng(0), 8)
    assert np.all(x[:, 0, :2, :2] > D.window_unit(np.float32(400.0)))
    with pytest.raises(ValueError):
        D.SegSampler([a, b], patch=32, weights=[1.0])


def test_train_seg_runs_with_domain_randomisation(tmp_path):
    """``TrainConfig(domain_randomisation=True)`` trains on randomised patches (one tiny epoch)."""
    pytest.importorskip("torch")
    from c2net.training.train import TrainConfig, train_seg
    from test_training import TINY_UNET, _write_case

    folder = tmp_path / "cohort"
    folder.mkdir()
    eye = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    rows = [_write_case(folder, f"p{i}", 3.0 + i, 6.5 - i, (i * 0.5, 0, 0), eye) for i in range(4)]
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "ct", "labels", "truth", "mpd_left_mm", "mpd_right_mm"])
        w.writerows(rows)
    cfg = TrainConfig(epochs=1, steps_per_epoch=2, widths=TINY_UNET, patch=32, val_slices=8,
                      threads=1, val_fraction=0.5, cache_dir=str(tmp_path / "cache"), quiet=True,
                      use_measure=False, domain_randomisation=True)
    summary = train_seg(manifest, tmp_path / "run", cfg)
    assert summary["epochs_run"] == 1 and (tmp_path / "run" / "best.pt").exists()
    # real scans as an extra, training-only manifest, and a warm start from an exported .onnx
    from c2net.training.export import export_onnx

    export_onnx(tmp_path / "run" / "best.pt", tmp_path / "run.onnx", precision="fp16")
    real = folder / "real.csv"
    with open(real, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "ct", "labels", "truth", "mpd_left_mm", "mpd_right_mm"])
        w.writerows(rows[:1])
    cfg2 = TrainConfig(**{**cfg.__dict__, "real_manifest": str(real), "real_share": 0.5,
                          "init_from": str(tmp_path / "run.onnx"), "widths": None,
                          "p_randomise": 0.5})
    s2 = train_seg(manifest, tmp_path / "run2", cfg2)
    assert "plus 1 real CT" in s2["training_data"] and "randomisation" in s2["training_data"]


def test_checkpoint_from_onnx_gives_back_the_exported_network(tmp_path):
    torch = pytest.importorskip("torch")
    from c2net.errors import InputError
    from c2net.training.export import export_onnx
    from c2net.training.nets import UNet2D
    from c2net.training.train import checkpoint_from_onnx
    from test_training import TINY_UNET

    net = UNet2D(widths=TINY_UNET)
    ck = {"kind": "segmentation", "arch": {"in_channels": 3, "n_classes": 3,
                                           "widths": list(TINY_UNET)},
          "state_dict": net.state_dict(), "normalisation": {"mean": 0.2, "std": 0.3},
          "window": {"level_hu": 800.0, "width_hu": 2000.0}, "roi_mm": [96, 96, 48],
          "classes": ["b", "l", "r"], "config": {}, "training_data": "test", "epoch": 1,
          "split": {"index": 0}}
    torch.save(ck, tmp_path / "best.pt")
    export_onnx(tmp_path / "best.pt", tmp_path / "u.onnx", precision="fp16")
    back = checkpoint_from_onnx(str(tmp_path / "u.onnx"))
    assert back["arch"]["widths"] == list(TINY_UNET)
    assert back["normalisation"] == {"mean": 0.2, "std": 0.3}
    net2 = UNet2D(widths=TINY_UNET)
    net2.load_state_dict(back["state_dict"])
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), net2(x), atol=2e-2)      # fp16 weights
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(InputError):
        checkpoint_from_onnx(str(tmp_path / "junk.onnx"))
