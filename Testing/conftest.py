"""Shared pytest fixtures (kept small: one phantom built once per session)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_phantom():
    """One C1-C4 phantom at 0.8 mm isotropic, axial LPS, asymmetric MPDs (left 6.0, right 3.5).

    Returns a :class:`c2net.phantom.Phantom` (ct float32 HU, labels uint8, truth dict).
    Treat it as read-only: it is shared by the whole session.
    """
    from c2net.phantom import make_phantom

    return make_phantom(seed=7, spacing_mm=0.8, mpd_left_mm=6.0, mpd_right_mm=3.5,
                        direction="LPS", fov="c1_c4")


@pytest.fixture(scope="session")
def neck_phantom_dir(tmp_path_factory):
    """A C1-C4 phantom written as NIfTI in its own folder ``.../scans``: 0.8 x 0.8 x 1.0 mm, RAI
    orientation (flipped axes), asymmetric MPDs (left 6.2, right 3.4). Read-only for tests."""
    from c2net.phantom import make_phantom, write_phantom

    d = tmp_path_factory.mktemp("neck") / "scans"
    ph = make_phantom(seed=11, spacing_mm=(0.8, 0.8, 1.0), mpd_left_mm=6.2, mpd_right_mm=3.4,
                      fov="c1_c4", direction="RAI")
    write_phantom(ph, d)
    return d


@pytest.fixture(autouse=True)
def _process_locale_restored():
    """GDCM (SimpleITK's DICOM I/O, also in the tests' own DICOM writer) switches the process
    to the C locale; give every test the locale it started with."""
    import locale

    saved = locale.setlocale(locale.LC_CTYPE)
    yield
    locale.setlocale(locale.LC_CTYPE, saved)
