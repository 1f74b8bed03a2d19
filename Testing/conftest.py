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


@pytest.fixture(autouse=True)
def _process_locale_restored():
    """GDCM (SimpleITK's DICOM I/O, also in the tests' own DICOM writer) switches the process
    to the C locale; give every test the locale it started with."""
    import locale

    saved = locale.setlocale(locale.LC_CTYPE)
    yield
    locale.setlocale(locale.LC_CTYPE, saved)
