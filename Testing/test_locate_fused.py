"""A dens joined to C1 in the image (issue 14): its joint spaces closed by partial volume.

On resampled or oblique grids, and in degenerate necks (VHM), the 1-3 mm atlanto-dental and
lateral atlanto-axial joint spaces read 300-550 HU, so at the usual bone thresholds the dens,
the anterior arch and the lateral masses are one C1-sized ring and no dens island is seen; the
dens's cortex still stands out of the joints at a higher threshold. The localiser looks for
such a dens only inside a C1-sized ring (never on the skull base, whose bone runs on) and only
when no reading found a dens island."""

from __future__ import annotations

import numpy as np
from c2net.locate.dens import c1_sized, dens_runs, slice_cues
from scipy import ndimage


def c1_slab(joint_hu: float, n: int = 12, skull_plate: bool = False) -> np.ndarray:
    """[S, P, L] 1 mm slab through C1 and the dens: the canal (centre P 62, L 60), the C1 ring
    (anterior arch, lateral masses, posterior arch; ~60 x 47 mm), the dens (radius 5.5 mm,
    cortex 1200 HU, core 350 HU) in front of the canal, its joint spaces (1.5 mm) at
    ``joint_hu``. ``skull_plate`` joins the ring to bone running out of the slab on both sides
    (skull-base bone, not C1)."""
    pp, ll = np.mgrid[:110, :120].astype(float)
    sl = np.full((110, 120), 40.0)
    r_dens = np.hypot(pp - 42.0, ll - 60.0)
    ring = np.abs(np.hypot(pp - 52, (ll - 60) / 1.3) - 20) <= 3.5
    masses = (np.hypot(pp - 48, ll - 38) <= 9) | (np.hypot(pp - 48, ll - 82) <= 9)
    arch = (np.abs(pp - 30) <= 3) & (np.abs(ll - 60) <= 14)
    sl[ring | masses | arch] = 900.0
    if skull_plate:
        sl[(np.abs(pp - 50) <= 4)] = 900.0
    sl[r_dens <= 7.0] = 40.0
    shell = (r_dens > 5.5) & (r_dens <= 7.0)
    sl[shell & (np.abs(pp - 35) <= 2)] = joint_hu                    # atlanto-dental joint
    sl[shell & (np.abs(ll - 60) >= 5) & (pp < 50)] = joint_hu        # lateral joints
    sl[r_dens <= 5.5] = 1200.0
    sl[r_dens <= 4.0] = 350.0
    return np.repeat(sl[None], n, axis=0)


def _islands(hu: np.ndarray, fused: bool) -> int:
    cp = np.full(hu.shape[0], 62.0)
    cl = np.full(hu.shape[0], 60.0)
    return sum(c.island for c in slice_cues(hu, cp, cl, 1.0, fused=fused))


def test_open_joints_give_an_island_without_the_fused_search():
    assert _islands(c1_slab(40.0), fused=False) == 12


def test_dens_joined_to_c1_is_cut_out_of_the_ring():
    """Joint spaces at 520 HU: no island at the usual thresholds, one on every slice when
    the dens is cut out of its C1 ring; it makes one dens run with C1 around it."""
    hu = c1_slab(520.0)
    assert _islands(hu, fused=False) == 0
    cp, cl = np.full(hu.shape[0], 62.0), np.full(hu.shape[0], 60.0)
    cues = slice_cues(hu, cp, cl, 1.0, fused=True)
    assert sum(c.island for c in cues) == 12
    runs = dens_runs(cues)
    assert len(runs) == 1 and runs[0].length == 12
    assert all(c.arch_in_front and c.masses_beside == 2 for c in runs[0].slices)
    assert all(abs(c.centre_pl[0] - 42.0) < 1.0 and abs(c.centre_pl[1] - 60.0) < 1.0
               for c in runs[0].slices)


def test_no_island_is_cut_out_of_skull_base_bone():
    """The same island joined to bone that runs out of the slab (skull base, not C1) is not
    cut out: the high threshold is tried only inside a C1-sized ring."""
    hu = c1_slab(520.0, skull_plate=True)
    assert _islands(hu, fused=True) == 0
    lab, _ = ndimage.label(hu[0] > 250.0)
    assert not c1_sized(lab, ndimage.find_objects(lab), 62.0, 60.0, 1.0)
    lab, _ = ndimage.label(c1_slab(520.0)[0] > 250.0)
    assert c1_sized(lab, ndimage.find_objects(lab), 62.0, 60.0, 1.0)


