"""Bone levels of one scan, read from the scan itself (no fixed Hounsfield thresholds).

Real cortex reads 500-1100 HU on 1 mm scans (blur averages the thin shell with what lies
beside it), phantoms ~1500 HU, cancellous bone 150-500 HU, soft tissue and CSF -20..100 HU.
So the levels are estimated per scan from the histogram of the C2 region:

* ``soft_hu``: the mode of the histogram between -150 and 200 HU (muscle, disc, CSF: the
  commonest tissue around the spine);
* ``cortex_hu``: the 95th percentile of the voxels more than 200 HU above it (the brightest
  few percent of the bone in the region are the cortical shells and the dense body rims);
* ``solid_hu``: the level that separates "inside bone" (cortex or marrow) from soft tissue,
  a quarter of the way from soft tissue up to cortex: above soft tissue plus its noise, below
  cancellous bone's usual level on both blurred (VHM: 20 -> 240 HU) and sharp scans.

Research use only - not a medical device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fraction of the way from the soft-tissue level up to the cortex level at which a voxel
#: counts as lying inside bone (cortex or marrow).
SOLID_FRACTION = 0.25
#: Voxels this far above soft tissue are bone candidates for the cortex level.
BONE_ABOVE_SOFT_HU = 200.0
#: The least contrast (HU) between cortex and soft tissue that is still bone: below it the
#: region holds no bone (wrong place, or not a CT).
MIN_CONTRAST_HU = 250.0


@dataclass(frozen=True)
class BoneLevels:
    soft_hu: float
    cortex_hu: float
    solid_hu: float

    @property
    def soft_max_hu(self) -> float:
        """Above this a region reads more like marrow than like soft tissue or CSF: half-way
        from soft tissue to the inside-bone level."""
        return self.soft_hu + 0.5 * (self.solid_hu - self.soft_hu)

    def to_dict(self) -> dict:
        return {k: round(float(v), 1) for k, v in self.__dict__.items()}


def bone_levels(hu: np.ndarray) -> BoneLevels:
    """Soft-tissue, cortex and inside-bone levels (HU) of the region ``hu`` (any shape)."""
    vals = np.asarray(hu, dtype=np.float32).ravel()
    vals = vals[vals > -900.0]                       # air and outside-the-scan padding
    if vals.size < 100:
        return BoneLevels(0.0, 0.0, np.inf)
    edges = np.arange(-150.0, 201.0, 10.0)
    hist, _ = np.histogram(vals, bins=edges)
    hist = np.convolve(hist, np.ones(3) / 3.0, mode="same")
    soft = float(edges[int(np.argmax(hist))] + 5.0) if hist.any() else float(np.median(vals))
    bone = vals[vals > soft + BONE_ABOVE_SOFT_HU]
    if bone.size < 50:
        return BoneLevels(soft, soft, np.inf)
    cortex = float(np.percentile(bone, 95))
    if cortex - soft < MIN_CONTRAST_HU:
        return BoneLevels(soft, cortex, np.inf)
    return BoneLevels(soft, cortex, soft + SOLID_FRACTION * (cortex - soft))
