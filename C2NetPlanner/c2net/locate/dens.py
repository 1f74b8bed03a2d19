"""Find the dens of C2 inside the C1 ring, slice by slice along the spinal canal.

On each 1 mm slice of the crop (:mod:`c2net.locate.crop`, in the spine's own frame: slices
are perpendicular to the spine, "in front" is towards the vertebral bodies) the bone just anterior to the
canal is examined. At the level of the C1 ring that bone is the dens: a small, round, isolated
island (5-14 mm wide) with the anterior arch of C1 in front of it and the lateral masses of C1
on both sides, separated from it by joint spaces. At every other level the bone in front of
the canal is a vertebral body (wider, joined to its pedicles), the basion/clivus (no arch in
front, no masses beside) or nothing. The dens is the best-scoring upright run of dens-like
slices (island slices chained by centre continuity, several runs open at once, so a stray
island on one slice does not break the column).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .ring import c1_ring_cues, ring_slices

#: HU above which a 1 mm voxel is bone for the island analysis.
BONE_HU_1MM = 250.0
#: Transverse width (mm) of a dens cross-section.
DENS_WIDTH_MM = (5.0, 14.5)
#: Filled cross-section area (mm^2) of a dens.
DENS_AREA_MM2 = (20.0, 190.0)
#: How far (mm) in front of the canal centre the bone in front of the canal may start.
MAX_CANAL_TO_BONE_MM = 30.0


@dataclass
class SliceCue:
    """Evidence on one axial slice (crop indices; distances in mm)."""

    k: int
    island: bool = False          # an isolated, dens-sized bone island in front of the canal
    width_mm: float = 0.0
    area_mm2: float = 0.0
    arch_in_front: bool = False   # another bone (C1 anterior arch) 1-12 mm in front of it
    masses_beside: int = 0        # number of sides (0-2) with separate bone beside it
    centre_pl: tuple = (np.nan, np.nan)

    @property
    def score(self) -> float:
        if not self.island:
            return 0.0
        return 1.0 + 0.6 * self.arch_in_front + 0.3 * self.masses_beside


@dataclass
class DensRun:
    """A vertical run of dens-like slices: ``k_lo``..``k_hi`` (crop slice indices)."""

    k_lo: int
    k_hi: int
    score: float
    slices: list = field(default_factory=list)
    #: distance (mm) of its lowest slice below the top of the canal track (set by the search)
    below_canal_top_mm: float = float("nan")

    @property
    def length(self) -> int:
        return self.k_hi - self.k_lo + 1


#: (bone threshold HU, in-plane erosion in voxels) tried in turn: the joint spaces around the
#: dens are 1-3 mm wide, so partial volume can bridge them at a low threshold; erosion or a
#: higher threshold opens them again.
SEPARATIONS = ((250.0, 0), (250.0, 1), (450.0, 0), (250.0, 2), (450.0, 1))
#: A dens fused to C1 in the image (a narrow joint space closed by partial volume on a
#: resampled or oblique grid, or by degeneration): at the thresholds above the dens, the
#: anterior arch and the lateral masses are one C1-sized ring around the canal, but the dens's
#: cortex (700-1500 HU) still stands out of the joint spaces (250-500 HU) between them. These
#: thresholds are tried only on slices where the bone in front of the canal at the first
#: threshold is such a ring (:func:`c1_sized`), never on the skull base, whose bone runs on
#: for more than C1's extent.
FUSED_SEPARATIONS = ((650.0, 0), (650.0, 1))
#: Outer extent (mm) of the C1 ring: ~75-90 mm across the transverse processes, ~45-50 mm
#: from the anterior tubercle to the posterior arch (adult morphometry), with a margin.
C1_MAX_WIDTH_MM, C1_MAX_DEPTH_MM = 95.0, 60.0


def slice_cues(hu: np.ndarray, centre_p: np.ndarray, centre_l: np.ndarray,
               spacing_mm: float = 1.0, fused: bool = False) -> list[SliceCue]:
    """Dens evidence on every slice ``k`` of ``hu[S, P, L]`` given the canal centre per slice
    (``centre_p[k]``, ``centre_l[k]``, NaN where the canal is unknown). With ``fused``, the
    ``FUSED_SEPARATIONS`` are tried too (a dens joined to C1 in the image; the localiser does
    so only when no dens was found without them)."""
    cues = [SliceCue(k=k) for k in range(hu.shape[0])]
    known = np.isfinite(centre_p) & np.isfinite(centre_l)
    if not np.any(known):
        return cues
    k0, k1 = np.nonzero(known)[0][[0, -1]]
    sub = hu[k0:k1 + 1]
    structure2d = np.zeros((3, 3, 3), bool)
    structure2d[1] = ndimage.generate_binary_structure(2, 1)
    label_structure = np.zeros((3, 3, 3), bool)
    label_structure[1] = True
    ring = np.zeros(len(cues), bool)
    for i, (threshold, erosion) in enumerate(SEPARATIONS + (FUSED_SEPARATIONS if fused else ())):
        if i >= len(SEPARATIONS) and not ring.any():
            break
        bone = sub > threshold
        if erosion:
            bone = ndimage.binary_erosion(bone, structure=structure2d, iterations=erosion)
        lab, _ = ndimage.label(bone, structure=label_structure)
        objects = ndimage.find_objects(lab)
        for k in range(k0, k1 + 1):
            if cues[k].island or not known[k] or (i >= len(SEPARATIONS) and not ring[k]):
                continue
            if i == 0 and fused:
                ring[k] = c1_sized(lab[k - k0], objects, centre_p[k], centre_l[k], spacing_mm)
            _examine(cues[k], lab[k - k0], objects, centre_p[k], centre_l[k], spacing_mm, erosion)
    return cues


def _front_hit(lab: np.ndarray, pc: float, lc: float, spacing_mm: float):
    """(P, L) of the bone voxel nearest in front of the canal centre, near its mid-line, or
    None."""
    p_dim, l_dim = lab.shape
    pc, lc = int(round(pc)), int(round(lc))
    if not (0 <= pc < p_dim and 0 <= lc < l_dim):
        return None
    reach = int(round(MAX_CANAL_TO_BONE_MM / spacing_mm))
    lo = max(0, pc - reach)
    best = None
    for dl in (0, -1, 1, -2, 2):
        col = lc + dl
        if not 0 <= col < l_dim:
            continue
        hits = np.nonzero(lab[lo:pc + 1, col])[0]
        if len(hits):
            p_hit = lo + hits[-1]
            if best is None or p_hit > best[0]:
                best = (p_hit, col)
    return best


def c1_sized(lab: np.ndarray, objects: list, pc: float, lc: float, spacing_mm: float) -> bool:
    """Whether the bone in front of the canal on the labelled ``[P, L]`` slice is one piece of
    C1's size that reaches behind the canal's centre (a ring around it) and stays inside the
    crop: the C1 ring with the dens joined to it."""
    hit = _front_hit(lab, pc, lc, spacing_mm)
    if hit is None:
        return False
    sp_, sl_ = objects[lab[hit] - 1][-2:]  # (P, L) of a 2D or (S, P, L) of a 3D labelling
    if sp_.start == 0 or sl_.start == 0 or sp_.stop == lab.shape[0] or sl_.stop == lab.shape[1]:
        return False
    width = (sl_.stop - sl_.start) * spacing_mm
    depth = (sp_.stop - sp_.start) * spacing_mm
    return (width <= C1_MAX_WIDTH_MM and depth <= C1_MAX_DEPTH_MM
            and sp_.stop - 1 > pc + 8.0 / spacing_mm)


def _examine(cue: SliceCue, lab: np.ndarray, objects: list, pc: float, lc: float,
             spacing_mm: float, erosion: int) -> None:
    """Fill ``cue`` from one labelled slice when the bone in front of the canal is dens-like."""
    p_dim, l_dim = lab.shape
    best = _front_hit(lab, pc, lc, spacing_mm)
    pc = int(round(pc))
    if best is None:
        return
    label = lab[best[0], best[1]]
    sl = objects[label - 1]
    sp_, sl_ = sl[1], sl[2]
    if sp_.start == 0 or sl_.start == 0 or sp_.stop == p_dim or sl_.stop == l_dim:
        return  # runs out of the crop: not an island
    comp = lab[sp_, sl_] == label
    filled = ndimage.binary_fill_holes(comp)
    grow = 2 * erosion * spacing_mm  # the erosion shrank the island by this much across
    width = float(sl_.stop - sl_.start) * spacing_mm + grow
    depth = float(sp_.stop - sp_.start) * spacing_mm + grow
    area = float(filled.sum()) * spacing_mm**2 + grow * 0.5 * (width + depth)
    if cue.area_mm2 == 0.0:
        cue.width_mm, cue.area_mm2 = width, area
    if not (DENS_WIDTH_MM[0] <= width <= DENS_WIDTH_MM[1] and depth <= 18.0
            and DENS_AREA_MM2[0] <= area <= DENS_AREA_MM2[1]):
        return
    # round, solid cross-section (a vertebral body's posterior cortex is a thin arc)
    if not (0.55 <= depth / width <= 1.8 and area >= 0.55 * np.pi / 4.0 * width * depth):
        return
    if sp_.stop - 1 > pc + int(round(8.0 / spacing_mm)):
        return  # reaches behind the canal centre: part of a ring, not an island
    pp, ll = np.nonzero(filled)
    cue.island = True
    cue.width_mm, cue.area_mm2 = width, area
    cue.centre_pl = (float(pp.mean() + sp_.start), float(ll.mean() + sl_.start))
    cue.arch_in_front, cue.masses_beside = c1_ring_cues(lab, label, sp_, sl_, spacing_mm)


#: Largest drift (mm of P or L per mm of S) of a dens run's centre: the dens stands along the
#: canal, whereas the clivus and the nasal septum slope forwards at 45-70 degrees.
MAX_RUN_SLOPE = 0.5
#: Largest shift (crop voxels, 1 mm) of the island centre between consecutive slices of one
#: run: a bone island above the dens tip (basion, skull base) is another structure.
MAX_CENTRE_JUMP_VOXELS = 4.0


def dens_runs(cues: list[SliceCue], max_gap: int = 3, min_length: int = 4) -> list[DensRun]:
    """Vertical runs of island slices (gaps up to ``max_gap`` slices) that stand upright
    (drift below ``MAX_RUN_SLOPE``), best score first.

    Several runs may be open at once: an island elsewhere on a slice (a piece of the C1 arch,
    an osteophyte) starts its own run instead of breaking the dens column, and a slice joins
    the open run whose recent centre it continues most closely."""
    open_runs: list[list[SliceCue]] = []
    closed: list[list[SliceCue]] = []
    for cue in cues:
        if not cue.island:
            continue
        still_open = []
        for run in open_runs:
            (closed if cue.k - run[-1].k > max_gap + 1 else still_open).append(run)
        open_runs = still_open
        best, best_jump = None, MAX_CENTRE_JUMP_VOXELS
        for run in open_runs:
            recent = np.mean([c.centre_pl for c in run[-3:]], axis=0)
            jump = float(np.hypot(*(np.subtract(cue.centre_pl, recent))))
            if jump <= best_jump:
                best, best_jump = run, jump
        if best is None:
            open_runs.append([cue])
        else:
            best.append(cue)
    runs = [_close(r) for r in closed + open_runs]
    runs = [t for r in runs if r.length >= min_length
            for t in [r if run_slope(r) <= MAX_RUN_SLOPE else _upright_part(r, min_length)]
            if t is not None]
    # a dens sits inside the C1 ring: when some run shows the anterior arch or the lateral
    # masses on at least two slices, runs without either (clivus, skull-base bone) are dropped
    in_ring = [r for r in runs if ring_slices(r) >= 2]
    if in_ring:
        runs = in_ring
    runs.sort(key=lambda r: -r.score)
    return runs


def _upright_part(run: DensRun, min_length: int) -> DensRun | None:
    """The best-scoring stretch of a sloping run that stands upright, or None.

    Bone of the skull base (the basion, the clivus) can touch the dens tip in the image and
    extend its run forwards; the upright stretch below it is still the dens."""
    best = None
    cues = run.slices
    for i in range(len(cues)):
        for j in range(len(cues) - 1, i, -1):
            if cues[j].k - cues[i].k + 1 < min_length:
                break
            part = _close(cues[i:j + 1])
            if best is not None and part.score <= best.score:
                continue
            if run_slope(part) <= MAX_RUN_SLOPE:
                best = part
    return best


def run_slope(run: DensRun) -> float:
    """Largest |d(P or L)/dS| of a least-squares line through the run's island centres."""
    k = np.array([c.k for c in run.slices], float)
    if len(k) < 3 or np.ptp(k) == 0:
        return 0.0
    pl = np.array([c.centre_pl for c in run.slices], float)
    slopes = [abs(np.polyfit(k, pl[:, i], 1)[0]) for i in range(2)]
    return float(max(slopes))


def _close(slices: list[SliceCue]) -> DensRun:
    score = float(sum(c.score for c in slices))
    return DensRun(k_lo=slices[0].k, k_hi=slices[-1].k, score=score, slices=list(slices))
