"""Speed changes that must not change results (issue 16): each faster path against the
slower one it replaced, or against what it must still do. Research use only - not a medical
device."""

from __future__ import annotations

import io
import re
import threading
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage


# ----------------------------------------------------------------------------- ONNX Runtime
def test_sessions_do_not_spin_between_operators():
    """Spin-waiting threads take the cores the finder and the measurement run on."""
    from c2net.models import session_options

    so = session_options(2)
    assert so.intra_op_num_threads == 2
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"


# ----------------------------------------------------------------------------- segmentation
def _components_reference(labels, min_voxels):
    """keep_plausible_components as it was (SciPy's centre of mass per component)."""
    from c2net.segment import LEFT, RIGHT

    out = np.zeros_like(labels)
    mid = (labels.shape[2] - 1) / 2.0
    struct = ndimage.generate_binary_structure(3, 1)
    for cls in (LEFT, RIGHT):
        comp, n = ndimage.label(labels == cls, structure=struct)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        cols = ndimage.center_of_mass(np.ones_like(comp), comp, index=np.arange(1, n + 1))
        best, best_size = 0, 0
        for k in range(n):
            on_side = cols[k][2] >= mid - 2 if cls == LEFT else cols[k][2] <= mid + 2
            if on_side and sizes[k] >= min_voxels and sizes[k] > best_size:
                best, best_size = k + 1, sizes[k]
        if best:
            out[comp == best] = cls
    return out


@pytest.mark.parametrize("seed", range(6))
def test_plausible_components_as_before(seed):
    from c2net.segment import keep_plausible_components

    rng = np.random.default_rng(seed)
    labels = np.zeros((12, 24, 24 + seed % 2), np.uint8)    # odd and even column counts
    for _ in range(14):
        k, j, i = rng.integers(0, 10), rng.integers(0, 20), rng.integers(0, 20)
        labels[k:k + rng.integers(1, 4), j:j + rng.integers(1, 6), i:i + rng.integers(1, 6)] = \
            rng.integers(1, 3)
    for min_voxels in (1, 15):
        np.testing.assert_array_equal(keep_plausible_components(labels, min_voxels),
                                      _components_reference(labels, min_voxels))


def test_finder_runs_while_the_unet_runs(small_phantom, monkeypatch):
    """The anatomical finder does not wait for the U-Net: it runs beside it (the U-Net here
    waits until the finder has started; one after the other it would wait in vain)."""
    from c2net import segment
    from c2net import pedicle_finder

    started = threading.Event()
    real_find = pedicle_finder.find_pedicles
    real_unet = segment.segment_pedicles

    def find(*a, **k):
        started.set()
        return real_find(*a, **k)

    def unet(*a, **k):
        seen = started.wait(timeout=20.0)
        out = real_unet(*a, **k)
        unet.saw_finder = seen
        return out

    monkeypatch.setattr(pedicle_finder, "find_pedicles", find)
    monkeypatch.setattr(segment, "segment_pedicles", unet)
    out = segment.segment_pedicles_checked(small_phantom.ct,
                                           small_phantom.truth["c2_center_lps_mm"])
    assert unet.saw_finder
    assert out.finder_time_s > 0
    assert set(out.segmenter) == {"left", "right"}


def test_finder_errors_still_raise_after_the_unet(small_phantom, monkeypatch):
    from c2net import pedicle_finder, segment

    def broken(*a, **k):
        raise RuntimeError("finder failed")

    monkeypatch.setattr(pedicle_finder, "find_pedicles", broken)
    with pytest.raises(RuntimeError, match="finder failed"):
        segment.segment_pedicles_checked(small_phantom.ct,
                                         small_phantom.truth["c2_center_lps_mm"])


# ----------------------------------------------------------------------------- loading
def test_intensity_statistics_as_with_itk():
    from c2net.load import check_hounsfield

    rng = np.random.default_rng(3)
    arr = rng.integers(-1024, 2500, size=(20, 30, 40)).astype(np.int16)
    img = sitk.Cast(sitk.GetImageFromArray(arr), sitk.sitkFloat32)
    stats = check_hounsfield(img, "test", "16-bit signed integer")
    ext = sitk.MinimumMaximumImageFilter()
    ext.Execute(img)
    assert stats["min"] == ext.GetMinimum() and stats["max"] == ext.GetMaximum()


# ----------------------------------------------------------------------------- report pictures
def _unfilter_png_rows(raw: bytes, width: int, height: int) -> np.ndarray:
    """Undo PNG filter types 0 (None) and 2 (Up), the ones FlateImage writes."""
    rows = np.frombuffer(raw, np.uint8).reshape(height, width * 3 + 1)
    out = np.zeros((height, width * 3), np.uint8)
    prev = np.zeros(width * 3, np.uint8)
    for r in range(height):
        kind, line = rows[r, 0], rows[r, 1:]
        assert kind in (0, 2)
        out[r] = line if kind == 0 else line + prev
        prev = out[r]
    return out.reshape(height, width, 3)


def test_a_picture_is_compressed_once_for_png_and_pdf(tmp_path):
    from c2net.report.pdf_canvas import FlateImage, Page, write_pdf

    rng = np.random.default_rng(0)
    a = np.clip(np.cumsum(rng.integers(-3, 4, size=(37, 53, 3)), axis=0) + 128, 0, 255)
    pic = Image.fromarray(a.astype(np.uint8), "RGB")
    flat = FlateImage(pic)
    decoded = np.asarray(Image.open(io.BytesIO(flat.png())).convert("RGB"))
    np.testing.assert_array_equal(decoded, np.asarray(pic))   # a valid, lossless PNG
    page = Page()
    page.image(flat, 0.1, 0.1, 0.5, 0.3)
    page.image(pic, 0.1, 0.5, 0.5, 0.3)                       # a Pillow picture works too
    pdf = write_pdf(tmp_path / "x.pdf", [page]).read_bytes()
    streams = re.findall(rb"/Subtype /Image /Width (\d+) /Height (\d+) (.*?)>>\nstream\n",
                         pdf, re.S)
    assert len(streams) == 2
    for w, h, head in streams:
        assert b"/Predictor 15" in head and b"/Colors 3" in head
        assert b"/Columns %d" % int(w) in head
    body = pdf.split(b">>\nstream\n")
    images = [b for b in body[1:] if len(b) > 100][:2]
    for blob in images:
        data = blob[:blob.index(b"\nendstream")]
        px = _unfilter_png_rows(zlib.decompress(data), pic.width, pic.height)
        np.testing.assert_array_equal(px, np.asarray(pic))
