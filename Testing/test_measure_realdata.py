"""Measurement on real bone against the shared reader reference (issue #13); skipped when
../shared/data is absent. VHF right is the cleanest closed isthmus of the three scans."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from c2net.load import load_ct
from c2net.measure import measure_both

REAL = Path(os.environ.get("C2NET_REAL_DATA",
                           Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"))
if not REAL.is_dir():  # the team checkout sits beside /work/shared
    REAL = Path("/work/shared/data/real")
REFERENCE = REAL.parent / "reference" / "reader_c2_isthmus.json"

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not (REAL.is_dir() and REFERENCE.is_file()),
                                 reason="../shared/data (real scans and reader reference) is absent")]


def _trajectory(ref):
    c = np.asarray(ref["isthmus_centre_lps_mm"], float)
    a = np.asarray(ref["axis_lps_posterior_to_anterior"], float)
    a /= np.linalg.norm(a)
    return tuple(c - 10.0 * a), tuple(c + 10.0 * a)


def _along_the_readers_trajectories(scan: str, file: str):
    """(reader's sides, the tool's measurements along his trajectories) on one real scan."""
    path = REAL / file
    if not path.exists():
        pytest.skip(f"{file} is absent")
    refs = {r["side"]: r for r in json.loads(REFERENCE.read_text()) if r["scan"] == scan}
    ct = load_ct(path).image
    return refs, measure_both(ct, trajectories={s: _trajectory(r) for s, r in refs.items()})


def test_vhf_along_the_readers_trajectories():
    refs, res = _along_the_readers_trajectories("vhf", "vhf_head_dicom.tgz")
    for side, r in refs.items():
        m = res[side]
        assert m.axis_source == "trajectory"
        assert not m.no_medullary_canal
        # the isthmus the reader chose, within 3 mm, on both sides
        assert np.linalg.norm(np.subtract(m.isthmus_center_lps_mm, r["isthmus_centre_lps_mm"])) <= 3.0
        assert m.mpd_mm > 4.78          # both VHF isthmi are wide outer tubes
    # the clean closed ring: inner and outer transverse widths as the reader reads them
    r, m = refs["right"], res["right"]
    assert abs(m.inner_width_transverse_mm - r["inner_width_mm"]) <= r["suggested_agreement_tolerance_inner_mm"]
    assert abs(m.outer_width_transverse_mm - r["outer_width_transverse_mm"]) <= 1.0


def test_cthead_left_canal_is_read_at_its_narrowest_point():
    """CThead left: the smallest outer diameter lies ~5 mm from the reader's isthmus, where the
    tube bulges into the lateral mass; the reader reads the canal where it is narrowest (his
    1 mm running-mean minimum over the closed tube). Before, the inner width was read at the
    MPD's section: 5.45 mm and outer 13.1 mm for the reader's 4.08 / 8.84 mm."""
    refs, res = _along_the_readers_trajectories("cthead", "cthead_approxHU.nii.gz")
    r, m = refs["left"], res["left"]
    assert abs(m.inner_width_transverse_mm - r["inner_width_mm"]) <= r["suggested_agreement_tolerance_inner_mm"]
    assert abs(m.outer_width_transverse_mm - r["outer_width_transverse_mm"]) <= 1.0


def test_vhm_canal_is_read_from_its_own_centre():
    """VHM (about 2 mm effective resolution): the canal is eccentric and the outline's centre
    lies in grey trabecular bone beside it; read from the outline's centre the canal took in
    that grey bone (inner 6.49 / 5.52 mm for the reader's 4.07 / 4.65). Read with rays from the
    canal's own centre, its plateau from the canal's core, both sides agree with the reader."""
    refs, res = _along_the_readers_trajectories("vhm", "vhm_head_dicom.tgz")
    for side, r in refs.items():
        m = res[side]
        assert not m.no_medullary_canal
        assert abs(m.inner_width_transverse_mm - r["inner_width_mm"]) <= r["suggested_agreement_tolerance_inner_mm"], side
