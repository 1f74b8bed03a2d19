"""Left-right mirroring of U-Net training patches with the sides swapped (issue 15).

Research use only - not a medical device.

The canonical ROI is LPS at 1 mm (array [S, P, L]: the last index grows towards the patient's
left). A scan mirrored across the sagittal plane through the ROI centre is a plausible neck
whose left pedicle is the original right one, so a mirrored patch is a correct training
example only when the two pedicle classes are swapped with it (that the crop's last axis
runs right -> left is checked on a phantom in test_training.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from c2net.training import data as D


def _volume():
    s, p, w = 48 + 12, 96 + 12, 96 + 12
    hu = np.full((s, p, w), 40.0, np.float32)
    frac = np.zeros((2, s, p, w), np.uint8)
    hu[20:40, 40:60, 70:80] = 1500.0                 # a bright bar on the patient-left half
    frac[0][20:40, 40:60, 70:80] = 255               # labelled left
    hu[20:40, 40:60, 20:26] = 700.0                  # a dimmer one on the right half
    frac[1][20:40, 40:60, 20:26] = 255               # labelled right
    return {"hu": hu, "target": D.hard_target(frac), "fraction": frac}


def _plain():
    return D.SegAugment(max_rotation_deg=0.0, scale_range=(1.0, 1.0), intensity_shift_hu=0.0,
                        intensity_scale=(1.0, 1.0), max_noise_hu=0.0)


def test_mirror_is_off_by_default_and_keeps_the_random_stream():
    assert D.SegAugment().p_mirror == 0.0
    v = _volume()
    a = D.SegSampler([v], patch=32).sample(np.random.default_rng(4), 6)
    aug = D.SegAugment()
    aug.p_mirror = 0.0
    b = D.SegSampler([v], patch=32, augment=aug).sample(np.random.default_rng(4), 6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_mirrored_patches_swap_the_sides_with_the_image():
    v = _volume()
    aug = _plain()
    aug.p_mirror = 1.0
    x, y = D.SegSampler([v], patch=32, p_pedicle=1.0, augment=aug).sample(
        np.random.default_rng(0), 24)
    bright = D.window_unit(np.float32(1500.0))
    dim = D.window_unit(np.float32(700.0))
    left, right = y[:, 1] > 0.9, y[:, 2] > 0.9
    assert left.sum() > 100 and right.sum() > 100
    # the bright bar (originally left) is now the right pedicle, the dim one the left
    # (interpolated patch centres blur the bars' edges: most, not all, pixels are exact)
    assert np.mean(np.isclose(x[:, 0][right], bright, atol=1e-3)) > 0.8
    assert np.mean(np.isclose(x[:, 0][left], dim, atol=1e-3)) > 0.8
    assert not np.isclose(x[:, 0][left], bright, atol=1e-3).any()


def test_half_mirrored_mix_has_both_looks_on_each_side():
    v = _volume()
    aug = _plain()
    aug.p_mirror = 0.5
    x, y = D.SegSampler([v], patch=32, p_pedicle=1.0, augment=aug).sample(
        np.random.default_rng(1), 64)
    bright = D.window_unit(np.float32(1500.0))
    left = y[:, 1] > 0.9
    on_left = x[:, 0][left]
    share_bright = float(np.mean(np.isclose(on_left, bright, atol=1e-3)))
    assert 0.2 < share_bright < 0.8                  # left is sometimes the bright bar, sometimes not


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])


def test_cli_mirror_option_reaches_the_training_config(monkeypatch, tmp_path):
    """`c2net train seg --mirror P` sets TrainConfig.p_mirror (default 0: no mirrored patches)."""
    import argparse

    from c2net.commands import train as cmd

    seen = []
    monkeypatch.setattr("c2net.training.train.train_seg",
                        lambda m, o, cfg: seen.append(cfg) or {
                            "best_epoch": 1, "best_val_loss": 0.1, "stop_reason": "x"})
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    for extra, want in (([], 0.0), (["--mirror", "0.5"], 0.5)):
        a = p.parse_args(["seg", "--manifest", "m.csv", "--out", str(tmp_path)] + extra)
        assert cmd.run(a) == 0
        assert seen[-1].p_mirror == want