def _column(above_mm: int, gap_hu: float = 220.0, depth: int = 60):
    """A dens run (slices 10-19) whose column goes on to slice 24, then ``gap_hu`` on slices
    25-29 and bone again from 30 for ``above_mm`` slices (the basion touching the dens, or a
    body above a disc), in a crop ``depth`` slices deep."""
    from c2net.locate.crop import Crop
    from c2net.locate.dens import DensRun, SliceCue
    hu = np.full((depth, 40, 40), 40.0, np.float32)
    pp, ll = np.ogrid[:40, :40]
    disc = (pp - 20) ** 2 + (ll - 20) ** 2 <= 25
    for k in range(10, 25):
        hu[k][disc] = 700.0
    for k in range(25, 30):
        hu[k][disc] = gap_hu
    for k in range(30, min(depth, 30 + above_mm)):
        hu[k][disc] = 700.0
    hu[22][disc] = 200.0        # one slice of cancellous core: the column goes on through it
    crop = Crop(hu=hu, valid=np.ones(hu.shape, bool), origin=np.zeros(3), spacing_mm=1.0)
    slices = [SliceCue(k=k, island=True, width_mm=10.0, area_mm2=78.0, arch_in_front=True,
                       masses_beside=2, centre_pl=(20.0, 20.0)) for k in range(10, 20)]
    return crop, DensRun(k_lo=10, k_hi=19, score=19.0, slices=slices)


def test_bone_above_the_tip_is_a_body_only_at_a_body_height():
    """Wrong-level guard (VHF re-posed: the basion touching the dens tip, 10 mm of bone in the
    dens's column above it, read as 'a body above it after a gap', 7 false refusals). A body
    above a disc is >= 12 mm of bone (the smallest adult cervical body) or runs into the scan's
    top (cut: VHM cut through C2 is still refused); the gap's density does not tell a blurred
    disc from bone touching bone (both 200-450 HU). One slice of cancellous core does not end
    the column."""
    from c2net.locate.fov import BODY_ABOVE_MM, body_above, column_top
    crop, run = _column(16)
    k_end = column_top(crop, run, crop.hu.shape[0] - 1)
    assert k_end == 24
    assert body_above(crop, run, k_end) >= BODY_ABOVE_MM        # C3 under C2: refused
    crop, run = _column(10)
    assert 0.0 < body_above(crop, run, column_top(crop, run, 59)) < BODY_ABOVE_MM   # basion
    crop, run = _column(10, depth=38)                            # C2's body cut by the top
    assert body_above(crop, run, column_top(crop, run, 37)) >= BODY_ABOVE_MM


def test_a_body_above_with_a_cancellous_dip_is_still_a_body():
    """Wrong-level guard (issue 14; phantom 70006, C2 cut through its body at the scan's top,
    was answered at C3's posterior body wall): the body above the C2/C3 disc read 7 mm, 2 mm of
    cancellous core (46 % bone in the dens's disc), then bone again up to the scan's top. The
    core is no disc (a disc is soft across the whole column): the stretch goes on, and the run
    under it is a lower level."""
    from c2net.locate.fov import BODY_ABOVE_MM, body_above, column_top
    crop, run = _column(30, gap_hu=40.0, depth=60)
    pp, ll = np.ogrid[:40, :40]
    disc = (pp - 20) ** 2 + (ll - 20) ** 2 <= 25
    core = disc & (pp <= 20)                        # under half the disc stays bone
    for k in (37, 38):
        crop.hu[k][disc] = 700.0
        crop.hu[k][core] = 180.0
    k_end = column_top(crop, run, crop.hu.shape[0] - 1)
    assert k_end == 24
    assert body_above(crop, run, k_end) >= BODY_ABOVE_MM
    # a soft gap of the same length is a disc, not a core: the stretch ends there
    for k in (37, 38):
        crop.hu[k][disc] = 40.0
    assert body_above(crop, run, k_end) < BODY_ABOVE_MM
