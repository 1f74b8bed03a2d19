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
    s, p, l = 48 + 12, 96 + 12, 96 + 12
    hu = np.full((s, p, l), 40.0, np.float32)
    target = np.zeros((s, p, l), np.uint8)
    hu[20:40, 40:60, 60:70] = 1500.0
    hu[22:38, 42:58, 62:68] = 300.0
    target[22:38, 42:58, 62:68] = 1
    frac = np.zeros((2, s, p, l), np.uint8)           # shares of the left / right pedicle
    frac[0][target == 1] = 255
    return {"hu": hu, "target": target, "fraction": frac}


def test_sampler_option_is_off_by_default_and_changes_only_the_image():
    v = _volume()
    assert D.SegAugment().domain_randomisation is False
    plain = D.SegSampler([v], patch=32)
    rand = D.SegSampler([v], patch=32, augment=D.SegAugment(domain_randomisation=True))
    for seed in range(4):                             # first patch: same geometry draws
        x0, y0 = plain.sample(np.random.default_rng(seed), 1)
        x1, y1 = rand.sample(np.random.default_rng(seed), 1)
        assert x1.shape == x0.shape == (1, 1, 32, 32) and y0.shape == (1, 3, 32, 32)
        assert np.array_equal(y0, y1)                 # same patch, same labels
        assert not np.allclose(x0, x1)                # another look


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
